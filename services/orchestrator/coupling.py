"""The GAP-005 coupling matrix: stability analysis and the exact linear step.

Owns the linear part of the global ENGS dynamics (seed 003 GAP-005)::

    dx/dt = M (x - x_eq) + F_nl(x) + I_ext,    x = [D, S, N, A]

with A the ATP *ratio* (reserve / capacity). The seed writes ``dN/dt = M·N``, which
relaxes every level to zero; the deviation form ``M(x - x_eq)`` relaxes to the
baselines (ARCHITECTURE §6.2). M comes from :class:`engs.shared.config.CouplingConfig`; the
ATP row is converted from NMU/s to the ratio scale there, and scaled here by the
runtime cost multiplier (host calibration x thermal x lattice size, see
:mod:`engs.services.orchestrator.metabolism`), because consumption in NMU scales with it.

Stability is judged by eigenvalues (spectral abscissa < 0). The seed's Gershgorin
test is only sufficient and fails on the seed's own numbers (row D: 0.15 < 0.10 +
0.08, ARCHITECTURE §6.3); it is reported per row as a diagnostic together with the
transient amplification peak max_t ‖e^{Mt}‖₂, which says how far a non-normal but
stable M can push a deviation before it decays.

The linear part is integrated exactly: x⁺ = x_eq + Φ (x - x_eq) with Φ = e^{M·dt},
computed once per cost scale (:class:`LinearStep`). F_nl and I_ext are added by
:mod:`engs.services.orchestrator.engs` as an explicit Euler term and as impulses.

Writer and reader: the orchestrator's control cycle (single thread).
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np

from engs.shared.config import CouplingConfig

#: Names of the state components, in matrix order.
STATE = ("D", "S", "N", "A")
_TAYLOR_ORDER = 18


def expm(a: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The matrix exponential e^a of a small square float64 matrix.

    Scaling and squaring: a / 2^s has 1-norm ≤ 0.5, where a degree-18 Taylor series is
    exact to well below one ulp (0.5^19 / 19! ≈ 2e-23); then square s times. numpy has
    no expm and scipy is not a dependency; the matrices here are 4x4.
    """
    n = a.shape[0]
    norm = float(np.abs(a).sum(axis=0).max())
    s = max(0, math.ceil(math.log2(norm / 0.5))) if norm > 0.5 else 0
    b = a / float(2**s)
    term = np.eye(n)
    out = np.eye(n)
    for k in range(1, _TAYLOR_ORDER + 1):
        term = term @ b / k
        out = out + term
    for _ in range(s):
        out = out @ out
    return out


class StabilityReport(msgspec.Struct, frozen=True):
    """Stability of one coupling matrix (all rates in s⁻¹)."""

    eigenvalues: list[tuple[float, float]]
    """(real, imaginary) parts, ordered by decreasing real part."""
    spectral_abscissa: float
    """max Re λ(M); the matrix is stable iff this is < 0."""
    gershgorin_margins: list[float]
    """Per row: |m_ii| - Σ_{j≠i} |m_ij| (with m_ii < 0). Negative: the row fails the
    seed's diagonal-dominance test, which proves nothing either way."""
    transient_peak: float
    """max_t ‖e^{Mt}‖₂ (≥ 1; inf when unstable)."""
    transient_peak_t_s: float
    """The time of that peak, s."""

    @property
    def stable(self) -> bool:
        return self.spectral_abscissa < 0.0

    @property
    def gershgorin_ok(self) -> bool:
        return all(m > 0.0 for m in self.gershgorin_margins)


def gershgorin_margins(m: np.ndarray[Any, np.dtype[np.float64]]) -> list[float]:
    """Per-row diagonal-dominance margin, the seed's (insufficient) stability test."""
    out = []
    for i in range(m.shape[0]):
        off = float(np.abs(m[i]).sum() - abs(m[i, i]))
        out.append(-float(m[i, i]) - off)
    return out


def transient_peak(m: np.ndarray[Any, np.dtype[np.float64]]) -> tuple[float, float]:
    """max_t ‖e^{Mt}‖₂ over t ≥ 0 and the t where it occurs.

    A stable M has ‖e^{Mt}‖ → 0, so the maximum lies within a few slowest time
    constants: scan a geometric grid from 1e-3 of the fastest to 20 of the slowest time
    constant, then refine the best bracket by golden-section search on log t.
    """
    eig = np.linalg.eigvals(m)
    abscissa = float(eig.real.max())
    if abscissa >= 0.0:
        return math.inf, math.inf
    fastest = float(np.abs(eig).max())
    t_grid = np.geomspace(1e-3 / fastest, 20.0 / -abscissa, 257)

    def norm_at(t: float) -> float:
        return float(np.linalg.norm(expm(m * t), 2))

    values = [norm_at(float(t)) for t in t_grid]
    i = int(np.argmax(values))
    if values[i] <= 1.0:
        return 1.0, 0.0  # contractive from t = 0 (a normal stable matrix)
    lo = math.log(float(t_grid[max(i - 1, 0)]))
    hi = math.log(float(t_grid[min(i + 1, len(t_grid) - 1)]))
    g = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(60):
        a = hi - g * (hi - lo)
        b = lo + g * (hi - lo)
        if norm_at(math.exp(a)) >= norm_at(math.exp(b)):
            hi = b
        else:
            lo = a
    t = math.exp((lo + hi) / 2.0)
    return max(norm_at(t), values[i]), t


def analyse(m: np.ndarray[Any, np.dtype[np.float64]]) -> StabilityReport:
    """Eigenvalues, Gershgorin margins and transient peak of ``m`` (not cheap: ~10 ms;
    call at load and when the cost scale changes, never per cycle)."""
    eig = sorted(np.linalg.eigvals(m), key=lambda z: (-z.real, -z.imag))
    peak, t_peak = transient_peak(m)
    return StabilityReport(
        eigenvalues=[(float(z.real), float(z.imag)) for z in eig],
        spectral_abscissa=float(max(z.real for z in eig)),
        gershgorin_margins=gershgorin_margins(m),
        transient_peak=peak,
        transient_peak_t_s=t_peak,
    )


def spectral_abscissa(m: np.ndarray[Any, np.dtype[np.float64]]) -> float:
    """max Re λ(m): the stability test (< 0)."""
    return float(np.linalg.eigvals(m).real.max())


class LinearStep:
    """x_eq + e^{M dt}(x - x_eq) for the current cost scale.

    While the scaled matrix is unstable (a slow host or a hot GPU can scale the ATP
    drains past what the configured couplings tolerate), the step falls back to the
    diagonal of M: every level decays to its baseline on its own, which is stable by
    construction (the config requires positive clearance rates), and the caller raises
    ``Cause.UNSTABLE`` (:attr:`stable`).
    """

    def __init__(self, cfg: CouplingConfig, capacity_nmu: float, dt: float) -> None:
        self._cfg = cfg
        self._capacity = capacity_nmu
        self._dt = dt
        self.x_eq = cfg.x_eq
        self.cost_scale = math.nan
        self.stable = True
        self.abscissa = math.nan
        self.matrix = np.zeros((4, 4))
        # Φ as nested tuples of Python floats: a 4x4 mat-vec in plain float arithmetic
        # is faster than a numpy call at this size and its rounding is fixed (no BLAS
        # kernel choice), which the replay tool's bit-for-bit claim relies on.
        self._phi: tuple[tuple[float, ...], ...] = ()
        self.set_cost_scale(1.0)

    def set_cost_scale(self, scale: float) -> bool:
        """Rebuild M and Φ for a new cost multiplier; returns whether M is stable."""
        if scale == self.cost_scale:
            return self.stable
        self.cost_scale = scale
        self.matrix = self._cfg.matrix(self._capacity, scale)
        self.abscissa = spectral_abscissa(self.matrix)
        self.stable = self.abscissa < 0.0
        used = self.matrix if self.stable else np.diag(np.diag(self.matrix))
        phi = expm(used * self._dt)
        self._phi = tuple(tuple(float(v) for v in row) for row in phi)
        return self.stable

    def advance(self, d: float, s: float, n: float, a: float) -> tuple[float, float, float, float]:
        """The state after one cycle of the linear dynamics alone."""
        eq = self.x_eq
        e0, e1, e2, e3 = d - eq[0], s - eq[1], n - eq[2], a - eq[3]
        p0, p1, p2, p3 = self._phi
        return (
            eq[0] + p0[0] * e0 + p0[1] * e1 + p0[2] * e2 + p0[3] * e3,
            eq[1] + p1[0] * e0 + p1[1] * e1 + p1[2] * e2 + p1[3] * e3,
            eq[2] + p2[0] * e0 + p2[1] * e1 + p2[2] * e2 + p2[3] * e3,
            eq[3] + p3[0] * e0 + p3[1] * e1 + p3[2] * e2 + p3[3] * e3,
        )


def restoring(x: float, x_eq: float, gain: float) -> float:
    """F_nl for one level: -ρ·e·|e|, e = x - x_eq.

    The seed asks for "quadratic non-linearities ... to clamp values within
    physiological bounds" but the terms it then lists (the gates η(D), λ(S), s_eff(N))
    are outputs to the physics, not terms of dx/dt. This term is quadratic, zero with
    zero Jacobian at x_eq (so the eigenvalue analysis of M is unchanged) and strictly
    dissipative: its contribution to the seed's Lyapunov derivative is -ρ|e|³ ≤ 0.
    """
    e = x - x_eq
    return -gain * e * abs(e)
