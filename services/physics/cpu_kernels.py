"""The fused CPU backend: one tick in one pass over memory, compiled by numba.

The NumPy twin (:mod:`integrator`) runs a tick as ~60 ufunc calls, each a full pass
over whole arrays: it moves ~14× the bytes a tick must move. Here the same arithmetic
is one compiled loop nest (numba, LLVM, vectorised for the host CPU) that walks the
lattice once, run by run (a *run* is a contiguous stretch of nodes: a line of the last
axis, or the last few axes together where the last is short — :func:`segment_tables`),
with the half kick, noise kick, drift and shift of a slab running one slab (one index
of axis 0) ahead of the force step, so every neighbour the stencil reads has already
drifted and is still in cache:

    drift slab S−1, drift slab 0,
    for s in 0 … S−1:  drift slab s+1 (unless done);  force slab s

The force step of a run is d passes (one per axis, each a vectorised loop over the
run: neighbours in other runs at a constant offset, neighbours inside the run from a
small table, or — for a line — the two periodic ends peeled) accumulating L_g Ψ and the
edge sums in a run scratch, then passes for the force, the second half kick and the per-node
sum terms, then a reduction of the scratch in float64. Per-area maxima of g' are
integer maxima of the float bits (g' ≥ g_min > 0, and a NaN outranks every number).

The per-node expressions keep the NumPy twin's operation order and are compiled
without fast-math, so Ψ, Π, F, g and c agree with the twin to the last bit wherever
the noise is off; with noise on, the noise and entropy terms come from this
module's float32 transcendentals (≤ 2 ulp, as NumPy's SIMD loops are), and the float64
sums are added in another order. ``tests/services/physics/test_cpu_kernels.py``
states and checks the tolerance on every dimensionality 1–9.

Why numba (docs/physics.md, "The fused CPU backend"): it compiles this loop nest from
Python source at the speed of C, with no compiler on the user's machine (LLVM ships in
the wheel), caches the machine code on disk, and is maintained with NumPy's release
cadence; Cython or a C extension need a toolchain at install time, and the host build
of the CUDA source (:mod:`host_kernels`) is sequential and calls libm per node.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from engs.services.physics.coefficients import COL
from engs.services.physics.fused import Executor, FusedField, HostSums
from engs.services.physics.lattice import Lattice
from engs.services.physics.reductions import NSUM, S_DG, S_GRAD2, S_KIN, S_POT, S_SHADOW, S_T, S_V

_jit = numba.njit(error_model="numpy", cache=True, nogil=True)
# Everything a tick calls per line is inlined into fused_tick (numba IR inlining): a call
# between separately compiled numba functions passes every array as seven scalars and
# costs ~1 µs per line in calls alone, more than the line's arithmetic on short lines.
_inline = numba.njit(inline="always", error_model="numpy", cache=True)
# Only the float64 sums may be reassociated (so that they vectorise); never the
# per-node arithmetic, which must keep the twin's order.
_reduce = numba.njit(error_model="numpy", cache=True, nogil=True, fastmath={"reassoc"})

# ---- branch-free float32 transcendentals -------------------------------------
# The tick needs, per node, ln, sin and cos (the Box–Muller noise, :mod:`noise`) and
# log₂ (the entropy term e·log₂ e, :mod:`entropy`). Called from libm they are opaque
# calls: the loop around them stays scalar, and they alone cost more than a tick's
# memory budget (the sequential host build of the CUDA source: 4.2 ms per 256×256
# tick). Written here as straight-line float32 polynomials (Cephes ``logf``, ``sinf``,
# ``cosf``: S. L. Moshier, *Methods and Programs for Mathematical Functions*, 1989)
# with integer bit manipulation, they inline and LLVM vectorises them with the loop.
# Measured against float64 references: ln ≤ 1.0 ulp, sin and cos ≤ 1.5 ulp — NumPy's
# float32 SIMD loops, which the twin uses, are within 1.8 and 1.4 ulp on the same
# inputs; so the two backends' noise and entropy terms agree to a few ulp, node by
# node (``tests/services/physics/test_cpu_kernels.py`` checks the bound).
# Domain: ln_f32 and log2_f32 take positive normal float32 (the callers pass
# max(e, FLT_MIN) and u₁ ≥ 2⁻²⁴); sincos_f32 takes 0 ≤ x ≤ 10⁴ (callers: θ ∈ [0, 2π]).
# These functions live in this module, not their own: numba's on-disk cache keys a
# function on its own file only, so an inlined helper from another module could change
# without invalidating the cached kernels.

F32 = np.float32
U32 = np.uint32
MANT_MASK, SQRT2_MANT = U32(0x7FFFFF), U32(0x3504F3)  # mantissa bits; those of √2
ONE_BITS, HALF_BITS, EXP_SHIFT = U32(0x3F800000), U32(0x3F000000), U32(23)
LN2_HI, LN2_LO = F32(0.693359375), F32(-2.12194440e-4)  # ln 2 = HI + LO, HI exact
LOG2E_M1 = F32(0.44269504088896340736)  # log₂e − 1
TWO_OVER_PI = F32(0.6366197723675814)
# π/2 = PIO2_1 + PIO2_2 + PIO2_3 (Cody–Waite: q · PIO2_1 exact for q < 2⁸)
PIO2_1, PIO2_2, PIO2_3 = F32(1.5703125), F32(4.837512969970703125e-4), F32(7.54978995489188216e-8)


def _f32_bits(typingctx: Any, x: Any) -> Any:
    """The IEEE-754 bit pattern of a float32, as uint32 (a bitcast, no memory)."""
    if x != types.float32:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(types.float32), codegen


def _bits_f32(typingctx: Any, x: Any) -> Any:
    """The float32 whose bit pattern is the low 32 bits of integer ``x`` (numba widens
    integer arithmetic to 64 bits; the inverse of :func:`f32_bits`)."""
    if x not in types.integer_domain:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        v = args[0]
        if x.bitwidth > 32:
            v = builder.trunc(v, ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())

    return types.float32(x), codegen


# (typed Any: numba's intrinsic wrapper hides the call signature from mypy)
f32_bits: Any = intrinsic(_f32_bits)
bits_f32: Any = intrinsic(_bits_f32)


@_inline
def _log_parts(x: Any) -> tuple[Any, Any]:
    """(e, ln m) with x = 2^e · m, m ∈ [√½, √2), both float32 (Cephes ``logf``)."""
    b = f32_bits(x)
    mant = b & MANT_MASK
    big = mant > SQRT2_MANT
    m = bits_f32(mant | (HALF_BITS if big else ONE_BITS))  # m ∈ [√½, √2)
    e = numba.float32(numba.int32(b >> EXP_SHIFT)) - numba.float32(127.0)
    e = e + (numba.float32(1.0) if big else numba.float32(0.0))
    t = m - numba.float32(1.0)
    z = t * t
    p = numba.float32(7.0376836292e-2)
    p = p * t - numba.float32(1.1514610310e-1)
    p = p * t + numba.float32(1.1676998740e-1)
    p = p * t - numba.float32(1.2420140846e-1)
    p = p * t + numba.float32(1.4249322787e-1)
    p = p * t - numba.float32(1.6668057665e-1)
    p = p * t + numba.float32(2.0000714765e-1)
    p = p * t - numba.float32(2.4999993993e-1)
    p = p * t + numba.float32(3.3333331174e-1)
    y = p * t * z - numba.float32(0.5) * z
    return e, t + y  # ln m = t + y, |y| small against t


@_inline
def ln_f32(x: Any) -> Any:
    """ln x for positive normal float32 x (module docstring)."""
    e, lm = _log_parts(x)
    return lm + (e * LN2_LO + e * LN2_HI)


@_inline
def log2_f32(x: Any) -> Any:
    """log₂ x for positive normal float32 x."""
    e, lm = _log_parts(x)
    return (lm * LOG2E_M1 + lm) + e


@_inline
def sincos_f32(x: Any) -> tuple[Any, Any]:
    """(sin x, cos x) of a float32 0 <= x <= 10⁴ (Cephes ``sinf``/``cosf`` polynomials)."""
    q = numba.int32(x * TWO_OVER_PI + numba.float32(0.5))
    qf = numba.float32(q)
    r = ((x - qf * PIO2_1) - qf * PIO2_2) - qf * PIO2_3  # |r| <= π/4
    z = r * r
    s = numba.float32(-1.9515295891e-4)
    s = s * z + numba.float32(8.3321608736e-3)
    s = s * z - numba.float32(1.6666654611e-1)
    sn = r + r * z * s
    c = numba.float32(2.443315711809948e-5)
    c = c * z - numba.float32(1.388731625493765e-3)
    c = c * z + numba.float32(4.166664568298827e-2)
    cs = (numba.float32(1.0) - numba.float32(0.5) * z) + z * z * c
    n = q & 3
    odd = (n & 1) == 1
    sv = cs if odd else sn
    cv = sn if odd else cs
    sv = -sv if n >= 2 else sv
    cv = -cv if (n + 1) & 2 else cv  # n = 1 or 2
    return sv, cv


# ---- the tick -----------------------------------------------------------------

C2, DAMP, ETA_H, LAM_H = COL["C2"], COL["DAMP"], COL["ETA_H"], COL["LAM_H"]
SHIFT_RE, SHIFT_IM, NOISE, INV_S2 = COL["SHIFT_RE"], COL["SHIFT_IM"], COL["NOISE"], COL["INV_S2"]
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
FLT_MIN = np.float32(np.finfo(np.float32).tiny)
TWO_PI_F32 = np.float32(2.0 * np.pi)
TWO_POW_M23 = np.float32(2.0**-23)
# Every array index in a hot loop is uint64: numba then emits no negative-index
# wrap-around check, which would stop LLVM from vectorising the loop.
U = numba.uint64
U0, U1 = np.uint64(0), np.uint64(1)

# rows of the line scratch: L_g Ψ and the edge sums (accumulated over the axes: rows
# < N_ACC), the node sums, the noise of the drift; rows _POT … _SHADOW are summed
_LX, _LY, _POT, _GRAD2, _DG, _E, _ELOG, _KIN, _SHADOW, _NX, _NY = range(11)
N_ACC, N_SCRATCH = 5, 11


@_inline
def _complex_normal(base: Any, first: Any, n: int, re: Any, im: Any) -> None:
    """noise.complex_normal of nodes first … first + n − 1 into re[:n], im[:n]
    (splitmix64 + Box–Muller, the twin's operation order). Two loops: the 64-bit
    integer one would otherwise set the float loop's vector width to 4 lanes."""
    for j in range(U(n)):
        z = base + (first + j) * GOLDEN
        z = (z ^ (z >> U(30))) * MIX1
        z = (z ^ (z >> U(27))) * MIX2
        z = z ^ (z >> U(31))
        re[j] = numba.float32(z >> U(41))
        im[j] = numba.float32((z >> U(17)) & U(0x7FFFFF))
    for j in range(U(n)):
        r = re[j] + numba.float32(0.5)
        r = r * TWO_POW_M23
        r = -ln_f32(r)
        r = np.sqrt(r)
        th = im[j] * TWO_POW_M23
        th = th * TWO_PI_F32
        s, c = sincos_f32(th)
        re[j] = c * r
        im[j] = s * r


@_inline
def _drift_line(psi: Any, pi: Any, force: Any, base: int, n: int, coef_a: Any, scr: Any,
                noise_base: Any, noise_on: bool, shift_on: bool, h: Any,
                half_h: Any) -> None:  # fmt: skip
    """Half kick, noise kick, drift, shift of nodes [base, base + n) (one area)
    (cuda_source node_kick_drift, same operand order)."""
    damp, sigma = coef_a[DAMP], coef_a[NOISE]
    sre, sim = coef_a[SHIFT_RE], coef_a[SHIFT_IM]
    ub = U(base)
    nx, ny = scr[_NX], scr[_NY]
    if noise_on:  # the noise first, in its own loops: they vectorise better alone
        _complex_normal(noise_base, ub, n, nx, ny)
    for j in range(U(n)):
        i = ub + j
        x, y = i + i, i + i + U1
        px = pi[x] * damp
        py = pi[y] * damp
        px = px + force[x] * half_h
        py = py + force[y] * half_h
        if noise_on:
            px = px + nx[j] * sigma
            py = py + ny[j] * sigma
        qx = psi[x] + px * h
        qy = psi[y] + py * h
        if shift_on:
            qx = qx + sre
            qy = qy + sim
        pi[x] = px
        pi[y] = py
        psi[x] = qx
        psi[y] = qy


@_inline
def _drift_slab(psi: Any, pi: Any, force: Any, coef: Any, seg: Any, first: int, stop: int,
                scr: Any, noise_base: Any, noise_on: bool, shift_on: bool, h: Any,
                half_h: Any) -> None:  # fmt: skip
    """Kick-drift segments ``first … stop − 1`` (one slab)."""
    for k in range(first, stop):
        _drift_line(psi, pi, force, seg[k, 0], seg[k, 1], coef[seg[k, 3]], scr, noise_base,
                    noise_on, shift_on, h, half_h)  # fmt: skip


@_inline
def _edge(j: Any, i: Any, ip: Any, im: Any, psi: Any, gk: Any, gnk: Any, ck: Any, lx: Any,
          ly: Any, pot: Any, grad2: Any, dg: Any, eta_h: Any, lam_h: Any, kap_h: Any,
          mu_h: Any, gmin: Any, gmax: Any) -> Any:  # fmt: skip
    """Edge k of node i (cuda_source edge_step, same operand order): accumulates into
    the line scratch at j, writes g'_k and c_k; returns the bits of g'_k."""
    qx, qy = psi[i + i], psi[i + i + U1]
    qpx, qpy = psi[ip + ip], psi[ip + ip + U1]
    dpx = qpx - qx
    dpy = qpy - qy
    dmx = qx - psi[im + im]
    dmy = qy - psi[im + im + U1]
    g0, gm = gk[i], gk[im]
    ax = lx[j] + dpx * g0
    ay = ly[j] + dpy * g0
    lx[j] = ax - dmx * gm
    ly[j] = ay - dmy * gm
    s2 = dpx * dpx + dpy * dpy
    pot[j] = pot[j] + g0 * s2
    grad2[j] = grad2[j] + s2
    corr = qx * qpx
    corr = corr + qy * qpy
    corr = corr * eta_h
    c = ck[i]
    t = g0 - c
    t = t * lam_h
    corr = corr - t
    gn = g0 + corr
    gn = gmin if gn < gmin else gn  # keeps NaN, like np.clip
    gn = gmax if gn > gmax else gn
    gnk[i] = gn
    u = gn - c
    u = u * kap_h
    w = c - numba.float32(1.0)
    w = w * mu_h
    cn = c + u
    ck[i] = cn - w
    dg[j] = dg[j] + abs(gn - g0)
    return f32_bits(gn)


@_inline
def _edges_inner(psi: Any, gk: Any, gnk: Any, ck: Any, scr: Any, base: int, n: int, off_p: int,
                 off_m: int, eta_h: Any, lam_h: Any, kap_h: Any, mu_h: Any, gmin: Any,
                 gmax: Any) -> Any:  # fmt: skip
    """Axis k < d−1 for a line: its ±e_k neighbours are whole lines at off_p, off_m."""
    lx, ly, pot, grad2, dg = scr[_LX], scr[_LY], scr[_POT], scr[_GRAD2], scr[_DG]
    top = numba.uint32(0)
    ub, up, um = U(base), U(off_p), U(off_m)
    for j in range(U(n)):
        b = _edge(j, ub + j, up + j, um + j, psi, gk, gnk, ck, lx, ly, pot, grad2, dg, eta_h,
                  lam_h, kap_h, mu_h, gmin, gmax)  # fmt: skip
        top = max(top, b)
    return top


@_inline
def _edges_table(psi: Any, gk: Any, gnk: Any, ck: Any, scr: Any, base: int, n: int, tab_p: Any,
                 tab_m: Any, eta_h: Any, lam_h: Any, kap_h: Any, mu_h: Any, gmin: Any,
                 gmax: Any) -> Any:  # fmt: skip
    """An axis inside a run of short axes: the ±e_k neighbour of the run's node j is its
    node ``tab_p[j]`` / ``tab_m[j]`` (periodic wrap included; :func:`segment_tables`)."""
    lx, ly, pot, grad2, dg = scr[_LX], scr[_LY], scr[_POT], scr[_GRAD2], scr[_DG]
    top = numba.uint32(0)
    ub = U(base)
    for j in range(U(n)):
        b = _edge(j, ub + j, ub + U(tab_p[j]), ub + U(tab_m[j]), psi, gk, gnk, ck, lx, ly, pot,
                  grad2, dg, eta_h, lam_h, kap_h, mu_h, gmin, gmax)  # fmt: skip
        top = max(top, b)
    return top


@_inline
def _edges_last(psi: Any, gk: Any, gnk: Any, ck: Any, scr: Any, ring: int, n_ring: int,
                start: int, m: int, eta_h: Any, lam_h: Any, kap_h: Any, mu_h: Any, gmin: Any,
                gmax: Any) -> Any:  # fmt: skip
    """The last (contiguous) axis for nodes [start, start + m) of the periodic ring
    [ring, ring + n_ring): the bulk vectorised, the ring's two ends peeled."""
    lx, ly, pot, grad2, dg = scr[_LX], scr[_LY], scr[_POT], scr[_GRAD2], scr[_DG]
    ring_u, start_u = U(ring), U(start)
    last = ring_u + U(n_ring) - U1
    lo, hi = start_u, start_u + U(m)  # bulk: nodes with both neighbours inside the ring
    top = numba.uint32(0)
    if lo == ring_u:
        top = _edge(U0, ring_u, ring_u + U1, last, psi, gk, gnk, ck, lx, ly, pot, grad2, dg,
                    eta_h, lam_h, kap_h, mu_h, gmin, gmax)  # fmt: skip
        lo += U1
    if hi == last + U1:
        b = _edge(last - start_u, last, ring_u, last - U1, psi, gk, gnk, ck, lx, ly, pot, grad2,
                  dg, eta_h, lam_h, kap_h, mu_h, gmin, gmax)  # fmt: skip
        top = max(top, b)
        hi -= U1
    for i in range(lo, hi):
        b = _edge(i - start_u, i, i + U1, i - U1, psi, gk, gnk, ck, lx, ly, pot, grad2, dg,
                  eta_h, lam_h, kap_h, mu_h, gmin, gmax)  # fmt: skip
        top = max(top, b)
    return top


@_inline
def _node_terms(psi: Any, pi: Any, force: Any, scr: Any, base: int, n: int, c2: Any, damp: Any,
                w: Any, half_h: Any) -> None:  # fmt: skip
    """F = c² L_g Ψ, the second half kick and the per-node sum terms of a line
    (cuda_source node_force, same operand order). Three loops, each writing few arrays:
    LLVM vectorises a loop only when it can check at run time that the arrays it writes
    overlap nothing else it touches, and gives up past a handful of such checks."""
    lx, ly, es, elog, kin, shadow = scr[_LX], scr[_LY], scr[_E], scr[_ELOG], scr[_KIN], scr[_SHADOW]
    ub = U(base)
    for j in range(U(n)):  # writes force and pi
        i = ub + j
        x, y = i + i, i + i + U1
        fx = lx[j] * c2
        fy = ly[j] * c2
        force[x] = fx
        force[y] = fy
        px = pi[x] * damp
        py = pi[y] * damp
        px = px + fx * half_h
        py = py + fy * half_h
        pi[x] = px
        pi[y] = py
    for j in range(U(n)):  # writes the sum terms
        i = ub + j
        x, y = i + i, i + i + U1
        qx, qy, px, py, fx, fy = psi[x], psi[y], pi[x], pi[y], force[x], force[y]
        es[j] = qx * qx + qy * qy
        kin[j] = (px * px + py * py) * w
        shadow[j] = (fx * fx + fy * fy) * w
    for j in range(U(n)):  # the logarithm alone
        e = es[j]
        elog[j] = log2_f32(max(e, FLT_MIN)) * e


@_reduce
def _line_sums(scr: Any, n: int, acc: Any) -> None:
    """acc[r] += Σ_j scr[r, j] in float64, for the summed scratch rows."""
    for row in range(_POT, _SHADOW + 1):
        r = scr[row]
        s = 0.0
        for j in range(U(n)):
            s += numba.float64(r[j])
        acc[row] += s


@_inline
def _force_segment(psi: Any, pi: Any, force: Any, g: Any, g_next: Any, anchor: Any,
                   coef_a: Any, nb_plus: Any, nb_minus: Any, tabs: Any, seg_k: Any,
                   n_run: int, scr: Any, acc: Any, gmax_bits: Any, half_h: Any, gmin: Any,
                   gmax: Any, kap_h: Any, mu_h: Any) -> None:  # fmt: skip
    """The force step of one segment (nodes ``start … start + m − 1`` of run ``line``,
    all in one area); its sums into ``acc``, its maxima of g' into ``gmax_bits``."""
    d, n_tab = g.shape[0], tabs.shape[0]
    n_outer = d - max(n_tab, 1)  # axes whose neighbours are whole runs
    start, m, line = seg_k[0], seg_k[1], seg_k[2]
    eta_h, lam_h = coef_a[ETA_H], coef_a[LAM_H]
    scr[:N_ACC, :m] = 0.0
    for k in range(n_outer):  # runs are whole segments when d > 1
        top = _edges_inner(psi, g[k], g_next[k], anchor[k], scr, start, m, nb_plus[line, k],
                           nb_minus[line, k], eta_h, lam_h, kap_h, mu_h, gmin, gmax)  # fmt: skip
        gmax_bits[k] = max(gmax_bits[k], top)
    if n_tab == 0:  # the run is one periodic line of the last axis
        top = _edges_last(psi, g[d - 1], g_next[d - 1], anchor[d - 1], scr, line * n_run, n_run,
                          start, m, eta_h, lam_h, kap_h, mu_h, gmin, gmax)  # fmt: skip
        gmax_bits[d - 1] = max(gmax_bits[d - 1], top)
    for q in range(n_tab):
        k = n_outer + q
        top = _edges_table(psi, g[k], g_next[k], anchor[k], scr, start, m, tabs[q, 0],
                           tabs[q, 1], eta_h, lam_h, kap_h, mu_h, gmin, gmax)  # fmt: skip
        gmax_bits[k] = max(gmax_bits[k], top)
    _node_terms(psi, pi, force, scr, start, m, coef_a[C2], coef_a[DAMP], coef_a[INV_S2], half_h)
    _line_sums(scr, m, acc)


@_jit
def fused_tick(psi: Any, pi: Any, force: Any, g: Any, g_next: Any, anchor: Any, coef: Any,
               seg: Any, slab_first: Any, nb_plus: Any, nb_minus: Any, tabs: Any, n_run: int,
               noise_base: Any, noise_on: bool, shift_on: bool, h: Any, half_h: Any, gmin: Any,
               gmax: Any, kap_h: Any, mu_h: Any, red: Any, scr: Any, acc: Any,
               gmax_bits: Any) -> None:  # fmt: skip
    """One tick over the whole lattice (module docstring). ``psi``, ``pi``, ``force``:
    float32 views (2N,) of the complex64 arrays; ``g``, ``g_next``, ``anchor``: float32
    (d, N); ``seg``, ``slab_first``, ``nb_plus``, ``nb_minus``, ``tabs``, ``n_run``:
    :func:`segment_tables`.
    ``red``: float64, NSUM sums, n_areas energies, d·n_areas maxima of g' (filled)."""
    d = g.shape[0]
    n_areas = coef.shape[0]
    n_slabs = slab_first.shape[0] - 1
    gmax_bits[:, :] = 0
    red[:] = 0.0
    last = n_slabs - 1
    for q in range(min(n_slabs, 2)):  # the last slab and slab 0: slab 0's force reads both
        s = last if q == 0 else 0
        _drift_slab(psi, pi, force, coef, seg, slab_first[s], slab_first[s + 1], scr,
                    noise_base, noise_on, shift_on, h, half_h)  # fmt: skip
    for s in range(n_slabs):
        if s + 1 < last:
            _drift_slab(psi, pi, force, coef, seg, slab_first[s + 1], slab_first[s + 2], scr,
                        noise_base, noise_on, shift_on, h, half_h)  # fmt: skip
        for k in range(slab_first[s], slab_first[s + 1]):
            a = seg[k, 3]
            acc[:] = 0.0
            _force_segment(psi, pi, force, g, g_next, anchor, coef[a], nb_plus, nb_minus, tabs,
                           seg[k], n_run, scr, acc, gmax_bits[:, a], half_h, gmin, gmax, kap_h,
                           mu_h)  # fmt: skip
            red[S_V] += acc[_E]
            red[S_T] += acc[_ELOG]
            red[S_KIN] += acc[_KIN]
            red[S_SHADOW] += acc[_SHADOW]
            red[S_POT] += acc[_POT]
            red[S_GRAD2] += acc[_GRAD2]
            red[S_DG] += acc[_DG]
            red[NSUM + a] += acc[_E]
    for k in range(d):
        for a in range(n_areas):
            red[NSUM + n_areas + k * n_areas + a] = numba.float64(bits_f32(gmax_bits[k, a]))


@_jit
def metric_grad(g: Any, seg: Any, nb_plus: Any, tabs: Any, n_run: int, scr: Any,
                out: Any) -> None:  # fmt: skip
    """Per-area Σ_x |∇g|(x), |∇g|² = Σ_J Σ_k (g_k(x + e_J) − g_k(x))² (the twin's order:
    J outer, k inner), into ``out`` (float64, n_areas; zeroed here). The walk is
    :func:`fused_tick`'s (:func:`segment_tables`)."""
    d, n_tab = g.shape[0], tabs.shape[0]
    n_outer = d - max(n_tab, 1)
    out[:] = 0.0
    acc, t = scr[0], scr[1]
    for q in range(seg.shape[0]):
        start, m, line, area = U(seg[q, 0]), U(seg[q, 1]), seg[q, 2], seg[q, 3]
        ring_end = U(line) * U(n_run) + U(n_run)  # one past the run's last node
        wrap = start + m == ring_end  # the segment ends its ring: peel its last node
        bulk = m - U1 if wrap else m
        acc[:m] = 0.0
        for jx in range(d):
            t[:m] = 0.0
            for k in range(d):
                gk = g[k]
                if jx < n_outer:
                    off = U(nb_plus[line, jx])
                    for j in range(m):
                        dd = gk[off + j] - gk[start + j]
                        t[j] = t[j] + dd * dd
                elif n_tab == 0:  # the last axis, a periodic line
                    for j in range(bulk):
                        dd = gk[start + U1 + j] - gk[start + j]
                        t[j] = t[j] + dd * dd
                    if wrap:
                        dd = gk[ring_end - U(n_run)] - gk[start + bulk]
                        t[bulk] = t[bulk] + dd * dd
                else:
                    tab = tabs[jx - n_outer, 0]
                    for j in range(m):
                        dd = gk[start + U(tab[j])] - gk[start + j]
                        t[j] = t[j] + dd * dd
            for j in range(m):
                acc[j] = acc[j] + t[j]
        out[area] += _sqrt_sum(acc, m)


@_reduce
def _sqrt_sum(acc: Any, n: Any) -> Any:
    s = 0.0
    for j in range(U(n)):
        s += numba.float64(np.sqrt(acc[j]))
    return s


#: Shortest run of contiguous nodes the walk goes by: trailing axes are merged into one run
#: until it is this long, so that short last axes (3⁹, 8⁵) still give long vector loops.
MIN_RUN = 32


class SegmentTables(NamedTuple):
    """How :func:`fused_tick` walks a lattice (:func:`segment_tables`)."""

    seg: np.ndarray[Any, np.dtype[np.int64]]  # (n_seg, 4): start node, length, run, area
    slab_first: np.ndarray[Any, np.dtype[np.int64]]  # first segment of each slab, + end
    nb_plus: np.ndarray[Any, np.dtype[np.int64]]  # (n_runs, max(d - t, 1))
    nb_minus: np.ndarray[Any, np.dtype[np.int64]]
    tabs: np.ndarray[Any, np.dtype[np.uint32]]  # (t or 0, 2, n_run): inner ± neighbours
    n_run: int


def segment_tables(lat: Lattice, min_run: int = MIN_RUN) -> SegmentTables:
    """The walk of ``lat``: runs, segments and slabs.

    A *run* is ``n_run`` contiguous nodes spanning the last ``t`` axes, ``t`` the fewest
    (at most d − 1) that make ``n_run >= min_run``: the last axis alone (``t = 1``, a
    periodic line) unless it is short. ``nb_plus[R, k]`` / ``nb_minus[R, k]`` are the
    first node of the run holding the +e_k / −e_k neighbours of run R's nodes (axes
    k < d − t, periodic). When ``t > 1``, ``tabs[q, 0 | 1, j]`` is the node of the same
    run that is the +/− neighbour of node j along axis d − t + q (every run alike); for
    ``t = 1`` the kernels peel the line's two ends instead and ``tabs`` is empty. A
    *segment* is a part of a run inside one area: the whole run when d > 1 (areas are
    slabs of axis 0), the area's range of nodes in 1-D (one run). A *slab* is one index
    of axis 0 — the unit the drift runs ahead by; in 1-D the whole lattice is one slab."""
    shape = lat.shape
    d = len(shape)
    t = 1
    while t < d - 1 and math.prod(shape[d - t :]) < min_run:
        t += 1
    n_run = math.prod(shape[d - t :])
    n_runs = lat.n_nodes // n_run
    nb_plus = np.zeros((n_runs, max(d - t, 1)), dtype=np.int64)
    nb_minus = np.zeros_like(nb_plus)
    tabs = np.zeros((t if t > 1 else 0, 2, n_run), dtype=np.uint32)
    if t > 1:
        inner = np.indices(shape[d - t :]).reshape(t, -1)
        for q in range(t):
            for side, sign in ((0, 1), (1, -1)):
                c = inner.copy()
                c[q] = (c[q] + sign) % shape[d - t + q]
                tabs[q, side] = np.ravel_multi_index(tuple(c), shape[d - t :])
    if d > 1:
        coords = np.indices(shape[: d - t]).reshape(d - t, -1).T
        run_strides = np.array([s // n_run for s in lat.strides[: d - t]], dtype=np.int64)
        for k in range(d - t):
            for sign, dst in ((1, nb_plus), (-1, nb_minus)):
                c = coords.copy()
                c[:, k] = (c[:, k] + sign) % shape[k]
                dst[:, k] = (c @ run_strides) * n_run
        per_slab = lat.row_size // n_run
        runs = np.arange(n_runs, dtype=np.int64)
        area = np.repeat(lat.area_of_row.astype(np.int64), per_slab)
        seg = np.stack([runs * n_run, np.full(n_runs, n_run), runs, area], axis=1)
        slab_first = np.arange(shape[0] + 1, dtype=np.int64) * per_slab
    else:
        b = np.asarray(lat.area_bounds, dtype=np.int64)
        n_a = lat.n_areas
        seg = np.stack([b[:-1], np.diff(b), np.zeros(n_a, np.int64), np.arange(n_a)], axis=1)
        slab_first = np.array([0, n_a], dtype=np.int64)
    return SegmentTables(np.ascontiguousarray(seg, dtype=np.int64), slab_first, nb_plus,
                         nb_minus, tabs, n_run)  # fmt: skip


class NumbaExecutor(HostSums):
    """:class:`~engs.services.physics.fused.Executor` running :func:`fused_tick`.

    ``kick_drift`` only records its arguments: the drift runs inside :func:`force`'s
    single pass (one slab ahead of the stencil), which writes the sums straight into
    the field's reduction buffer ``red``."""

    def __init__(self, lat: Lattice, red: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        super().__init__(red)
        self.lat = lat
        self.walk = segment_tables(lat)
        self.coef = np.zeros((lat.n_areas, len(COL)), dtype=np.float32)
        self.scr = np.zeros((N_SCRATCH, self.walk.n_run), dtype=np.float32)
        self.acc = np.zeros(N_SCRATCH, dtype=np.float64)
        self.gmax_bits = np.zeros((lat.ndim, lat.n_areas), dtype=np.uint32)
        self._kick: tuple[Any, ...] = (np.uint64(0), False, False, np.float32(0), np.float32(0))
        # the flat float32 / (d, N) views of the field's arrays, made once: the field keeps
        # its arrays for life (g and g_next swap), so a tick makes no view objects
        self._views: dict[int, tuple[Any, Any]] = {}

    def _flat(self, a: Any) -> Any:
        """``a`` as the kernels take it: complex64 (*shape) → float32 (2N,); float32
        (d, *shape) → (d, N). Cached per array (keyed by identity, the array kept)."""
        hit = self._views.get(id(a))
        if hit is None or hit[0] is not a:
            n = self.lat.n_nodes
            view = a.reshape(n).view(np.float32) if a.dtype == np.complex64 else a.reshape(-1, n)
            hit = self._views[id(a)] = (a, view)
        return hit[1]

    def upload_table(self, table: np.ndarray[Any, np.dtype[np.float32]]) -> None:
        np.copyto(self.coef, table)

    def kick_drift(
        self, psi: Any, pi: Any, force: Any, noise_base: int, noise_on: bool,
        shift_on: bool, h: float, half_h: float,
    ) -> None:  # fmt: skip
        self._kick = (np.uint64(noise_base), bool(noise_on), bool(shift_on), np.float32(h),
                      np.float32(half_h))  # fmt: skip

    def force(
        self, psi: Any, pi: Any, force: Any, g: Any, g_next: Any, anchor: Any,
        half_h: float, g_min: float, g_max: float, kappa_h: float, mu_h: float,
    ) -> None:  # fmt: skip
        base, noise_on, shift_on, h, hh = self._kick
        w, flat = self.walk, self._flat
        fused_tick(
            flat(psi), flat(pi), flat(force), flat(g), flat(g_next), flat(anchor),
            self.coef, w.seg, w.slab_first, w.nb_plus, w.nb_minus,
            w.tabs, w.n_run, base, noise_on, shift_on, h, hh,
            np.float32(g_min), np.float32(g_max), np.float32(kappa_h), np.float32(mu_h),
            self.red, self.scr, self.acc, self.gmax_bits,
        )  # fmt: skip

    def metric_grad(self, g: Any, out: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        w = self.walk
        metric_grad(self._flat(g), w.seg, w.nb_plus, w.tabs, w.n_run, self.scr, out)


class NumbaField(FusedField):
    """The field on the CPU stepped by the fused numba kernels (backend ``numba``)."""

    def _make_executor(self, red: np.ndarray[Any, np.dtype[np.float64]]) -> Executor:
        return NumbaExecutor(self.lattice, red)


def self_test() -> None:
    """Compile (or load from numba's on-disk cache) and run the kernels on a small 2-D
    lattice with everything on, and check a few ticks against the NumPy twin.

    Raises ``RuntimeError`` naming the quantity that disagrees; compile errors propagate.
    :func:`engs.services.physics.backend.probe_numba` calls it before ``auto`` picks
    this backend, so a broken toolchain falls back to the twin instead of crashing."""
    from engs.services.physics.coefficients import Coefficients  # noqa: PLC0415 - cycle
    from engs.services.physics.field import Field  # noqa: PLC0415 - cycle
    from engs.shared.config import PhysicsConfig  # noqa: PLC0415 - cycle

    cfg = PhysicsConfig(shape=[6, 5], areas=["a", "b"], noise_amplitude=0.5)
    coeffs = Coefficients(2)
    coeffs.stimulus[:] = 0.5
    coeffs.plasticity[:] = 2.0
    rng = np.random.default_rng(7)
    psi = (rng.standard_normal((6, 5)) + 1j * rng.standard_normal((6, 5))).astype(np.complex64)
    twin, fused = Field(cfg), NumbaField(cfg)
    for f in (twin, fused):
        f.set_state(psi=psi, coeffs=coeffs)
        for _ in range(3):
            f.step(coeffs)
    for name in ("energy", "hamiltonian", "entropy_bits", "plasticity_work"):
        a, b = getattr(twin.result, name), getattr(fused.result, name)
        if not abs(a - b) <= 1e-4 * max(abs(a), 1e-6):
            raise RuntimeError(f"self-test: {name} {b!r} from the fused kernels, {a!r} from NumPy")
