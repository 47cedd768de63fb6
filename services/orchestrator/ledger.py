"""The ATP ledger and the Transactional Metabolic Lock (seed 003 §7.2, GAP-022 TML).

Owns the absolute ATP reserve in NMU (the published ``atp_ratio`` is
``available / capacity``) and every open reservation. A task asks for its estimated
cost before it starts::

    lock = ledger.try_reserve(cost_nmu, "ingest pdf")   # Lock | None, never blocks long
    ... do the work ...
    ledger.commit(lock.id)        # the escrow is spent
    # or ledger.abort(lock.id)    # the escrow is refunded

Semantics:

* **reserve**: granted iff not napping and ``cost <= available``; the cost moves from
  ``available`` to escrow at once. Denied otherwise, with a
  :class:`~engs.services.orchestrator.events.MetabolicWarning` queued for the next step's
  events (the seed's constructor throws ``MetabolicExhaustion``; a real-time caller
  gets ``None`` instead and nothing is raised across the socket).
* **commit** spends the escrow; **abort** refunds it (the seed's RAII destructor).
* **expiry**: a lock neither committed nor aborted within its TTL (ENGS seconds) is
  refunded by the next step: an abandoned task must not hold ATP forever.
* **revoke_all** (a CRITICAL cause rose, GAP-022 "ENGS can revoke active locks"):
  every open lock is *refunded*, not forfeited. Revocation is an emergency measure to
  restore the reserve; forfeiting would deepen the exhaustion that caused it, and the
  work the revoked tasks did is discarded ("graceful rollback") so it has nothing to
  show for the charge. A later commit or abort of a revoked lock returns False.
* **charge / credit**: continuous consumption and resynthesis from the control cycle.
  A charge takes at most what is available (the shortfall is recorded as ``unpaid``);
  a credit fills at most up to ``capacity - escrow``, so refunds never overflow.

Invariants, under any interleaving of threads: ``0 <= available``,
``available + escrow <= capacity``, and the tallies balance::

    reserved = committed + refunded + escrow
    available = initial - reserved + refunded - charged + credited

Concurrency: every mutation holds one ``threading.Lock`` for a few float operations;
the socket layer and worker threads call reserve/commit/abort, the control cycle calls
the rest. ``available_nmu`` is one attribute read (atomic in CPython) and needs no lock.
Time is ENGS time, set by the control cycle (:meth:`set_time`), so expiry is
deterministic given the order of calls.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from typing import Literal

import msgspec

from engs.services.orchestrator.events import MetabolicWarning

MAX_QUEUED_WARNINGS = 1024


class Lock(msgspec.Struct, frozen=True):
    """An open reservation: ``cost_nmu`` held in escrow for ``task``."""

    id: int
    task: str
    cost_nmu: float
    created_s: float
    expires_s: float


class LedgerTotals(msgspec.Struct):
    """Cumulative tallies (NMU, except counts) since the ledger was created."""

    reserved: float = 0.0
    committed: float = 0.0
    refunded: float = 0.0
    charged: float = 0.0
    credited: float = 0.0
    unpaid: float = 0.0
    granted: int = 0
    denied: int = 0
    warnings_dropped: int = 0


class LedgerState(msgspec.Struct, frozen=True):
    capacity_nmu: float
    initial_nmu: float
    available_nmu: float
    escrow_nmu: float
    napping: bool
    now_s: float
    next_id: int
    locks: list[Lock]
    totals: LedgerTotals


class AtpLedger:
    """Thread-safe ATP reserve with escrowed reservations."""

    def __init__(self, capacity_nmu: float, initial_nmu: float, ttl_s: float) -> None:
        if not 0.0 <= initial_nmu <= capacity_nmu:
            raise ValueError(f"initial ATP must be in [0, {capacity_nmu}], got {initial_nmu}")
        self._mutex = threading.Lock()
        self.capacity_nmu = capacity_nmu
        self.initial_nmu = initial_nmu
        self.available_nmu = initial_nmu
        self._escrow = 0.0
        self._ttl_s = ttl_s
        self._locks: dict[int, Lock] = {}
        self._next_id = 1
        self._now_s = 0.0
        self._napping = False
        self._warnings: deque[MetabolicWarning] = deque()
        self.totals = LedgerTotals()

    # -- any thread ----------------------------------------------------------------

    def try_reserve(self, cost_nmu: float, task: str, ttl_s: float | None = None) -> Lock | None:
        """Escrow ``cost_nmu`` for ``task``; the Lock, or None if denied (never raises
        for lack of ATP). ``cost_nmu`` must be finite and > 0."""
        if not (math.isfinite(cost_nmu) and cost_nmu > 0.0):
            raise ValueError(f"cost_nmu must be finite and > 0, got {cost_nmu!r}")
        ttl = self._ttl_s if ttl_s is None else ttl_s
        if not (math.isfinite(ttl) and ttl > 0.0):
            raise ValueError(f"ttl_s must be finite and > 0, got {ttl_s!r}")
        with self._mutex:
            if self._napping or cost_nmu > self.available_nmu:
                self._deny(cost_nmu, task, "napping" if self._napping else "insufficient")
                return None
            self.available_nmu -= cost_nmu
            self._escrow += cost_nmu
            lock = Lock(self._next_id, task, cost_nmu, self._now_s, self._now_s + ttl)
            self._next_id += 1
            self._locks[lock.id] = lock
            self.totals.reserved += cost_nmu
            self.totals.granted += 1
            return lock

    def commit(self, lock_id: int) -> bool:
        """Spend a lock's escrow; False if the lock is unknown (expired, revoked, done)."""
        return self._close(lock_id, self._spend)

    def abort(self, lock_id: int) -> bool:
        """Refund a lock's escrow; False if the lock is unknown."""
        return self._close(lock_id, self._refund)

    def _close(self, lock_id: int, settle: Callable[[Lock], None]) -> bool:
        """Forget an open lock and ``settle`` its escrow; False if the lock is unknown."""
        with self._mutex:
            lock = self._locks.pop(lock_id, None)
            if lock is None:
                return False
            settle(lock)
            return True

    @property
    def escrow_nmu(self) -> float:
        return self._escrow

    @property
    def open_locks(self) -> int:
        return len(self._locks)

    # -- the control cycle ---------------------------------------------------------

    def set_time(self, now_s: float) -> None:
        self._now_s = now_s

    def set_napping(self, napping: bool) -> None:
        with self._mutex:
            self._napping = napping

    def apply(self, delta_nmu: float) -> float:
        """Credit (> 0) or charge (< 0) the reserve; returns the amount applied."""
        with self._mutex:
            if delta_nmu >= 0.0:
                room = max(0.0, self.capacity_nmu - self.available_nmu - self._escrow)
                done = min(delta_nmu, room)
                self.available_nmu += done
                self.totals.credited += done
                return done
            want = -delta_nmu
            paid = min(want, self.available_nmu)
            self.available_nmu -= paid
            self.totals.charged += paid
            self.totals.unpaid += want - paid
            return -paid

    def expire(self) -> list[Lock]:
        """Refund every lock whose TTL has run out at the current time."""
        if not self._locks:  # the common case, without taking the mutex
            return []
        with self._mutex:
            due = [lk for lk in self._locks.values() if lk.expires_s <= self._now_s]
            for lk in due:
                del self._locks[lk.id]
                self._refund(lk)
            return due

    def revoke_all(self) -> tuple[int, float]:
        """Refund and forget every open lock; returns (count, NMU refunded)."""
        with self._mutex:
            locks = list(self._locks.values())
            self._locks.clear()
            total = 0.0
            for lk in locks:
                self._refund(lk)
                total += lk.cost_nmu
            return len(locks), total

    def drain_warnings(self) -> list[MetabolicWarning]:
        """The denials queued since the last call, oldest first."""
        if not self._warnings:
            return []
        with self._mutex:
            out = list(self._warnings)
            self._warnings.clear()
            return out

    # -- checkpoints -----------------------------------------------------------------

    def state(self) -> LedgerState:
        with self._mutex:
            return LedgerState(
                capacity_nmu=self.capacity_nmu,
                initial_nmu=self.initial_nmu,
                available_nmu=self.available_nmu,
                escrow_nmu=self._escrow,
                napping=self._napping,
                now_s=self._now_s,
                next_id=self._next_id,
                locks=list(self._locks.values()),
                totals=msgspec.structs.replace(self.totals),
            )

    def load_state(self, st: LedgerState) -> None:
        held = sum(lk.cost_nmu for lk in st.locks)
        slack = 1e-9 * st.capacity_nmu  # the running escrow and this sum round apart
        if not (
            st.available_nmu >= 0.0
            and abs(st.escrow_nmu - held) <= slack
            and st.available_nmu + st.escrow_nmu <= st.capacity_nmu + slack
        ):
            raise ValueError(
                f"ledger state inconsistent: available {st.available_nmu}, escrow "
                f"{st.escrow_nmu} (locks hold {held}), capacity {st.capacity_nmu}"
            )
        with self._mutex:
            self.capacity_nmu = st.capacity_nmu
            self.initial_nmu = st.initial_nmu
            self.available_nmu = st.available_nmu
            self._napping = st.napping
            self._now_s = st.now_s
            self._next_id = st.next_id
            self._locks = {lk.id: lk for lk in st.locks}
            self._escrow = st.escrow_nmu
            self.totals = msgspec.structs.replace(st.totals)

    # -- internals (mutex held) ------------------------------------------------------

    def _release(self, cost: float) -> None:
        # Reset to exactly 0 when nothing is held, so float residue cannot accumulate.
        self._escrow = self._escrow - cost if self._locks else 0.0

    def _spend(self, lock: Lock) -> None:
        self._release(lock.cost_nmu)
        self.totals.committed += lock.cost_nmu

    def _refund(self, lock: Lock) -> None:
        self._release(lock.cost_nmu)
        self.available_nmu += lock.cost_nmu
        self.totals.refunded += lock.cost_nmu

    def _deny(self, cost: float, task: str, reason: Literal["insufficient", "napping"]) -> None:
        self.totals.denied += 1
        if len(self._warnings) >= MAX_QUEUED_WARNINGS:
            self.totals.warnings_dropped += 1
            return
        self._warnings.append(
            MetabolicWarning(
                t_s=self._now_s,
                task=task,
                cost_nmu=cost,
                available_nmu=self.available_nmu,
                reason=reason,
            )
        )
