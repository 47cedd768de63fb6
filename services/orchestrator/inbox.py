"""The handoff from the signal socket to the ENGS dynamics, exactly once.

Everything here runs on the orchestrator's one event loop: the server
(:mod:`engs.services.orchestrator.server`) calls :meth:`SignalInbox.try_put` from its
protocol callbacks, the control cycle calls :meth:`SignalInbox.drain` once per cycle.
Single-threaded, so no lock; neither side ever waits.

Exactly once: the server acknowledges a signal only after ``try_put`` returned True,
and answers ``error`` (reason ``overloaded``) when the inbox is full, so nothing
acknowledged is dropped. ``drain`` hands every queued signal to exactly one cycle, in
receipt order (ascending ``seq``), and counts it as applied. The inbox never
coalesces: a cycle that drains three rewards gets three rewards, and the dynamics
decides how to combine them (docs/signals.md, "Exactly once").

Request/response messages (``reserve``, ``commit``, ``abort``, ``state``,
``subscribe``, ``interrupt``, ``clear``) need an answer at once, so the server calls
the orchestrator through :class:`SignalHandler` instead; those calls also run on the
loop, between cycles, never during one.

Counters (:class:`SignalCounters`) are kept in process and, when a
:class:`engs.shared.stats.StatsWriter` is given, mirrored into the orchestrator's stats
block: ``engs_signals_total{type}`` (decoded requests), ``engs_signals_applied_total
{type}`` (applied: drained, or answered by the handler) and
``engs_signals_rejected_total{reason}``. Slot indexes are resolved once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from msgspec import Struct

from engs.shared.layout import Cause, Process
from engs.shared.messages import TAG, Signal, StateSnapshot
from engs.shared.stats import StatsWriter
from engs.shared.stats_schema import REJECT_REASONS, SIGNAL_TYPES


class Accepted(Struct, frozen=True, gc=False):
    """One acknowledged signal waiting for the control cycle."""

    seq: int
    """The signal id: the ``seq`` of its ack, strictly increasing per server (≥ 1)."""
    t_rx_ns: int
    """When its bytes were received (``time.monotonic_ns()``)."""
    signal: Signal


class SignalHandler(Protocol):
    """What the orchestrator provides to the server for request/response messages.

    Every method is called on the event loop, must return promptly, and must not
    block or await.
    """

    def try_reserve(self, cost: float, task: str) -> int | None:
        """Escrow ``cost`` NMU of ATP for ``task``: the new lock id (≥ 1), or None
        when the reserve cannot cover it (the request is denied)."""
        ...

    def commit(self, lock: int) -> bool:
        """Confirm an open lock's expenditure; False if ``lock`` is not open."""
        ...

    def abort(self, lock: int) -> bool:
        """Cancel an open lock and refund its escrow; False if ``lock`` is not open."""
        ...

    def snapshot(self) -> StateSnapshot:
        """The state as last published."""
        ...

    def raise_interrupt(self, cause: Cause) -> None:
        """Raise a CRITICAL cause at once (not at the next cycle)."""
        ...

    def clear_interrupt(self, cause: Cause) -> None:
        """Clear a CRITICAL cause."""
        ...


TYPE_INDEX: dict[type, int] = {
    cls: SIGNAL_TYPES.index(tag) for cls, tag in TAG.items() if tag in SIGNAL_TYPES
}
"""Index into :data:`engs.shared.stats_schema.SIGNAL_TYPES` of each counted request class (``auth``
is not a signal and is not counted by type)."""
REASON_INDEX: dict[str, int] = {r: i for i, r in enumerate(REJECT_REASONS)}


class SignalCounters:
    """Received / applied / rejected counts, in process and optionally in shared memory.

    ``received[i]``, ``applied[i]`` are indexed like :data:`engs.shared.stats_schema.SIGNAL_TYPES`,
    ``rejected[i]`` like :data:`engs.shared.stats_schema.REJECT_REASONS`.
    """

    def __init__(self, stats: StatsWriter | None = None) -> None:
        n = len(SIGNAL_TYPES)
        self.received = [0] * n
        self.applied = [0] * n
        self.rejected = [0] * len(REJECT_REASONS)
        self._stats = stats
        self._rx_slot: Sequence[int] = ()
        self._app_slot: Sequence[int] = ()
        self._rej_slot: Sequence[int] = ()
        if stats is not None:
            if stats.process is not Process.ORCHESTRATOR:
                raise ValueError(
                    f"signal counters live in the orchestrator's stats block, "
                    f"got a writer for {stats.process.name.lower()}"
                )
            self._rx_slot = [stats.counter("engs_signals_total", type=t) for t in SIGNAL_TYPES]
            self._app_slot = [
                stats.counter("engs_signals_applied_total", type=t) for t in SIGNAL_TYPES
            ]
            self._rej_slot = [
                stats.counter("engs_signals_rejected_total", reason=r) for r in REJECT_REASONS
            ]

    def count_received(self, index: int) -> None:
        self.received[index] += 1
        if self._stats is not None:
            self._stats.inc(self._rx_slot[index])

    def count_applied(self, index: int, n: int = 1) -> None:
        self.applied[index] += n
        if self._stats is not None:
            self._stats.inc(self._app_slot[index], n)

    def count_rejected(self, reason: str) -> None:
        i = REASON_INDEX[reason]
        self.rejected[i] += 1
        if self._stats is not None:
            self._stats.inc(self._rej_slot[i])

    def as_dict(self) -> dict[str, dict[str, int]]:
        """Non-zero counts by label, for tests, benches and logs."""
        return {
            "received": {t: n for t, n in zip(SIGNAL_TYPES, self.received, strict=True) if n},
            "applied": {t: n for t, n in zip(SIGNAL_TYPES, self.applied, strict=True) if n},
            "rejected": {r: n for r, n in zip(REJECT_REASONS, self.rejected, strict=True) if n},
        }


class SignalInbox:
    """Bounded FIFO of acknowledged signals: the server puts, the control cycle drains."""

    def __init__(self, capacity: int = 16384, counters: SignalCounters | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"inbox capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.counters = counters if counters is not None else SignalCounters()
        self._items: list[Accepted] = []

    def __len__(self) -> int:
        return len(self._items)

    def try_put(self, item: Accepted) -> bool:
        """Queue one signal; False (and nothing queued) when the inbox is full."""
        if len(self._items) >= self.capacity:
            return False
        self._items.append(item)
        return True

    def drain(self) -> list[Accepted]:
        """Every signal queued since the last drain, oldest first; each is counted as
        applied here, so the caller must apply all of them in this cycle."""
        items, self._items = self._items, []
        if items:
            counts = [0] * len(SIGNAL_TYPES)
            for item in items:
                counts[TYPE_INDEX[type(item.signal)]] += 1
            for i, n in enumerate(counts):
                if n:
                    self.counters.count_applied(i, n)
        return items
