"""The conductance-weighted Laplacian L_g and the edge differences it is built from.

    (L_g Ψ)(x) = Σ_k g_k(x) (Ψ(x+e_k) − Ψ(x)) + g_k(x−e_k) (Ψ(x−e_k) − Ψ(x))

(ARCHITECTURE §3; the diagonal metric g_k(x) of seed 003 §4.1 lives on the edge from x
to x+e_k). Written as a flux divergence, L_g Ψ = Σ_k φ_k(x) − φ_k(x−e_k) with the edge
flux φ_k = g_k ∇_k Ψ and ∇_k Ψ(x) = Ψ(x+e_k) − Ψ(x): each edge is visited once and the
operator is symmetric by construction (Σ_x conj(χ) L_g Ψ = −Σ_{x,k} g_k conj(∇_k χ) ∇_k Ψ),
which is what makes the leapfrog energy-conserving (:mod:`reductions`).

Functions take the array module ``xp`` (numpy or cupy) and write into ``out`` buffers;
none allocates. Arrays: Ψ complex64, lattice shape, field units; g float32, shape
``(d, *shape)``, dimensionless.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from engs.services.physics.lattice import Lattice


def shift_forward(xp: ModuleType, lat: Lattice, a: Any, axis: int, out: Any) -> Any:
    """``out(x) = a(x + e_axis)`` (periodic). ``a``, ``out``: lattice-shaped, same dtype."""
    s = lat.axis_slices(axis)
    xp.copyto(out[s.lo], a[s.hi])
    xp.copyto(out[s.last], a[s.first])
    return out


def forward_difference(xp: ModuleType, lat: Lattice, psi: Any, axis: int, out: Any) -> Any:
    """``out = ∇_axis Ψ = Ψ(x + e_axis) − Ψ(x)`` (complex64, field units per spacing)."""
    s = lat.axis_slices(axis)
    xp.subtract(psi[s.hi], psi[s.lo], out=out[s.lo])
    xp.subtract(psi[s.first], psi[s.last], out=out[s.last])
    return out


def subtract_backward(xp: ModuleType, lat: Lattice, flux: Any, axis: int, acc: Any) -> Any:
    """``acc(x) −= flux(x − e_axis)``: the incoming half of the flux divergence."""
    s = lat.axis_slices(axis)
    xp.subtract(acc[s.hi], flux[s.lo], out=acc[s.hi])
    xp.subtract(acc[s.first], flux[s.last], out=acc[s.first])
    return acc


def laplacian(
    xp: ModuleType, lat: Lattice, psi: Any, g: Any, out: Any, diff: Any, flux: Any
) -> Any:
    """``out = L_g Ψ`` (complex64, field units per spacing²).

    ``diff``, ``flux``: complex64 lattice-shaped scratch. This is the reference form;
    the tick uses the fused sweep of :mod:`integrator`, which computes the same sum in
    the same order and also the plasticity update from the same differences.
    """
    for k in range(lat.ndim):
        forward_difference(xp, lat, psi, k, diff)
        xp.multiply(diff, g[k], out=flux)
        if k == 0:
            xp.copyto(out, flux)
        else:
            xp.add(out, flux, out=out)
        subtract_backward(xp, lat, flux, k, out)
    return out
