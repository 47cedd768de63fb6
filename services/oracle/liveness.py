"""Liveness of every ENGS process, judged from shared memory alone.

Three signals per process, all read-only:

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
:func:`liveness` is the one-call helper for the supervisor (`engs up`):
``liveness(region) -> dict[Process, Liveness]``. Process ids are deliberately not
probed: under docker compose each service has its own pid namespace.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from engs.shared.clock import NS_PER_S, monotonic_ns
from engs.shared.config import OracleConfig
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
