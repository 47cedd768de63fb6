"""Subscriptions of the signal socket: the state stream at a client's rate, and events.

A ``subscribe`` turns its connection into a stream: a ``snapshot`` of the state (from
``handler.snapshot()``) at the requested rate, and every event the orchestrator
publishes (curiosity goals). Output to a subscriber is a bounded queue: when it is full
(the client reads slower than it asked for), the oldest snapshot is dropped — never an
event — and counted in the next snapshot's ``dropped``. The stream never bursts to catch
up: a tick that falls behind is skipped.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from engs.shared.messages import Framing, Snapshot, StateSnapshot, encode_frame

if TYPE_CHECKING:
    from engs.services.orchestrator.dispatch import ServerStats


class Subscription:
    """One connection's stream. ``write`` sends bytes on the connection (it may abort
    it, which calls :meth:`cancel`); ``writable`` says whether the transport takes more
    now (False while its buffer is over ``output_high``)."""

    __slots__ = (
        "_handle",
        "_loop",
        "_next_t",
        "_queue",
        "_snapshot",
        "_stats",
        "_writable",
        "_write",
        "cancelled",
        "dropped",
        "framing",
        "id",
        "max_queue",
        "n",
        "period",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        framing: Framing,
        snapshot: Callable[[], StateSnapshot],
        write: Callable[[bytes], None],
        writable: Callable[[], bool],
        *,
        max_queue: int,
        stats: ServerStats,
    ) -> None:
        self._loop = loop
        self.framing = framing
        self._snapshot = snapshot
        self._write = write
        self._writable = writable
        self.max_queue = max_queue
        self._stats = stats
        self.id: int | str | None = None
        self.period = 1.0
        self.n = 0
        self.dropped = 0
        self.cancelled = False
        self._next_t = loop.time()
        self._queue: deque[tuple[bool, bytes]] = deque()
        self._handle: asyncio.Handle | None = None

    def start(self, id: int | str | None, hz: float) -> None:
        """(Re)start at ``hz``; a second ``subscribe`` only changes the id and rate. The
        first snapshot goes out in the next loop iteration, after the ack."""
        self.id = id
        self.period = 1.0 / hz
        if self._handle is None:
            self._handle = self._loop.call_soon(self._tick)

    def cancel(self) -> None:
        """End the stream (the connection is closing)."""
        self.cancelled = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        if self.cancelled:
            return
        self.n += 1
        snap = Snapshot(id=self.id, n=self.n, dropped=self.dropped, state=self._snapshot())
        self.push(encode_frame(snap, self.framing), snapshot=True)
        if self.cancelled:  # aborted while pushing
            return
        self._next_t += self.period
        now = self._loop.time()
        if self._next_t <= now:  # fell behind (or the loop was busy): skip, never burst
            self._next_t = now + self.period
        self._handle = self._loop.call_at(self._next_t, self._tick)

    def push(self, frame: bytes, *, snapshot: bool) -> None:
        """Queue one stream message; drop the oldest snapshot when the queue is full."""
        q = self._queue
        if len(q) >= self.max_queue:
            for i, (is_snap, _) in enumerate(q):
                if is_snap:
                    del q[i]
                    break
            else:
                q.popleft()
            self.dropped += 1
            self._stats.subscriber_drops += 1
        q.append((snapshot, frame))
        self.flush()

    def flush(self) -> None:
        """Write what is queued while the connection takes it."""
        q = self._queue
        while q and not self.cancelled and self._writable():
            self._write(q.popleft()[1])
