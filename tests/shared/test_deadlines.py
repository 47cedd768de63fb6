"""The deadline rule (engs.shared.deadlines.judge) and the histogram quantile."""

from __future__ import annotations

import pytest

from engs.shared.clock import NS_PER_S
from engs.shared.deadlines import (
    DeadlineReport,
    DeadlineStatus,
    judge,
    quantile,
)
from engs.shared.layout import HIST_BOUNDS_NS, N_BUCKETS

T0 = 1_000 * NS_PER_S


def report(
    *, ticks: int, misses: int, window_s: float = 10.0, target: float = 1000.0, t_ns: int = T0
) -> DeadlineReport:
    return DeadlineReport(
        t_ns=t_ns,
        window_s=window_s,
        target_hz=target,
        achieved_hz=ticks / window_s,
        ticks_total=ticks,
        misses_total=misses,
        ticks_window=ticks,
        misses_window=misses,
        tick_p99_s=None,
        staleness_p99_s=None,
        lateness_p99_s=None,
        pid=1,
    )


def test_on_rate_with_few_misses_is_ok() -> None:
    h = judge(report(ticks=9_950, misses=50), T0)  # 0.5 % missed, 995 Hz
    assert h.status is DeadlineStatus.OK and h.reasons == ()


def test_more_than_one_percent_missed_is_degraded_with_the_figures() -> None:
    h = judge(report(ticks=9_880, misses=120), T0)  # 1.2 % missed, 988 Hz: rate still fine
    assert h.status is DeadlineStatus.DEGRADED
    assert h.reasons == ("120 of 10000 deadlines missed (1.2%) over the last 10 s (limit 1%)",)


def test_falling_below_95_percent_of_the_target_is_degraded_naming_the_rate() -> None:
    # The 512x512 case: ~100 Hz of a 1 kHz target.
    h = judge(report(ticks=1_000, misses=9_000), T0)
    assert h.status is DeadlineStatus.DEGRADED
    assert h.reasons[1] == "ticking at 100 Hz, below 95% of the 1000 Hz target"
    assert "deadlines degraded: " in h.summary()


def test_rate_just_under_the_threshold_is_degraded_even_without_misses() -> None:
    h = judge(report(ticks=9_400, misses=0), T0)  # 940 Hz, e.g. a slow clock
    assert h.status is DeadlineStatus.DEGRADED
    assert h.reasons == ("ticking at 940 Hz, below 95% of the 1000 Hz target",)


@pytest.mark.parametrize(
    ("r", "now", "running", "why"),
    [
        (None, T0, True, "no deadline report yet"),
        (report(ticks=10, misses=990, window_s=1.0), T0, True, "only 1.0 s of ticks"),
        (report(ticks=10, misses=990), T0 + 6 * NS_PER_S, True, "the last deadline report is"),
        (report(ticks=10, misses=990), T0, False, "the physics is not running"),
    ],
)
def test_nothing_to_judge_is_unknown_not_degraded(
    r: DeadlineReport | None, now: int, running: bool, why: str
) -> None:
    h = judge(r, now, running=running)
    assert h.status is DeadlineStatus.UNKNOWN and not h.degraded
    assert h.reasons[0].startswith(why)


def test_quantile_interpolates_within_the_bucket_like_prometheus() -> None:
    counts = [0] * N_BUCKETS
    assert quantile(0.99, counts) is None
    counts[2] = 100  # all in (50 µs, 100 µs]
    assert quantile(0.5, counts) == pytest.approx(75e-6)
    assert quantile(0.99, counts) == pytest.approx(99.5e-6)
    counts[-1] = 100  # half beyond the last bound: the highest finite bound
    assert quantile(0.99, counts) == HIST_BOUNDS_NS[-1] / NS_PER_S
