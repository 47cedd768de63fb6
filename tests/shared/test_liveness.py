"""Liveness: the pure verdict rule, and real writer processes that stop beating, stop
ticking, or die mid-publication leaving a seqlock odd."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from typing import Any

import pytest

from engs.shared.clock import monotonic_ns
from engs.shared.heartbeat import Heartbeat
from engs.shared.layout import HeartbeatState, Process
from engs.shared.liveness import LivenessLimits, Verdict, assess, liveness
from engs.shared.region import Region
from engs.shared.seqlock import SeqlockWriter

ctx = mp.get_context("fork")
S = 1_000_000_000
LIMITS = LivenessLimits(heartbeat_timeout_ns=S, startup_timeout_ns=30 * S, output_timeout_ns=S // 2)
NOW = 1000 * S


def verdict(**kw: Any) -> Verdict:
    args: dict[str, Any] = {
        "state": HeartbeatState.RUNNING,
        "pid": 42,
        "last_beat_ns": NOW - S // 10,
        "started_ns": NOW - 100 * S,
        "output_t_ns": NOW - S // 100,
        "now_ns": NOW,
        "limits": LIMITS,
    } | kw
    return assess(Process.PHYSICS, **args).verdict


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({}, Verdict.ALIVE),
        ({"state": HeartbeatState.SAFE_MODE}, Verdict.ALIVE),
        ({"state": HeartbeatState.ABSENT, "pid": 0, "last_beat_ns": 0}, Verdict.ABSENT),
        ({"state": HeartbeatState.STOPPED}, Verdict.STOPPED),
        ({"state": HeartbeatState.FAILED}, Verdict.FAILED),
        ({"last_beat_ns": NOW - 2 * S}, Verdict.DEAD),
        ({"state": HeartbeatState.STARTING, "last_beat_ns": NOW - 10 * S}, Verdict.STARTING),
        ({"state": HeartbeatState.STARTING, "last_beat_ns": NOW - 31 * S}, Verdict.DEAD),
        ({"output_t_ns": NOW - S}, Verdict.FROZEN),  # beats, but the ticks stopped
        ({"output_t_ns": NOW - S, "seq_odd": True}, Verdict.FROZEN),
        # Restarted, not yet published since its start: the start-up allowance applies.
        ({"started_ns": NOW - 5 * S, "output_t_ns": NOW - 60 * S}, Verdict.ALIVE),
        ({"started_ns": NOW - 31 * S, "output_t_ns": NOW - 60 * S}, Verdict.FROZEN),
        ({"output_t_ns": None, "last_beat_ns": NOW - S // 2}, Verdict.ALIVE),  # no record
    ],
)
def test_assess(kw: dict[str, Any], expected: Verdict) -> None:
    assert verdict(**kw) == expected


def test_frozen_detail_names_an_odd_seqlock() -> None:
    lv = assess(
        Process.PHYSICS,
        state=HeartbeatState.RUNNING,
        pid=42,
        last_beat_ns=NOW,
        started_ns=NOW - 100 * S,
        now_ns=NOW,
        limits=LIMITS,
        output_t_ns=NOW - 2 * S,
        seq_odd=True,
    )
    assert lv.detail == (
        "physics: beats, but no new telemetry for 2 s; its seqlock is left odd "
        "(writer stopped mid-publication)"
    )
    assert not lv.ok and lv.heartbeat_age_s == 0 and lv.output_age_s == 2.0


def _physics_stuck_mid_publication(instance: str, ready: Any) -> None:
    """Publishes telemetry, then begins a publication exactly as publish() does and
    stops half-way (seq odd), while a heartbeat keeps beating — until SIGKILL."""
    region = Region.attach(instance, lock_memory=False)
    hb = Heartbeat(region, Process.PHYSICS)
    hb.set_state(HeartbeatState.RUNNING)
    w = SeqlockWriter(region, "telemetry")
    t = w.new_record()
    for k in range(1, 11):
        t["tick"], t["t_ns"] = k, monotonic_ns()
        w.publish(t)
        time.sleep(0.001)
    b = w._b
    b.seq[0] = b.seq[0] + 1
    b.rec[0][: b.size // 2] = b"\xab" * (b.size // 2)
    ready.set()
    while True:
        hb.beat()
        time.sleep(0.005)


def test_a_writer_stuck_mid_publication_is_frozen_then_dead_when_killed(region: Region) -> None:
    limits = LivenessLimits(
        heartbeat_timeout_ns=S // 2, startup_timeout_ns=30 * S, output_timeout_ns=S // 5
    )
    ready = ctx.Event()
    child = ctx.Process(target=_physics_stuck_mid_publication, args=(region.instance, ready))
    child.start()
    try:
        assert ready.wait(20)
        assert region.view["telemetry"]["seq"] % 2 == 1  # left odd
        t_end = time.monotonic() + 5
        while (lv := liveness(region, limits=limits)[Process.PHYSICS]).verdict == Verdict.ALIVE:
            assert time.monotonic() < t_end, lv
            time.sleep(0.01)
        assert lv.verdict == Verdict.FROZEN, lv
        assert "seqlock is left odd" in lv.detail
        assert lv.output_age_s is not None and lv.output_age_s > 0.2
        assert lv.heartbeat_age_s is not None and lv.heartbeat_age_s < 0.5
    finally:
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        child.join(10)
    t_end = time.monotonic() + 5
    while (lv := liveness(region, limits=limits)[Process.PHYSICS]).verdict != Verdict.DEAD:
        assert time.monotonic() < t_end, lv
        time.sleep(0.02)
    assert lv.detail.startswith("physics: no heartbeat for")


def test_liveness_of_every_process(region: Region) -> None:
    """The supervisor's helper: one entry per process; a process that beats and
    publishes is alive, one stopped cleanly is stopped, one never started is absent."""
    Heartbeat(region, Process.ORACLE).set_state(HeartbeatState.RUNNING)
    orch = Heartbeat(region, Process.ORCHESTRATOR)
    orch.set_state(HeartbeatState.RUNNING)
    w = SeqlockWriter(region, "control")
    rec = w.new_record()
    rec["seq"], rec["t_calc_ns"] = 1, monotonic_ns()
    w.publish(rec)
    phys = Heartbeat(region, Process.PHYSICS)
    phys.set_state(HeartbeatState.STOPPED)
    live = liveness(region)
    assert set(live) == set(Process)
    assert {p: lv.verdict for p, lv in live.items()} == {
        Process.PHYSICS: Verdict.STOPPED,
        Process.ORCHESTRATOR: Verdict.ALIVE,
        Process.ORACLE: Verdict.ALIVE,
        Process.SUPERVISOR: Verdict.ABSENT,
    }
    assert [p for p, lv in live.items() if lv.ok] == [Process.ORCHESTRATOR, Process.ORACLE]
