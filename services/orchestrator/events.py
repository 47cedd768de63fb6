"""What one ENGS step reports: events for subscribers and the cause set.

Events are msgspec Structs tagged by a ``"type"`` field (the signal socket's
convention), so a subscriber can be sent any of them with one encoder and decode them
with one ``Decoder(Event)``. Times ``t_s`` are ENGS seconds (cycles x dt since the
start of the run), never wall-clock time: the step is a pure function of its inputs.

Writer: :meth:`engs.services.orchestrator.engs.Engs.step` (and the metabolic ledger, for
denials, which it queues until the next step). Readers: the 100 Hz loop, which raises
and clears ``StepResult.causes`` on its interrupt lane and forwards the events.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from engs.shared.layout import Cause


class _Event(msgspec.Struct, frozen=True, tag_field="type"):
    t_s: float
    """ENGS time of the step that produced the event, s."""


class CuriosityGoal(_Event, tag="curiosity_goal", frozen=True):
    """Boredom reached its threshold: explore the frontier area (seed 003 §6.3)."""

    area: int
    """Index of the frontier area: largest metric-gradient magnitude in telemetry."""
    area_name: str
    boredom: float
    metric_grad: float


class MetabolicWarning(_Event, tag="metabolic_warning", frozen=True):
    """A reservation was denied (seed 003 GAP-022 TML: 'deny, issue METABOLIC_WARNING')."""

    task: str
    cost_nmu: float
    available_nmu: float
    reason: Literal["insufficient", "napping"]


class NapStarted(_Event, tag="nap_started", frozen=True):
    atp_ratio: float


class NapEnded(_Event, tag="nap_ended", frozen=True):
    atp_ratio: float
    duration_s: float


class LockExpired(_Event, tag="lock_expired", frozen=True):
    """An uncommitted reservation outlived its TTL and was refunded."""

    lock: int
    task: str
    refund_nmu: float


class LocksRevoked(_Event, tag="locks_revoked", frozen=True):
    """A CRITICAL cause revoked every open reservation; their escrow was refunded."""

    count: int
    refund_nmu: float
    causes: int
    """The Cause bits whose rising edge revoked them."""


class CausesChanged(_Event, tag="causes_changed", frozen=True):
    """The ENGS's own CRITICAL cause set changed (bits of engs.shared.layout.Cause)."""

    active: int
    raised: int
    cleared: int


class OracleApplied(_Event, tag="oracle_applied", frozen=True):
    """An oracle request was applied (exactly once per request id)."""

    kind: Literal["anhedonia", "mania"]
    request_id: int


class AreaGainsReduced(_Event, tag="area_gains_reduced", frozen=True):
    """Area levels stayed saturated longer than ``saturation_cycles``: the base gains
    of the projections feeding them were reduced (seed 002 §8)."""

    edges: int
    """Edge x NT gains reduced."""


class AreaConsolidated(_Event, tag="area_consolidated", frozen=True):
    """A nap ended and the area model consolidated what it dreamt (seed 002 §5)."""

    samples: int
    """Replayed experiences the regression used."""
    pruned: int
    """Edge x NT entries pruned."""
    refit: int
    """Base gains refitted."""
    bands_moved: int
    """Target bands re-centred."""


Event = (
    CuriosityGoal
    | MetabolicWarning
    | NapStarted
    | NapEnded
    | LockExpired
    | LocksRevoked
    | CausesChanged
    | OracleApplied
    | AreaGainsReduced
    | AreaConsolidated
)


class StepResult(msgspec.Struct, frozen=True):
    """The outcome of one step."""

    cycle: int
    t_s: float
    causes: int
    """The ENGS's active CRITICAL causes (engs.shared.layout.Cause bits) after this step:
    the caller mirrors them onto its interrupt lane at once (raise new bits, clear
    dropped ones)."""
    events: tuple[Event, ...] = ()

    @property
    def cause_set(self) -> Cause:
        return Cause(self.causes)
