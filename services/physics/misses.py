"""Deadline-miss attribution: why each missed 1 kHz deadline was missed (diagnostics).

Off unless ``ENGS_MISS_TRACE`` names a file. Then the loop takes the thread's resource
usage at the start of every tick (``getrusage(RUSAGE_THREAD)`` and the run-queue wait of
``/proc/thread-self/schedstat``, ~2 µs together) and, for each tick after which a
deadline was missed, keeps one row in a preallocated array: how late the tick woke, how
long its step and whole body took, the involuntary and voluntary context switches and
page faults during it, garbage collections, whether the state read had to give up on a
torn snapshot, how long the thread waited runnable on the run queue, and how much of
the tick overlapped the deadline reporter's sampling (a thread of the physics process,
which holds the GIL while it runs). At exit the rows are written as JSON lines, each
with its attributed cause (:func:`attribute`), followed by one summary line.
``ops/deadline-attribution.sh`` runs ``engs up`` with it and prints the summary;
docs/benchmarks.md records what it found.
"""

from __future__ import annotations

import gc
import json
import os
import resource
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ENV = "ENGS_MISS_TRACE"

MISS_DTYPE = np.dtype(
    [
        ("tick", "<u8"),
        ("missed", "<u4"),  # deadlines skipped after this tick
        ("metric_tick", "?"),  # this tick recomputed the metric gradient
        ("state_ok", "?"),  # the control-state read returned a coherent snapshot
        ("lateness_ns", "<i8"),  # woke this long after its deadline
        ("step_ns", "<i8"),  # field.step alone
        ("body_ns", "<i8"),  # wake to publish done
        ("overrun_ns", "<i8"),  # end of the tick past the next deadline
        ("nivcsw", "<i8"),  # involuntary context switches during the tick
        ("nvcsw", "<i8"),
        ("minflt", "<i8"),
        ("majflt", "<i8"),
        ("gc", "<i8"),  # garbage collections during the tick
        ("runq_ns", "<i8"),  # waited runnable on this CPU's run queue, last tick start → now
        ("reporter_ns", "<i8"),  # overlap with the deadline reporter's sampling
    ]
)

CAUSES = (
    "gc",
    "deadline reporter (GIL)",
    "descheduled",
    "host (vCPU not running)",
    "page fault",
    "slow step",
    "torn state read",
    "other",
)


def attribute(row: Any, period_ns: int) -> str:
    """The cause of one miss, first match in :data:`CAUSES` order:

    * ``gc``: a garbage collection ran during the tick;
    * ``deadline reporter (GIL)``: the reporter thread was sampling during the tick;
    * ``descheduled``: another task of this machine held the CPU — an involuntary context
      switch during the tick, or a wake-up more than half a period late of which at
      least half was spent waiting on the run queue (``/proc/thread-self/schedstat``);
    * ``host (vCPU not running)``: a late wake-up the run queue does not explain — the
      kernel had nothing else to run, so the virtual CPU itself was not running (the
      hypervisor's steal, or its wake-up latency);
    * ``page fault``: a major fault, or minor faults (first touch of memory);
    * ``slow step``: the step itself took over 80 % of the period, with no switch;
    * ``torn state read``: the control-state read gave up on torn snapshots;
    * ``other``: none of these (e.g. a late wake-up under half a period).
    """
    if row["gc"] > 0:
        return "gc"
    if row["reporter_ns"] > 0:
        return "deadline reporter (GIL)"
    if row["nivcsw"] > 0:
        return "descheduled"
    if row["lateness_ns"] > period_ns // 2:
        waited = row["runq_ns"] >= min(row["lateness_ns"], period_ns) // 2
        return "descheduled" if waited else "host (vCPU not running)"
    if row["majflt"] > 0 or row["minflt"] > 0:
        return "page fault"
    if row["step_ns"] > 0.8 * period_ns:
        return "slow step"
    if not row["state_ok"]:
        return "torn state read"
    return "other"


class MissTrace:
    """The loop's miss recorder; :meth:`from_env` gives one only when asked for."""

    def __init__(self, path: Path, period_ns: int, capacity: int = 100_000) -> None:
        self.path = path
        self.period_ns = period_ns
        self.rows = np.zeros(capacity, dtype=MISS_DTYPE)
        self.n = 0
        self.dropped = 0
        self.ticks = 0
        self._ru: Any = None
        self._gc_runs = 0
        self.reporter_busy: list[int] = [0, 0]  # start, end ns of its last sampling
        # this (the loop's) thread's schedstat: ns on CPU, ns waiting on a run queue, ...
        self._schedstat = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        self._runq = self._runq_prev = self._read_runq()
        gc.callbacks.append(self._on_gc)

    @classmethod
    def from_env(cls, period_ns: int) -> MissTrace | None:
        path = os.environ.get(ENV)
        return cls(Path(path), period_ns) if path else None

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_runs += 1

    def _read_runq(self) -> int:
        return int(os.pread(self._schedstat, 96, 0).split()[1])

    def tick_start(self) -> None:
        self._runq_prev, self._runq = self._runq, self._read_runq()
        self._ru = resource.getrusage(resource.RUSAGE_THREAD)
        self._gc0 = self._gc_runs
        self.ticks += 1

    def miss(
        self, tick: int, missed: int, metric_tick: bool, state_ok: bool, t_wake: int,
        lateness: int, step_ns: int, body_ns: int, overrun_ns: int,
    ) -> None:  # fmt: skip
        """Record the tick that woke at ``t_wake`` (monotonic ns) and missed."""
        if self.n == len(self.rows):
            self.dropped += 1
            return
        ru, ru0 = resource.getrusage(resource.RUSAGE_THREAD), self._ru
        start, end = self.reporter_busy
        t_end = t_wake + body_ns
        if end < start:  # sampling now
            end = t_end
        overlap = max(0, min(end, t_end) - max(start, t_wake - lateness))
        self.rows[self.n] = (
            tick, missed, metric_tick, state_ok, lateness, step_ns, body_ns, overrun_ns,
            ru.ru_nivcsw - ru0.ru_nivcsw, ru.ru_nvcsw - ru0.ru_nvcsw,
            ru.ru_minflt - ru0.ru_minflt, ru.ru_majflt - ru0.ru_majflt,
            self._gc_runs - self._gc0, self._read_runq() - self._runq_prev, overlap,
        )  # fmt: skip
        self.n += 1

    def summary(self) -> dict[str, Any]:
        rows = self.rows[: self.n]
        causes = Counter(attribute(r, self.period_ns) for r in rows)
        missed = int(rows["missed"].sum())
        return {
            "ticks": self.ticks,
            "miss_events": int(self.n),
            "deadlines_missed": missed,
            "miss_ratio": missed / max(self.ticks, 1),
            "dropped": self.dropped,
            "causes": {c: causes.get(c, 0) for c in CAUSES},
        }

    def write(self) -> None:
        """Every row as a JSON line with its cause, then the summary line."""
        gc.callbacks.remove(self._on_gc)
        os.close(self._schedstat)
        with self.path.open("w", encoding="utf-8") as out:
            for r in self.rows[: self.n]:
                row = {name: r[name].item() for name in MISS_DTYPE.names or ()}
                row["cause"] = attribute(r, self.period_ns)
                out.write(json.dumps(row) + "\n")
            out.write(json.dumps({"summary": self.summary()}) + "\n")
