"""``[orchestrator]``: the ENGS dynamics (services/orchestrator), docs/orchestrator.md."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
import numpy as np
from msgspec import Meta

from engs.shared.config.areas import AreasConfig
from engs.shared.config.base import (
    Level,
    NonNeg,
    PosFloat,
    Section,
    check_order,
)

# --- Orchestrator (services/orchestrator): the ENGS dynamics, docs/orchestrator.md ----------


class CouplingConfig(Section, frozen=True):
    """GAP-005 coupling matrix M and equilibrium x_eq of x = [D, S, N, A] (seed 003).

    Entries are magnitudes; each sign is the seed's (M[0,1] = -kappa_ds, ...). Rows D,
    S and N are in s⁻¹ on the level scale [0, 1]. The ATP row's drains are in NMU/s
    per unit of level above equilibrium and enter M on the ATP-ratio scale as
    M[3, j] = -phi / metabolism.capacity_nmu (docs/orchestrator.md §2). A_eq = 1.
    """

    lambda_d: PosFloat = 0.15
    """-M[0,0]: dopamine clearance (seed 0.15)."""
    kappa_ds: NonNeg = 0.10
    """-M[0,1]: serotonin inhibits dopamine (seed 0.10)."""
    kappa_dn: NonNeg = 0.08
    """M[0,2]: norepinephrine amplifies dopamine (seed 0.08)."""
    kappa_sd: NonNeg = 0.05
    """M[1,0]: dopamine stimulates serotonin (seed 0.05)."""
    lambda_s: PosFloat = 0.05
    """-M[1,1]: serotonin clearance (unspecified in the seed; 3x slower than dopamine)."""
    kappa_sn: NonNeg = 0.07
    """-M[1,2]: norepinephrine inhibits serotonin (seed 0.07)."""
    kappa_sa: NonNeg = 0.02
    """M[1,3]: ATP sustains serotonin, so S decays while ATP drains (unspecified)."""
    kappa_nd: NonNeg = 0.03
    """M[2,0]: dopamine raises arousal (unspecified)."""
    kappa_ns: NonNeg = 0.06
    """-M[2,1]: serotonin inhibits norepinephrine (seed 0.06)."""
    lambda_n: PosFloat = 0.2
    """-M[2,2]: norepinephrine clearance (unspecified)."""
    kappa_na: NonNeg = 0.05
    """M[2,3]: ATP sustains arousal; fatigue lowers it (unspecified)."""
    phi_ad_nmu_s: NonNeg = 1500.0
    """-M[3,0] x capacity: NMU/s per unit of dopamine above D_eq (seed 1.5 NMU/update
    at the nominal 1 kHz)."""
    phi_an_nmu_s: NonNeg = 800.0
    """-M[3,2] x capacity: NMU/s per unit of norepinephrine above N_eq (seed 0.8 x 1 kHz)."""
    lambda_a: PosFloat = 1e-4
    """-M[3,3]: awake ATP resynthesis towards A_eq = 1, s⁻¹ (unspecified)."""
    d_eq: Level = 0.5
    """Dopamine equilibrium D_eq (seed D_base 0.5); also the plasticity gate's centre."""
    s_eq: Level = 0.5
    """Serotonin equilibrium; also the elasticity gate's centre."""
    n_eq: Level = 0.3
    """Norepinephrine equilibrium (calm arousal)."""
    restoring_gain: NonNeg = 0.1
    """ρ of F_nl = -ρ·e·|e| (e = x - x_eq) on D, S, N, s⁻¹: quadratic homeostasis."""

    def matrix(self, capacity_nmu: float, cost_scale: float = 1.0) -> np.ndarray:
        """M (4x4 float64, s⁻¹) with the ATP drains scaled by ``cost_scale`` (host,
        thermal and lattice-size multiplier; 1 for the reference host and lattice)."""
        ad = self.phi_ad_nmu_s * cost_scale / capacity_nmu
        an = self.phi_an_nmu_s * cost_scale / capacity_nmu
        return np.array(
            [
                [-self.lambda_d, -self.kappa_ds, self.kappa_dn, 0.0],
                [self.kappa_sd, -self.lambda_s, -self.kappa_sn, self.kappa_sa],
                [self.kappa_nd, -self.kappa_ns, -self.lambda_n, self.kappa_na],
                [-ad, 0.0, -an, -self.lambda_a],
            ]
        )

    @property
    def x_eq(self) -> tuple[float, float, float, float]:
        return (self.d_eq, self.s_eq, self.n_eq, 1.0)


class DopamineConfig(Section, frozen=True):
    """Dopamine: TD error, tonic level, plasticity gate (seed 003 §3)."""

    beta: NonNeg = 0.1
    """β: step of D per unit of phasic dopamine δ_DA (seed 0.1, per unit of δ)."""
    gamma: Annotated[float, Meta(gt=0, le=1)] = 0.95
    """γ per second of ENGS time; the per-cycle discount is γ**(1/cycle_hz)."""
    value_model: Literal["critic", "energy"] = "critic"
    """V(s) driving δ: the learned linear TD(λ) critic, or the seed's normalised field
    energy (ARCHITECTURE §6.10). Both are computed; this picks the one that drives D."""
    energy_tau_s: PosFloat = 60.0
    """Time constant of the running energy scale Ē in V = E / (E + Ē)."""
    gate_gain: PosFloat = 5.0
    """κ in the plasticity gate 1 + tanh(κ(D - D_eq)) (seed has κ = 1)."""
    emergency_impulse: Level = 0.5
    """Dopamine added once per oracle anhedonia request (seed §9.1 emergency stimulus)."""
    negative_gain: Annotated[float, Meta(gt=0, le=1)] = 0.33
    """Phasic dopamine encodes a negative δ at this fraction of a positive one (Bayer
    & Glimcher 2005: a pause below ~5 Hz baseline firing cannot mirror a burst of
    ~15 Hz above it). The critic learns from δ itself; D and the read-outs see this."""
    reward_rate_tau_s: PosFloat = 20.0
    """Time constant of R̄, the average reward rate (tonic dopamine, Niv et al. 2007)."""
    reward_rate_min_s: PosFloat = 5.0
    """R̄ is bias-corrected while younger than its time constant (the mean over the time
    elapsed), but never averages over less than this window."""
    tonic_gain: Annotated[float, Meta(ge=0, le=0.5)] = 0.3
    """How far a saturating R̄ raises D's equilibrium above D_eq (a negative R̄ lowers
    it): ΔD_eq = tonic_gain·tanh(R̄ / reward_rate_scale)."""
    reward_rate_scale: PosFloat = 1.0
    """R̄ (reward per second) at which the tonic shift reaches tanh(1) = 76 % of its
    maximum."""


class CriticConfig(Section, frozen=True):
    """Learned critic: linear TD(λ) over the centred field energy and entropy and the
    time since each cue (docs/orchestrator.md §3, services/orchestrator/critic.py)."""

    alpha: Annotated[float, Meta(gt=0, le=1)] = 0.15
    """Step size per unit of eligibility (traces are bounded to [-1, 1])."""
    trace_lambda: Annotated[float, Meta(ge=0, le=1)] = 0.9
    """λ per second of the eligibility trace; per cycle λ**(1/cycle_hz)."""
    field_alpha: Annotated[float, Meta(ge=0, le=1)] = 0.003
    """Step size of the two dense field features (energy, entropy), learned by TD(0)."""
    time_resolution: Annotated[float, Meta(ge=0.01, le=1)] = 0.1
    """Relative width of the cue time bins: each is at least one cycle wide and spans
    e^{resolution} of its start time (scalar timing: 10 % → 0.3 s at 3 s)."""
    time_max_s: Annotated[float, Meta(gt=0, le=60)] = 6.0
    """How long a cue is remembered: its bins end here (a longer CS–US interval is
    not predicted)."""
    delta_bound: PosFloat = 2.0
    """|δ| of the learning signal is clipped here (the largest error a reward at the
    socket's bound, 1, can make against a value of -1)."""
    baseline_tau_s: PosFloat = 30.0
    """Time constant of the running means the energy and entropy features are centred
    on."""


class SerotoninConfig(Section, frozen=True):
    """Serotonin events and the elasticity gate (seed 003 §4)."""

    nap_boost: Level = 0.2
    """S added when a nap completes (seed 003 §4.3: +0.2)."""
    goal_boost: Level = 0.05
    """S added per ``goal_complete`` signal (seed 003 §4.3: +0.05)."""
    security_drop: Level = 0.5
    """S removed per ``security_alert`` signal (seed 003 §4.3: 0.5)."""
    mania_boost: Level = 0.3
    """Added once per oracle mania request (seed §9.2 'sedative')."""
    gate_gain: PosFloat = 5.0
    """κ in the elasticity gate 0.5 + 0.5·tanh(κ(S - S_eq))."""


class NorepinephrineConfig(Section, frozen=True):
    """Norepinephrine from stress, cortisol, relevance gate (seed 003 §5)."""

    stress_gain: NonNeg = 0.2
    """s⁻¹ of dN/dt per unit of stress."""
    stress_tau_s: PosFloat = 5.0
    """The latest stress report is held and decays with this time constant."""
    cortisol_tau_s: PosFloat = 60.0
    """Cortisol integrates the held stress with this time constant."""
    relevance_base: Level = 0.6
    """τ at N = 0 (seed 0.6)."""
    relevance_slope: NonNeg = 0.6
    """τ = base - slope·N; 0.6 reaches the panic lesion's τ = 0 at N = 1 (seed 0.3)."""
    relevance_floor: Level = 0.0
    """Lower clamp of the relevance gate τ(N)."""
    relevance_ceiling: Level = 0.95
    """Upper clamp of the relevance gate τ(N) (seed 003 §5.2: 0.95)."""

    def __post_init__(self) -> None:
        check_order(
            "relevance_floor", self.relevance_floor, "relevance_ceiling", self.relevance_ceiling
        )


class BoredomConfig(Section, frozen=True):
    """Boredom and curiosity (seed 003 §6.2 AUTO-04 + GAP-036), docs/orchestrator.md §5."""

    idle_s: PosFloat = 600.0
    """Subjective seconds (physics ticks / tick_hz) from a reset to the threshold when idle."""
    start: Annotated[float, Meta(gt=0, lt=1)] = 0.1
    """B right after a full novelty reset (GAP-036)."""
    threshold: Annotated[float, Meta(gt=0, lt=1)] = 0.85
    """Curiosity threshold (GAP-036 0.85; §6.3 says 0.8)."""
    entropy_gain: NonNeg = 20.0
    """k_H in the clock rate 1 - tanh(k_H·x), x the normalised entropy excursion."""
    entropy_tau_s: PosFloat = 10.0
    """Time constant of the entropy baseline the excursion is measured from."""
    entropy_noise_sigmas: NonNeg = 2.0
    """Excursions within this many estimator standard errors count as none."""
    full_reset_entropy: Level = 0.5
    """Novelty entropy above which the clock resets fully (GAP-036)."""
    partial_boost_s: NonNeg = 10.0
    """Subjective seconds taken off the clock per unit of lesser novelty (GAP-036)."""
    relief_reward: NonNeg = 1.0
    """Intrinsic reward per unit of boredom relieved by novelty (seed §6.3 step 4)."""
    intake_tau_s: PosFloat = 0.4
    """Time constant of the local reward intake rate ρ (the MVT's marginal rate)."""
    opportunity_gain: NonNeg = 4.0
    """c in the opportunity-cost boredom σ(logit θ + c·ln(R̄/ρ)): how sharply B rises
    once the local intake ρ falls below the average rate R̄ (0: no opportunity cost)."""
    opportunity_min_rate: PosFloat = 0.005
    """R̄ (reward per second) below which there is no opportunity cost to weigh."""
    rearm: Annotated[float, Meta(gt=0, lt=1)] = 0.7
    """A curiosity goal is re-armed once B has fallen below this level (hysteresis: a
    rate hovering at R̄ does not fire goals on every fluctuation)."""
    goal_retry_s: PosFloat = 5.0
    """While the opportunity cost holds B at or above the threshold, a goal is retried
    every this many ENGS seconds."""

    def __post_init__(self) -> None:
        check_order("start", self.start, "threshold", self.threshold)
        check_order("rearm", self.rearm, "threshold", self.threshold)


class MetabolismConfig(Section, frozen=True):
    """ATP budget in NMU and the Transactional Metabolic Lock (seed 003 §7, GAP-012)."""

    capacity_nmu: PosFloat = 5.0e6
    """Full ATP reserve, NMU."""
    propagation_nmu_s: NonNeg = 100.0
    """Wave propagation at equilibrium, NMU/s (GAP-012 0.1 NMU/step x 1 kHz)."""
    plasticity_nmu_s: NonNeg = 1500.0
    """Plasticity at D_eq, NMU/s (GAP-012 1.5 NMU/update x 1 kHz)."""
    external_call_nmu: NonNeg = 50.0
    """One external tool/API call, NMU (§7.1's 50; GAP-012's 5 is not used)."""
    self_improvement_nmu: NonNeg = 1000.0
    """One self-improvement (compile/sandbox) run, NMU (§7.1)."""
    reference_nodes: Annotated[int, Meta(ge=1)] = 4096
    """Lattice size the rates above are for; costs scale with telemetry n_nodes."""
    reference_score: PosFloat = 0.25
    """GAP-012 host score (TFLOP/s + TB/s) of the reference host; costs scale by
    reference_score / measured score."""
    calibrate: bool = True
    """Run the start-up host benchmark; false: cost factor 1 (the reference host)."""
    thermal_target_c: float = 70.0
    """Temperature (°C) above which the thermal cost multiplier rises (GAP-012)."""
    thermal_critical_c: float = 85.0
    """Temperature (°C) at which the thermal multiplier reaches 2 (GAP-012: T_crit ≈ 85 °C)."""
    lock_ttl_s: PosFloat = 300.0
    """An uncommitted reservation is refunded after this many ENGS seconds."""

    def __post_init__(self) -> None:
        check_order(
            "thermal_target_c", self.thermal_target_c, "thermal_critical_c", self.thermal_critical_c
        )


class NapConfig(Section, frozen=True):
    """Nap: recharge below a low-ATP threshold (seed 003 §2.2, §8.3)."""

    enter_below: Level = 0.15
    """Enter a nap when the ATP ratio falls below this (seed 003 §8.3: 15 %)."""
    exit_at: Level = 0.9
    """Leave the nap once the ATP ratio has recharged to this."""
    recharge_per_s: Annotated[float, Meta(gt=0, le=1)] = 0.005
    """Net ATP-ratio gain per second while napping."""
    min_duration_s: NonNeg = 30.0
    """A nap, once entered, lasts at least this long (ENGS s), even if a revocation
    refund refills ATP at once: the seed forces a nap for consolidation."""
    awake_drive: NonNeg = 1.0
    """area_drive while awake, field units."""
    nap_drive: NonNeg = 0.2
    """area_drive while napping, field units."""
    dream_noise_min: NonNeg = 0.5
    """area_noise multiplier while napping at D = 1 (dream-weave temperature, §8.1)."""
    dream_noise_max: NonNeg = 2.0
    """... and at D = 0."""

    def __post_init__(self) -> None:
        check_order("enter_below", self.enter_below, "exit_at", self.exit_at)
        check_order(
            "dream_noise_min",
            self.dream_noise_min,
            "dream_noise_max",
            self.dream_noise_max,
            strict=False,
        )


class ReplayConfig(Section, frozen=True):
    """Dream-weave replay buffer (seed 003 §8.1)."""

    capacity: Annotated[int, Meta(ge=1, le=1 << 20)] = 4096
    """Experiences kept for dream-weave replay (oldest dropped)."""
    every_cycles: Annotated[int, Meta(ge=1)] = 10
    """Record every k-th awake cycle, plus every cycle with a reward, cue or novelty."""
    priority_floor: PosFloat = 1e-3
    """Added to |δ| so that no experience has zero priority."""


class PriorityConfig(Section, frozen=True):
    """CRITICAL causes the ENGS raises, with hysteresis (seed 003 GAP-022)."""

    atp_exhausted_below: Level = 0.05
    """Raise ATP_EXHAUSTED below this ATP ratio (GAP-022: 5 %)."""
    atp_exhausted_clear_at: Level = 0.10
    """Clear ATP_EXHAUSTED at or above this ATP ratio (hysteresis)."""
    panic_above: Level = 0.95
    """Raise PANIC above this norepinephrine level (GAP-022: 0.95)."""
    panic_clear_below: Level = 0.85
    """Clear PANIC below this norepinephrine level (hysteresis)."""

    def __post_init__(self) -> None:
        check_order(
            "atp_exhausted_below",
            self.atp_exhausted_below,
            "atp_exhausted_clear_at",
            self.atp_exhausted_clear_at,
        )
        check_order("panic_clear_below", self.panic_clear_below, "panic_above", self.panic_above)


class SessionLogConfig(Section, frozen=True):
    """The orchestrator's bounded record of every cycle's inputs, for ``engs replay``."""

    enabled: bool = True
    """Record every cycle's inputs for ``engs replay``."""
    segment_bytes: Annotated[int, Meta(ge=4096, le=1 << 34)] = 32 << 20
    """A segment is closed and a new one (with a fresh snapshot header) opened past this.
    It must be at least twice the largest snapshot (about 1.9 MiB with the defaults; the
    orchestrator refuses to start below it and names the minimum)."""
    segments: Annotated[int, Meta(ge=1, le=1000)] = 4
    """Segments kept; older ones are deleted (the log never exceeds about
    ``segments x segment_bytes``)."""


class OrchestratorConfig(Section, frozen=True):
    """The 100 Hz ENGS control loop (services/orchestrator)."""

    cycle_hz: Annotated[float, Meta(gt=0, le=10_000)] = 100.0
    """Control cycles per second (seed 003 §8.3: 100 Hz)."""
    state_dir: str = ""
    """Directory for checkpoints and session logs; empty: ``$XDG_STATE_HOME/engs/<instance>``
    (default ``~/.local/state/engs/<instance>``)."""
    exit_when_physics_lost_s: Annotated[float, Meta(ge=0, le=3600)] = 0.0
    """Exit (status 3) once the physics, seen alive, has not beaten for this long; 0: never.
    Under docker compose a crashed physics container comes back with a fresh /dev/shm, and
    this makes the orchestrator restart into it (ops/engs/engs.toml sets 5 s)."""
    checkpoint_period_s: Annotated[float, Meta(ge=0.1, le=86_400)] = 10.0
    """Learned parameters and slow state are saved atomically this often in steady state
    and on every clean stop; a kill -9 loses at most one period (docs/orchestrator.md §9)."""
    checkpoint_first_s: Annotated[float, Meta(ge=0.1, le=86_400)] = 1.0
    """The first checkpoint after start comes this long after the restored state began to
    run; the interval then doubles up to ``checkpoint_period_s``, so a process killed
    every few seconds keeps nearly all it learned."""
    session_log: SessionLogConfig = msgspec.field(default_factory=SessionLogConfig)
    seed: Annotated[int, Meta(ge=0, le=(1 << 63) - 1)] = 0
    """Seed of the ENGS's random generator (dream-weave sampling)."""
    coupling: CouplingConfig = msgspec.field(default_factory=CouplingConfig)
    dopamine: DopamineConfig = msgspec.field(default_factory=DopamineConfig)
    critic: CriticConfig = msgspec.field(default_factory=CriticConfig)
    serotonin: SerotoninConfig = msgspec.field(default_factory=SerotoninConfig)
    norepinephrine: NorepinephrineConfig = msgspec.field(default_factory=NorepinephrineConfig)
    boredom: BoredomConfig = msgspec.field(default_factory=BoredomConfig)
    metabolism: MetabolismConfig = msgspec.field(default_factory=MetabolismConfig)
    nap: NapConfig = msgspec.field(default_factory=NapConfig)
    replay: ReplayConfig = msgspec.field(default_factory=ReplayConfig)
    priorities: PriorityConfig = msgspec.field(default_factory=PriorityConfig)
    areas: AreasConfig = msgspec.field(default_factory=AreasConfig)

    def __post_init__(self) -> None:
        m = self.coupling.matrix(self.metabolism.capacity_nmu)
        eig = np.linalg.eigvals(m)
        abscissa = float(eig.real.max())
        if not abscissa < 0.0:
            shown = ", ".join(f"{complex(e):.4g}" for e in sorted(eig, key=lambda z: -z.real))
            raise ValueError(
                f"`coupling`: the matrix M is unstable: spectral abscissa max Re λ = "
                f"{abscissa:+.4g} /s, expected < 0 (eigenvalues {shown})"
            )
        c, mb = self.coupling, self.metabolism
        idle_floor = c.phi_ad_nmu_s * c.d_eq + c.phi_an_nmu_s * c.n_eq
        if idle_floor > mb.propagation_nmu_s + mb.plasticity_nmu_s:
            raise ValueError(
                "`coupling`: phi_ad_nmu_s·d_eq + phi_an_nmu_s·n_eq must not exceed "
                "metabolism.propagation_nmu_s + plasticity_nmu_s (consumption would turn "
                f"negative at D = N = 0), got {idle_floor:g} > "
                f"{mb.propagation_nmu_s + mb.plasticity_nmu_s:g}"
            )

    @property
    def dt(self) -> float:
        """One control cycle in seconds."""
        return 1.0 / self.cycle_hz
