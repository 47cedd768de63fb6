"""Hebbian plasticity of the edge conductances (the diagonal metric).

    dg_k/dt = η(D) · Re(Ψ(x) Ψ*(x+e_k)) − λ(S) · (g_k − 1),   g_k ∈ [g_min, g_max]

with η = η0 · area_plasticity and λ = λ0 · area_elasticity taken from the area of the
edge's origin node x (ARCHITECTURE §3). Integrated by one explicit Euler step per tick
with the field Ψ_{n+1} of that tick, then clamped:

    g' = clamp(g + (hη · c − hλ · (g − 1)), g_min, g_max)

Departures from seed 003 (docs/physics.md, "Seed notes"):

* §4.1 writes the restoring force as ``+λ(S)(g − δ)``: that pushes g *away* from the
  identity, exponentially (ARCHITECTURE §6 item 1). Here it is ``−λ(g − 1)``.
* §4.1 puts a minus on the plasticity term (``−η Re(Ψ_i Ψ_j*)``), §8.2 writes
  ``g += −learning_rate · gate · correlation`` — with g a conductance, a minus would make
  correlated neighbours *weaker* (anti-Hebbian). "Fire together, wire together" needs
  ``+η``; correlated neighbours strengthen (tested).

Units: g dimensionless; η in 1/(s · field²), λ in 1/s, h in s. Both backends evaluate
the same expression in the same order (CUDA: ``hebbian`` in :mod:`cuda_source`).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any


def correlation(xp: ModuleType, psi: Any, neighbour: Any, out: Any, prod: Any) -> Any:
    """``out = Re(Ψ(x) conj(Ψ(x+e_k)))`` (float32, field units²).

    ``psi``, ``neighbour``: complex64, C-contiguous, lattice shape. ``prod``: float32
    scratch shaped like ``psi.view(float32)``. Works on the interleaved (re, im) float
    view, so it is two ufunc calls and allocates nothing.
    """
    a = psi.view(xp.float32)
    b = neighbour.view(xp.float32)
    xp.multiply(a, b, out=prod)
    xp.add(prod[..., 0::2], prod[..., 1::2], out=out)
    return out


def hebbian_update(
    xp: ModuleType,
    g: Any,
    corr: Any,
    eta_h: Any,
    lam_h: Any,
    g_min: float,
    g_max: float,
    out: Any,
    tmp: Any,
) -> Any:
    """``out = clamp(g + (eta_h · corr − lam_h · (g − 1)), g_min, g_max)``.

    ``g``: float32, lattice shape (one direction). ``corr``: float32, lattice shape,
    overwritten. ``eta_h`` = h·η, ``lam_h`` = h·λ: float32 per-row arrays of shape
    ``(shape[0], 1, ..., 1)`` (per area, broadcast) or scalars. ``out``, ``tmp``:
    float32, lattice shape; ``out`` must not alias ``g``.
    """
    xp.multiply(corr, eta_h, out=corr)  # hη c
    xp.subtract(g, xp.float32(1.0), out=tmp)
    xp.multiply(tmp, lam_h, out=tmp)  # hλ (g - 1)
    xp.subtract(corr, tmp, out=corr)
    xp.add(g, corr, out=out)
    xp.clip(out, xp.float32(g_min), xp.float32(g_max), out=out)
    return out
