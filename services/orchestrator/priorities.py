"""CRITICAL conditions the ENGS detects, with hysteresis, and oracle requests.

Seed 003 GAP-022 lists the CRITICAL triggers; the ENGS owns three of them and reports
them as :class:`engs.shared.layout.Cause` bits for the caller to raise on the
orchestrator's interrupt lane at once (not at the next publication):

=================  ==========================  ===================================
cause              raised when                 cleared when
=================  ==========================  ===================================
ATP_EXHAUSTED      ATP ratio < 0.05            ATP ratio ≥ 0.10
PANIC              N > 0.95                    N < 0.85
UNSTABLE           scaled M has Re λ ≥ 0       scaled M stable again (re-checked
                                               whenever the cost scale changes)
=================  ==========================  ===================================

The bands keep a level that hovers at a threshold from raising and clearing an
interrupt every cycle (each raise makes the physics damp the field). UNSTABLE needs no
band: the matrix only changes when the cost scale does, not with noise.

Oracle requests (seed 003 §9: emergency stimulus for anhedonia, serotonin boost for
mania) carry an id; :class:`OracleLedger` accepts each id once, so a retransmitted or
replayed request is never applied twice.

Writer and reader: the control cycle.
"""

from __future__ import annotations

from typing import Literal

from engs.shared.config import PriorityConfig
from engs.shared.layout import Cause


class CauseMonitor:
    """The ENGS's active cause set, updated once per cycle."""

    def __init__(self, cfg: PriorityConfig) -> None:
        self._cfg = cfg
        self.active = Cause(0)

    def update(self, atp_ratio: float, norepinephrine: float, matrix_stable: bool) -> Cause:
        cfg = self._cfg
        act = self.active
        if atp_ratio < cfg.atp_exhausted_below:
            act |= Cause.ATP_EXHAUSTED
        elif atp_ratio >= cfg.atp_exhausted_clear_at:
            act &= ~Cause.ATP_EXHAUSTED
        if norepinephrine > cfg.panic_above:
            act |= Cause.PANIC
        elif norepinephrine < cfg.panic_clear_below:
            act &= ~Cause.PANIC
        if matrix_stable:
            act &= ~Cause.UNSTABLE
        else:
            act |= Cause.UNSTABLE
        self.active = act
        return act


class OracleLedger:
    """Remembers the last applied request id per kind."""

    def __init__(self) -> None:
        self.last_id: dict[str, int] = {"anhedonia": 0, "mania": 0}

    def accept(self, kind: Literal["anhedonia", "mania"], request_id: int) -> bool:
        """True the first time an id above the last applied one is seen."""
        if request_id <= self.last_id[kind]:
            return False
        self.last_id[kind] = request_id
        return True
