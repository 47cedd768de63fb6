"""The transfer audit log (seed 002 §8: "Log per transfer: {edge_id, n, s, sent,
μ_i_before, μ_j_after}"): bounded, rotating, sampled, in memory.

Logging every edge x NT every cycle would be 7·E records per 10 ms; the log keeps a
preallocated ring of ``capacity`` records (the oldest is overwritten: rotating) and
writes into it

* every ``every_cycles`` cycles, ``per_sample`` carried edge x NT transfers taken round
  robin (a deterministic cursor, no randomness: the audit never perturbs the run);
* every cycle, every transfer the edge cap clipped (flag ``CAPPED``), up to the ring's
  size — the rare events an audit exists for are never sampled away.

Appending is vectorised and allocates only the index arrays of the records it writes.
The log is not checkpointed (it is a record, not state). Writer: the control cycle;
:meth:`AuditLog.records` is for tools and tests on the same thread.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engs.shared.config import AuditConfig

CAPPED = 1
"""Flag: the edge cap clipped this transfer."""

RECORD = np.dtype(
    [
        ("cycle", "<i8"),
        ("edge", "<i4"),
        ("nt", "<i1"),
        ("flags", "<u1"),
        ("s", "<f4"),
        ("sent", "<f4"),
        ("mu_src_before", "<f4"),
        ("mu_tgt_after", "<f4"),
    ]
)


class AuditLog:
    """A ring of :data:`RECORD` entries."""

    def __init__(self, cfg: AuditConfig, n_edges: int, n_nt: int) -> None:
        self.capacity = cfg.capacity
        self.every = cfg.every_cycles
        self.per_sample = cfg.per_sample
        self.ring = np.zeros(cfg.capacity, dtype=RECORD)
        self.next = 0
        self.total = 0
        """Records written since the start (the ring holds the newest ``capacity``)."""
        self._cursor = 0
        self._nt = n_nt

    def observe(
        self,
        cycle: int,
        carried: np.ndarray[Any, Any],
        capped: np.ndarray[Any, Any],
        s: np.ndarray[Any, Any],
        sent: np.ndarray[Any, Any],
        mu_src: np.ndarray[Any, Any],
        mu_tgt_after: np.ndarray[Any, Any],
    ) -> None:
        """Log this cycle's sampled and capped transfers. Arrays are (E, 7) flattened
        views are taken; ``carried`` and ``capped`` are boolean."""
        flat_carried = carried.reshape(-1)
        picks = np.flatnonzero(capped.reshape(-1) & flat_carried)
        if self.per_sample and cycle % self.every == 0:
            live = np.flatnonzero(flat_carried)  # round robin over carried transfers
            if live.size:
                turn = (self._cursor + np.arange(min(self.per_sample, live.size))) % live.size
                self._cursor = int((self._cursor + turn.size) % live.size)
                picks = np.union1d(picks, live[turn])
        if picks.size == 0:
            return
        picks = picks[-self.capacity :]
        k = picks.size
        slots = (self.next + np.arange(k)) % self.capacity
        rec = self.ring
        rec["cycle"][slots] = cycle
        rec["edge"][slots] = picks // self._nt
        rec["nt"][slots] = picks % self._nt
        rec["flags"][slots] = np.where(capped.reshape(-1)[picks], CAPPED, 0)
        rec["s"][slots] = s.reshape(-1)[picks]
        rec["sent"][slots] = sent.reshape(-1)[picks]
        rec["mu_src_before"][slots] = mu_src.reshape(-1)[picks]
        rec["mu_tgt_after"][slots] = mu_tgt_after.reshape(-1)[picks]
        self.next = int((self.next + k) % self.capacity)
        self.total += k

    def records(self) -> np.ndarray[Any, Any]:
        """A copy of the held records, oldest first."""
        n = min(self.total, self.capacity)
        if self.total <= self.capacity:
            return self.ring[:n].copy()
        return np.concatenate([self.ring[self.next :], self.ring[: self.next]])
