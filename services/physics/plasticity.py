"""Hebbian plasticity of the edge conductances (the diagonal metric), with consolidation.

    dg_k/dt = η(D) · Re(Ψ(x) Ψ*(x+e_k)) − λ(S) · (g_k − c_k),   g_k ∈ [g_min, g_max]
    dc_k/dt = κ · (g_k − c_k) − μ · (c_k − 1)

g is the working conductance, c its consolidated value (the "existing, consolidated
pathways" of seed 003 §4.2): the elastic force of serotonin pulls g back to c, not to the
identity, and c follows g slowly (κ) and forgets slowly (μ) — synaptic consolidation as in
Zenke, Agnes & Gerstner 2015 (Nat Commun 6:6922; a weight anchored to a reference that
follows it) and the two-variable synapse of Benna & Fusi 2016 (Nat Neurosci 19:1697). With
S high the metric resists deformation and keeps what was consolidated; with S → 0 (λ → 0)
nothing holds g: ongoing activity potentiates every edge it reaches until the learned
contrast is gone (the S = 0 lesion, seed 003 GAP-029). η = η0 · area_plasticity and
λ = λ0 · area_elasticity are taken from the area of the edge's origin node x
(ARCHITECTURE §3); κ and μ are global (physics.consolidation_rate, .forgetting_rate).
One explicit Euler step per tick with the field Ψ_{n+1} of that tick, g clamped, then c
updated in place from the new g:

    g' = clamp(g + (hη · corr − hλ · (g − c)), g_min, g_max)
    c' = (c + hκ · (g' − c)) − hμ · (c − 1)

At equilibrium under a steady correlation, g − 1 = (η corr / λ)(1 + κ/μ): the
consolidated part is κ/μ times the working one (2.5 at the defaults).

Departures from seed 003 (docs/physics.md, "Seed notes"; SN-77):

* §4.1 writes the restoring force as ``+λ(S)(g − δ)``: that pushes g *away* from the
  identity, exponentially (ARCHITECTURE §6 item 1). Here it is ``−λ(g − c)``, towards the
  consolidated metric: pulled towards the identity, a higher S erased memories faster and
  S = 0 remembered best — the opposite of §4.2 and of the lesion prediction (issue 13).
* §4.1 puts a minus on the plasticity term (``−η Re(Ψ_i Ψ_j*)``), §8.2 writes
  ``g += −learning_rate · gate · correlation`` — with g a conductance, a minus would make
  correlated neighbours *weaker* (anti-Hebbian). "Fire together, wire together" needs
  ``+η``; correlated neighbours strengthen (tested).

Units: g, c dimensionless; η in 1/(s · field²), λ, κ, μ in 1/s, h in s. Both backends
evaluate the same expressions in the same order (CUDA: ``edge_step`` in
:mod:`cuda_source`).
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
    anchor: Any,
    kappa_h: float,
    mu_h: float,
) -> Any:
    """``out = clamp(g + (eta_h · corr − lam_h · (g − c)), g_min, g_max)``, then the
    consolidated metric ``anchor`` (c) in place: ``c ← (c + κh (out − c)) − μh (c − 1)``.

    ``g``: float32, lattice shape (one direction). ``corr``: float32, lattice shape,
    overwritten. ``eta_h`` = h·η, ``lam_h`` = h·λ: float32 per-row arrays of shape
    ``(shape[0], 1, ..., 1)`` (per area, broadcast) or scalars. ``out``, ``tmp``:
    float32, lattice shape; ``out`` must not alias ``g``. ``anchor``: float32, lattice
    shape (c of this direction), updated in place. ``kappa_h`` = h·κ, ``mu_h`` = h·μ.
    """
    xp.multiply(corr, eta_h, out=corr)  # hη c
    xp.subtract(g, anchor, out=tmp)
    xp.multiply(tmp, lam_h, out=tmp)  # hλ (g - c)
    xp.subtract(corr, tmp, out=corr)
    xp.add(g, corr, out=out)
    xp.clip(out, xp.float32(g_min), xp.float32(g_max), out=out)
    xp.subtract(out, anchor, out=tmp)
    xp.multiply(tmp, xp.float32(kappa_h), out=tmp)  # hκ (g' - c)
    xp.subtract(anchor, xp.float32(1.0), out=corr)
    xp.multiply(corr, xp.float32(mu_h), out=corr)  # hμ (c - 1)
    xp.add(anchor, tmp, out=anchor)
    xp.subtract(anchor, corr, out=anchor)
    return out
