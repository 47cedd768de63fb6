"""Seed 003 §9 failure modes: the anhedonia trap (one emergency stimulus per episode)
and the mania loop (rate-limited serotonin boosts), read back with the orchestrator's
RequestReceiver and the oracle's own counters."""

from __future__ import annotations

from engs.services.oracle.watchdog import Watchdog
from engs.shared.layout import Process
from engs.shared.region import Region
from engs.shared.requests import RequestReceiver
from engs.shared.stats import StatsWriter
from tests.services.oracle.craft import MS, Crafter, make_watchdog, oracle_counter


def test_anhedonia_requests_one_emergency_stimulus_per_episode(
    region: Region, crafter: Crafter, t0: int
) -> None:
    wd = make_watchdog(region)  # the seed's numbers: MA(D) < 0.1 for > 1000 cycles
    receiver = RequestReceiver(region)
    t = t0

    def cycles(n: int, d: float) -> None:
        nonlocal t
        for _ in range(n):
            t += 10 * MS
            crafter.publish(t, dopamine=d)
            crafter.tick(t)
            wd.poll(now_ns=t)

    def requested() -> int:
        n = oracle_counter(region, "engs_oracle_requests_total", kind="emergency_stimulus")
        assert receiver.pending().get("emergency_stimulus", 0) == n
        return n

    cycles(1000, 0.05)  # below from the first cycle on: 1000 cycles are not "> 1000"
    assert requested() == 0
    cycles(1, 0.05)
    assert requested() == 1
    cycles(2000, 0.05)  # the same episode: nothing more
    assert requested() == 1
    # The average rises above 0.1 (episode over) but not to the 0.15 re-arm level...
    cycles(200, 0.12)
    cycles(1200, 0.05)
    assert requested() == 1
    # ...until it does: the next long low stretch is a new episode.
    cycles(200, 0.5)
    cycles(1100, 0.05)
    assert requested() == 2
    assert receiver.take() == {"emergency_stimulus": 2}  # the orchestrator takes them once
    assert receiver.pending() == {}


def _switching(
    wd: Watchdog, orch: StatsWriter, idx: int, t: int, seconds: float, rate: float
) -> int:
    """``rate`` context switches per second for ``seconds``, in 50 ms steps, the oracle
    polling each step."""
    acc = 0.0
    for _ in range(round(seconds * 20)):
        t += 50 * MS
        acc += rate * 0.05
        n = int(acc)
        acc -= n
        if n:
            orch.inc(idx, n)
        wd.poll(now_ns=t)
    return t


def test_mania_requests_a_serotonin_boost_once_per_short_episode(region: Region, t0: int) -> None:
    wd = make_watchdog(region, mania_switches_per_s=2.0, mania_window_s=1.0, mania_cooldown_s=5.0)
    orch = StatsWriter(region, Process.ORCHESTRATOR)
    idx = orch.counter("engs_orchestrator_context_switches_total")
    receiver = RequestReceiver(region)

    def requested() -> int:
        n = oracle_counter(region, "engs_oracle_requests_total", kind="serotonin_boost")
        assert receiver.pending().get("serotonin_boost", 0) == n
        return n

    t = _switching(wd, orch, idx, t0, 2.0, 1.0)  # calm: 1/s
    assert requested() == 0
    t = _switching(wd, orch, idx, t, 3.0, 5.0)  # an episode shorter than the cooldown
    assert requested() == 1
    t = _switching(wd, orch, idx, t, 4.0, 0.0)  # over
    assert requested() == 1
    t = _switching(wd, orch, idx, t, 3.0, 5.0)  # a new episode, past the cooldown
    assert requested() == 2


def test_mania_requests_are_rate_limited_while_it_lasts(region: Region, t0: int) -> None:
    wd = make_watchdog(region, mania_switches_per_s=2.0, mania_window_s=1.0, mania_cooldown_s=5.0)
    orch = StatsWriter(region, Process.ORCHESTRATOR)
    idx = orch.counter("engs_orchestrator_context_switches_total")
    _switching(wd, orch, idx, t0, 12.0, 5.0)
    # Detected once a full 1 s window shows the rate, then again every 5 s: 3 in 12 s.
    assert oracle_counter(region, "engs_oracle_requests_total", kind="serotonin_boost") == 3
    assert RequestReceiver(region).take() == {"serotonin_boost": 3}
