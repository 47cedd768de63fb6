"""The CFL guard: a bound on the stiffness of v² L_g and the speed it allows.

The leapfrog step of ∂²Ψ/∂t² = v² L_g Ψ (ARCHITECTURE §3) is stable while
h² · λ_max(−v² L_g) < 4; the guard keeps it at <= 1 (ω_max h <= 1, a factor-2 margin
in frequency, and the shadow Hamiltonian of :mod:`reductions` stays within 25 % of the
plain one). Derivation (docs/physics.md §CFL):

* −L_g is symmetric positive semi-definite with diagonal
  D_x = Σ_k (g_k(x) + g_k(x − e_k)) and off-diagonal row sum |·| equal to D_x, so by
  Gershgorin every eigenvalue lies in [0, 2 max_x D_x];
* with per-node speeds the operator is V² (−L_g), V = diag(v_x); it is similar to the
  symmetric V (−L_g) V (real spectrum) and Gershgorin on its rows gives
  λ_max <= max_x 2 v_x² D_x;
* D_x <= Σ_k G_{a(x),k} + Σ_k max(G_{a(x),k}, G_{p(a),k}), with G_{a,k} the largest
  conductance of direction k in area a and p(a) the area before a along axis 0 (only
  the k = 0 edge of x − e_0 can belong to another area). With one area, or taking
  maxima over the whole lattice, this is the familiar λ_max <= 4 Σ_k max g_k, and
  4d for g ≡ 1, which is exact for even sizes.

So area a is safe when (v0 s_a)² h² Λ_a <= 1, Λ_a = 2 (Σ_k G_{a,k} + Σ_k max(G_{a,k},
G_{p(a),k})). G is measured from the conductances the next force evaluation uses (the
plasticity sweep reports it), so the guard is exact, not one tick late.
"""

from __future__ import annotations

from typing import Any

import numpy as np

F64Array = np.ndarray[Any, np.dtype[np.float64]]


def previous_area(n_areas: int) -> np.ndarray[Any, np.dtype[np.intp]]:
    """p(a): the area holding the row just before area a's first row (periodic)."""
    return (np.arange(n_areas) - 1) % n_areas


def area_lambda_bound(
    g_area_max: F64Array,
    prev: np.ndarray[Any, np.dtype[np.intp]],
    scratch: F64Array,
    out: F64Array,
) -> F64Array:
    """Λ_a, the Gershgorin bound on λ_max(−L_g) over area a's nodes, in 1/spacing².

    ``g_area_max``: float64, shape ``(d, n_areas)``: G_{a,k} = max over area a of g_k
    (dimensionless). ``prev``: :func:`previous_area`. ``scratch``: float64 like
    ``g_area_max``. ``out``: float64, shape ``(n_areas,)``. Allocates nothing.
    """
    np.take(g_area_max, prev, axis=1, out=scratch)  # G_{p(a),k}
    np.maximum(scratch, g_area_max, out=scratch)  # max(G_a, G_p)
    np.add(scratch, g_area_max, out=scratch)  # + G_a
    np.sum(scratch, axis=0, out=out)
    np.multiply(out, 2.0, out=out)
    return out


def global_lambda_bound(g: np.ndarray[Any, np.dtype[Any]]) -> float:
    """The lattice-wide bound 4 Σ_k max_x g_k(x); ``g`` shape ``(d, *shape)``."""
    d = g.shape[0]
    return 4.0 * float(sum(float(g[k].max()) for k in range(d)))


def speed_limit(lambda_bound: F64Array, v0: float, h: float, out: F64Array) -> F64Array:
    """Largest speed factor s with (v0 s)² h² Λ <= 1, per area (float64, dimensionless).

    An area with Λ = 0 (impossible while g >= g_min > 0) gets no limit (inf)."""
    with np.errstate(divide="ignore"):
        np.sqrt(lambda_bound, out=out)
        np.multiply(out, v0 * h, out=out)
        np.divide(1.0, out, out=out)
    return out
