"""The physics' deadline reporter on a real region with real stats.

The reporter reads the physics' stats slot as the oracle does; here the test is the
physics' single stats writer (the real :class:`StatsWriter`), so the counts are exact.
"""

from __future__ import annotations

import logging
import math

import pytest

from engs.services.physics.deadlines import DeadlineReporter
from engs.shared.clock import NS_PER_S
from engs.shared.deadlines import DeadlineStatus, judge, read_report
from engs.shared.layout import Process
from engs.shared.region import Region
from engs.shared.stats import StatsWriter

T0 = 1_000 * NS_PER_S


def _tick(stats: StatsWriter, n: int, tick_ns: int) -> None:
    ticks = stats.counter("engs_physics_ticks_total")
    h = stats.histogram("engs_physics_tick_seconds")
    for _ in range(n):
        stats.inc(ticks)
        stats.observe_ns(h, tick_ns)


def test_reporter_publishes_the_window_and_readers_see_it(region: Region) -> None:
    stats = StatsWriter(region, Process.PHYSICS)
    misses = stats.counter("engs_physics_deadline_misses_total")
    rep = DeadlineReporter(region, 1000.0)
    _tick(stats, 500, 100_000)  # before the window: not counted in it
    rep.sample(T0)
    _tick(stats, 2_000, 200_000)
    stats.inc(misses, 1_000)
    r = rep.sample(T0 + 3 * NS_PER_S)
    assert (r.ticks_window, r.misses_window, r.ticks_total, r.misses_total) == (
        2_000,
        1_000,
        2_500,
        1_000,
    )
    assert r.window_s == 3.0 and r.achieved_hz == pytest.approx(2_000 / 3)
    assert r.tick_p99_s == pytest.approx(0.2e-3 - 0.1e-3 * 0.01)  # in (100 µs, 200 µs]
    assert r.staleness_p99_s is None  # no state applied in the window
    seen = read_report(region)
    assert seen == r
    h = judge(seen, T0 + 3 * NS_PER_S)
    assert h.degraded and math.isclose(seen.miss_ratio, 1 / 3)


def test_reporter_window_slides_to_the_last_ten_seconds(region: Region) -> None:
    stats = StatsWriter(region, Process.PHYSICS)
    misses = stats.counter("engs_physics_deadline_misses_total")
    rep = DeadlineReporter(region, 1000.0)
    rep.sample(T0)
    stats.inc(misses, 500)  # a bad start...
    for s in range(1, 16):
        _tick(stats, 1_000, 100_000)  # ...then 15 s on rate
        r = rep.sample(T0 + s * NS_PER_S)
    assert r.window_s == 10.0
    assert (r.ticks_window, r.misses_window, r.misses_total) == (10_000, 0, 500)
    assert judge(r, r.t_ns).status is DeadlineStatus.OK


def test_reporter_warns_rate_limited_naming_the_rate_and_says_when_it_recovers(
    region: Region, caplog: pytest.LogCaptureFixture
) -> None:
    stats = StatsWriter(region, Process.PHYSICS)
    misses = stats.counter("engs_physics_deadline_misses_total")
    rep = DeadlineReporter(region, 1000.0, window_ns=2 * NS_PER_S, warn_every_s=30)
    caplog.set_level(logging.INFO, logger="engs.physics")
    rep.sample(T0)

    def second(s: int, ticks: int, missed: int) -> None:
        _tick(stats, ticks, 100_000)
        stats.inc(misses, missed)
        r = rep.sample(T0 + s * NS_PER_S)
        rep.report(judge(r, r.t_ns), r.t_ns)

    for s in range(1, 6):
        second(s, 100, 900)  # 100 Hz of 1000
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per 30 s, not once per report
    assert (
        warnings[0]
        .getMessage()
        .startswith(
            "physics falling behind its 1000 Hz target: 1800 of 2000 deadlines missed (90.0%)"
        )
    )
    assert "ticking at 100 Hz, below 95% of the 1000 Hz target" in warnings[0].getMessage()
    for s in range(6, 9):
        second(s, 1_000, 0)
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == [
        "physics back on rate: 1000 Hz (target 1000 Hz), 0.0% deadlines missed over 2 s"
    ]


def test_reporter_announces_the_achieved_rate_once(
    region: Region, caplog: pytest.LogCaptureFixture
) -> None:
    stats = StatsWriter(region, Process.PHYSICS)
    rep = DeadlineReporter(region, 1000.0)
    caplog.set_level(logging.INFO, logger="engs.physics")
    rep.sample(T0)
    for s in range(1, 5):
        _tick(stats, 998, 100_000)
        r = rep.sample(T0 + s * NS_PER_S)
        rep.report(judge(r, r.t_ns), r.t_ns)
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 1  # the first judgeable window (2 s) only
    assert msgs[0].startswith("physics ticking at 998 Hz (target 1000 Hz), 0 deadlines missed")
