"""Per-process heartbeats in shared memory.

Each process owns one 64-byte slot (:class:`engs.shared.layout.Process`) and is its only
writer. Fields are independently atomic (aligned 8-byte stores); readers need no
consistent snapshot of the slot, only each field. ``last_beat_ns`` is CLOCK_MONOTONIC,
so any process on the host computes the age directly. The oracle exports the ages as
``engs_heartbeat_age_seconds{process}``; the supervisor restarts on them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from engs.shared.clock import NS_PER_S, monotonic_ns, wall_ns
from engs.shared.layout import HeartbeatState, Process, RegionFlags
from engs.shared.region import Region


class Heartbeat:
    """The writer side: one per process."""

    def __init__(self, region: Region, process: Process) -> None:
        self.process = process
        at = f"heartbeats[{int(process)}]"
        self._last = region.scalar(at + ".last_beat_ns")
        self._beats = region.scalar(at + ".beats")
        self._state = region.scalar(at + ".state")
        slot = region.block("heartbeats")[int(process)]
        slot["last_beat_ns"] = 0
        slot["beats"] = 0
        slot["pid"] = os.getpid()
        slot["started_ns"] = monotonic_ns()
        slot["started_wall_ns"] = wall_ns()
        slot["flags"] = int(region.pin_flags)
        self._state[0] = HeartbeatState.STARTING
        self.beat()

    def beat(self) -> None:
        """Record liveness now. Two aligned stores; safe in the real-time loop."""
        self._last[0] = monotonic_ns()
        self._beats[0] += 1

    def set_state(self, state: HeartbeatState) -> None:
        self._state[0] = int(state)
        self.beat()


@dataclass(frozen=True)
class HeartbeatInfo:
    process: Process
    pid: int
    state: HeartbeatState
    beats: int
    age_s: float | None  # None: never beat
    uptime_s: float | None
    flags: RegionFlags

    @property
    def alive(self) -> bool:
        """Present and not stopped (says nothing about freshness: see ``age_s``)."""
        return self.state not in (HeartbeatState.ABSENT, HeartbeatState.STOPPED)


def read_heartbeats(region: Region, now_ns: int | None = None) -> list[HeartbeatInfo]:
    """All heartbeat slots, with ages relative to ``now_ns`` (default: now)."""
    now = monotonic_ns() if now_ns is None else now_ns
    out = []
    for p in Process:
        s = region.block("heartbeats")[int(p)]
        last = int(s["last_beat_ns"])
        started = int(s["started_ns"])
        out.append(
            HeartbeatInfo(
                process=p,
                pid=int(s["pid"]),
                state=HeartbeatState(int(s["state"])),
                beats=int(s["beats"]),
                age_s=(now - last) / NS_PER_S if last else None,
                uptime_s=(now - started) / NS_PER_S if started else None,
                flags=RegionFlags(int(s["flags"])),
            )
        )
    return out


class PeerLoss:
    """Notices that a peer process, once seen alive, has been silent for too long.

    Used under docker compose, where a crashed physics container comes back with a fresh
    /dev/shm (it owns the IPC namespace): the orchestrator and oracle would otherwise
    keep serving the old region forever. With ``after_s`` > 0 they exit instead, and the
    container runtime restarts them into the physics' new namespace. Never fires for a
    peer that has not been seen alive (a physics still starting), so nothing flaps.
    """

    def __init__(self, region: Region, peer: Process, after_s: float) -> None:
        self.peer = peer
        self.after_ns = int(after_s * NS_PER_S)
        self._last = region.scalar(f"heartbeats[{int(peer)}].last_beat_ns")
        self._state = region.scalar(f"heartbeats[{int(peer)}].state")
        self.seen_alive = False

    def lost(self, now_ns: int | None = None) -> bool:
        """True once the peer, seen alive before, has not beaten for ``after_s``."""
        if self.after_ns <= 0:
            return False
        now = monotonic_ns() if now_ns is None else now_ns
        last = int(self._last[0])
        state = HeartbeatState(int(self._state[0]))
        fresh = last != 0 and now - last <= self.after_ns
        if state in (HeartbeatState.RUNNING, HeartbeatState.SAFE_MODE) and fresh:
            self.seen_alive = True
            return False
        return self.seen_alive and not fresh and state is not HeartbeatState.STOPPED


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (0 or negative: no). A
    process of another user exists too (the kill is refused, not unanswered)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
