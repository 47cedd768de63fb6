"""The physics' deadline health: the DeadlineReport record and the one rule that judges it.

The physics process publishes a :func:`engs.shared.layout.deadline_dtype` record about
once a second (its reporter thread, :mod:`engs.services.physics.deadlines`, never the
1 kHz loop): the achieved tick rate, deadline misses in total and over the last window
(~10 s), and the tick-time and staleness p99 over that window. Everyone who shows or
acts on deadline health reads that record and applies :func:`judge`, the one rule:

* **degraded** when more than :data:`MAX_MISS_RATIO` (1 %) of the window's deadlines
  were missed, or the achieved rate is below :data:`MIN_RATE_RATIO` (95 %) of the
  target — each with the reason, naming the figures;
* **ok** otherwise;
* **unknown** while there is nothing to judge: no report yet, a window shorter than
  :data:`MIN_WINDOW_NS` (the physics is still warming up), or a report older than
  :data:`MAX_REPORT_AGE_NS` (the physics stopped reporting: its liveness, judged by
  :mod:`engs.shared.liveness`, says why).

Readers: ``engs status``, the oracle (``/healthz``, the ``engs_physics_*`` gauges),
the supervisor (``engs up``) and the compose healthcheck
(:mod:`engs.services.supervisor.healthcheck`).

A deadline is missed when a tick ends after the next tick's deadline: the loop skips
every deadline already past and counts each (see :mod:`engs.services.physics.main`), so
the deadlines of a window are its ticks plus its misses.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engs.shared.clock import NS_PER_S, monotonic_ns
from engs.shared.layout import HIST_BOUNDS_NS
from engs.shared.region import Region
from engs.shared.seqlock import SeqlockReader

#: Degraded above this fraction of missed deadlines over the window.
MAX_MISS_RATIO = 0.01
#: Degraded below this fraction of the target tick rate over the window.
MIN_RATE_RATIO = 0.95
#: The window the physics reports over.
WINDOW_NS = 10 * NS_PER_S
#: A shorter window is not judged (the physics' first seconds, after its warm-up).
MIN_WINDOW_NS = 2 * NS_PER_S
#: An older report is not judged (the reporter writes one a second).
MAX_REPORT_AGE_NS = 5 * NS_PER_S


class DeadlineStatus(enum.Enum):
    OK = "ok"
    DEGRADED = "degraded"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class DeadlineReport:
    """One DeadlineReport record, as plain values (quantiles None when NaN)."""

    t_ns: int
    window_s: float
    target_hz: float
    achieved_hz: float
    ticks_total: int
    misses_total: int
    ticks_window: int
    misses_window: int
    tick_p99_s: float | None
    staleness_p99_s: float | None
    lateness_p99_s: float | None
    pid: int

    @property
    def miss_ratio(self) -> float:
        """Missed deadlines over all deadlines of the window (0 with none)."""
        n = self.ticks_window + self.misses_window
        return self.misses_window / n if n else 0.0

    @classmethod
    def from_record(cls, rec: Any) -> DeadlineReport:
        def q(name: str) -> float | None:
            v = float(rec[name])
            return None if math.isnan(v) else v

        return cls(
            t_ns=int(rec["t_ns"]),
            window_s=int(rec["window_ns"]) / NS_PER_S,
            target_hz=float(rec["target_hz"]),
            achieved_hz=float(rec["achieved_hz"]),
            ticks_total=int(rec["ticks_total"]),
            misses_total=int(rec["misses_total"]),
            ticks_window=int(rec["ticks_window"]),
            misses_window=int(rec["misses_window"]),
            tick_p99_s=q("tick_p99_s"),
            staleness_p99_s=q("staleness_p99_s"),
            lateness_p99_s=q("lateness_p99_s"),
            pid=int(rec["pid"]),
        )


@dataclass(frozen=True)
class DeadlineHealth:
    status: DeadlineStatus
    reasons: tuple[str, ...]  # why degraded (or unknown); empty when ok
    report: DeadlineReport | None
    age_s: float | None  # of the report

    @property
    def degraded(self) -> bool:
        return self.status is DeadlineStatus.DEGRADED

    def summary(self) -> str:
        """One line for logs, /healthz and the healthcheck."""
        r = self.report
        if r is None or self.status is DeadlineStatus.UNKNOWN:
            return "deadlines: " + ("; ".join(self.reasons) or "unknown")
        head = (
            f"{r.achieved_hz:.0f} Hz of {r.target_hz:.0f} Hz target, "
            f"{r.misses_window} of {r.ticks_window + r.misses_window} deadlines missed "
            f"({r.miss_ratio:.1%}) over {r.window_s:.0f} s"
        )
        return f"deadlines {self.status.value}: " + (
            "; ".join(self.reasons) if self.reasons else head
        )


def judge(
    report: DeadlineReport | None, now_ns: int | None = None, *, running: bool = True
) -> DeadlineHealth:
    """The deadline rule (module docstring). ``running``: the physics' heartbeat says
    it runs; a stopped physics' last report is not judged."""
    if report is None or report.t_ns == 0:
        return DeadlineHealth(DeadlineStatus.UNKNOWN, ("no deadline report yet",), None, None)
    now = monotonic_ns() if now_ns is None else now_ns
    age = (now - report.t_ns) / NS_PER_S
    if not running:
        return DeadlineHealth(DeadlineStatus.UNKNOWN, ("the physics is not running",), report, age)
    if now - report.t_ns > MAX_REPORT_AGE_NS:
        return DeadlineHealth(
            DeadlineStatus.UNKNOWN, (f"the last deadline report is {age:.1f} s old",), report, age
        )
    if report.window_s * NS_PER_S < MIN_WINDOW_NS:
        return DeadlineHealth(
            DeadlineStatus.UNKNOWN,
            (f"only {report.window_s:.1f} s of ticks since the physics started",),
            report,
            age,
        )
    reasons = []
    if report.miss_ratio > MAX_MISS_RATIO:
        reasons.append(
            f"{report.misses_window} of {report.ticks_window + report.misses_window} "
            f"deadlines missed ({report.miss_ratio:.1%}) over the last {report.window_s:.0f} s "
            f"(limit {MAX_MISS_RATIO:.0%})"
        )
    if report.achieved_hz < MIN_RATE_RATIO * report.target_hz:
        reasons.append(
            f"ticking at {report.achieved_hz:.0f} Hz, below {MIN_RATE_RATIO:.0%} of the "
            f"{report.target_hz:.0f} Hz target"
        )
    status = DeadlineStatus.DEGRADED if reasons else DeadlineStatus.OK
    return DeadlineHealth(status, tuple(reasons), report, age)


def read_report(region: Region, reader: SeqlockReader | None = None) -> DeadlineReport | None:
    """The newest DeadlineReport in ``region`` (None: never written). Builds a reader
    per call unless one is given (callers polling often keep theirs)."""
    reader = reader or SeqlockReader(region, "deadlines")
    rec = reader.new_record()
    reader.read_latest(rec)
    return DeadlineReport.from_record(rec) if int(rec["t_ns"]) else None


def quantile(q: float, counts: Sequence[int]) -> float | None:
    """The q-quantile, in seconds, of non-cumulative bucket counts over
    :data:`HIST_BOUNDS_NS` (+Inf last), interpolated linearly within the bucket as
    Prometheus' ``histogram_quantile`` does; the highest finite bound if it falls in
    +Inf; None with no observations."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    acc = 0
    lower = 0
    for bound, c in zip(HIST_BOUNDS_NS, counts, strict=False):
        if c and acc + c >= rank:
            return (lower + (bound - lower) * (rank - acc) / c) / NS_PER_S
        acc += c
        lower = bound
    return HIST_BOUNDS_NS[-1] / NS_PER_S
