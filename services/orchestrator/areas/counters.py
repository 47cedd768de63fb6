"""The area model's counters, by name, and their checkpoint layout.

One :class:`AreaCounters` per model, shared by the parts that count: the model counts
awake cycles (β's annealing clock), the :class:`~.learner.Learner` the base gains its
saturation safeguard cut, the :class:`~.nap.NapConsolidation` the cycles into the
current nap and whether the last cycle napped.

A checkpoint stores them as one int64 array of :data:`LAYOUT`'s length, in that order
(``"counters"`` of an :class:`~.model.AreasSnapshot`, the layout from before they had
names): :meth:`AreaCounters.to_array` and :meth:`AreaCounters.load_array` convert at that
boundary only.

Writer: the control cycle's thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: The checkpoint array's entries, in order.
LAYOUT = ("learn_cycles", "nap_cycles", "napping", "gains_cut")


@dataclass(slots=True)
class AreaCounters:
    learn_cycles: int = 0
    """Awake cycles so far (the clock of β's annealing)."""
    nap_cycles: int = 0
    """Cycles into the current nap (0 awake): dream batches every ``every_cycles``."""
    napping: bool = False
    """Whether the last cycle napped (its end starts consolidation)."""
    gains_cut: int = 0
    """Edge x NT base gains the saturation safeguard has reduced, in total."""

    def to_array(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        """The checkpoint layout: int64 (4,) in :data:`LAYOUT` order."""
        return np.array([int(getattr(self, name)) for name in LAYOUT], dtype=np.int64)

    def load_array(self, a: np.ndarray[Any, Any]) -> None:
        """Restore from the checkpoint layout (shape and dtype checked by the caller)."""
        self.learn_cycles, self.nap_cycles, napping, self.gains_cut = (int(v) for v in a)
        self.napping = bool(napping)
