"""The one health rule for every ENGS process: liveness, plus the physics' deadlines.

Everyone who decides whether a process is healthy asks :func:`judge_process` (or
:func:`judge_region` for all of them at once) and nobody else decides:

* ``engs up``'s supervisor restarts a child whose status is ``unhealthy`` (it waits
  ``frozen_after_s`` of it in a row first, as Docker waits out its retries);
* the compose healthcheck (``python -m engs.services.supervisor.healthcheck``) passes
  iff the status is ``ok`` or ``degraded``;
* the oracle's ``/healthz`` reports ``degraded`` with the physics' reasons;
* ``engs status`` prints it.

Statuses, from :mod:`engs.services.oracle.liveness` (beats, and its published record is
fresh) and :func:`engs.shared.deadlines.judge` (misses over 1 % of the last 10 s'
deadlines, or a rate below 95 % of the target):

``ok``         alive, and (physics) keeping its deadlines or not yet judged
``degraded``   alive, but the physics misses deadlines or falls behind: it does its
               job late. Nothing a restart would fix (the same lattice on the same
               machine is as slow after it), so nobody restarts on it: it is shown,
               logged and alerted on
``starting``   within its start-up allowance
``unhealthy``  dead (no beat), frozen (beats, no output), failed, stopped or absent
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from engs.services.oracle.liveness import Liveness, LivenessLimits, Verdict, liveness
from engs.shared.config import OracleConfig
from engs.shared.deadlines import DeadlineHealth, DeadlineReport, judge, read_report
from engs.shared.layout import Process
from engs.shared.region import Region


class Status(enum.Enum):
    OK = "ok"
    DEGRADED = "degraded"
    STARTING = "starting"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class ProcessHealth:
    process: Process
    status: Status
    liveness: Liveness
    deadlines: DeadlineHealth | None  # the physics only

    @property
    def serving(self) -> bool:
        """Alive and doing its job, maybe late: the healthcheck's pass."""
        return self.status in (Status.OK, Status.DEGRADED)

    @property
    def detail(self) -> str:
        """One line: the liveness detail, and the deadline reasons when degraded."""
        if self.status is Status.DEGRADED and self.deadlines is not None:
            return f"{self.liveness.detail}; {self.deadlines.summary()}"
        return self.liveness.detail


def judge_process(lv: Liveness, deadlines: DeadlineHealth | None = None) -> ProcessHealth:
    """The rule (module docstring), from a liveness verdict and, for the physics, its
    deadline health."""
    if lv.verdict is Verdict.STARTING:
        status = Status.STARTING
    elif lv.verdict is not Verdict.ALIVE:
        status = Status.UNHEALTHY
    elif deadlines is not None and deadlines.degraded:
        status = Status.DEGRADED
    else:
        status = Status.OK
    return ProcessHealth(lv.process, status, lv, deadlines)


def judge_all(
    live: dict[Process, Liveness], report: DeadlineReport | None, now_ns: int | None = None
) -> dict[Process, ProcessHealth]:
    """Every process's health from their liveness and the physics' deadline report."""
    physics = live[Process.PHYSICS]
    deadlines = judge(report, now_ns, running=physics.verdict is Verdict.ALIVE)
    return {
        p: judge_process(lv, deadlines if p is Process.PHYSICS else None) for p, lv in live.items()
    }


def judge_region(
    region: Region, cfg: OracleConfig, *, now_ns: int | None = None
) -> dict[Process, ProcessHealth]:
    """Every process's health now, read from ``region`` (readers built per call)."""
    live = liveness(region, now_ns=now_ns, limits=LivenessLimits.from_config(cfg))
    return judge_all(live, read_report(region), now_ns)
