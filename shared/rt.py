"""Real-time process setup, after ros-controls/realtime_tools: every call *reports*
failure (an :class:`RtResult` to log and count) instead of raising, so a container
without CAP_SYS_NICE or a kernel without the feature degrades to best effort rather
than refusing to run.

Called once at start-up by the physics (1 kHz) and the orchestrator (100 Hz), never
inside their loops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
from collections.abc import Sequence
from dataclasses import dataclass

_PR_SET_TIMERSLACK = 29
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


@dataclass(frozen=True)
class RtResult:
    """Outcome of one real-time setup step."""

    step: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"{self.step}: {'ok' if self.ok else 'FAILED'} ({self.detail})"


def set_timer_slack(ns: int = 1_000) -> RtResult:
    """Lower the kernel's timer slack for this thread (default is 50 µs), so a sleep
    wakes close to its deadline (prctl PR_SET_TIMERSLACK)."""
    if _libc.prctl(_PR_SET_TIMERSLACK, ctypes.c_ulong(ns), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        return RtResult("timer_slack", False, f"prctl failed: {os.strerror(err)}")
    return RtResult("timer_slack", True, f"{ns} ns")


def set_sched_fifo(priority: int) -> RtResult:
    """Run this process under SCHED_FIFO at ``priority`` (1..99). Needs CAP_SYS_NICE
    or an rtprio ulimit; under docker compose: ``cap_add: [SYS_NICE]``."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (PermissionError, OSError) as exc:
        hint = (
            " (needs CAP_SYS_NICE or an rtprio ulimit)" if isinstance(exc, PermissionError) else ""
        )
        return RtResult("sched_fifo", False, f"priority {priority}: {exc.strerror}{hint}")
    return RtResult("sched_fifo", True, f"priority {priority}")


#: The priority ``auto`` takes: above every normal task, below the kernel's own
#: real-time threads (watchdogs, migration) and any deliberate RT work on the host.
AUTO_FIFO_PRIORITY = 10


def auto_sched_fifo(priority: int = AUTO_FIFO_PRIORITY) -> RtResult:
    """SCHED_FIFO when it is both safe and allowed, else the normal scheduler; never a
    failure (``ok`` is True either way, ``detail`` says which and why).

    Safe: at least two CPUs are usable, so a real-time thread that spins to its deadline
    or overruns for good (a lattice too large for the CPU) never holds the only CPU the
    other processes could run on (the kernel's RT throttling still leaves them 5 % of
    it). Allowed: CAP_SYS_NICE or an rtprio limit ≥ ``priority`` (docker-compose.yml
    grants both to the physics service)."""
    cpus = len(os.sched_getaffinity(0))
    if cpus < 2:
        return RtResult("sched_fifo", True, "auto: not taken, only one CPU usable")
    r = set_sched_fifo(priority)
    if not r.ok:
        return RtResult("sched_fifo", True, f"auto: not taken ({r.detail})")
    return RtResult("sched_fifo", True, f"auto: priority {priority}")


def set_affinity(cpus: Sequence[int]) -> RtResult:
    """Pin this process to ``cpus`` (e.g. an isolated core)."""
    try:
        os.sched_setaffinity(0, set(cpus))
    except (OSError, ValueError) as exc:
        return RtResult("affinity", False, f"cpus {list(cpus)}: {exc}")
    return RtResult("affinity", True, f"cpus {sorted(os.sched_getaffinity(0))}")


def freeze_gc() -> RtResult:
    """Collect once, move every survivor to the permanent generation and disable the
    cyclic collector, so no collection pause lands inside a tick. The loop allocates
    no cycles, so memory stays bounded (reference counting frees the rest)."""
    gc.collect()
    gc.freeze()
    gc.disable()
    return RtResult("gc", True, f"frozen {gc.get_freeze_count()} objects, collector off")


def thaw_gc() -> None:
    """Undo :func:`freeze_gc` (clean shutdown, tests)."""
    gc.unfreeze()
    gc.enable()
