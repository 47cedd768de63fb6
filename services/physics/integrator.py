"""The leapfrog (Störmer–Verlet, kick–drift–kick) step of the damped, driven wave field.

    ∂²Ψ/∂t² = v² L_g Ψ − γ ∂Ψ/∂t + I(x, t)            (ARCHITECTURE §3, seed 003 §5.1)

State at integer time n: Ψ_n, Π_n (the wave velocity), and the cached force
F_n = v² L_g Ψ_n. One tick is four named steps, as in jax-md's ``velocity_verlet``:

    half_kick   Π ← e^{−γh/2} Π + (h/2) F_n         (then the noise kick)
    drift       Ψ ← Ψ + h Π + ΔS                    (ΔS: drive increment + stimulus)
    force       F_{n+1} = v² L_g Ψ_{n+1}            (fused: plasticity, edge sums)
    half_kick   Π ← e^{−γh/2} Π + (h/2) F_{n+1}

Damping: each half kick first applies the *exact* flow of Π' = −γΠ over h/2 (the
factor e^{−γh/2}), then the force kick. This is a splitting into an exactly integrated
dissipative part and the symplectic leapfrog (a conformal-symplectic scheme,
McLachlan & Quispel 2001): with γ = 0 the factor is exactly 1.0f and the step *is* the
symplectic leapfrog, bit for bit; with γ > 0 the symplectic form contracts by e^{−γh}
per step, exactly as the continuous flow does.

Drive: I(x, t) enters in integrated form, as the displacement ΔS = S(t_{n+1}) − S(t_n)
of the area's sustained oscillation S = A e^{iωt} (so Ψ = Φ + S with Φ a damped wave
forced by v² L_g S, i.e. I = S'' + γS'). A force-form drive would give the uniform
mode, which has no restoring force, a secular drift of order ωA/γ at every switch-on;
this form keeps it bounded by A. A translation of Ψ is symplectic, so the step stays
symplectic. The one-shot stimulus is a displacement too.

Force cache: the first half kick reuses F_n from the previous tick's force step (one
stencil sweep per tick). Coefficient changes published at a tick boundary therefore
act on the force from the second half kick on; each half kick is still a symplectic
map, so the step stays symplectic for any coefficient schedule.

The fused force step (:func:`force_sweep`) also does, from the same edge differences,
the Hebbian update of every edge (:mod:`plasticity`, into ``g_next``) and the edge
sums the reductions need — exactly what the CUDA kernel ``force_kick_plasticity``
does per node (:mod:`cuda_source`), in the same order of operations.

All functions take ``xp`` and write in place. Arrays: Ψ, Π, F complex64 lattice shape
(Ψ field units, Π field/s, F field/s²); g float32 ``(d, *shape)``; per-row
coefficient views float32/complex64 ``(shape[0], 1, ..., 1)`` (per area, broadcast).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from engs.services.physics.coefficients import COL, NCOEF
from engs.services.physics.laplacian import subtract_backward
from engs.services.physics.lattice import Lattice
from engs.services.physics.plasticity import correlation, hebbian_update


class RowTable:
    """The per-area tick table expanded to rows of axis 0, with broadcastable views.

    ``rows``: float32, shape ``(shape[0], NCOEF)``, refreshed each tick by
    :meth:`load` (one ``take``). The attributes are views into it, shaped
    ``(shape[0], 1, ..., 1)`` so they broadcast over a row's nodes.
    """

    def __init__(self, xp: ModuleType, lat: Lattice) -> None:
        self.xp = xp
        self.area_of_row = xp.asarray(lat.area_of_row.astype(np.intp))
        self.rows = xp.zeros((lat.shape[0], NCOEF), dtype=xp.float32)
        rv = lat.row_view_shape()

        def col(name: str) -> Any:
            return self.rows[:, COL[name]].reshape(rv)

        def ccol(name: str) -> Any:
            c = COL[name]
            return self.rows[:, c : c + 2].view(xp.complex64).reshape(rv)

        self.c2 = col("C2")
        self.damp = col("DAMP")
        self.eta_h = col("ETA_H")
        self.lam_h = col("LAM_H")
        self.noise = col("NOISE")
        self.inv_s2 = self.rows[:, COL["INV_S2"]]  # (shape[0],): weights of row sums
        self.shift = ccol("SHIFT_RE")

    def load(self, table: Any) -> None:
        """Expand ``table`` (float32, ``(n_areas, NCOEF)``, on ``xp``) to rows."""
        self.xp.take(table, self.area_of_row, axis=0, out=self.rows)


def half_kick(xp: ModuleType, pi: Any, force: Any, damp: Any, half_h: float, tmp: Any) -> Any:
    """``Π ← damp · Π + (h/2) F``; ``damp``: float32 per-row e^{−γh/2}; ``tmp``:
    complex64 lattice scratch."""
    xp.multiply(pi, damp, out=pi)
    xp.multiply(force, xp.float32(half_h), out=tmp)
    xp.add(pi, tmp, out=pi)
    return pi


def noise_kick(xp: ModuleType, pi: Any, xi: Any, sigma_rows: Any) -> Any:
    """``Π ← Π + σ_row ξ``: the Langevin kick, ``xi`` from :mod:`noise` (``xi`` is
    overwritten with the scaled kick)."""
    xp.multiply(xi, sigma_rows, out=xi)
    xp.add(pi, xi, out=pi)
    return pi


def drift(xp: ModuleType, psi: Any, pi: Any, h: float, shift: Any | None, tmp: Any) -> Any:
    """``Ψ ← Ψ + h Π`` then ``+ shift`` (per row: the drive increment and the one-shot
    stimulus, :func:`coefficients.derive_tick_table`) when given."""
    xp.multiply(pi, xp.float32(h), out=tmp)
    xp.add(psi, tmp, out=psi)
    if shift is not None:
        xp.add(psi, shift, out=psi)
    return psi


class SweepScratch:
    """Preallocated buffers of :func:`force_sweep` (lattice shape ``shape``)."""

    def __init__(self, xp: ModuleType, lat: Lattice) -> None:
        shape = lat.shape
        fshape = (*shape[:-1], 2 * shape[-1])
        self.lap = xp.zeros(shape, dtype=xp.complex64)
        self.nb = xp.zeros(shape, dtype=xp.complex64)
        self.flux = xp.zeros(shape, dtype=xp.complex64)
        self.corr = xp.zeros(shape, dtype=xp.float32)
        self.tmp = xp.zeros(shape, dtype=xp.float32)
        self.prod = xp.zeros(fshape, dtype=xp.float32)
        self.row_max = xp.zeros((lat.ndim, shape[0]), dtype=xp.float32)
        self.area_row_max = xp.zeros((lat.ndim, lat.n_areas, shape[0]), dtype=xp.float32)
        self.indicator32 = xp.asarray(lat.area_indicator().astype(np.float32))


def force_sweep(
    xp: ModuleType,
    lat: Lattice,
    psi: Any,
    g: Any,
    g_next: Any,
    pi: Any,
    force: Any,
    rt: RowTable,
    half_h: float,
    g_min: float,
    g_max: float,
    s: SweepScratch,
    g_area_max: Any,
    anchor: Any,
    kappa_h: float,
    mu_h: float,
) -> tuple[float, float, float]:
    """The fused force step: F = v² L_g Ψ, the second half kick, the Hebbian update.

    Reads Ψ (after the drift), g, Π; writes ``force``, ``pi``, ``g_next`` (the next
    conductances, clamped) and ``g_area_max`` (float32 ``(d, n_areas)``: G_{a,k}, the
    largest new g_k of each area, for the next tick's CFL bound); updates ``anchor``
    (float32 ``(d, *shape)``, the consolidated metric c) in place, with ``kappa_h`` = hκ
    and ``mu_h`` = hμ (:func:`plasticity.hebbian_update`).

    Returns the edge sums (float, accumulated in float32 per direction):
    ``pot`` = Σ_{x,k} g_k |∇_kΨ|², ``grad2`` = Σ_{x,k} |∇_kΨ|² (field²), and
    ``dg`` = Σ_{x,k} |g'_k − g_k| (the plasticity work of the tick).
    """
    pot = grad2 = dg = 0.0
    for k in range(lat.ndim):
        sl = lat.axis_slices(k)
        nb = s.nb
        xp.copyto(nb[sl.lo], psi[sl.hi])  # nb = Ψ(x + e_k)
        xp.copyto(nb[sl.last], psi[sl.first])
        correlation(xp, psi, nb, out=s.corr, prod=s.prod)  # Re(Ψ Ψ*(x+e_k))
        xp.subtract(nb, psi, out=nb)  # nb = ∇_k Ψ
        xp.multiply(nb, g[k], out=s.flux)  # φ_k = g_k ∇_k Ψ
        pot += float(xp.vdot(nb, s.flux).real)
        grad2 += float(xp.vdot(nb, nb).real)
        if k == 0:
            xp.copyto(s.lap, s.flux)
        else:
            xp.add(s.lap, s.flux, out=s.lap)
        subtract_backward(xp, lat, s.flux, k, s.lap)
        hebbian_update(
            xp, g[k], s.corr, rt.eta_h, rt.lam_h, g_min, g_max, g_next[k], s.tmp,
            anchor[k], kappa_h, mu_h,
        )  # fmt: skip
        xp.subtract(g_next[k], g[k], out=s.tmp)
        xp.abs(s.tmp, out=s.tmp)
        dg += float(xp.sum(s.tmp, dtype=xp.float64))
        xp.max(g_next[k].reshape(lat.shape[0], -1), axis=1, out=s.row_max[k])
    # G_{a,k}: max over the rows of each area (rows of other areas multiply to 0, and
    # g >= g_min > 0, so the max picks the area's own rows).
    xp.multiply(s.indicator32, s.row_max[:, None, :], out=s.area_row_max)
    xp.max(s.area_row_max, axis=2, out=g_area_max)
    xp.multiply(s.lap, rt.c2, out=force)
    half_kick(xp, pi, force, rt.damp, half_h, s.flux)
    return pot, grad2, dg
