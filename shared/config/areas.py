"""``[orchestrator.areas]``: area neurochemistry (services/orchestrator/areas), seeds
002 and 000, docs/areas.md."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from engs.shared.config.base import (
    Level,
    NonNeg,
    PosFloat,
    Section,
    check_order,
)
from engs.shared.messages import NAME_PATTERN, AreaName

# --- Area neurochemistry (services/orchestrator/areas): seeds 002 and 000, docs/areas.md ----

NtName = Literal["DA", "5HT", "NE", "OXT", "TST", "HA", "ORX"]
"""The seven neuromodulators (``engs.shared.layout.NEUROMODULATORS``)."""
AreaRole = Literal["sensory", "motor", "association", "limbic"]
DriverSignal = Literal[
    "dopamine", "serotonin", "norepinephrine", "atp", "cortisol", "boredom", "nap", "safety"
]
SiteName = AreaName
"""A nucleus or an area: the names share one pattern."""
_Frac = Annotated[float, Meta(gt=0, lt=1)]
_PerNt = Annotated[list[Annotated[float, Meta(gt=0)]], Meta(min_length=7, max_length=7)]
_PerNtLevel = Annotated[list[Annotated[float, Meta(gt=0, lt=1)]], Meta(min_length=7, max_length=7)]


class NucleusSpec(Section, frozen=True):
    """An emitter nucleus: synthesises its neuromodulators at the rate its driver sets."""

    name: SiteName
    nt: Annotated[list[NtName], Meta(min_length=1)]
    label: str = ""
    cite: str = ""


class ProjectionSpec(Section, frozen=True):
    """A projection source → target carrying some neuromodulators (seed 002 edge list)."""

    source: SiteName
    """A nucleus name (or a physics area name, for an area → area projection)."""
    target: Annotated[str, Meta(pattern=rf"^(\*|{NAME_PATTERN})$")]
    """A physics area name, an area role (sensory, motor, association, limbic) or ``*``."""
    nt: list[NtName] = msgspec.field(default_factory=list)
    """Neuromodulators carried; empty: every one the source synthesises."""
    weight: Annotated[float, Meta(gt=0, le=10)] = 1.0
    """Relative innervation density: the target rests at ``weight`` x the neuromodulator's
    resting level (summed over the projections that reach it)."""
    cite: str = ""


class HomeostasisConfig(Section, frozen=True):
    """Seed 002's Homeostasis Module: online learning of the projection modulators."""

    learning: bool = True
    """Online gradient on (w, b), slow base-gain updates and saturation auto-reduction;
    false freezes the module (transfer still runs)."""
    lr: PosFloat = 1e-3
    """Gradient-descent rate of the modulators' (w, b) per cycle (seed 002 §9: 1e-3)."""
    gain_lr: PosFloat = 1e-4
    """Rate of the base gains per cycle: the slow timescale (seed 002 §9: 1e-4)."""
    alpha_coherence: NonNeg = 1.0
    """α1: weight of the DMN coherence gain in R_t (credited through eligibility traces)."""
    alpha_band: NonNeg = 1.0
    """α2: weight of the band penalty Σ|band_err|."""
    alpha_stability: NonNeg = 0.1
    """α3: weight of the stability penalty Σ|Δμ|."""
    alpha_safety: NonNeg = 10.0
    """α4: R_t penalty per safety event (a hard ceiling or max-Δ clamp that acted)."""
    beta_smooth: NonNeg = 1.0
    """β1: weight of L_smooth = Σ(s - s_prev)²."""
    beta_sparsity: NonNeg = 0.01
    """β2: weight of L_sparsity = Σ s."""
    beta_energy: NonNeg = 0.01
    """β3: weight of L_energy = Σ sent (normalised by the resting flow)."""
    band_margin: Annotated[float, Meta(ge=0, lt=0.5)] = 0.45
    """The loss pulls levels into the band shrunk by this fraction of its width at each end:
    the sparsity and energy terms push s down inside the band, so the level rests at the
    inner edge; 0.45 keeps that within 10 % of the half-width of the band centre."""
    trace_tau_s: PosFloat = 2.0
    """Time constant of the eligibility traces crediting delayed coherence gains."""
    saturation_margin: NonNeg = 0.1
    """A level above ``upper band + margin`` counts as saturated (seed 002 §8)."""
    saturation_cycles: Annotated[int, Meta(ge=1)] = 300
    """T: saturation persisting this many consecutive cycles auto-reduces the base gains of
    the projections feeding it."""
    saturation_reduce: _Frac = 0.8
    """Factor applied to those base gains."""
    weight_init_std: NonNeg = 0.1
    """w ~ N(0, std) at start (seed 002 §6: 0.1)."""
    weight_max: PosFloat = 10.0
    """|w| and |b| are clipped to this."""
    gain_min: NonNeg = 0.0
    gain_max: PosFloat = 4.0
    """Base gains stay in [gain_min, gain_max]."""
    s_max: PosFloat = 1.0
    """Modulator scale s = σ(w·x + b)·s_max (seed 002 §9: 1, or 2 to amplify)."""

    def __post_init__(self) -> None:
        check_order("gain_min", self.gain_min, "gain_max", self.gain_max)


class ReceptorConfig(Section, frozen=True):
    """Seed 000's receptor homeostasis: density, sensitivity and release networks."""

    learning: bool = True
    """Train the three networks online on the composite loss; false freezes them."""
    lr: PosFloat = 1e-4
    """Gradient-descent rate per cycle (receptor regulation is slower than routing)."""
    density_max: PosFloat = 2.0
    sensitivity_max: PosFloat = 2.0
    release_max: PosFloat = 2.0
    """Output ranges (sigmoid x max); the networks start at 1 (the calibrated prior)."""
    alpha: NonNeg = 1.0
    """α: weight of the local efficiency."""
    beta_start: NonNeg = 0.01
    beta_end: NonNeg = 0.5
    """β of the cognitive (DMN) efficiency, annealed from small (seed 000: favour stability)."""
    beta_tau_s: PosFloat = 120.0
    """Time constant of the β annealing, in awake learning seconds."""
    w_binding: NonNeg = 0.5
    """Weight of the binding fraction B̄ (sites in use, not wasted capacity)."""
    w_activity: NonNeg = 0.5
    """w1: weight of the postsynaptic activity S̄ (physics per-area activity)."""
    w_range: NonNeg = 1.0
    """w2: weight of RangeUtil (time of B̄ in its operating window)."""
    w_saturation: NonNeg = 1.0
    """w3: weight of SatNT (spillover fraction)."""
    w_noise: NonNeg = 0.5
    """w4: weight of NoiseLeak."""
    w_energy: NonNeg = 0.1
    """w5: weight of the energy cost (density and release, L1)."""
    v_coherence: NonNeg = 1.0
    v_utility: NonNeg = 1.0
    v_uncertainty: NonNeg = 1.0
    v_safety: NonNeg = 0.5
    v_calibration: NonNeg = 1.0
    """v1..v5 of Effcog = v1 ΔC + v2 ΔU + v3 ΔH + v4 S + v5 ΔCal."""
    smooth: NonNeg = 1.0
    """λ1: temporal smoothness of ρ̂, ŝ, r̂."""
    drift: NonNeg = 1e-3
    """λ2: drift of the parameters from their priors."""
    homeostasis: NonNeg = 2.0
    """λ3: effective levels in their bands and population averages in range."""
    range_low: Level = 0.1
    range_high: Level = 0.6
    """θ_low, θ_high: the operating window of the binding fraction B̄ (0.5 at rest): its top
    keeps receptor capacity above the resting influx (dynamic range for phasic release)
    against the B̄ reward and the energy cost."""
    range_tau_s: PosFloat = 5.0
    """Window of the reported RangeUtil (the loss uses its per-cycle term ψ(B̄))."""
    regression_tau_s: PosFloat = 10.0
    """Window of the running regression of S̄ on the receptor signals (NoiseLeak)."""
    activity_tau_s: PosFloat = 60.0
    """Running activity scale Ā in S̄ = activity / (activity + Ā)."""
    trace_tau_s: PosFloat = 2.0
    """Eligibility traces linking receptor states to later DMN outcomes."""
    node_buckets: Annotated[int, Meta(ge=1, le=64)] = 8
    """The DMN (CFG) node label is hashed into this many one-hot context features."""

    def __post_init__(self) -> None:
        check_order("range_low", self.range_low, "range_high", self.range_high)


class ScalingConfig(Section, frozen=True):
    """Activity-dependent receptor scaling: each area's drive sensitivity is a receptor
    density that homeostasis moves to hold the area's activity at its set point
    (synaptic scaling, Turrigiano 2008; services/orchestrator/areas/receptors.py)."""

    enabled: bool = True
    """false: the published drive is the input itself (no saturation, no scaling)."""
    tau_s: PosFloat = 120.0
    """Homeostatic time constant: ln activity relaxes to ln set point at 1/tau_s. Slow
    against learning (a pattern presented for tens of seconds is not scaled away) and
    fast enough to restore a deprived area within minutes of ENGS time."""
    headroom: Annotated[float, Meta(gt=1, le=10)] = 1.15
    """A_max / awake drive: the largest drive amplitude the receptors can pass, as a
    multiple of the calibrated awake drive. Activity (|Ψ|² ∝ A²) can then never exceed
    headroom² x its set point, whatever the density: it bounds the overshoot."""
    setpoint_s: PosFloat = 2.0
    """The set point is the mean awake activity over this long after start-up."""
    arousal_gain: NonNeg = 2.0
    """k in norepinephrine's response gain G_NE = e^{k (x_NE - rest_NE)} (1 at rest; at
    the default k = 2 and rest 0.3: 0.55 at NE 0, 4.1 at NE 1). 0: no arousal gain."""
    density_min: Annotated[float, Meta(gt=0, le=1)] = 0.25
    density_max: Annotated[float, Meta(ge=1)] = 4.0
    """Clamp of the density relative to its calibrated value."""


class ConsolidationConfig(Section, frozen=True):
    """Sleep consolidation from dream-weave replay (seed 002 §5, seed 003 §8.1)."""

    enabled: bool = True
    every_cycles: Annotated[int, Meta(ge=1)] = 100
    """While napping, one dream batch every this many cycles."""
    batch: Annotated[int, Meta(ge=1, le=4096)] = 64
    """Replay samples per dream batch."""
    dream_noise: NonNeg = 0.05
    """Std of the counterfactual noise on replayed levels per unit of dream temperature."""
    refit_rate: Annotated[float, Meta(gt=0, le=1)] = 0.5
    """Fraction of the regression's base-gain correction applied per nap."""
    prune_s: Annotated[float, Meta(ge=0, lt=1)] = 0.05
    """An edge x NT whose mean s is below this fraction of s_max ..."""
    prune_share: Annotated[float, Meta(ge=0, lt=1)] = 0.02
    """... and whose share of its target's supply is below this, is pruned."""
    chronic_fraction: _Frac = 0.5
    """A band is chronically saturated (underfilled) when the level spent more than this
    fraction of the recent awake time above (below) it."""
    band_rate: Annotated[float, Meta(gt=0, le=1)] = 0.5
    """Fraction of the way a chronic band moves towards the mean level per nap."""
    band_drift_max: NonNeg = 0.15
    """A band centre never moves further than this from its configured resting level."""
    stats_tau_s: PosFloat = 60.0
    """Time constant of the awake statistics consolidation reads."""


class AuditConfig(Section, frozen=True):
    """The in-memory transfer audit log (seed 002 §8): bounded, rotating, sampled."""

    capacity: Annotated[int, Meta(ge=1, le=1 << 20)] = 4096
    """Records kept; the oldest is overwritten."""
    every_cycles: Annotated[int, Meta(ge=1)] = 10
    """One sample every this many cycles ..."""
    per_sample: Annotated[int, Meta(ge=0, le=4096)] = 4
    """... of this many edge x NT transfers, round robin; capped transfers are always logged."""


class AreasConfig(Section, frozen=True):
    """Per-area neurochemistry: emitter nuclei project into the physics areas (seed 002)
    through learned modulators, with receptor homeostasis (seed 000). docs/areas.md."""

    enabled: bool = True
    """false: every area gets the global coefficients (no area model)."""
    projections_file: str = ""
    """TOML with ``[[nucleus]]`` and ``[[projection]]`` tables; empty: the shipped
    ``services/orchestrator/areas/projections.toml``."""
    nuclei: list[NucleusSpec] = msgspec.field(default_factory=list)
    """Replace the file's nuclei when not empty."""
    projections: list[ProjectionSpec] = msgspec.field(default_factory=list)
    """Replace the file's projections when not empty."""
    roles: dict[AreaName, AreaRole] = msgspec.field(default_factory=dict)
    """Role of each physics area whose name is not itself a role."""
    default_role: AreaRole = "association"
    """Role of an area neither named after a role nor listed in ``roles``."""
    drivers: dict[NtName, dict[DriverSignal, float]] = msgspec.field(default_factory=dict)
    """Override rows of the driver matrix: nucleus firing = rest + Σ coefficient x (signal -
    its resting value). Unlisted NTs keep the built-in rows (docs/areas.md)."""
    seed: Annotated[int, Meta(ge=0, le=(1 << 63) - 1)] = 0
    """Seed of the initial modulator and network weights."""
    rest_levels: _PerNtLevel | None = None
    """Resting level of each NT (NEUROMODULATORS order); None: coupling d_eq, s_eq, n_eq
    and 0.5 for OXT, TST, HA, ORX. Also the centre of each NT's effect."""
    band_half_width: Annotated[float, Meta(gt=0, lt=0.5)] = 0.1
    """Target bands are rest ± this (seed 002 §9: 0.4-0.6 for a 0.5 rest)."""
    clearance_per_s: _PerNt = msgspec.field(
        default_factory=lambda: [10.0, 2.0, 10.0, 0.5, 0.05, 2.0, 0.5]
    )
    """Clearance rate of each NT in the areas, s⁻¹ (seed 002 §10 decay)."""
    turnover_per_s: _PerNt = msgspec.field(
        default_factory=lambda: [20.0, 5.0, 20.0, 2.0, 0.2, 5.0, 2.0]
    )
    """Turnover of the nuclei's pools (they follow their driver at this rate), s⁻¹."""
    release_per_s: _PerNt = msgspec.field(
        default_factory=lambda: [40.0, 8.0, 40.0, 2.0, 0.2, 8.0, 2.0]
    )
    """Largest fraction of a source's pool its projections can release per second."""
    max_rate_per_s: _PerNt = msgspec.field(
        default_factory=lambda: [5.0, 2.0, 5.0, 1.0, 0.5, 2.0, 1.0]
    )
    """Max |Δμ| per second per area and NT (seed 002 §8 safety limit)."""
    ceiling: Annotated[
        list[Annotated[float, Meta(gt=0, le=1)]], Meta(min_length=7, max_length=7)
    ] = msgspec.field(default_factory=lambda: [1.0] * 7)
    """Hard ceiling of each NT's level (unalterable by learning)."""
    bind_fraction: _Frac = 0.3
    """k_bind: fraction of the bound influx added to the level (seed 002 §9: 0.1-0.3)."""
    rest_occupancy: _Frac = 0.5
    """Receptor capacity is set so that the resting influx binds this fraction of it."""
    edge_cap_factor: Annotated[float, Meta(gt=1)] = 4.0
    """Per-edge cap on a cycle's transfer, as a multiple of its resting transfer."""
    effect_gain: Annotated[float, Meta(gt=0, lt=1)] = 0.5
    """a in the OXT, TST, HA, ORX multipliers 1 ± a·tanh(κ(x - rest))."""
    effect_slope: PosFloat = 5.0
    """κ in those multipliers."""
    homeostasis: HomeostasisConfig = msgspec.field(default_factory=HomeostasisConfig)
    receptors: ReceptorConfig = msgspec.field(default_factory=ReceptorConfig)
    scaling: ScalingConfig = msgspec.field(default_factory=ScalingConfig)
    consolidation: ConsolidationConfig = msgspec.field(default_factory=ConsolidationConfig)
    audit: AuditConfig = msgspec.field(default_factory=AuditConfig)
