"""Configuration: TOML decoded once into msgspec Structs.

Precedence, lowest to highest: the embedded defaults (no file needed), the TOML file
(``--config FILE`` or ``ENGS_CONFIG``), environment variables (``ENGS_INSTANCE``,
``ENGS_SIGNAL_ADDR``, ``ENGS_METRICS_ADDR``, ``ENGS_BACKEND``), then command-line
flags (``--instance``). Every Struct forbids unknown fields and carries its
constraints, so a bad value fails at start-up with a message naming the field path
(``$.physics.tick_hz``) and, for an override, the variable or flag it came from.

Each service owns its section; cross-field rules live in ``__post_init__``.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
from msgspec import Meta, Struct

from engs.shared.errors import ConfigError
from engs.shared.messages import MAX_FRAME, NAME_PATTERN, AreaName

PosFloat = Annotated[float, Meta(gt=0)]
Instance = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$")]


def parse_addr(addr: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) into host and port, validated."""
    host, sep, port_s = addr.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected host:port, got {addr!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"port must be an integer, got {port_s!r} in {addr!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be in 1..65535, got {port} in {addr!r}")
    return host, port


def is_loopback(host: str) -> bool:
    """True for loopback addresses and ``localhost``; wildcard binds are not loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Section(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class ShmConfig(_Section, frozen=True):
    """The shared-memory region."""

    max_areas: Annotated[int, Meta(ge=1, le=1024)] = 16
    """Rows reserved for per-area arrays in the layout (areas in use may be fewer)."""
    lock_memory: bool = True
    """mlock the mapping in every process (failure is reported, not fatal)."""


class PhysicsConfig(_Section, frozen=True):
    """The 1 kHz physics engine (services/physics)."""

    tick_hz: Annotated[float, Meta(gt=0, le=100_000)] = 1000.0
    """Ticks per second (seed 003 GAP-022: 1 kHz); dt = 1/tick_hz."""
    backend: Literal["auto", "numpy", "cupy"] = "auto"
    """Array backend: ``auto`` probes the GPU with a tiny kernel and falls back to NumPy,
    saying why; ``cupy`` requires it."""
    shape: Annotated[
        list[Annotated[int, Meta(ge=2, le=1 << 20)]], Meta(min_length=1, max_length=9)
    ] = msgspec.field(default_factory=lambda: [64, 64])
    """Lattice shape, one entry per dimension (periodic boundaries)."""
    areas: Annotated[list[AreaName], Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: ["sensory", "motor", "association", "limbic"]
    )
    """Named target areas; the lattice is split among them along its first axis."""
    wave_speed: PosFloat = 100.0
    """v₀: base wave speed in lattice spacings per second; ``area_speed`` multiplies it.
    The CFL guard clamps the product (docs/physics.md)."""
    damping: Annotated[float, Meta(ge=0)] = 0.1
    """γ₀: base damping rate in s⁻¹; ``area_damping`` multiplies it."""
    emergency_damping: Annotated[float, Meta(ge=0)] = 1.0
    """γ in s⁻¹ while CRITICAL is set (seed 003 GAP-022: γ = 1.0); never lowers γ."""
    plasticity_rate: Annotated[float, Meta(ge=0)] = 0.5
    """η₀: Hebbian rate in s⁻¹ per field unit²; ``area_plasticity`` multiplies it."""
    elasticity_rate: Annotated[float, Meta(ge=0)] = 0.5
    """λ₀: restoring rate of the conductance towards its consolidated value, in s⁻¹;
    ``area_elasticity`` multiplies it."""
    consolidation_rate: Annotated[float, Meta(ge=0, le=100)] = 0.05
    """κ: rate at which the consolidated metric follows the conductance, in s⁻¹ (20 s at
    the default: a pattern held for tens of seconds is consolidated, a blip is not). 0: no
    consolidation (the conductance relaxes to the identity, the pre-issue-13 rule)."""
    forgetting_rate: Annotated[float, Meta(ge=0, le=100)] = 0.02
    """μ: rate at which the consolidated metric returns to the identity, in s⁻¹ (50 s at
    the default). Must be > 0 when consolidation_rate is: without forgetting, any steady
    correlation would consolidate without bound."""
    conductance_min: PosFloat = 0.05
    """g_min: lower clamp of every edge conductance (dimensionless, ≤ 1)."""
    conductance_max: PosFloat = 4.0
    """g_max: upper clamp of every edge conductance (dimensionless, ≥ 1)."""
    drive_hz: Annotated[float, Meta(gt=0, le=10_000)] | None = None
    """Carrier frequency of the sustained drive e^{iωt}, in Hz (unspecified in the seeds);
    must be below tick_hz / 2 (Nyquist). None: tick_hz / 4 (250 Hz at 1 kHz), chosen from
    the computed mode spectrum (services/physics/modes.py, docs/physics.md §13): the CFL
    guard keeps every mode at or below tick_hz / 6 for any metric and speed gain, so a
    carrier between that ceiling and tick_hz / 2 never resonates; tick_hz / 4 sits
    tick_hz / 12 (83 Hz at 1 kHz, ~5000 linewidths at γ₀ = 0.1 s⁻¹) above it."""
    noise_amplitude: Annotated[float, Meta(ge=0)] = 0.01
    """σ: background-noise force density in field units · s^-3/2; ``area_noise``
    multiplies it."""
    seed: Annotated[int, Meta(ge=0, le=(1 << 63) - 1)] = 0
    """Seed of the background noise and of the entropy estimator's samples."""
    entropy_exact_max_nodes: Annotated[int, Meta(ge=1)] = 65536
    """On the CPU, lattices up to this many nodes get the exact entropy; larger ones the
    unbiased sampled estimator. The GPU is always exact."""
    entropy_samples: Annotated[int, Meta(ge=16, le=1 << 24)] = 4096
    """K: nodes sampled per tick by the entropy estimator (seed 003 §6.1: 4096)."""
    metric_grad_every: Annotated[int, Meta(ge=1, le=1_000_000)] = 10
    """Ticks between recomputations of the per-area metric gradient (10: 100 Hz)."""
    cost_wave_weight: Annotated[float, Meta(ge=0)] = 0.1
    """Metabolic cost per unit of Σ|∇Ψ|² (seed 003 §7.1 relative weight 0.1)."""
    cost_plasticity_weight: Annotated[float, Meta(ge=0)] = 1.5
    """Metabolic cost per unit of Σ|Δg| (seed 003 §7.1 relative weight 1.5)."""
    spin_us: Annotated[float, Meta(ge=0, le=10_000)] = 150.0
    """The loop sleeps until this many µs before each deadline, then spins (the kernel's
    wake-up jitter is larger than a tick's tolerance)."""
    timer_slack_ns: Annotated[int, Meta(ge=1, le=50_000_000)] = 1_000
    """prctl(PR_SET_TIMERSLACK) for the physics thread (the kernel default is 50 µs)."""
    sched_fifo_priority: Annotated[int, Meta(ge=1, le=99)] | None = None
    """Run the physics under SCHED_FIFO at this priority (needs CAP_SYS_NICE; a failure
    is logged and counted, never fatal). None: the normal scheduler."""
    cpu_affinity: list[Annotated[int, Meta(ge=0)]] | None = None
    """Pin the physics to these CPUs (e.g. an isolated core). None: no pinning."""
    scram_clear_ticks: Annotated[int, Meta(ge=1)] = 100
    """After a non-finite field is recovered, the physics clears its own SCRAM once this
    many consecutive ticks stayed finite."""

    @property
    def dt(self) -> float:
        """The physics time step in seconds: one tick."""
        return 1.0 / self.tick_hz

    @property
    def carrier_hz(self) -> float:
        """The drive's carrier frequency in Hz: ``drive_hz``, or tick_hz / 4 when unset."""
        return self.tick_hz / 4.0 if self.drive_hz is None else self.drive_hz

    def __post_init__(self) -> None:
        if len(set(self.areas)) != len(self.areas):
            dup = sorted({a for a in self.areas if self.areas.count(a) > 1})
            raise ValueError(f"`areas` must be unique, {dup} repeated")
        if len(self.areas) > self.shape[0]:
            raise ValueError(
                f"`areas`: {len(self.areas)} areas cannot split a first axis of "
                f"{self.shape[0]} nodes"
            )
        if self.drive_hz is not None and self.drive_hz >= self.tick_hz / 2:
            raise ValueError(
                f"`drive_hz` < tick_hz / 2 expected (the Nyquist frequency: a faster carrier "
                f"aliases), got {self.drive_hz} and tick_hz {self.tick_hz}"
            )
        if not self.conductance_min <= 1.0 <= self.conductance_max:
            raise ValueError(
                "`conductance_min` <= 1 <= `conductance_max` expected (the metric relaxes "
                f"to 1), got {self.conductance_min} and {self.conductance_max}"
            )
        if self.consolidation_rate > 0 and self.forgetting_rate <= 0:
            raise ValueError(
                "`forgetting_rate` > 0 expected when `consolidation_rate` > 0 (otherwise a "
                f"steady correlation consolidates without bound), got {self.forgetting_rate}"
            )


# --- Orchestrator (services/orchestrator): the ENGS dynamics, docs/orchestrator.md ----------

_Level = Annotated[float, Meta(ge=0, le=1)]
_NonNeg = Annotated[float, Meta(ge=0)]


def _check_order(lo_name: str, lo: float, hi_name: str, hi: float, *, strict: bool = True) -> None:
    """A section's two thresholds must be ordered (hysteresis bands, ranges)."""
    if not (lo < hi if strict else lo <= hi):
        op = "<" if strict else "<="
        raise ValueError(f"`{lo_name}` {op} `{hi_name}` expected, got {lo} and {hi}")


class CouplingConfig(_Section, frozen=True):
    """GAP-005 coupling matrix M and equilibrium x_eq of x = [D, S, N, A] (seed 003).

    Entries are magnitudes; each sign is the seed's (M[0,1] = -kappa_ds, ...). Rows D,
    S and N are in s⁻¹ on the level scale [0, 1]. The ATP row's drains are in NMU/s
    per unit of level above equilibrium and enter M on the ATP-ratio scale as
    M[3, j] = -phi / metabolism.capacity_nmu (docs/orchestrator.md §2). A_eq = 1.
    """

    lambda_d: PosFloat = 0.15
    """-M[0,0]: dopamine clearance (seed 0.15)."""
    kappa_ds: _NonNeg = 0.10
    """-M[0,1]: serotonin inhibits dopamine (seed 0.10)."""
    kappa_dn: _NonNeg = 0.08
    """M[0,2]: norepinephrine amplifies dopamine (seed 0.08)."""
    kappa_sd: _NonNeg = 0.05
    """M[1,0]: dopamine stimulates serotonin (seed 0.05)."""
    lambda_s: PosFloat = 0.05
    """-M[1,1]: serotonin clearance (unspecified in the seed; 3x slower than dopamine)."""
    kappa_sn: _NonNeg = 0.07
    """-M[1,2]: norepinephrine inhibits serotonin (seed 0.07)."""
    kappa_sa: _NonNeg = 0.02
    """M[1,3]: ATP sustains serotonin, so S decays while ATP drains (unspecified)."""
    kappa_nd: _NonNeg = 0.03
    """M[2,0]: dopamine raises arousal (unspecified)."""
    kappa_ns: _NonNeg = 0.06
    """-M[2,1]: serotonin inhibits norepinephrine (seed 0.06)."""
    lambda_n: PosFloat = 0.2
    """-M[2,2]: norepinephrine clearance (unspecified)."""
    kappa_na: _NonNeg = 0.05
    """M[2,3]: ATP sustains arousal; fatigue lowers it (unspecified)."""
    phi_ad_nmu_s: _NonNeg = 1500.0
    """-M[3,0] x capacity: NMU/s per unit of dopamine above D_eq (seed 1.5 NMU/update
    at the nominal 1 kHz)."""
    phi_an_nmu_s: _NonNeg = 800.0
    """-M[3,2] x capacity: NMU/s per unit of norepinephrine above N_eq (seed 0.8 x 1 kHz)."""
    lambda_a: PosFloat = 1e-4
    """-M[3,3]: awake ATP resynthesis towards A_eq = 1, s⁻¹ (unspecified)."""
    d_eq: _Level = 0.5
    """Dopamine equilibrium D_eq (seed D_base 0.5); also the plasticity gate's centre."""
    s_eq: _Level = 0.5
    """Serotonin equilibrium; also the elasticity gate's centre."""
    n_eq: _Level = 0.3
    """Norepinephrine equilibrium (calm arousal)."""
    restoring_gain: _NonNeg = 0.1
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


class DopamineConfig(_Section, frozen=True):
    """Dopamine: TD error, tonic level, plasticity gate (seed 003 §3)."""

    beta: _NonNeg = 0.1
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
    emergency_impulse: _Level = 0.5
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


class CriticConfig(_Section, frozen=True):
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


class SerotoninConfig(_Section, frozen=True):
    """Serotonin events and the elasticity gate (seed 003 §4)."""

    nap_boost: _Level = 0.2
    """S added when a nap completes (seed 003 §4.3: +0.2)."""
    goal_boost: _Level = 0.05
    """S added per ``goal_complete`` signal (seed 003 §4.3: +0.05)."""
    security_drop: _Level = 0.5
    """S removed per ``security_alert`` signal (seed 003 §4.3: 0.5)."""
    mania_boost: _Level = 0.3
    """Added once per oracle mania request (seed §9.2 'sedative')."""
    gate_gain: PosFloat = 5.0
    """κ in the elasticity gate 0.5 + 0.5·tanh(κ(S - S_eq))."""


class NorepinephrineConfig(_Section, frozen=True):
    """Norepinephrine from stress, cortisol, relevance gate (seed 003 §5)."""

    stress_gain: _NonNeg = 0.2
    """s⁻¹ of dN/dt per unit of stress."""
    stress_tau_s: PosFloat = 5.0
    """The latest stress report is held and decays with this time constant."""
    cortisol_tau_s: PosFloat = 60.0
    """Cortisol integrates the held stress with this time constant."""
    relevance_base: _Level = 0.6
    """τ at N = 0 (seed 0.6)."""
    relevance_slope: _NonNeg = 0.6
    """τ = base - slope·N; 0.6 reaches the panic lesion's τ = 0 at N = 1 (seed 0.3)."""
    relevance_floor: _Level = 0.0
    """Lower clamp of the relevance gate τ(N)."""
    relevance_ceiling: _Level = 0.95
    """Upper clamp of the relevance gate τ(N) (seed 003 §5.2: 0.95)."""

    def __post_init__(self) -> None:
        _check_order(
            "relevance_floor", self.relevance_floor, "relevance_ceiling", self.relevance_ceiling
        )


class BoredomConfig(_Section, frozen=True):
    """Boredom and curiosity (seed 003 §6.2 AUTO-04 + GAP-036), docs/orchestrator.md §5."""

    idle_s: PosFloat = 600.0
    """Subjective seconds (physics ticks / tick_hz) from a reset to the threshold when idle."""
    start: Annotated[float, Meta(gt=0, lt=1)] = 0.1
    """B right after a full novelty reset (GAP-036)."""
    threshold: Annotated[float, Meta(gt=0, lt=1)] = 0.85
    """Curiosity threshold (GAP-036 0.85; §6.3 says 0.8)."""
    entropy_gain: _NonNeg = 20.0
    """k_H in the clock rate 1 - tanh(k_H·x), x the normalised entropy excursion."""
    entropy_tau_s: PosFloat = 10.0
    """Time constant of the entropy baseline the excursion is measured from."""
    entropy_noise_sigmas: _NonNeg = 2.0
    """Excursions within this many estimator standard errors count as none."""
    full_reset_entropy: _Level = 0.5
    """Novelty entropy above which the clock resets fully (GAP-036)."""
    partial_boost_s: _NonNeg = 10.0
    """Subjective seconds taken off the clock per unit of lesser novelty (GAP-036)."""
    relief_reward: _NonNeg = 1.0
    """Intrinsic reward per unit of boredom relieved by novelty (seed §6.3 step 4)."""
    intake_tau_s: PosFloat = 0.4
    """Time constant of the local reward intake rate ρ (the MVT's marginal rate)."""
    opportunity_gain: _NonNeg = 4.0
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
        _check_order("start", self.start, "threshold", self.threshold)
        _check_order("rearm", self.rearm, "threshold", self.threshold)


class MetabolismConfig(_Section, frozen=True):
    """ATP budget in NMU and the Transactional Metabolic Lock (seed 003 §7, GAP-012)."""

    capacity_nmu: PosFloat = 5.0e6
    """Full ATP reserve, NMU."""
    propagation_nmu_s: _NonNeg = 100.0
    """Wave propagation at equilibrium, NMU/s (GAP-012 0.1 NMU/step x 1 kHz)."""
    plasticity_nmu_s: _NonNeg = 1500.0
    """Plasticity at D_eq, NMU/s (GAP-012 1.5 NMU/update x 1 kHz)."""
    external_call_nmu: _NonNeg = 50.0
    """One external tool/API call, NMU (§7.1's 50; GAP-012's 5 is not used)."""
    self_improvement_nmu: _NonNeg = 1000.0
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
        _check_order(
            "thermal_target_c", self.thermal_target_c, "thermal_critical_c", self.thermal_critical_c
        )


class NapConfig(_Section, frozen=True):
    """Nap: recharge below a low-ATP threshold (seed 003 §2.2, §8.3)."""

    enter_below: _Level = 0.15
    """Enter a nap when the ATP ratio falls below this (seed 003 §8.3: 15 %)."""
    exit_at: _Level = 0.9
    """Leave the nap once the ATP ratio has recharged to this."""
    recharge_per_s: Annotated[float, Meta(gt=0, le=1)] = 0.005
    """Net ATP-ratio gain per second while napping."""
    min_duration_s: _NonNeg = 30.0
    """A nap, once entered, lasts at least this long (ENGS s), even if a revocation
    refund refills ATP at once: the seed forces a nap for consolidation."""
    awake_drive: _NonNeg = 1.0
    """area_drive while awake, field units."""
    nap_drive: _NonNeg = 0.2
    """area_drive while napping, field units."""
    dream_noise_min: _NonNeg = 0.5
    """area_noise multiplier while napping at D = 1 (dream-weave temperature, §8.1)."""
    dream_noise_max: _NonNeg = 2.0
    """... and at D = 0."""

    def __post_init__(self) -> None:
        _check_order("enter_below", self.enter_below, "exit_at", self.exit_at)
        _check_order(
            "dream_noise_min",
            self.dream_noise_min,
            "dream_noise_max",
            self.dream_noise_max,
            strict=False,
        )


class ReplayConfig(_Section, frozen=True):
    """Dream-weave replay buffer (seed 003 §8.1)."""

    capacity: Annotated[int, Meta(ge=1, le=1 << 20)] = 4096
    """Experiences kept for dream-weave replay (oldest dropped)."""
    every_cycles: Annotated[int, Meta(ge=1)] = 10
    """Record every k-th awake cycle, plus every cycle with a reward, cue or novelty."""
    priority_floor: PosFloat = 1e-3
    """Added to |δ| so that no experience has zero priority."""


class PriorityConfig(_Section, frozen=True):
    """CRITICAL causes the ENGS raises, with hysteresis (seed 003 GAP-022)."""

    atp_exhausted_below: _Level = 0.05
    """Raise ATP_EXHAUSTED below this ATP ratio (GAP-022: 5 %)."""
    atp_exhausted_clear_at: _Level = 0.10
    """Clear ATP_EXHAUSTED at or above this ATP ratio (hysteresis)."""
    panic_above: _Level = 0.95
    """Raise PANIC above this norepinephrine level (GAP-022: 0.95)."""
    panic_clear_below: _Level = 0.85
    """Clear PANIC below this norepinephrine level (hysteresis)."""

    def __post_init__(self) -> None:
        _check_order(
            "atp_exhausted_below",
            self.atp_exhausted_below,
            "atp_exhausted_clear_at",
            self.atp_exhausted_clear_at,
        )
        _check_order("panic_clear_below", self.panic_clear_below, "panic_above", self.panic_above)


class SessionLogConfig(_Section, frozen=True):
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


class NucleusSpec(_Section, frozen=True):
    """An emitter nucleus: synthesises its neuromodulators at the rate its driver sets."""

    name: SiteName
    nt: Annotated[list[NtName], Meta(min_length=1)]
    label: str = ""
    cite: str = ""


class ProjectionSpec(_Section, frozen=True):
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


class HomeostasisConfig(_Section, frozen=True):
    """Seed 002's Homeostasis Module: online learning of the projection modulators."""

    learning: bool = True
    """Online gradient on (w, b), slow base-gain updates and saturation auto-reduction;
    false freezes the module (transfer still runs)."""
    lr: PosFloat = 1e-3
    """Gradient-descent rate of the modulators' (w, b) per cycle (seed 002 §9: 1e-3)."""
    gain_lr: PosFloat = 1e-4
    """Rate of the base gains per cycle: the slow timescale (seed 002 §9: 1e-4)."""
    alpha_coherence: _NonNeg = 1.0
    """α1: weight of the DMN coherence gain in R_t (credited through eligibility traces)."""
    alpha_band: _NonNeg = 1.0
    """α2: weight of the band penalty Σ|band_err|."""
    alpha_stability: _NonNeg = 0.1
    """α3: weight of the stability penalty Σ|Δμ|."""
    alpha_safety: _NonNeg = 10.0
    """α4: R_t penalty per safety event (a hard ceiling or max-Δ clamp that acted)."""
    beta_smooth: _NonNeg = 1.0
    """β1: weight of L_smooth = Σ(s - s_prev)²."""
    beta_sparsity: _NonNeg = 0.01
    """β2: weight of L_sparsity = Σ s."""
    beta_energy: _NonNeg = 0.01
    """β3: weight of L_energy = Σ sent (normalised by the resting flow)."""
    band_margin: Annotated[float, Meta(ge=0, lt=0.5)] = 0.45
    """The loss pulls levels into the band shrunk by this fraction of its width at each end:
    the sparsity and energy terms push s down inside the band, so the level rests at the
    inner edge; 0.45 keeps that within 10 % of the half-width of the band centre."""
    trace_tau_s: PosFloat = 2.0
    """Time constant of the eligibility traces crediting delayed coherence gains."""
    saturation_margin: _NonNeg = 0.1
    """A level above ``upper band + margin`` counts as saturated (seed 002 §8)."""
    saturation_cycles: Annotated[int, Meta(ge=1)] = 300
    """T: saturation persisting this many consecutive cycles auto-reduces the base gains of
    the projections feeding it."""
    saturation_reduce: _Frac = 0.8
    """Factor applied to those base gains."""
    weight_init_std: _NonNeg = 0.1
    """w ~ N(0, std) at start (seed 002 §6: 0.1)."""
    weight_max: PosFloat = 10.0
    """|w| and |b| are clipped to this."""
    gain_min: _NonNeg = 0.0
    gain_max: PosFloat = 4.0
    """Base gains stay in [gain_min, gain_max]."""
    s_max: PosFloat = 1.0
    """Modulator scale s = σ(w·x + b)·s_max (seed 002 §9: 1, or 2 to amplify)."""

    def __post_init__(self) -> None:
        _check_order("gain_min", self.gain_min, "gain_max", self.gain_max)


class ReceptorConfig(_Section, frozen=True):
    """Seed 000's receptor homeostasis: density, sensitivity and release networks."""

    learning: bool = True
    """Train the three networks online on the composite loss; false freezes them."""
    lr: PosFloat = 1e-4
    """Gradient-descent rate per cycle (receptor regulation is slower than routing)."""
    density_max: PosFloat = 2.0
    sensitivity_max: PosFloat = 2.0
    release_max: PosFloat = 2.0
    """Output ranges (sigmoid x max); the networks start at 1 (the calibrated prior)."""
    alpha: _NonNeg = 1.0
    """α: weight of the local efficiency."""
    beta_start: _NonNeg = 0.01
    beta_end: _NonNeg = 0.5
    """β of the cognitive (DMN) efficiency, annealed from small (seed 000: favour stability)."""
    beta_tau_s: PosFloat = 120.0
    """Time constant of the β annealing, in awake learning seconds."""
    w_binding: _NonNeg = 0.5
    """Weight of the binding fraction B̄ (sites in use, not wasted capacity)."""
    w_activity: _NonNeg = 0.5
    """w1: weight of the postsynaptic activity S̄ (physics per-area activity)."""
    w_range: _NonNeg = 1.0
    """w2: weight of RangeUtil (time of B̄ in its operating window)."""
    w_saturation: _NonNeg = 1.0
    """w3: weight of SatNT (spillover fraction)."""
    w_noise: _NonNeg = 0.5
    """w4: weight of NoiseLeak."""
    w_energy: _NonNeg = 0.1
    """w5: weight of the energy cost (density and release, L1)."""
    v_coherence: _NonNeg = 1.0
    v_utility: _NonNeg = 1.0
    v_uncertainty: _NonNeg = 1.0
    v_safety: _NonNeg = 0.5
    v_calibration: _NonNeg = 1.0
    """v1..v5 of Effcog = v1 ΔC + v2 ΔU + v3 ΔH + v4 S + v5 ΔCal."""
    smooth: _NonNeg = 1.0
    """λ1: temporal smoothness of ρ̂, ŝ, r̂."""
    drift: _NonNeg = 1e-3
    """λ2: drift of the parameters from their priors."""
    homeostasis: _NonNeg = 2.0
    """λ3: effective levels in their bands and population averages in range."""
    range_low: _Level = 0.1
    range_high: _Level = 0.6
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
        _check_order("range_low", self.range_low, "range_high", self.range_high)


class ScalingConfig(_Section, frozen=True):
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
    arousal_gain: _NonNeg = 2.0
    """k in norepinephrine's response gain G_NE = e^{k (x_NE - rest_NE)} (1 at rest; at
    the default k = 2 and rest 0.3: 0.55 at NE 0, 4.1 at NE 1). 0: no arousal gain."""
    density_min: Annotated[float, Meta(gt=0, le=1)] = 0.25
    density_max: Annotated[float, Meta(ge=1)] = 4.0
    """Clamp of the density relative to its calibrated value."""


class ConsolidationConfig(_Section, frozen=True):
    """Sleep consolidation from dream-weave replay (seed 002 §5, seed 003 §8.1)."""

    enabled: bool = True
    every_cycles: Annotated[int, Meta(ge=1)] = 100
    """While napping, one dream batch every this many cycles."""
    batch: Annotated[int, Meta(ge=1, le=4096)] = 64
    """Replay samples per dream batch."""
    dream_noise: _NonNeg = 0.05
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
    band_drift_max: _NonNeg = 0.15
    """A band centre never moves further than this from its configured resting level."""
    stats_tau_s: PosFloat = 60.0
    """Time constant of the awake statistics consolidation reads."""


class AuditConfig(_Section, frozen=True):
    """The in-memory transfer audit log (seed 002 §8): bounded, rotating, sampled."""

    capacity: Annotated[int, Meta(ge=1, le=1 << 20)] = 4096
    """Records kept; the oldest is overwritten."""
    every_cycles: Annotated[int, Meta(ge=1)] = 10
    """One sample every this many cycles ..."""
    per_sample: Annotated[int, Meta(ge=0, le=4096)] = 4
    """... of this many edge x NT transfers, round robin; capped transfers are always logged."""


class AreasConfig(_Section, frozen=True):
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


class OrchestratorConfig(_Section, frozen=True):
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


class SignalsConfig(_Section, frozen=True):
    """The signal socket (served by the orchestrator)."""

    addr: str = "127.0.0.1:7411"
    """TCP address of the signal socket, host:port ([v6]:port)."""
    unix_path: str | None = None
    """Optional Unix socket path (created mode 0600)."""
    max_connections: Annotated[int, Meta(ge=1, le=100_000)] = 64
    """Open connections at once. A new connection at the limit is served: the one idle the
    longest (subscribers last) is closed to make room, so silent clients cannot hoard the
    slots (docs/signals.md, "Limits and backpressure")."""
    first_byte_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 2.0
    """A new connection that sends nothing for this long is closed."""
    idle_timeout_s: Annotated[float, Meta(gt=0, le=86_400)] = 60.0
    """A connection that sends nothing for this long is closed (not subscribers)."""
    write_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 5.0
    """A connection whose output stays blocked this long is aborted."""
    max_frame: Annotated[int, Meta(ge=64, le=1 << 24)] = MAX_FRAME
    """Largest frame payload / JSON line in bytes; larger: ``too_large`` and close."""
    rate: Annotated[float, Meta(gt=0, le=1e9)] = 10_000.0
    """Token-bucket refill, requests per second per connection."""
    burst: Annotated[int, Meta(ge=1, le=1 << 30)] = 10_000
    """Token-bucket size: requests a connection may send at once."""
    output_high: Annotated[int, Meta(ge=1024, le=1 << 30)] = 256 * 1024
    """Buffered output in bytes above which the connection's input is paused."""
    max_output: Annotated[int, Meta(ge=1024, le=1 << 31)] = 1 << 20
    """Buffered output in bytes above which the connection is aborted."""
    subscriber_queue: Annotated[int, Meta(ge=1, le=1 << 16)] = 64
    """Stream messages held per subscriber while it is not reading; the oldest snapshots
    are dropped (and counted) beyond this."""
    batch: Annotated[int, Meta(ge=1, le=1 << 20)] = 512
    """Requests the server handles per event-loop iteration, over all connections."""

    def __post_init__(self) -> None:
        _check_addr(self.addr)


class MetricsConfig(_Section, frozen=True):
    """The Prometheus endpoint (served by the oracle)."""

    addr: str = "127.0.0.1:9411"
    """Address of the oracle's /metrics and /healthz, host:port."""

    def __post_init__(self) -> None:
        _check_addr(self.addr)


class OracleConfig(_Section, frozen=True):
    """The watchdog (services/oracle). Every rule is documented in docs/oracle.md."""

    poll_hz: Annotated[float, Meta(ge=200, le=10_000)] = 250.0
    """Polls per second, on absolute deadlines."""
    exit_when_physics_lost_s: Annotated[float, Meta(ge=0, le=3600)] = 0.0
    """Exit (status 3) once the physics, seen alive, has not beaten for this long; 0: never.
    Under docker compose a crashed physics container comes back with a fresh /dev/shm, and
    this makes the oracle restart into it (ops/engs/engs.toml sets 5 s)."""
    heartbeat_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 1.0
    """A running process whose heartbeat is older than this is DEAD."""
    startup_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 30.0
    """A process still STARTING may go this long without a beat (CuPy start-up)."""
    output_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 0.5
    """Physics telemetry or orchestrator state older than this, while the heartbeat is
    fresh, makes the writer FROZEN (tick counter stopped, or a seqlock left odd)."""
    sync_limit_s: Annotated[float, Meta(gt=0, le=10)] = 0.010
    """Staleness limit of dopamine and norepinephrine (seed 003 GAP-022: 10 ms)."""
    serotonin_sync_limit_s: Annotated[float, Meta(gt=0, le=10)] = 0.050
    """Soft staleness limit of serotonin (seed 003 GAP-022: 50 ms)."""
    pause_limit_s: Annotated[float, Meta(gt=0, le=10)] = 0.050
    """Staleness above which COGNITIVE_PAUSE is raised (seed 003 GAP-022: 50 ms)."""
    pause_clear_states: Annotated[int, Meta(ge=1, le=1_000_000)] = 10
    """COGNITIVE_PAUSE clears after this many consecutive fresh states."""
    log_interval_s: Annotated[float, Meta(gt=0, le=3600)] = 1.0
    """At most one log line per this interval for each repeating warning."""
    scram_energy_per_node_max: PosFloat = 1.0e6
    """SCRAM when the field energy V = Σ|Ψ|² per node exceeds this (field units²)."""
    scram_growth_factor: Annotated[float, Meta(gt=1)] = 100.0
    """SCRAM when V grows by more than this factor within ``scram_growth_window_s``."""
    scram_growth_window_s: Annotated[float, Meta(gt=0, le=3600)] = 1.0
    """Window of the energy-growth SCRAM rule, s."""
    scram_growth_floor_per_node: PosFloat = 1.0
    """The growth test applies only from an energy per node at least this large."""
    scram_clear_s: Annotated[float, Meta(gt=0, le=3600)] = 1.0
    """SCRAM clears after this long of healthy telemetry."""
    scram_clear_ratio: Annotated[float, Meta(gt=0, le=1)] = 0.5
    """Healthy means V per node at most this fraction of the bound (hysteresis)."""
    atp_exhausted_below: Annotated[float, Meta(ge=0, le=1)] = 0.05
    """Raise ATP_EXHAUSTED below this ATP ratio (GAP-022: 5 %)."""
    atp_clear_above: Annotated[float, Meta(ge=0, le=1)] = 0.10
    """Clear ATP_EXHAUSTED at or above this ATP ratio."""
    panic_above: Annotated[float, Meta(ge=0, le=1)] = 0.95
    """Raise PANIC above this norepinephrine level (GAP-022: 0.95)."""
    panic_clear_below: Annotated[float, Meta(ge=0, le=1)] = 0.85
    """Clear PANIC below this norepinephrine level."""
    unstable_window_cycles: Annotated[int, Meta(ge=8, le=100_000)] = 500
    """Longest run of control cycles the empirical instability test fits."""
    unstable_min_run_cycles: Annotated[int, Meta(ge=3, le=100_000)] = 20
    """Shortest run of visibly moving cycles the instability test judges."""
    unstable_growth_ratio: Annotated[float, Meta(gt=1)] = 2.0
    """Exponential step growth over the run that counts as divergence."""
    unstable_min_step: PosFloat = 1.0e-4
    """Mean |Δ(D, S, N)| per cycle below which steps are noise, not divergence."""
    unstable_bound_eps: Annotated[float, Meta(gt=0, lt=0.5)] = 1.0e-3
    """A level within this of 0 or 1 is pinned at a bound."""
    unstable_clear_cycles: Annotated[int, Meta(ge=1, le=1_000_000)] = 100
    """Clear the empirical UNSTABLE after this many states with no level pinned and no
    divergent run."""
    anhedonia_below: Annotated[float, Meta(gt=0, le=1)] = 0.1
    """Anhedonia when the moving average of D stays below this (seed 003 §9.1: 0.1) for
    ``anhedonia_cycles`` states."""
    anhedonia_cycles: Annotated[int, Meta(ge=1, le=100_000_000)] = 1000
    """Control cycles the moving average of D must stay low (seed 003 §9.1: > 1000)."""
    anhedonia_ma_cycles: Annotated[int, Meta(ge=1, le=100_000)] = 100
    """Length of the moving average of D, in control cycles."""
    anhedonia_rearm_above: Annotated[float, Meta(gt=0, le=1)] = 0.15
    """A new anhedonia episode needs the moving average back above this first."""
    mania_switches_per_s: PosFloat = 1.0
    """Context-switch rate (orchestrator counter) above which mania is declared."""
    mania_window_s: Annotated[float, Meta(gt=0, le=3600)] = 10.0
    """Window over which the context-switch rate is measured, s."""
    mania_clear_ratio: Annotated[float, Meta(gt=0, le=1)] = 0.5
    """Mania ends when the rate falls below this fraction of the threshold."""
    mania_cooldown_s: Annotated[float, Meta(ge=0, le=86400)] = 30.0
    """At most one serotonin boost request per this interval."""

    def __post_init__(self) -> None:
        # (lower, higher): each hysteresis band and limit pair must be ordered.
        for lo, hi in (
            ("atp_exhausted_below", "atp_clear_above"),
            ("panic_clear_below", "panic_above"),
            ("sync_limit_s", "serotonin_sync_limit_s"),
            ("sync_limit_s", "pause_limit_s"),
            ("anhedonia_below", "anhedonia_rearm_above"),
            ("unstable_min_run_cycles", "unstable_window_cycles"),
        ):
            if not getattr(self, lo) <= getattr(self, hi):
                raise ValueError(
                    f"`{lo}` = {getattr(self, lo)} must not exceed `{hi}` = {getattr(self, hi)}"
                )


class Config(_Section, frozen=True):
    """The whole configuration of one instance."""

    instance: Instance = "engs"
    """Instance name: the region is /dev/shm/engs-<instance>; several instances can share
    a host. Flag: ``--instance``."""
    shm: ShmConfig = msgspec.field(default_factory=ShmConfig)
    physics: PhysicsConfig = msgspec.field(default_factory=PhysicsConfig)
    orchestrator: OrchestratorConfig = msgspec.field(default_factory=OrchestratorConfig)
    signals: SignalsConfig = msgspec.field(default_factory=SignalsConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    oracle: OracleConfig = msgspec.field(default_factory=OracleConfig)

    def __post_init__(self) -> None:
        if len(self.physics.areas) > self.shm.max_areas:
            raise ValueError(
                f"{len(self.physics.areas)} physics areas exceed shm.max_areas="
                f"{self.shm.max_areas} - at `$.physics.areas`"
            )


def _check_addr(addr: str) -> None:
    try:
        parse_addr(addr)
    except ValueError as exc:
        raise ValueError(f"`addr`: {exc}") from None


#: Environment variables and the field each overrides.
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "ENGS_INSTANCE": ("instance",),
    "ENGS_SIGNAL_ADDR": ("signals", "addr"),
    "ENGS_METRICS_ADDR": ("metrics", "addr"),
    "ENGS_BACKEND": ("physics", "backend"),
}


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, tuple[tuple[str, ...], Any]] | None = None,
) -> Config:
    """Load the configuration.

    ``path``: a TOML file; if None, ``ENGS_CONFIG`` from ``env`` names one, else only
    the defaults apply. ``env`` defaults to ``os.environ``. ``overrides`` maps a source
    label (e.g. ``"--instance"``) to (field path, value), applied last.
    """
    env = os.environ if env is None else env
    source = "the defaults"
    data: dict[str, Any] = {}
    if path is None and env.get("ENGS_CONFIG"):
        path = env["ENGS_CONFIG"]
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    applied: dict[tuple[str, ...], str] = {}
    for var, field in ENV_OVERRIDES.items():
        if env.get(var):
            _set(data, field, env[var])
            applied[field] = var
    for label, (field, value) in (overrides or {}).items():
        _set(data, field, value)
        applied[field] = label
    try:
        return msgspec.convert(data, Config, strict=True)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        origins = [
            f"{label} sets `$.{'.'.join(field)}`"
            for field, label in applied.items()
            if _names_field(msg, field)
        ]
        where = "; ".join(origins) if origins else f"in {source}"
        raise ConfigError(f"invalid configuration: {msg} ({where})") from None


def _names_field(msg: str, field: tuple[str, ...]) -> bool:
    """Whether a msgspec error message points at ``field`` (directly, or through a
    ``__post_init__`` message that names the leaf and its parent's path)."""
    full = "`$." + ".".join(field) + "`"
    parent = "`$" + "".join("." + f for f in field[:-1]) + "`"
    return full in msg or (f"`{field[-1]}`" in msg and parent in msg)


def _set(data: dict[str, Any], field: tuple[str, ...], value: Any) -> None:
    node = data
    for key in field[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"`$.{key}` must be a table to set `$.{'.'.join(field)}`")
        node = child
    node[field[-1]] = value
