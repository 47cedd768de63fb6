"""Reductions of one tick: energy, Hamiltonian, costs, per-area activity and gradient.

Every tick both backends produce the same float64 vector of sums (layout ``S_*``
below; the GPU's fused kernel accumulates it with atomics, the NumPy twin with
ufunc reductions), and :func:`finish` turns it into the reported quantities, on the
host, in one place. Definitions (units: Ψ field units, time s, length spacings):

``energy``        V = Σ_x |Ψ|², field² (seed 003 §3.1: the dopamine TD value).
``hamiltonian``   H = Σ_x [½ Re(conj(Π_{n−½}) Π_{n+½})] / s_x² + ½ v0² Σ_{x,k} g_k |∇_kΨ|²,
                  field²/s². The kinetic term is the *staggered* product of the two
                  half-step velocities, ½|Π_n|² − (h²/8)|F_n|² at integer time; with it,
                  H is exactly conserved by the undamped leapfrog with fixed
                  coefficients (for q'' = −Kq: E = ½ p_{n−½}·p_{n+½} + ½ qᵀKq is invariant),
                  not only up to an O(h²) oscillation. The 1/s_x² weight (s_x the area's
                  speed factor after the CFL clamp) makes it the conserved energy when
                  areas have different speeds; it is the textbook ½Σ|Π|² + ½v²Σg|∇Ψ|²
                  when all s_x = 1. Areas with s = 0 carry no kinetic term.
``kinetic_cost``  Σ_{x,k} |∇_kΨ|² · h, field²·s: seed 003 §2.2's "Cost ∝ Σ|∇Ψ|²" integrated
                  over the tick (so sums over ticks do not depend on tick_hz).
``plasticity work`` W = Σ_{x,k} |g'_k − g_k| (dimensionless, per tick).
``metabolic_cost`` w_wave · kinetic_cost + w_plast · W, in cost units; the weights
                  default to seed 003 §7.1's relative costs 0.1 (wave propagation) and
                  1.5 (plasticity update). The orchestrator converts to ATP.
``area_activity`` mean |Ψ|² over each area's nodes, field².
``area_metric_grad`` mean over each area's nodes of
                  |∇g|(x) = sqrt(Σ_j Σ_k (g_k(x+e_j) − g_k(x))²): the Frobenius norm of
                  the forward-difference gradient of the diagonal metric (seed 003 §6.3's
                  |∇g_ij|, the frontier signal), per spacing. O(d²) reads per node, so
                  it is recomputed every ``metric_grad_every`` ticks (default 10, i.e.
                  at the orchestrator's 100 Hz) and held in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from engs.services.physics.lattice import Lattice

# Layout of the per-tick sums vector (float64), shared with the CUDA kernel.
S_V = 0  # Σ |Ψ|²
S_T = 1  # Σ |Ψ|² log2 |Ψ|²  (exact path; the sampled path overrides it on the host)
S_KIN = 2  # Σ |Π|² / s²
S_SHADOW = 3  # Σ |F|² / s²
S_POT = 4  # Σ g |∇Ψ|²
S_GRAD2 = 5  # Σ |∇Ψ|²
S_DG = 6  # Σ |Δg|
NSUM = 7


@dataclass(slots=True)
class StepResult:
    """What one tick produced; one instance per field, overwritten each tick.

    Per-tick counts: ``cfl_clamps`` (areas whose speed the CFL guard clamped this
    tick) and ``nonfinite`` (nodes whose Ψ or Π is NaN/Inf after this tick; 0 when the
    field is finite). Arrays are float64, shape ``(n_areas,)``.
    """

    tick: int = 0
    energy: float = 0.0
    hamiltonian: float = 0.0
    entropy_bits: float = 0.0
    entropy_err_bits: float = 0.0
    kinetic_cost: float = 0.0
    metabolic_cost: float = 0.0
    plasticity_work: float = 0.0
    cfl_clamps: int = 0
    nonfinite: int = 0
    area_activity: np.ndarray[Any, np.dtype[np.float64]] = field(
        default_factory=lambda: np.zeros(0)
    )
    area_metric_grad: np.ndarray[Any, np.dtype[np.float64]] = field(
        default_factory=lambda: np.zeros(0)
    )
    speed_factor: np.ndarray[Any, np.dtype[np.float64]] = field(default_factory=lambda: np.zeros(0))


def hamiltonian(sums: Any, v0: float, h: float) -> float:
    """H from the sums vector (see the module docstring), field²/s²."""
    kinetic = 0.5 * sums[S_KIN] - (h * h / 8.0) * sums[S_SHADOW]
    return float(kinetic + 0.5 * v0 * v0 * sums[S_POT])


class FieldSums:
    """Node-wise reductions of the NumPy twin, with their preallocated buffers."""

    def __init__(self, xp: ModuleType, lat: Lattice) -> None:
        self.xp = xp
        self.lat = lat
        fshape = (*lat.shape[:-1], 2 * lat.shape[-1])
        self.sq = xp.zeros(fshape, dtype=xp.float32)  # (re², im²) interleaved
        self.e = xp.zeros(lat.shape, dtype=xp.float32)  # |Ψ|²
        self.rows = xp.zeros(lat.shape[0], dtype=xp.float64)
        self.indicator = xp.asarray(lat.area_indicator())
        self.finite = xp.zeros(lat.shape, dtype=bool)

    def energy_rows(self, psi: Any) -> Any:
        """``e = |Ψ|²`` per node and its per-row sums (float64 ``(shape[0],)``)."""
        xp = self.xp
        f = psi.view(xp.float32)
        xp.multiply(f, f, out=self.sq)
        xp.add(self.sq[..., 0::2], self.sq[..., 1::2], out=self.e)
        xp.sum(self.sq.reshape(self.lat.shape[0], -1), axis=1, dtype=xp.float64, out=self.rows)
        return self.rows

    def area_sums(self, rows: Any, out: Any) -> Any:
        """Per-area sums of per-row values (float64 ``(n_areas,)``), one matmul."""
        return self.xp.matmul(self.indicator, rows, out=out)

    def weighted_square_sum(self, a: Any, row_weights: Any) -> float:
        """Σ_x |a(x)|² w_row(x): ``a`` complex64 lattice-shaped, ``row_weights`` float64
        ``(shape[0],)`` (on the same array module)."""
        xp = self.xp
        f = a.view(xp.float32)
        xp.multiply(f, f, out=self.sq)
        xp.sum(self.sq.reshape(self.lat.shape[0], -1), axis=1, dtype=xp.float64, out=self.rows)
        return float(xp.dot(self.rows, row_weights))

    def count_nonfinite(self, *arrays: Any) -> int:
        """Nodes where any of ``arrays`` (complex64, lattice shape) is NaN or Inf.

        O(N): called only when a cheap sum was already non-finite."""
        xp = self.xp
        bad = self.finite
        bad.fill(True)
        for a in arrays:
            f = a.view(xp.float32)
            ok = xp.isfinite(f[..., 0::2]) & xp.isfinite(f[..., 1::2])  # failure path only
            xp.logical_and(bad, ok, out=bad)
        return int(bad.size - int(xp.count_nonzero(bad)))


class MetricGradient:
    """Per-area mean of |∇g| (module docstring), NumPy twin of ``metric_grad``."""

    def __init__(self, xp: ModuleType, lat: Lattice) -> None:
        self.xp = xp
        self.lat = lat
        self.diff = xp.zeros((lat.ndim, *lat.shape), dtype=xp.float32)
        self.acc = xp.zeros(lat.shape, dtype=xp.float32)
        self.tmp = xp.zeros(lat.shape, dtype=xp.float32)
        self.rows = xp.zeros(lat.shape[0], dtype=xp.float64)
        self.indicator = xp.asarray(lat.area_indicator())
        self.area_nodes = xp.asarray(lat.area_nodes.astype(np.float64))

    def compute(self, g: Any, out: Any) -> Any:
        """``out`` (float64 ``(n_areas,)``) = mean over each area of |∇g|, 1/spacing.

        ``g``: float32, shape ``(d, *shape)``."""
        xp, lat = self.xp, self.lat
        self.acc.fill(0.0)
        for j in range(lat.ndim):
            s = lat.axis_slices(j, lead=1)
            xp.subtract(g[s.hi], g[s.lo], out=self.diff[s.lo])  # g_k(x+e_j) - g_k(x)
            xp.subtract(g[s.first], g[s.last], out=self.diff[s.last])
            xp.multiply(self.diff, self.diff, out=self.diff)
            xp.sum(self.diff, axis=0, out=self.tmp)
            xp.add(self.acc, self.tmp, out=self.acc)
        xp.sqrt(self.acc, out=self.acc)
        xp.sum(self.acc.reshape(lat.shape[0], -1), axis=1, dtype=xp.float64, out=self.rows)
        xp.matmul(self.indicator, self.rows, out=out)
        xp.divide(out, self.area_nodes, out=out)
        return out
