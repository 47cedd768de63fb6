"""Safety causes: SCRAM (non-finite, energy bound, energy growth), ATP_EXHAUSTED, PANIC,
UNSTABLE — each raised from crafted shared memory (real writers), seen in the interrupt
word, counted once per raise, and cleared by its documented rule."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from engs.services.oracle.watchdog import Watchdog
from engs.shared.interrupt import InterruptWord
from engs.shared.layout import Cause, Lane, Process
from engs.shared.region import Region
from engs.shared.stats import StatsWriter
from tests.services.oracle.craft import MS, Crafter, make_watchdog, oracle_counter


def ticks(c: Crafter, wd: Watchdog, t: int, ms: int, **fields: Any) -> int:
    """``ms`` physics ticks, 1 ms apart, with ``fields``; the oracle polls every 4 ms."""
    for _ in range(ms):
        t += MS
        c.tick(t, **fields)
        if (t // MS) % 4 == 0:
            wd.poll(now_ns=t)
    return t


def raises(region: Region, cause: str) -> int:
    return oracle_counter(region, "engs_interrupts_total", cause=cause)


# -- SCRAM -----------------------------------------------------------------------


def test_scram_on_nan_energy_clears_after_healthy_telemetry(
    region: Region, crafter: Crafter, t0: int
) -> None:
    wd = make_watchdog(region, scram_clear_s=0.2)
    irq = InterruptWord(region)
    t = ticks(crafter, wd, t0, 100, energy=50.0)
    assert irq.causes() == Cause(0)
    t += MS
    crafter.tick(t, energy=math.nan)
    wd.poll(now_ns=t)
    t_bad = t
    assert irq.lane_causes(Lane.ORACLE) == Cause.SCRAM
    assert raises(region, "scram") == 1
    t = ticks(crafter, wd, t, 195, energy=50.0)
    assert irq.causes() == Cause.SCRAM  # 195 ms healthy < 200 ms
    t = ticks(crafter, wd, t, 10, energy=50.0)
    assert irq.causes() == Cause(0)
    assert t - t_bad <= 210 * MS
    assert raises(region, "scram") == 1


def test_scram_on_nan_in_a_used_area_row_only(region: Region, crafter: Crafter, t0: int) -> None:
    wd = make_watchdog(region)
    irq = InterruptWord(region)
    activity = crafter.telem["area_activity"]
    activity[5] = math.nan  # row 5 is beyond n_areas = 3: not data
    t = ticks(crafter, wd, t0, 20)
    assert irq.causes() == Cause(0)
    activity[1] = math.nan
    ticks(crafter, wd, t, 4)
    assert irq.causes() == Cause.SCRAM


def test_scram_when_the_physics_counted_a_non_finite_tick_the_oracle_missed(
    region: Region, crafter: Crafter, t0: int
) -> None:
    """The physics zeroes a non-finite field at once, so the bad tick shows in one
    telemetry record only; its cumulative counter is what the oracle cannot miss."""
    physics = StatsWriter(region, Process.PHYSICS)
    nonfinite = physics.counter("engs_physics_nonfinite_total")
    physics.inc(nonfinite, 3)  # history from before this oracle: not its business
    wd = make_watchdog(region)
    irq = InterruptWord(region)
    t = ticks(crafter, wd, t0, 20)
    assert irq.causes() == Cause(0)
    crafter.tick(t + MS, nonfinite=12, energy=math.nan)  # never polled
    physics.inc(nonfinite, 12)
    crafter.tick(t + 2 * MS, nonfinite=0, energy=0.0)  # recovered: zeroed field
    wd.poll(now_ns=t + 2 * MS)
    assert irq.causes() == Cause.SCRAM


def test_scram_on_a_non_finite_count_in_the_telemetry(
    region: Region, crafter: Crafter, t0: int
) -> None:
    wd = make_watchdog(region)
    t = ticks(crafter, wd, t0, 20)
    ticks(crafter, wd, t, 4, nonfinite=1)
    assert InterruptWord(region).causes() == Cause.SCRAM


def test_scram_on_nan_in_the_state(region: Region, crafter: Crafter, t0: int) -> None:
    wd = make_watchdog(region)
    crafter.publish(t0, dopamine=math.nan)
    crafter.tick(t0)
    wd.poll(now_ns=t0)
    assert InterruptWord(region).causes() == Cause.SCRAM


def test_scram_energy_bound_with_hysteresis(region: Region, crafter: Crafter, t0: int) -> None:
    # 100 nodes x 1e6 per node: the bound is V = 1e8; healthy below 0.5e8.
    wd = make_watchdog(region, scram_energy_per_node_max=1e6, scram_clear_s=0.2)
    irq = InterruptWord(region)
    t = ticks(crafter, wd, t0, 20, energy=0.9e8)
    assert irq.causes() == Cause(0)
    t = ticks(crafter, wd, t, 4, energy=2e8)
    assert irq.causes() == Cause.SCRAM
    t = ticks(crafter, wd, t, 500, energy=0.7e8)  # in the band: not yet healthy
    assert irq.causes() == Cause.SCRAM
    ticks(crafter, wd, t, 210, energy=1e7)
    assert irq.causes() == Cause(0)
    assert raises(region, "scram") == 1


def test_scram_on_energy_growth_but_not_from_rest(
    region: Region, crafter: Crafter, t0: int
) -> None:
    wd = make_watchdog(region, scram_growth_factor=100, scram_growth_window_s=1.0)
    irq = InterruptWord(region)
    # From rest (far below the 1/node floor) a field may grow by any factor.
    t = ticks(crafter, wd, t0, 200, energy=1e-3)
    t = ticks(crafter, wd, t, 200, energy=50.0)
    assert irq.causes() == Cause(0)
    t = ticks(crafter, wd, t, 1200, energy=200.0)  # 2 per node: above the floor
    t = ticks(crafter, wd, t, 200, energy=1e4)  # x50 within the window: allowed
    assert irq.causes() == Cause(0)
    ticks(crafter, wd, t, 200, energy=2.1e4)  # x105 over the window: divergence
    assert irq.causes() == Cause.SCRAM


# -- ATP_EXHAUSTED and PANIC -------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "cause", "steps"),
    [
        # (value, expected active) per published state: raise < 5 %, clear >= 10 %.
        (
            "atp_ratio",
            Cause.ATP_EXHAUSTED,
            [(0.2, False), (0.049, True), (0.07, True), (0.099, True), (0.1, False), (0.06, False)],
        ),
        # raise > 0.95, clear < 0.85.
        (
            "norepinephrine",
            Cause.PANIC,
            [(0.5, False), (0.951, True), (0.9, True), (0.85, True), (0.849, False), (0.94, False)],
        ),
    ],
)
def test_level_causes_raise_and_clear_with_a_band(
    region: Region,
    crafter: Crafter,
    t0: int,
    field: str,
    cause: Cause,
    steps: list[tuple[float, bool]],
) -> None:
    wd = make_watchdog(region)
    irq = InterruptWord(region)
    for i, (value, active) in enumerate(steps):
        t = t0 + 10 * i * MS
        crafter.publish(t, **{field: value})
        crafter.tick(t)
        wd.poll(now_ns=t)
        assert (irq.causes() == cause) is active, (value, irq.causes())
    assert raises(region, str(cause.name).lower()) == 1


# -- UNSTABLE ----------------------------------------------------------------------


def _publish_levels(
    c: Crafter,
    wd: Watchdog,
    t: int,
    levels: list[float],
    signal: Callable[[int], int] = lambda i: 7,
) -> tuple[int, list[bool]]:
    """One state per 10 ms control cycle with D = each level and signal id
    ``signal(i)``; returns the time and whether UNSTABLE was set after each."""
    irq = InterruptWord(wd.region)
    seen = []
    for i, d in enumerate(levels):
        t += 10 * MS
        c.publish(t, dopamine=d, signal_id=signal(i))
        c.tick(t)
        wd.poll(now_ns=t)
        seen.append(bool(irq.causes() & Cause.UNSTABLE))
    return t, seen


def runaway(n: int) -> list[float]:
    """D leaves 0.5 exponentially (rate 3/s at 100 Hz) and pins at the bound 1."""
    return [min(1.0, 0.5 + 1e-3 * math.exp(0.03 * i)) for i in range(n)]


def test_unstable_runaway_raises_at_the_bound_and_clears_when_released(
    region: Region, crafter: Crafter, t0: int
) -> None:
    wd = make_watchdog(region, unstable_clear_cycles=100)
    levels = runaway(260)
    t, seen = _publish_levels(crafter, wd, t0, levels)
    first_pinned = next(i for i, d in enumerate(levels) if d >= 1.0 - 1e-3)
    assert not any(seen[:first_pinned])
    assert seen[first_pinned] and all(seen[first_pinned:])
    assert raises(region, "unstable") == 1
    t, seen = _publish_levels(crafter, wd, t, [0.6] * 100)
    assert all(seen)  # 100 calm cycles: the 100th is the first that may clear
    t, seen = _publish_levels(crafter, wd, t, [0.6] * 2)
    assert not seen[-1]


@pytest.mark.parametrize(
    "levels",
    [
        [0.9 * math.exp(-0.05 * i) for i in range(400)],  # stable relaxation onto 0
        [max(0.0, 0.9 - 0.004 * i) for i in range(400)],  # a constant push into 0
    ],
    ids=["relaxation", "constant-push"],
)
def test_no_unstable_for_a_level_reaching_a_bound_without_runaway(
    region: Region, crafter: Crafter, t0: int, levels: list[float]
) -> None:
    wd = make_watchdog(region)
    _, seen = _publish_levels(crafter, wd, t0, levels)
    assert levels[-1] <= 1e-3 and not any(seen)


def test_no_unstable_when_signals_drive_the_motion(
    region: Region, crafter: Crafter, t0: int
) -> None:
    wd = make_watchdog(region)
    _, seen = _publish_levels(crafter, wd, t0, runaway(260), signal=lambda i: 1 + i // 5)
    assert not any(seen)


# -- the lane, the control state, adoption -----------------------------------------------


def test_the_oracle_writes_only_its_lane_and_never_the_control_state(
    region: Region, crafter: Crafter, t0: int
) -> None:
    InterruptWord(region, Lane.ORCHESTRATOR).raise_cause(Cause.ATP_EXHAUSTED)
    InterruptWord(region, Lane.OPERATOR).raise_cause(Cause.MANUAL)
    wd = make_watchdog(region)
    crafter.publish(t0, norepinephrine=0.99, atp_ratio=0.5)
    crafter.tick(t0)
    control = region.block("control").tobytes()
    for k in range(10):
        wd.poll(now_ns=t0 + k * MS)
    irq = InterruptWord(region)
    assert irq.lane_causes(Lane.ORACLE) == Cause.PANIC
    assert irq.lane_causes(Lane.ORCHESTRATOR) == Cause.ATP_EXHAUSTED  # not cleared
    assert irq.lane_causes(Lane.OPERATOR) == Cause.MANUAL
    assert region.block("control").tobytes() == control


@pytest.mark.parametrize(("n", "held"), [(0.5, False), (0.93, True)])
def test_a_new_oracle_adopts_bits_left_in_its_lane(
    region: Region, crafter: Crafter, t0: int, n: float, held: bool
) -> None:
    InterruptWord(region, Lane.ORACLE).raise_cause(Cause.PANIC)  # a previous oracle's
    wd = make_watchdog(region)
    crafter.publish(t0, norepinephrine=n)
    crafter.tick(t0)
    wd.poll(now_ns=t0)
    # Cleared by PANIC's own rule (N < 0.85), held inside the band; never re-counted.
    assert (InterruptWord(region).causes() == Cause.PANIC) is held
    assert raises(region, "panic") == 0


def test_unstable_from_the_orchestrators_spectral_abscissa(
    region: Region, crafter: Crafter, t0: int
) -> None:
    wd = make_watchdog(region)
    irq = InterruptWord(region)
    t = t0
    for _ in range(5):
        t += 10 * MS
        crafter.publish(t, spectral_abscissa=-0.08)
        wd.poll(now_ns=t)
    assert irq.causes() == Cause(0)
    t += 10 * MS
    crafter.publish(t, spectral_abscissa=0.01)
    wd.poll(now_ns=t)
    assert irq.lane_causes(Lane.ORACLE) == Cause.UNSTABLE
    assert raises(region, "unstable") == 1
    t += 10 * MS
    crafter.publish(t, spectral_abscissa=-0.02)
    wd.poll(now_ns=t)
    assert irq.causes() == Cause(0)
    assert raises(region, "unstable") == 1
