"""Liveness and health of every ENGS process, judged from shared memory alone: the one rule.

Everyone who decides whether a process is alive or healthy asks this module, and nobody
else decides: ``engs up``'s supervisor (restarts), the oracle (its watchdog, ``/healthz``
and the ``engs_up`` gauge), the compose healthcheck
(``python -m engs.services.supervisor.healthcheck``) and ``engs status``. It lives in
``shared/`` because all of those processes run it; every limit comes from the
``[oracle]`` section (:meth:`LivenessLimits.from_config`), none is written here twice.

**Liveness** — three signals per process, all read-only:

* the heartbeat slot (:mod:`engs.shared.heartbeat`): lifecycle state and the age of the
  last beat — a process that stops beating is DEAD;
* its published output, for the two processes that publish a seqlock record: the
  physics' telemetry tick time ``t_ns`` and the orchestrator's state ``t_calc_ns``. A
  process that still beats but whose output stopped (tick counter frozen, or a seqlock
  left odd by a writer stopped mid-publication, whose readers then keep returning the
  older slot) is FROZEN;
* the seqlock's ``seq`` parity, reported with FROZEN so the operator sees why.

:func:`assess` is the pure rule (tests feed it numbers); :class:`LivenessMonitor`
reads the region with readers built once (the oracle's poll loop and exporter);
:func:`liveness` is the one-call helper: ``liveness(region) -> dict[Process, Liveness]``.
Process ids are deliberately not probed: under docker compose each service has its own
pid namespace.

**Health** — :func:`judge_process` (or :func:`judge_region` for all of them at once)
adds the physics' deadlines (:func:`engs.shared.deadlines.judge`: misses over 1 % of
the last 10 s' deadlines, or a rate below 95 % of the target) to the liveness verdict:

``ok``         alive, and (physics) keeping its deadlines or not yet judged
``degraded``   alive, but the physics misses deadlines or falls behind: it does its
               job late. Nothing a restart would fix (the same lattice on the same
               machine is as slow after it), so nobody restarts on it: it is shown,
               logged and alerted on
``starting``   within its start-up allowance
``unhealthy``  dead (no beat), frozen (beats, no output), failed, stopped or absent

Its users: ``engs up``'s supervisor restarts a child whose status is ``unhealthy`` (it
waits ``frozen_after_s`` of it in a row first, as Docker waits out its retries); the
compose healthcheck passes iff the status is ``ok`` or ``degraded``; the oracle's
``/healthz`` reports ``degraded`` with the physics' reasons; ``engs status`` prints it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from engs.shared.clock import NS_PER_S, monotonic_ns
from engs.shared.config import OracleConfig
from engs.shared.deadlines import DeadlineHealth, DeadlineReport, judge, read_report
from engs.shared.layout import HeartbeatState, Process
from engs.shared.region import Region
from engs.shared.seqlock import SeqlockReader


class Verdict(enum.Enum):
    ABSENT = "absent"  # slot never written
    STARTING = "starting"  # still starting, within the start-up allowance
    ALIVE = "alive"
    STOPPED = "stopped"  # stopped cleanly and said so
    FROZEN = "frozen"  # beats, but its published output stopped
    DEAD = "dead"  # no beat for longer than the timeout
    FAILED = "failed"  # the process reported FAILED


@dataclass(frozen=True)
class LivenessLimits:
    heartbeat_timeout_ns: int = 1 * NS_PER_S
    startup_timeout_ns: int = 30 * NS_PER_S
    output_timeout_ns: int = NS_PER_S // 2

    @classmethod
    def from_config(cls, cfg: OracleConfig) -> LivenessLimits:
        return cls(
            heartbeat_timeout_ns=int(cfg.heartbeat_timeout_s * NS_PER_S),
            startup_timeout_ns=int(cfg.startup_timeout_s * NS_PER_S),
            output_timeout_ns=int(cfg.output_timeout_s * NS_PER_S),
        )


@dataclass(frozen=True)
class Liveness:
    process: Process
    verdict: Verdict
    state: HeartbeatState
    pid: int
    heartbeat_age_s: float | None  # None: never beat
    output_age_s: float | None  # None: the process publishes no record, or never did
    detail: str  # one line for logs and /healthz

    @property
    def ok(self) -> bool:
        """Running as it should (or still starting): nothing for a supervisor to do."""
        return self.verdict in (Verdict.ALIVE, Verdict.STARTING)


#: The seqlock block each process publishes, and the record field that stamps it.
OUTPUTS: dict[Process, tuple[str, str]] = {
    Process.PHYSICS: ("telemetry", "t_ns"),
    Process.ORCHESTRATOR: ("control", "t_calc_ns"),
}


def assess(
    process: Process,
    *,
    state: HeartbeatState,
    pid: int,
    last_beat_ns: int,
    started_ns: int,
    now_ns: int,
    limits: LivenessLimits,
    output_t_ns: int | None = None,
    seq_odd: bool = False,
) -> Liveness:
    """The verdict for one process (rules in docs/oracle.md, "Liveness").

    ``output_t_ns``: the stamp of the newest complete record the process published
    (0: never), or None for a process without a record. ``seq_odd``: its seqlock's
    sequence was odd when read.
    """
    hb_age = (now_ns - last_beat_ns) / NS_PER_S if last_beat_ns else None
    out_age = (now_ns - output_t_ns) / NS_PER_S if output_t_ns else None

    def make(verdict: Verdict, detail: str) -> Liveness:
        return Liveness(process, verdict, state, pid, hb_age, out_age, detail)

    name = process.name.lower()
    if state == HeartbeatState.ABSENT or (not last_beat_ns and not pid):
        return make(Verdict.ABSENT, f"{name}: never started")
    if state == HeartbeatState.STOPPED:
        return make(Verdict.STOPPED, f"{name}: stopped cleanly")
    if state == HeartbeatState.FAILED:
        return make(Verdict.FAILED, f"{name}: reported FAILED")
    beat_age_ns = now_ns - last_beat_ns if last_beat_ns else now_ns - started_ns
    if state == HeartbeatState.STARTING:
        if beat_age_ns > limits.startup_timeout_ns:
            return make(
                Verdict.DEAD, f"{name}: no beat for {beat_age_ns / 1e9:.3g} s while starting"
            )
        return make(Verdict.STARTING, f"{name}: starting")
    if beat_age_ns > limits.heartbeat_timeout_ns:
        return make(Verdict.DEAD, f"{name}: no heartbeat for {beat_age_ns / 1e9:.3g} s")
    if output_t_ns is not None and state in (HeartbeatState.RUNNING, HeartbeatState.SAFE_MODE):
        # Before its first publication since it started, a process gets the start-up
        # allowance; after that, the output timeout.
        if output_t_ns > started_ns:
            ref, limit = output_t_ns, limits.output_timeout_ns
        else:
            ref, limit = started_ns, limits.startup_timeout_ns
        if now_ns - ref > limit:
            what = "telemetry" if process == Process.PHYSICS else "state"
            why = "; its seqlock is left odd (writer stopped mid-publication)" if seq_odd else ""
            return make(
                Verdict.FROZEN,
                f"{name}: beats, but no new {what} for {(now_ns - ref) / 1e9:.3g} s{why}",
            )
    return make(Verdict.ALIVE, f"{name}: {state.name.lower()}")


class LivenessMonitor:
    """Reads heartbeats and the two published records; readers built once.

    Not thread-safe: one monitor per thread (the poll loop and the exporter own one each).
    """

    def __init__(self, region: Region, limits: LivenessLimits | None = None) -> None:
        self.region = region
        self.limits = limits or LivenessLimits()
        self._hb = region.block("heartbeats")
        self._outputs: dict[Process, tuple[SeqlockReader, Any, str, memoryview]] = {}
        for process, (block, field) in OUTPUTS.items():
            reader = SeqlockReader(region, block)
            self._outputs[process] = (
                reader,
                reader.new_record(),
                field,
                region.scalar(block + ".seq"),
            )

    def check(self, now_ns: int | None = None) -> dict[Process, Liveness]:
        out_t: dict[Process, tuple[int, bool]] = {}
        for process, (reader, rec, field, seq) in self._outputs.items():
            odd = bool(seq[0] & 1)
            reader.read_latest(rec)
            out_t[process] = (int(rec[field]), odd)
        now = monotonic_ns() if now_ns is None else now_ns
        result = {}
        for p in Process:
            slot = self._hb[int(p)]
            t, odd = out_t.get(p, (None, False))
            result[p] = assess(
                p,
                state=HeartbeatState(int(slot["state"])),
                pid=int(slot["pid"]),
                last_beat_ns=int(slot["last_beat_ns"]),
                started_ns=int(slot["started_ns"]),
                now_ns=now,
                limits=self.limits,
                output_t_ns=t,
                seq_odd=odd,
            )
        return result


def liveness(
    region: Region, *, now_ns: int | None = None, limits: LivenessLimits | None = None
) -> dict[Process, Liveness]:
    """Every process's liveness now: the supervisor's one call (restart on ``not ok``).

    Builds its readers per call (tens of microseconds); a caller polling fast should
    keep a :class:`LivenessMonitor` instead.
    """
    return LivenessMonitor(region, limits).check(now_ns)


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
