"""Staleness (seed 003 GAP-022): sync violations per channel, once per applied state;
COGNITIVE_PAUSE raised by a late state or by starvation while the physics ticks, and
cleared by a run of fresh states. Driven by crafted shared memory (real writers) and
``Watchdog.poll(now_ns=...)`` on a synthetic clock."""

from __future__ import annotations

import logging

import pytest

from engs.services.oracle.watchdog import Watchdog
from engs.shared.interrupt import InterruptWord
from engs.shared.layout import Cause, Lane, Mode
from engs.shared.region import Region
from tests.services.oracle.craft import MS, Crafter, make_watchdog, oracle_counter


def cycle(c: Crafter, wd: Watchdog, t: int, tau_ns: int, polls: int = 2) -> None:
    """The orchestrator publishes a state computed at ``t``; the physics applies it on a
    tick starting at ``t + tau``; the oracle polls ``polls`` times, 2 ms apart."""
    c.publish(t)
    c.tick(t + tau_ns)
    for k in range(polls):
        wd.poll(now_ns=t + tau_ns + 2 * k * MS)


def violations(region: Region) -> dict[str, int]:
    return {
        ch: oracle_counter(region, "engs_sync_violations_total", channel=ch)
        for ch in ("dopamine", "serotonin", "norepinephrine")
    }


def test_sync_violations_are_counted_once_per_applied_state(
    region: Region, crafter: Crafter, t0: int
) -> None:
    wd = make_watchdog(region)
    t = t0
    for tau_ms in (2, 12, 3, 30, 55, 4):
        cycle(crafter, wd, t, tau_ms * MS, polls=3)  # three polls see each applied state
        t += 100 * MS
    # 12, 30 and 55 ms exceed the 10 ms limit of D and N; only 55 the 50 ms of S.
    assert violations(region) == {"dopamine": 3, "serotonin": 1, "norepinephrine": 3}
    # More ticks applying nothing new count nothing.
    for k in range(5):
        crafter.tick(t + k * MS)
        wd.poll(now_ns=t + k * MS)
    assert violations(region) == {"dopamine": 3, "serotonin": 1, "norepinephrine": 3}


def test_pause_raised_by_a_late_state_and_cleared_by_ten_fresh_ones(
    region: Region, crafter: Crafter, t0: int
) -> None:
    wd = make_watchdog(region, pause_clear_states=10)
    irq = InterruptWord(region)
    t = t0

    def step(tau_ms: int) -> None:
        nonlocal t
        cycle(crafter, wd, t, tau_ms * MS)
        t += max(10, tau_ms + 1) * MS

    for _ in range(3):
        step(2)
    assert irq.causes() == Cause(0)
    step(60)
    assert irq.lane_causes(Lane.ORACLE) == Cause.COGNITIVE_PAUSE
    assert oracle_counter(region, "engs_interrupts_total", cause="cognitive_pause") == 1
    for _ in range(9):
        step(2)
    assert irq.causes() == Cause.COGNITIVE_PAUSE  # 9 fresh states are not enough
    step(12)  # a late state breaks the run
    for _ in range(9):
        step(2)
    assert irq.causes() == Cause.COGNITIVE_PAUSE
    step(2)  # the 10th consecutive fresh state
    assert irq.causes() == Cause(0)
    assert oracle_counter(region, "engs_interrupts_total", cause="cognitive_pause") == 1


def _run_ms(
    c: Crafter, wd: Watchdog, t: int, ms: int, *, publish: bool
) -> tuple[int, list[tuple[int, Cause]]]:
    """``ms`` milliseconds from ``t``: the physics ticks every 1 ms; the orchestrator (if
    ``publish``) publishes on the 1st ms and every 10 ms after; the oracle polls every
    2 ms. Returns the new time and (time, causes) after each poll."""
    irq = InterruptWord(wd.region)
    seen = []
    for k in range(1, ms + 1):
        t += MS
        if publish and k % 10 == 1:
            c.publish(t)
        c.tick(t)
        if k % 2 == 0:
            wd.poll(now_ns=t)
            seen.append((t, irq.causes()))
    return t, seen


def test_pause_when_the_orchestrator_stops_while_the_physics_ticks(
    region: Region, crafter: Crafter, t0: int, caplog: pytest.LogCaptureFixture
) -> None:
    wd = make_watchdog(region, pause_clear_states=10)
    irq = InterruptWord(region)
    t, seen = _run_ms(crafter, wd, t0, 200, publish=True)
    assert all(c == Cause(0) for _, c in seen)
    assert violations(region) == {"dopamine": 0, "serotonin": 0, "norepinephrine": 0}
    last_calc = int(crafter.state["t_calc_ns"])
    with caplog.at_level(logging.WARNING, logger="engs.oracle"):
        t, seen = _run_ms(crafter, wd, t, 100, publish=False)
    raised_at = next(when for when, c in seen if c)
    assert 50 * MS < raised_at - last_calc <= 52 * MS  # the first poll after 50 ms
    assert irq.lane_causes(Lane.ORACLE) == Cause.COGNITIVE_PAUSE
    assert "raised COGNITIVE_PAUSE: no state published for" in caplog.text
    # The orchestrator comes back: ten fresh states clear it, nine do not.
    t, seen = _run_ms(crafter, wd, t, 90, publish=True)
    assert irq.causes() == Cause.COGNITIVE_PAUSE
    t, seen = _run_ms(crafter, wd, t, 10, publish=True)
    assert irq.causes() == Cause(0)


def test_no_pause_while_the_physics_is_stopped(region: Region, crafter: Crafter, t0: int) -> None:
    wd = make_watchdog(region)
    irq = InterruptWord(region)
    cycle(crafter, wd, t0, 1 * MS)
    for k in range(1, 50):  # 200 ms with neither process publishing
        wd.poll(now_ns=t0 + 4 * k * MS)
    assert irq.causes() == Cause(0)  # nothing applies stale states: no pause
    crafter.tick(t0 + 200 * MS)  # the physics ticks again, on a 200 ms old state
    wd.poll(now_ns=t0 + 201 * MS)
    assert irq.causes() == Cause.COGNITIVE_PAUSE


@pytest.mark.parametrize("safe", [True, False])
def test_a_physics_not_applying_fresh_states(
    region: Region, crafter: Crafter, t0: int, safe: bool
) -> None:
    """Fresh states are published but the physics keeps an old one: that is staleness,
    unless the physics reports SAFE mode (then it runs on the emergency state)."""
    wd = make_watchdog(region)
    irq = InterruptWord(region)
    cycle(crafter, wd, t0, 1 * MS)
    t = t0
    for k in range(1, 201):
        t = t0 + k * MS
        if k % 10 == 0:
            crafter.publish(t)
        crafter.tick(t, apply=False, mode=int(Mode.SAFE) if safe else 0)
        if k % 4 == 0:
            wd.poll(now_ns=t)
    assert irq.causes() == (Cause(0) if safe else Cause.COGNITIVE_PAUSE)


def test_no_pause_when_the_orchestrator_stops_on_purpose(
    region: Region, crafter: Crafter, t0: int
) -> None:
    """A planned stop (heartbeat STOPPING/STOPPED, as `engs up` shuts down in order) is
    not a lag-induced dissociation: starvation then raises nothing."""
    from engs.shared.heartbeat import Heartbeat
    from engs.shared.layout import HeartbeatState, Process

    wd = make_watchdog(region)
    irq = InterruptWord(region)
    t, _ = _run_ms(crafter, wd, t0, 100, publish=True)
    Heartbeat(region, Process.ORCHESTRATOR).set_state(HeartbeatState.STOPPED)
    t, seen = _run_ms(crafter, wd, t, 200, publish=False)
    assert all(c == Cause(0) for _, c in seen)
    Heartbeat(region, Process.ORCHESTRATOR).set_state(HeartbeatState.RUNNING)
    t, seen = _run_ms(crafter, wd, t, 10, publish=False)
    assert irq.causes() == Cause.COGNITIVE_PAUSE  # a running orchestrator that is silent
