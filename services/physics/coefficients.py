"""Per-area coefficients: from a NeurochemicalState to the constants of one tick.

Owns two things:

* :class:`Coefficients`: the seven per-area multipliers of ``engs.shared.layout.state_dtype``
  (``area_plasticity`` η/η₀, ``area_elasticity`` λ/λ₀, ``area_speed`` v/v₀,
  ``area_damping`` γ/γ₀, ``area_drive``, ``area_stimulus``, ``area_noise``), copied
  out of one coherent state snapshot by the real-time loop at a tick start
  (phase coherence, seed 003 GAP-022: every node of a tick sees the same values);
* :func:`derive_tick_table`: the per-area table of *physical* constants the kernels
  read, in the physics' own units (:class:`PhysicsParams`). Both backends read the
  same table (the GPU gets it by one small host-to-device copy), which is how the two
  backends share one semantics for everything that is not a per-node operation.

Units (the physics owns units; the orchestrator's multipliers are dimensionless):
time in seconds (``h = 1/tick_hz``), length in lattice spacings, Ψ in field units.

Writer: the physics loop (``load_state``), once per tick; reader: :mod:`field`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from engs.services.physics.cfl import speed_limit
from engs.shared.config import PhysicsConfig
from engs.shared.layout import Mode

F32 = np.float32

#: Columns of the per-area tick table (float32, shape (n_areas, NCOEF)). The CUDA
#: source (:mod:`cuda_source`) is generated from these names, so the two cannot drift.
COLUMNS: tuple[str, ...] = (
    "C2",  # (v0 · s_eff)², s_eff the CFL-clamped speed factor   [spacings²/s²]
    "DAMP",  # exp(-γ h/2): exact damping over a half kick       [1]
    "ETA_H",  # h · η0 · area_plasticity                          [1/field²]
    "LAM_H",  # h · λ0 · area_elasticity                          [1]
    "SHIFT_RE",  # displacement added to Ψ in the drift: drive increment + stimulus [field]
    "SHIFT_IM",
    "NOISE",  # σ · area_noise · √h: std of the complex noise kick  [field/s]
    "INV_S2",  # 1 / s_eff² (0 where s_eff = 0): Hamiltonian weight [1]
)
NCOEF = len(COLUMNS)
COL: dict[str, int] = {name: i for i, name in enumerate(COLUMNS)}


@dataclass(frozen=True)
class PhysicsParams:
    """The physics constants of one run, in SI seconds and lattice spacings."""

    h: float  # time step, s
    v0: float  # base wave speed, spacings/s
    gamma0: float  # base damping, 1/s
    gamma_emergency: float  # damping floor while CRITICAL, 1/s
    eta0: float  # Hebbian rate, 1/(s · field²)
    lam0: float  # elastic restoring rate towards the consolidated metric, 1/s
    kappa: float  # consolidation rate, 1/s (plasticity.py)
    mu: float  # forgetting rate of the consolidated metric, 1/s
    g_min: float
    g_max: float
    omega: float  # drive carrier, rad/s
    sigma: float  # noise force density, field · s^-3/2
    seed: int
    entropy_exact_max_nodes: int
    entropy_samples: int
    metric_grad_every: int
    cost_wave_weight: float
    cost_plasticity_weight: float

    @classmethod
    def from_config(cls, cfg: PhysicsConfig) -> PhysicsParams:
        return cls(
            h=cfg.dt,
            v0=cfg.wave_speed,
            gamma0=cfg.damping,
            gamma_emergency=cfg.emergency_damping,
            eta0=cfg.plasticity_rate,
            lam0=cfg.elasticity_rate,
            kappa=cfg.consolidation_rate,
            mu=cfg.forgetting_rate,
            g_min=cfg.conductance_min,
            g_max=cfg.conductance_max,
            omega=2.0 * math.pi * cfg.carrier_hz,
            sigma=cfg.noise_amplitude,
            seed=cfg.seed,
            entropy_exact_max_nodes=cfg.entropy_exact_max_nodes,
            entropy_samples=cfg.entropy_samples,
            metric_grad_every=cfg.metric_grad_every,
            cost_wave_weight=cfg.cost_wave_weight,
            cost_plasticity_weight=cfg.cost_plasticity_weight,
        )


class Coefficients:
    """The per-area multipliers of one tick; preallocated, refilled in place.

    Every attribute is float32, shape ``(n_areas,)``, dimensionless (a multiplier of
    the physics' base constant) except ``drive`` and ``stimulus`` (field units).
    A fresh object is neutral: multipliers 1, drive and stimulus 0.
    """

    __slots__ = (
        "damping",
        "drive",
        "elasticity",
        "metric_frozen",
        "n_areas",
        "noise",
        "plasticity",
        "speed",
        "stimulus",
    )

    _NEUTRAL: ClassVar[dict[str, float]] = {
        "plasticity": 1.0,
        "elasticity": 1.0,
        "speed": 1.0,
        "damping": 1.0,
        "drive": 0.0,
        "stimulus": 0.0,
        "noise": 1.0,
    }
    _STATE_FIELDS: ClassVar[dict[str, str]] = {
        "plasticity": "area_plasticity",
        "elasticity": "area_elasticity",
        "speed": "area_speed",
        "damping": "area_damping",
        "drive": "area_drive",
        "stimulus": "area_stimulus",
        "noise": "area_noise",
    }

    def __init__(self, n_areas: int) -> None:
        self.n_areas = n_areas
        self.metric_frozen = False
        """``Mode.PLASTICITY_OFF``: the metric and its consolidated value are frozen."""
        for name, value in self._NEUTRAL.items():
            setattr(self, name, np.full(n_areas, value, dtype=F32))

    plasticity: np.ndarray[Any, np.dtype[np.float32]]
    elasticity: np.ndarray[Any, np.dtype[np.float32]]
    speed: np.ndarray[Any, np.dtype[np.float32]]
    damping: np.ndarray[Any, np.dtype[np.float32]]
    drive: np.ndarray[Any, np.dtype[np.float32]]
    stimulus: np.ndarray[Any, np.dtype[np.float32]]
    noise: np.ndarray[Any, np.dtype[np.float32]]

    def reset(self) -> None:
        """Back to neutral (multipliers 1, no drive, no stimulus)."""
        for name, value in self._NEUTRAL.items():
            getattr(self, name).fill(value)

    def load_state(self, state: Any, *, with_stimulus: bool) -> None:
        """Copy the per-area rows of one NeurochemicalState record.

        ``state``: a record of ``engs.shared.layout.state_dtype(max_areas)`` (a 0-d array or
        an ``np.void``), read by the loop from the control seqlock at the tick start.
        ``with_stimulus``: True on the first tick that applies this ``seq`` (the
        stimulus is one-shot); False afterwards, which zeroes it.

        Rows beyond the record's ``n_areas`` (an orchestrator configured with fewer
        areas, or a region nobody has written yet) stay neutral. ``Mode.PLASTICITY_OFF``
        in ``flags`` zeroes both plasticity and elasticity and stops consolidation: the
        metric and its consolidated value are frozen.
        Non-finite values become 0 and negative multipliers are clipped to 0, so a bad
        row can slow the physics down but never make it diverge. Allocates no buffers.
        """
        m = min(int(state["n_areas"]), self.n_areas)
        for name, src in self._STATE_FIELDS.items():
            dst = getattr(self, name)
            np.copyto(dst[:m], state[src][:m])
            dst[m:] = self._NEUTRAL[name]
        if not with_stimulus:
            self.stimulus.fill(0.0)
        self.metric_frozen = bool(int(state["flags"]) & Mode.PLASTICITY_OFF)
        if self.metric_frozen:
            self.plasticity.fill(0.0)
            self.elasticity.fill(0.0)
        self.sanitize()

    def sanitize(self) -> None:
        """Non-finite → 0; multipliers (all but drive and stimulus) clipped to >= 0."""
        for name in self._NEUTRAL:
            arr = getattr(self, name)
            np.nan_to_num(arr, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
            if name not in ("drive", "stimulus"):
                np.maximum(arr, 0.0, out=arr)


class TickTable:
    """Preallocated per-area constants of one tick (see :data:`COLUMNS`).

    ``table``: float32, shape ``(n_areas, NCOEF)``. ``s_eff``: float64, shape
    ``(n_areas,)``: the speed factor actually used (after the CFL clamp).
    ``clamped``: bool, shape ``(n_areas,)``: where the CFL clamp acted this tick.
    """

    def __init__(self, n_areas: int) -> None:
        self.table = np.zeros((n_areas, NCOEF), dtype=F32)
        self.s_eff = np.zeros(n_areas, dtype=np.float64)
        self.s_limit = np.zeros(n_areas, dtype=np.float64)
        self.gamma = np.zeros(n_areas, dtype=np.float64)
        self.inv_s2 = np.zeros(n_areas, dtype=np.float64)
        self.clamped = np.zeros(n_areas, dtype=bool)
        self.drive_prev = np.zeros(n_areas, dtype=np.float64)  # A applied last tick
        self.noise_on = False
        self.shift_on = False
        self.consolidate_on = True  # False while the metric is frozen (PLASTICITY_OFF)
        self._w = np.zeros(n_areas, dtype=np.float64)  # scratch
        self._v = np.zeros(n_areas, dtype=np.float64)
        self._mask = np.zeros(n_areas, dtype=bool)


def derive_tick_table(
    coeffs: Coefficients,
    params: PhysicsParams,
    lambda_bound: np.ndarray[Any, np.dtype[np.float64]],
    tick: int,
    critical: bool,
    out: TickTable,
) -> int:
    """Fill ``out`` with the constants of tick ``tick``; return the CFL clamps made.

    ``lambda_bound``: float64, shape ``(n_areas,)``: the bound on the largest eigenvalue
    of −L_g seen by each area's nodes (:func:`cfl.area_lambda_bound`), in 1/spacing².

    * speed: s_eff = min(area_speed, s_limit), s_limit from the CFL condition
      v² h² λ_max <= 1 (:mod:`cfl`); one clamp is counted per area where it acts;
    * damping: γ = γ0 · area_damping, raised to at least ``gamma_emergency`` while
      ``critical`` (seed 003 GAP-022: emergency damping γ = 1.0, read in s⁻¹);
      applied as the exact factor e^{-γh/2} per half kick (:mod:`integrator`);
    * drive: the area's field carries the sustained oscillation A e^{iωt} (A in field
      units, as the layout says): Ψ += A e^{iωt_{n+1}} − A_prev e^{iωt_n} in the drift,
      A_prev being ``out.drive_prev`` (the caller copies ``coeffs.drive`` into it after
      the tick; :meth:`Field.step` does);
    * stimulus: Ψ += A_s e^{iω t_n} once, in the drift of the tick that applies it;
    * noise: a complex Gaussian kick of std σ · area_noise · √h per tick (Langevin).
    """
    h = params.h
    t = out.table
    c = COL
    # --- speed and CFL clamp (allocation-free: every op writes into out's arrays)
    speed_limit(lambda_bound, params.v0, h, out=out.s_limit)
    np.copyto(out.s_eff, coeffs.speed)
    np.greater(out.s_eff, out.s_limit, out=out.clamped)
    np.minimum(out.s_eff, out.s_limit, out=out.s_eff)
    np.multiply(out.s_eff, params.v0, out=out._w)
    np.multiply(out._w, out._w, out=out._w)
    t[:, c["C2"]] = out._w
    np.multiply(out.s_eff, out.s_eff, out=out._w)
    np.greater(out._w, 0.0, out=out._mask)
    out.inv_s2.fill(0.0)  # an area with s = 0 carries no kinetic term
    np.divide(1.0, out._w, out=out.inv_s2, where=out._mask)
    t[:, c["INV_S2"]] = out.inv_s2
    # --- damping
    np.multiply(coeffs.damping, params.gamma0, out=out.gamma)
    if critical:
        np.maximum(out.gamma, params.gamma_emergency, out=out.gamma)
    np.multiply(out.gamma, -0.5 * h, out=out._w)
    np.exp(out._w, out=out._w)
    t[:, c["DAMP"]] = out._w
    # --- plasticity
    t[:, c["ETA_H"]] = coeffs.plasticity
    t[:, c["ETA_H"]] *= F32(h * params.eta0)
    t[:, c["LAM_H"]] = coeffs.elasticity
    t[:, c["LAM_H"]] *= F32(h * params.lam0)
    # --- drive and stimulus, both as a displacement of Ψ in the drift. The sustained
    # drive is the oscillation S_a(t) = A_a e^{iωt} superposed on the area's field:
    # Ψ += S_a(t_{n+1}) - S_a(t_n), with S_a(t_n) as applied last tick (A_prev), so an
    # amplitude change is a bounded jump, never a secular drift (docs/physics.md,
    # "Drive"). Phases are reduced in float64 before the float32 table.
    ph0 = math.fmod(params.omega * h * tick, 2.0 * math.pi)
    ph1 = math.fmod(params.omega * h * (tick + 1), 2.0 * math.pi)
    for col, f in (("SHIFT_RE", math.cos), ("SHIFT_IM", math.sin)):
        np.multiply(coeffs.drive, f(ph1), out=out._w)  # A e^{iω t_{n+1}}
        np.copyto(out._v, coeffs.stimulus)
        np.subtract(out._v, out.drive_prev, out=out._v)  # A_s - A_prev
        np.multiply(out._v, f(ph0), out=out._v)  # (A_s - A_prev) e^{iω t_n}
        np.add(out._w, out._v, out=out._w)
        t[:, c[col]] = out._w
    out.shift_on = bool(coeffs.drive.any() or coeffs.stimulus.any() or out.drive_prev.any())
    # --- noise
    np.multiply(coeffs.noise, params.sigma * math.sqrt(h), out=out._w)
    t[:, c["NOISE"]] = out._w
    out.noise_on = bool(params.sigma > 0.0 and coeffs.noise.any())
    out.consolidate_on = not coeffs.metric_frozen
    return int(np.count_nonzero(out.clamped))
