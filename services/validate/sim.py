"""The headless closed loop every assay runs: the real ENGS step coupled to the real field.

One :meth:`Sim.cycle` is one control cycle of the live service (ARCHITECTURE §1),
faster than real time and deterministic by seed:

1. ``Engs.step(inputs, telemetry)`` with the newest telemetry record (None before the
   first physics tick), exactly as the orchestrator's loop calls it;
2. ``publish.fill(engs, state)`` and a new ``seq``: the NeurochemicalState the physics
   reads (``engs.shared.layout.state_dtype``), filled by the live loop's own code
   (:mod:`engs.services.orchestrator.publish`);
3. the harness's own interventions on that record, in this order: lesion clamps,
   mechanism replacements, the environment's input drive, plug-in controllers
   (each documented below; with none of them the record is the one ENGS published);
4. ``ticks_per_cycle`` physics ticks (``tick_hz / cycle_hz``: 10 at the defaults), each
   ``Coefficients.load_state`` + ``Field.step(coeffs, critical, out=telemetry)`` as the
   physics loop does: the stimulus is applied on the first tick of a new ``seq`` only,
   and ``critical`` is the ENGS's CRITICAL cause set (the live loop raises it on the
   orchestrator's interrupt lane, the physics sees it at the next tick start). The
   emergency state the live orchestrator publishes with a raise holds the same
   coefficients as the control state, so the harness uses the one record.

Interventions:

* :class:`Clamp` (virtual lesions, seed 003 GAP-029): a level held at a value. The
  clamp acts on the dynamics (the level is overwritten in the ``Engs`` after every
  step, so the couplings, the PANIC monitor and the next cycle all see it), on every
  area's effective level (``AreaNeurochemistry.hold_levels``: what the area model derives
  from it — norepinephrine's response gain on the drive — follows the clamp; SN-78) and
  on the published record (the level and every coefficient derived from it are
  recomputed with the same gate functions ENGS uses,
  :mod:`engs.services.orchestrator.gates`).
* :class:`Mechanisms`: replacements for the flip tests — a gate replaced by another
  function of its level, the learned critic replaced by a zero value, the boredom
  drive's novelty relief removed. An assay that depends on a mechanism must fail when
  it is replaced.
* Input drive (:attr:`Sim.drive_gain`, :attr:`Sim.drive_extra`): the environment's
  sustained input to an area. The live service has no such signal (its only per-area
  input is the one-shot ``stimulus``); the harness models sensory input as a multiple of
  the published drive plus an extra, ``u = gain · drive + extra``. With the area model on,
  u is handed to it (``AreaNeurochemistry.input_gain`` / ``input_extra``) before the cycle,
  so it passes through the areas' receptors — their saturating response and activity
  scaling (:class:`engs.services.orchestrator.areas.receptors.ActivityScaling`) — as any input
  would; without it the published drive is rescaled, ``area_drive = gain · published +
  extra``.
* Controllers: callables run on the finished record each cycle — the hook through
  which a mechanism that is not (yet) inside ENGS can be plugged into the loop.

Relevance gating (seed 003 §5.2): the service publishes τ (``relevance_gate``) and the
Relevance Gating Transformer that applies it is a client's; :meth:`Sim.admit` is that
filter (an input of relevance r is admitted iff r ≥ τ).

Writer and reader: one thread; nothing here touches shared memory, sockets or clocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from engs.services.orchestrator import publish
from engs.services.orchestrator.boredom import Boredom
from engs.services.orchestrator.critic import F64Array, LinearTdCritic
from engs.services.orchestrator.engs import Engs
from engs.services.orchestrator.events import StepResult
from engs.services.orchestrator.gates import (
    elasticity_gate,
    plasticity_gate,
    relevance_gate,
    speed_gain,
)
from engs.services.orchestrator.inputs import CycleInputs
from engs.services.orchestrator.metabolism import Calibration
from engs.services.physics.backend import numpy_backend
from engs.services.physics.coefficients import Coefficients
from engs.services.physics.field import Field, make_field
from engs.shared.config import Config
from engs.shared.layout import Cause, state_dtype, telemetry_dtype

#: Nodes along every axis but the first in the assay lattice (see :func:`assay_shape`).
CROSS_NODES = 4


def assay_shape(cfg: Config) -> tuple[int, ...]:
    """The lattice the assays run on: the configured first axis, along which the areas
    are laid out (so each area's extent, and the cavity modes an area-scale input
    excites, are the configured ones), by ``CROSS_NODES`` nodes on a second axis (the
    assays' inputs are uniform across it). The default 64x64 becomes 64x4: 256 nodes,
    ~0.17 ms per NumPy tick on the project's host, bound by per-call overhead."""
    return (cfg.physics.shape[0], CROSS_NODES)


IDLE = CycleInputs()

#: Index of each level in the state record's ``area_nt`` columns (layout.NEUROMODULATORS).
_NT_COLUMN = {"dopamine": 0, "serotonin": 1, "norepinephrine": 2}


@dataclass(frozen=True)
class Clamp:
    """Virtual lesions: levels held at fixed values (None: not clamped)."""

    dopamine: float | None = None
    serotonin: float | None = None
    norepinephrine: float | None = None

    def any(self) -> bool:
        return any(v is not None for v in (self.dopamine, self.serotonin, self.norepinephrine))


@dataclass(frozen=True)
class Mechanisms:
    """Replacements of ENGS mechanisms, for the tests that flip what an assay depends on.

    ``plasticity_gate`` / ``elasticity_gate`` / ``relevance_gate``: a function of the
    published level (D, S, N) that replaces the published multiplier (or τ).
    ``response_gain``: a function of the published N that replaces every area's
    norepinephrine response gain on the drive (``Effects.response_gain``; needs the area
    model). ``zero_value``: the learned critic is replaced by V ≡ 0 (δ = R).
    ``novelty_relief``: False makes novelty relieve no boredom (the boredom clock ignores
    it).
    """

    plasticity_gate: Callable[[float], float] | None = None
    elasticity_gate: Callable[[float], float] | None = None
    relevance_gate: Callable[[float], float] | None = None
    response_gain: Callable[[float], float] | None = None
    zero_value: bool = False
    novelty_relief: bool = True


class ZeroValueCritic(LinearTdCritic):
    """A critic whose value is 0 everywhere and which never learns: δ = R."""

    def update(
        self,
        phi: F64Array,
        reward: float,
        phi_next: F64Array,
        ended: np.ndarray[Any, np.dtype[np.bool_]] | None = None,
    ) -> float:
        return reward


class NoReliefBoredom(Boredom):
    """The boredom clock with novelty ignored (no reset, no partial boost, no relief)."""

    def novelty(self, entropies: tuple[float, ...] | list[float]) -> float:
        return 0.0


def derive_config(cfg: Config, overrides: Mapping[str, Any] | None = None) -> Config:
    """``cfg`` with dotted-path overrides (``"orchestrator.boredom.idle_s"``), validated
    again as a whole (a bad override fails with the field path, like a TOML file)."""
    data = msgspec.to_builtins(cfg)
    for path, value in (overrides or {}).items():
        node = data
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return msgspec.convert(data, Config, strict=True)


class Sim:
    """The ENGS and the field of one simulated run, coupled as in the live service.

    ``cfg``: the user's configuration; the harness replaces the physics lattice with
    ``shape`` (default :func:`assay_shape`) on the NumPy backend, offsets both seeds by
    ``seed`` and applies ``overrides`` (dotted paths). The metabolic calibration is the
    reference host's (no benchmark: reproducible).
    """

    def __init__(
        self,
        cfg: Config,
        *,
        seed: int = 0,
        clamp: Clamp | None = None,
        mechanisms: Mechanisms | None = None,
        shape: tuple[int, ...] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        values: dict[str, Any] = {
            "physics.shape": list(shape if shape is not None else assay_shape(cfg)),
            "physics.backend": "numpy",
            "physics.seed": cfg.physics.seed + seed,
            "orchestrator.seed": cfg.orchestrator.seed + seed,
        }
        values.update(overrides or {})
        self.config = derive_config(cfg, values)
        oc = self.config.orchestrator
        self.clamp = clamp or Clamp()
        self.mechanisms = mechanisms or Mechanisms()
        calibration = Calibration.reference(oc.metabolism.reference_score)
        self.engs = Engs(self.config, calibration=calibration)
        if self.mechanisms.zero_value:
            self.engs.critic = ZeroValueCritic(
                self.engs.features.n, oc.critic, 0.0, 0.0
            )  # γ, λ unused
        if not self.mechanisms.novelty_relief:
            self.engs.boredom = NoReliefBoredom(oc.boredom, oc.dt)
        self.field: Field = make_field(self.config.physics, numpy_backend("validation harness"))
        self.n_areas = len(self.config.physics.areas)
        self.coeffs = Coefficients(self.n_areas)
        max_areas = self.config.shm.max_areas
        self.state = np.zeros((), state_dtype(max_areas))
        self.tel = np.zeros((), telemetry_dtype(max_areas))
        self.ticks_per_cycle = max(1, round(self.config.physics.tick_hz / oc.cycle_hz))
        self.dt = oc.dt
        self.drive_gain = np.ones(self.n_areas)
        self.drive_extra = np.zeros(self.n_areas)
        self.controllers: list[Callable[[Sim], None]] = []
        self.tick = 0
        self.seq = 0
        self.nonfinite_ticks = 0
        self.critical_cycles = 0
        self._scram_left = 0
        self._scram_clear = self.config.physics.scram_clear_ticks
        self.result = StepResult(cycle=0, t_s=0.0, causes=0)
        chem = getattr(self.engs, "area_chem", None)
        self._chem: Any = chem if hasattr(chem, "input_gain") else None
        self._apply_clamp_to_engs()

    # ------------------------------------------------------------------ the cycle

    @property
    def t_s(self) -> float:
        """ENGS time, s (cycles x dt)."""
        return self.engs.cycle * self.dt

    def cycle(self, inputs: CycleInputs = IDLE) -> StepResult:
        """One control cycle and the physics ticks that apply its state."""
        if self._scram_left > 0:  # the physics lane's SCRAM, as the loop passes it in
            inputs = msgspec.structs.replace(
                inputs, external_causes=inputs.external_causes | int(Cause.SCRAM)
            )
        tel = self.tel if self.tick > 0 else None
        self.result = self.engs.step(inputs, tel)
        self._apply_clamp_to_engs()
        st = self.state
        chem = self._chem
        if chem is not None:
            chem.input_gain[:] = self.drive_gain
            chem.input_extra[:] = self.drive_extra
        publish.fill(self.engs, st)
        self.seq += 1
        st["seq"] = self.seq
        self._apply_clamp_to_record()
        self._apply_mechanisms()
        n = self.n_areas
        if chem is None:
            drive = st["area_drive"]
            drive[:n] = drive[:n] * self.drive_gain + self.drive_extra
        for controller in self.controllers:
            controller(self)
        critical = self.result.causes != 0 or self._scram_left > 0
        self.critical_cycles += critical
        self.coeffs.load_state(st, with_stimulus=True)
        for k in range(self.ticks_per_cycle):
            if k == 1:
                self.coeffs.stimulus.fill(0.0)  # one-shot: load_state(with_stimulus=False)
            r = self.field.step(self.coeffs, critical=critical, out=self.tel)
            self.tick += 1
            self.tel["tick"] = self.tick
            if r.nonfinite:
                self.nonfinite_ticks += 1
                self.field.recover_nonfinite()
                self._scram_left = self._scram_clear
            elif self._scram_left > 0:
                self._scram_left -= 1
        return self.result

    def run(self, cycles: int, inputs: CycleInputs = IDLE) -> None:
        for _ in range(cycles):
            self.cycle(inputs)

    def admit(self, relevance: float) -> bool:
        """The Relevance Gating Transformer (seed 003 §5.2): admit an input of relevance
        ``relevance`` iff it reaches the published threshold τ."""
        return relevance >= float(self.state["relevance_gate"])

    # ------------------------------------------------------------------ read-outs

    def conductance(self) -> np.ndarray[Any, np.dtype[np.float32]]:
        """The edge conductances g (float32, ``(d, *shape)``), a host copy."""
        return self.field.g_host()

    def area_conductance(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Mean conductance of the edges owned by each area's nodes, shape (n_areas,)."""
        g = self.field.g
        bounds = self.field.lattice.area_bounds
        return np.array(
            [float(g[:, bounds[a] : bounds[a + 1]].mean()) for a in range(self.n_areas)]
        )

    def area_activity(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Telemetry ``area_activity`` (mean |Ψ|² per area, field units²)."""
        return np.array(self.tel["area_activity"][: self.n_areas], dtype=np.float64)

    def entropy_fraction(self) -> float:
        """Telemetry entropy over its maximum, H / log2(n_nodes), in [0, 1]."""
        n = int(self.tel["n_nodes"])
        return float(self.tel["entropy_bits"]) / math.log2(max(n, 2))

    # ------------------------------------------------------------------ interventions

    def _apply_clamp_to_engs(self) -> None:
        c = self.clamp
        if c.dopamine is not None:
            self.engs.dopamine = c.dopamine
        if c.serotonin is not None:
            self.engs.serotonin = c.serotonin
        if c.norepinephrine is not None:
            self.engs.norepinephrine = c.norepinephrine
        if self._chem is not None and c.any():
            # the areas' effective levels too, so what the area model derives from them
            # (norepinephrine's response gain on the drive) follows the clamp (SN-78)
            held = {
                _NT_COLUMN[name]: value
                for name, value in (
                    ("dopamine", c.dopamine),
                    ("serotonin", c.serotonin),
                    ("norepinephrine", c.norepinephrine),
                )
                if value is not None
            }
            self._chem.hold_levels(held)
        gain = self.mechanisms.response_gain
        if gain is not None:
            if self._chem is None:
                raise ValueError("Mechanisms.response_gain needs the area model (areas.enabled)")
            self._chem.effects.response_gain[:] = gain(float(self.engs.norepinephrine))

    def _apply_clamp_to_record(self) -> None:
        c = self.clamp
        if not c.any():
            return
        oc = self.config.orchestrator
        cp, ne = oc.coupling, oc.norepinephrine
        st = self.state
        if c.dopamine is not None:
            self._set_level("dopamine", c.dopamine)
            gate = plasticity_gate(c.dopamine, cp.d_eq, oc.dopamine.gate_gain)
            self._set_gate("plasticity_gate", "area_plasticity", gate)
        if c.serotonin is not None:
            self._set_level("serotonin", c.serotonin)
            gate = elasticity_gate(c.serotonin, cp.s_eq, oc.serotonin.gate_gain)
            self._set_gate("elasticity_gate", "area_elasticity", gate)
        if c.norepinephrine is not None:
            self._set_level("norepinephrine", c.norepinephrine)
            self._set_gate("speed_gain", "area_speed", speed_gain(c.norepinephrine))
            st["relevance_gate"] = relevance_gate(
                c.norepinephrine,
                ne.relevance_base,
                ne.relevance_slope,
                ne.relevance_floor,
                ne.relevance_ceiling,
            )

    def _apply_mechanisms(self) -> None:
        m, st = self.mechanisms, self.state
        if m.plasticity_gate is not None:
            value = m.plasticity_gate(float(st["dopamine"]))
            self._set_gate("plasticity_gate", "area_plasticity", value)
        if m.elasticity_gate is not None:
            value = m.elasticity_gate(float(st["serotonin"]))
            self._set_gate("elasticity_gate", "area_elasticity", value)
        if m.relevance_gate is not None:
            st["relevance_gate"] = m.relevance_gate(float(st["norepinephrine"]))

    def _set_level(self, name: str, value: float) -> None:
        self.state[name] = value
        self.state["area_nt"][: self.n_areas, _NT_COLUMN[name]] = value

    def _set_gate(self, global_field: str, area_field: str, value: float) -> None:
        self.state[global_field] = value
        self.state[area_field][: self.n_areas] = value


def running_mean(x: np.ndarray[Any, Any], window: int) -> np.ndarray[Any, Any]:
    """Trailing mean over ``window`` samples (fewer at the start), same length as x."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return x
    c = np.cumsum(np.concatenate([[0.0], x]))
    idx = np.arange(1, x.size + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


@dataclass(frozen=True)
class Constant:
    """A gate replaced by a constant (picklable, unlike a lambda)."""

    value: float

    def __call__(self, level: float) -> float:
        return self.value
