"""The lattice's normal modes, as the leapfrog sees them, and where the drive sits among them.

Owns the computed mode spectrum the physics defaults are chosen from (issue 13; docs/physics.md
§13). Pure functions of the configuration; nothing here runs in the 1 kHz loop.

**Spectrum.** On the periodic lattice of shape (n_0, …, n_{d−1}) with uniform conductance g
and wave speed v (lattice spacings / s), −L_g has the eigenvalues
4 g Σ_k sin²(π m_k / n_k), m_k = 0 … n_k − 1 (the discrete Fourier basis), so the continuous
mode frequencies are ω_m = 2 v √g (Σ_k sin²(π m_k / n_k))^½. The Störmer–Verlet step (h = 1/tick_hz)
of q'' = −ω²q rotates by θ with cos θ = 1 − (ωh)²/2 per step, so the frequency the integrator
actually rings at is ω̃ = (2/h) arcsin(ωh/2) (Hairer, Lubich & Wanner, *Geometric Numerical
Integration*, 2nd ed., §I.5 and XIII.2, numerical dispersion of the leapfrog). A damping rate γ
(Π' = −γΠ, s⁻¹) gives each mode an energy linewidth (FWHM) of γ rad/s = γ/2π Hz.

**Which modes a drive excites.** The sustained drive is A_a e^{iωt} over area a's slab of
axis 0, uniform across every other axis; in the integrated form (docs/physics.md §2) it forces
Φ = Ψ − S through v² L_g S, whose Fourier components are those of the slab pattern along axis
0 only: the forced modes are m = (m_0, 0, …, 0). Noise and stimuli excite all of them.

**The ceiling.** The CFL guard (:mod:`.cfl`) keeps v² h² λ_max(−L_g) ≤ 1 for *any* metric and
speed gain, i.e. ωh ≤ 1, so no mode the integrator can hold rings above
ω̃ = (2/h) arcsin(½) = π/(3h): tick_hz / 6 (166.7 Hz at 1 kHz). A drive between that ceiling and
the Nyquist frequency tick_hz / 2 is off-resonant for every conductance the metric can learn and
every wave speed norepinephrine can set; below the ceiling the distance depends on g and v.

Why this matters (issue 13): with a drive of 10 Hz, the default 64-row lattice at v₀ = 100 and
γ₀ = 0.1 s⁻¹ (Q ≈ 630) had mode 6 at 9.4 Hz, and the speed gain 1 + N² (v₀ … 2v₀) sweeps a mode
through every frequency above the fundamental (1.56 Hz): the field rang at ~10x its input's
energy and the arousal level selected which mode it rang in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

F64Array = np.ndarray[Any, np.dtype[np.float64]]


def ring_eigenvalues(n: int) -> F64Array:
    """Eigenvalues 4 sin²(π m / n), m = 0 … n − 1, of −L on a ring of n nodes (g = 1),
    in 1/spacing² (float64, shape (n,))."""
    m = np.arange(n, dtype=np.float64)
    return 4.0 * np.sin(np.pi * m / n) ** 2


def leapfrog_hz(omega: F64Array | float, h: float) -> F64Array:
    """The frequency (Hz) the leapfrog with step ``h`` (s) rings at for a continuous
    angular frequency ``omega`` (rad/s); NaN where ωh > 2 (unstable: no oscillation)."""
    x = np.asarray(omega, dtype=np.float64) * h / 2.0
    with np.errstate(invalid="ignore"):
        theta = 2.0 * np.arcsin(np.where(x <= 1.0, x, np.nan))
    out: F64Array = theta / (2.0 * math.pi * h)
    return out


def mode_frequencies_hz(
    shape: tuple[int, ...] | list[int],
    speed: float,
    h: float,
    g: float = 1.0,
    forced_axes: tuple[int, ...] | None = None,
) -> F64Array:
    """The distinct non-zero mode frequencies (Hz, ascending, float64) of the lattice
    ``shape`` at wave speed ``speed`` (spacings / s), uniform conductance ``g``, as the
    leapfrog with step ``h`` (s) rings them. ``forced_axes``: only modes that vary
    along these axes (the others at m = 0); None: all modes."""
    axes = tuple(range(len(shape))) if forced_axes is None else forced_axes
    lam = np.zeros(1)
    for k in axes:
        lam = np.add.outer(lam, ring_eigenvalues(int(shape[k]))).ravel()
    lam = np.unique(np.round(lam[lam > 1e-12], 12))
    omega = speed * math.sqrt(g) * np.sqrt(lam)
    return leapfrog_hz(omega, h)


def spectrum_ceiling_hz(tick_hz: float) -> float:
    """The highest frequency any mode can ring at under the CFL guard (ωh ≤ 1), for any
    metric and speed gain: (2/h)·arcsin(½) / 2π = tick_hz / 6."""
    return float(leapfrog_hz(tick_hz, 1.0 / tick_hz))


@dataclass(frozen=True)
class DriveDetuning:
    """How far the drive sits from the forced modes over a range of wave speeds."""

    drive_hz: float
    nearest_mode: int
    """Index (1-based, ascending) of the forced mode whose swept band is nearest."""
    band_lo_hz: float
    band_hi_hz: float
    """The band that mode sweeps as the wave speed runs over the range."""
    distance_hz: float
    """Distance from the drive to the nearest swept band (0: inside one)."""
    linewidth_hz: float
    """γ/2π for the largest damping considered."""
    ceiling_hz: float
    """:func:`spectrum_ceiling_hz`: no mode rings above it, whatever g and v."""

    @property
    def linewidths(self) -> float:
        """distance / linewidth (inf when undamped)."""
        if self.linewidth_hz <= 0.0:
            return math.inf if self.distance_hz > 0.0 else 0.0
        return self.distance_hz / self.linewidth_hz


def drive_detuning(
    shape: tuple[int, ...] | list[int],
    wave_speed: float,
    tick_hz: float,
    drive_hz: float,
    damping: float,
    speed_range: tuple[float, float] = (1.0, 2.0),
    g_range: tuple[float, float] = (1.0, 1.0),
) -> DriveDetuning:
    """The drive's distance from every mode it forces (axis-0 modes, module docstring)
    while the speed gain runs over ``speed_range`` (default 1 … 2: 1 + N², N ∈ [0, 1])
    and the conductance over ``g_range``; each mode's frequency rises monotonically with
    v√g, so it sweeps the band between its frequencies at the two ends (capped at the
    CFL ceiling, which the guard enforces by clamping the speed). ``damping``: the
    largest γ (s⁻¹) considered, for the linewidth."""
    h = 1.0 / tick_hz
    ceiling = spectrum_ceiling_hz(tick_hz)
    lo = mode_frequencies_hz(shape, wave_speed * speed_range[0], h, g_range[0], (0,))
    hi = mode_frequencies_hz(shape, wave_speed * speed_range[1], h, g_range[1], (0,))
    lo = np.minimum(np.nan_to_num(lo, nan=ceiling), ceiling)
    hi = np.minimum(np.nan_to_num(hi, nan=ceiling), ceiling)
    dist = np.where(drive_hz < lo, lo - drive_hz, np.where(drive_hz > hi, drive_hz - hi, 0.0))
    i = int(np.argmin(dist))
    return DriveDetuning(
        drive_hz=drive_hz,
        nearest_mode=i + 1,
        band_lo_hz=float(lo[i]),
        band_hi_hz=float(hi[i]),
        distance_hz=float(dist[i]),
        linewidth_hz=damping / (2.0 * math.pi),
        ceiling_hz=ceiling,
    )
