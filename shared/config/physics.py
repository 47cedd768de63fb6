"""``[physics]``: the 1 kHz physics engine (services/physics)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from engs.shared.config.base import (
    PosFloat,
    Section,
)
from engs.shared.messages import AreaName


class PhysicsConfig(Section, frozen=True):
    """The 1 kHz physics engine (services/physics)."""

    tick_hz: Annotated[float, Meta(gt=0, le=100_000)] = 1000.0
    """Ticks per second (seed 003 GAP-022: 1 kHz); dt = 1/tick_hz."""
    backend: Literal["auto", "numpy", "numba", "cupy"] = "auto"
    """Array backend: ``auto`` probes the GPU with a tiny kernel, else uses the fused CPU
    kernels (``numba``), else the NumPy twin, saying why at each step; ``cupy`` and
    ``numba`` require theirs."""
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
    sched_fifo_priority: Annotated[int, Meta(ge=0, le=99)] | None = None
    """Run the physics loop's thread under SCHED_FIFO at this priority (1–99; needs
    CAP_SYS_NICE or an rtprio limit; a failure is logged and counted, never fatal). 0: the
    normal scheduler. None (auto): priority 10 when at least two CPUs are usable and the
    process is allowed, else the normal scheduler, logged, not a failure — on a 2-core
    host it cuts missed deadlines from ~1 % to ~0.005 % (docs/benchmarks.md)."""
    cpu_affinity: list[Annotated[int, Meta(ge=0)]] | None = None
    """Pin the physics to these CPUs (e.g. an isolated core); under ``engs up`` the
    orchestrator and oracle then run on the other CPUs. None: no pinning."""
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
