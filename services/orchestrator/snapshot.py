"""What an ENGS saves and restores: :class:`EngsSnapshot` and its parts, and the
functions behind :meth:`Engs.state_dict <engs.services.orchestrator.engs.Engs.state_dict>`
and ``load_state_dict`` (:func:`take`, :func:`restore`). A snapshot holds the learned
parameters and slow state: everything a restart needs to continue the run exactly
(docs/orchestrator.md §9).

The ENGS's own evolving scalars *are* snapshot Structs: :class:`Levels` (``Engs.levels``)
and :class:`TelemetryMemory` (``Engs.memory``) are what the step reads and writes, and a
snapshot holds a copy of each — nothing is copied field by field, so a field added to
either is saved and restored with no further code. :class:`StateField` gives their public
fields their old names on the ENGS (``engs.dopamine`` is ``engs.levels.dopamine``).
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import msgspec
import numpy as np

from engs.services.orchestrator import checkpoint
from engs.services.orchestrator.areas.model import AreasSnapshot, AreasStateError
from engs.services.orchestrator.boredom import BoredomState
from engs.services.orchestrator.critic import CriticState
from engs.services.orchestrator.dopamine import EnergyValueState
from engs.services.orchestrator.dream import DreamState
from engs.services.orchestrator.inputs import DmnReport
from engs.services.orchestrator.ledger import LedgerState
from engs.services.orchestrator.metabolism import Calibration
from engs.services.orchestrator.nap import NapState
from engs.shared.layout import Cause

if TYPE_CHECKING:
    from engs.services.orchestrator.engs import Engs

FORMAT = "engs-orchestrator"
VERSION = 3
"""2: the area model and the replay buffer joined the snapshot (v1 snapshots are
refused: they cannot restore the area state). 3: the critic's time cells, the average
reward rate and the opportunity-cost boredom (issue #12; v2 critics cannot be mapped
onto the new features)."""


T = TypeVar("T")


class Levels(msgspec.Struct):
    """The global levels and the signals that drive them (mutable: the ENGS's own)."""

    dopamine: float
    serotonin: float
    norepinephrine: float
    cortisol: float
    stress: float
    td_error: float
    """δ that drove D (the configured value model)."""
    td_error_energy: float
    """δ of the seed's energy value."""
    td_error_critic: float
    """δ of the learned critic."""
    energy_value_prev: float
    phasic_dopamine: float
    """The phasic dopamine signal: δ, with negative errors compressed (Bayer & Glimcher
    2005); what D integrates and what a recording would show."""
    reward_rate: float
    """R̄, the average reward rate in reward per second: tonic dopamine (Niv, Daw, Joel &
    Dayan 2007), kept apart from the phasic signal."""
    reward_rate_mean: float
    """The exponential mean of the rate, before bias correction."""
    reward_rate_weight: float
    """1 - e^{-t/τ_R}: the weight that mean has gathered."""

    @classmethod
    def at_rest(cls, dopamine: float, serotonin: float, norepinephrine: float) -> Levels:
        """The levels of a fresh ENGS: D, S, N at rest, every signal 0."""
        return cls(dopamine, serotonin, norepinephrine, *(0.0,) * 10)


class TelemetryMemory(msgspec.Struct):
    """What the step remembers of telemetry between cycles (mutable: the ENGS's own)."""

    last_tick: int | None
    energy: float
    entropy_bits: float
    entropy_err_bits: float
    n_nodes: int
    temperature_c: float | None

    @classmethod
    def empty(cls, temperature_c: float | None) -> TelemetryMemory:
        """Before the first record: nothing seen, the calibration's temperature."""
        return cls(None, 0.0, 0.0, 0.0, 0, temperature_c)


class StateField(Generic[T]):
    """A public attribute of the ENGS that lives in one of its state Structs:
    ``StateField("levels")`` named ``dopamine`` reads and writes ``engs.levels.dopamine``
    (for callers outside the step; the step itself reads the Struct)."""

    def __init__(self, part: str) -> None:
        self.part = part
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> StateField[T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...
    def __get__(self, obj: object, owner: type | None = None) -> Any:
        return self if obj is None else getattr(getattr(obj, self.part), self.name)

    def __set__(self, obj: object, value: T) -> None:
        setattr(getattr(obj, self.part), self.name, value)


class RngState(msgspec.Struct, frozen=True):
    """numpy PCG64 state; its 128-bit integers as decimal strings, which msgpack (64-bit
    integers at most) and JSON both carry."""

    state: str
    inc: str
    has_uint32: int
    uinteger: int

    @classmethod
    def of(cls, rng: np.random.Generator) -> RngState:
        st = rng.bit_generator.state
        return cls(
            state=str(st["state"]["state"]),
            inc=str(st["state"]["inc"]),
            has_uint32=int(st["has_uint32"]),
            uinteger=int(st["uinteger"]),
        )

    def restore(self, rng: np.random.Generator) -> None:
        rng.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": int(self.state), "inc": int(self.inc)},
            "has_uint32": self.has_uint32,
            "uinteger": self.uinteger,
        }


class EngsSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Learned parameters and slow state: everything a restart needs to continue the
    run exactly (the replay buffer excepted, docs/orchestrator.md §9)."""

    format: str = FORMAT
    version: int = VERSION
    cycle: int
    n_areas: int
    n_features: int
    levels: Levels
    telemetry: TelemetryMemory
    energy_value: EnergyValueState
    critic: CriticState
    boredom: BoredomState
    ledger: LedgerState
    nap: NapState
    causes: int
    external_causes: int
    oracle_last_ids: dict[str, int]
    dmn_report: DmnReport | None
    dmn_metrics: list[float]
    calibration: Calibration
    rng: RngState
    areas: AreasSnapshot | None = None
    """The area neurochemistry (None when ``orchestrator.areas.enabled`` is false)."""
    replay: DreamState | None = None
    """The dream-weave replay buffer (consolidation samples it inside the step)."""


def take(e: Engs) -> EngsSnapshot:
    """``e``'s learned parameters and slow state as plain msgspec data."""
    return EngsSnapshot(
        cycle=e.cycle,
        n_areas=e.n_areas,
        n_features=e.features.n,
        levels=copy.copy(e.levels),
        telemetry=copy.copy(e.memory),
        energy_value=e.energy_value.state(),
        critic=CriticState(
            weights=e.critic.weights.tolist(),
            traces=e.critic.traces.tolist(),
            features=e._phi.tolist(),
            cue_elapsed_s=e.features.cells.elapsed_s(),
            baselines=[None if math.isnan(b) else float(b) for b in e.features.baselines],
        ),
        boredom=e.boredom.state(),
        ledger=e.ledger.state(),
        nap=e.nap.state(),
        causes=int(e.monitor.active),
        external_causes=e._external,
        oracle_last_ids=dict(e.oracle.last_id),
        dmn_report=e._dmn_report,
        dmn_metrics=list(e.dmn_metrics),
        calibration=e.calibration,
        rng=RngState.of(e.rng),
        areas=None if e.area_chem is None else e.area_chem.state_dict(),
        replay=e.replay.state(),
    )


def restore(e: Engs, st: EngsSnapshot) -> None:
    """Restore into ``e`` a snapshot taken by :func:`take` of an ENGS with the same
    area count and critic features. The calibration is restored with it."""
    if st.format != FORMAT or st.version != VERSION:
        raise checkpoint.CheckpointError(
            f"expected a {FORMAT} v{VERSION} snapshot, got {st.format} v{st.version}"
            + (" (from before the area model: it cannot be restored)" if st.version < 2 else "")
        )
    if st.n_areas != e.n_areas or st.n_features != e.features.n:
        raise checkpoint.CheckpointError(
            f"snapshot has {st.n_areas} areas and {st.n_features} critic features, "
            f"this ENGS {e.n_areas} and {e.features.n}"
        )
    n = e.features.n
    if not len(st.critic.weights) == len(st.critic.traces) == len(st.critic.features) == n:
        raise checkpoint.CheckpointError(f"critic arrays must have {n} entries")
    if len(st.critic.baselines) != len(e.features.baselines):
        raise checkpoint.CheckpointError(
            f"critic baselines must have {len(e.features.baselines)} entries"
        )
    if len(st.critic.cue_elapsed_s) != e.n_areas:
        raise checkpoint.CheckpointError(
            f"critic cue clocks must have {e.n_areas} entries (one per area)"
        )
    if (st.areas is None) != (e.area_chem is None):
        raise checkpoint.CheckpointError(
            "snapshot "
            + ("has no" if st.areas is None else "has an")
            + " area state, this ENGS "
            + ("runs" if e.area_chem is not None else "does not run")
            + " the area model (orchestrator.areas.enabled changed)"
        )
    try:  # everything that can refuse, before anything is changed
        if e.area_chem is not None and st.areas is not None:
            e.area_chem.load_state_dict(st.areas)
        if st.replay is not None:
            e.replay.load_state(st.replay)
    except (AreasStateError, ValueError) as exc:
        raise checkpoint.CheckpointError(f"unusable snapshot: {exc}") from None
    e.ledger.load_state(st.ledger)
    e.cycle = st.cycle
    e.levels = copy.copy(st.levels)  # the snapshot stays as it was
    e.memory = copy.copy(st.telemetry)
    e.energy_value.load_state(st.energy_value)
    e.critic.weights[:] = st.critic.weights
    e.critic.traces[:] = st.critic.traces
    e._phi[:] = st.critic.features
    e.features.cells.load_elapsed_s(st.critic.cue_elapsed_s)
    e.features.baselines[:] = [math.nan if b is None else b for b in st.critic.baselines]
    e.boredom.load_state(st.boredom)
    e.nap.load_state(st.nap)
    e.monitor.active = Cause(st.causes)
    e._external = st.external_causes
    e.oracle.last_id = {"anhedonia": 0, "mania": 0} | st.oracle_last_ids
    e._dmn_report = st.dmn_report
    e.dmn_metrics = tuple(st.dmn_metrics)
    e.calibration = st.calibration
    e.costs.calibration = st.calibration
    st.rng.restore(e.rng)
    e.linear.set_cost_scale(e.costs.activity_scale(e.memory.n_nodes, e.memory.temperature_c))
    e._stability = None
    e._update_outputs()
