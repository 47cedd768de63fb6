"""CUDA source of the fused tick kernels, and its twin build for the CPU.

Kernels per lattice (CuPy ``RawModule``, compiled by NVRTC once per shape):

``kick_drift``             half kick (damping, force), noise kick, drift, shift.
``force_kick_plasticity``  the 2d-neighbour stencil: F = v² L_g Ψ, the second half
                           kick, the Hebbian update of the node's d edges into g' (and of their
                           consolidated metric c, in place), and every per-tick sum (V,
                           Σ e log₂ e, kinetic, shadow, potential, Σ|∇Ψ|², Σ|Δg|) with the
                           per-axis maxima of g'. One block per **chunk** (below): its
                           threads walk the chunk, reduce once, and write one partial row.
``finish_sums``            one block: the partial rows reduced per area, in area order,
                           into the reduction buffer (per-area V and max g'_k, the totals).
``metric_grad``            Σ |∇g| of a range of chunks into their partial rows;
``metric_finish``          one block: those rows reduced per area.

**Chunks.** Areas are contiguous node ranges (lattice.py), so each area is cut into
chunks of ``chunks(lat).length`` nodes (the last one shorter): a chunk lies in one area,
its block knows the area once, and a block's sums go to its own partial row — no
atomics, and the reduction order is fixed, so the sums are the same bit for bit from run
to run. Per-axis maxima of g' are unsigned maxima of the float bits (g' ≥ g_min > 0:
positive floats order like their bit patterns; a NaN's pattern, of either sign, is above
+inf's, so a NaN wins, like ``np.max``). The chunk length grows with the lattice so a
large one is cut into about :data:`MIN_BLOCKS` blocks (several waves of resident blocks on
any current GPU, so the last wave's tail is small) with at most
:data:`MAX_NODES_PER_THREAD` nodes per thread.

**The metric gradient, sliced.** ``metric_grad`` takes a chunk range, so the GPU backend
measures one slice of the chunks per tick and publishes the sum every
``metric_grad_every`` ticks (:class:`engs.services.physics.fused.FusedField`) instead
of running the whole reduction inside one tick.

So a tick is three launches (four with a metric slice), one 32·n_areas-byte table upload
and one download of 7 + n_areas·(d + 1) doubles. The per-node and per-thread arithmetic
lives in ``DEVICE`` functions shared by the kernels and by a host harness:
:func:`host_source` compiles the *same text* as C++ for the CPU (``DEVICE`` =
``static inline``, ``float2`` a plain struct) and runs each block's threads one after
another, with the block reductions as plain sums in thread order. That is how the tests
run this source — chunking, partial rows and the finishing reduction included — on a
machine without a GPU and compare it with the NumPy twin (:mod:`integrator`) node for
node. Only the warp-shuffle block reductions are GPU-only; they are checked by the
``gpu``-marked tests, and the whole module is compiled by NVRTC and ptxas without a GPU
(:mod:`cuda_check`).

**Two builds.** The parity build (:data:`NVRTC_PARITY_OPTIONS`, and ``-ffp-contract=off``
on the host) keeps the operation order of every per-node expression the NumPy twin's and
contracts nothing into FMA, so the elementwise parts agree bit for bit (up to the
last-ulp differences of logf, sincosf, log2f between CUDA, glibc and NumPy's SIMD loops,
and subnormals, which NVRTC's build may flush to zero). The production build
(:data:`NVRTC_OPTIONS`) lets the compiler fuse multiply-adds: one rounding fewer per
fused pair, so a trajectory drifts from the twin's by a few float32 ulps per tick
(docs/physics.md §7 states the measured tolerance).

Geometry and layout constants are compile-time macros generated from the lattice
(:func:`prelude`); the per-axis stencil is unrolled by an X-macro, so every index
division is by a constant, and index and offset arithmetic is 32-bit whenever
d · nodes < 2³¹ (6⁹ included).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engs.services.physics.coefficients import COLUMNS, NCOEF
from engs.services.physics.lattice import Lattice
from engs.services.physics.reductions import NSUM

BLOCK = 256

#: Resident blocks per SM the compiler must allow the pipelined step
#: (``force_kick_drift``, ``__launch_bounds__``), the GPU's hot kernel. Registers limit
#: its occupancy: left alone, ptxas (sm_90) gives it 80–114 registers (2 blocks of 256 per
#: SM). Four blocks cap it at 64 registers with no spill at any dimensionality in either
#: build; five (48 registers) spill from 7-D on, and in the parity build already at 2-D.
#: tests/services/physics/test_kernels.py checks it with ptxas.
FORCE_MIN_BLOCKS = 4

#: The same for ``force_kick_plasticity``, which the pipelined GPU backend runs only to
#: complete a pending half tick (reading the state, replacing it): capped at 64 registers
#: it spills 8 bytes at 6⁹ in the production build, so it gets three blocks (85).
SETTLE_MIN_BLOCKS = 3

#: A large lattice is cut into about this many chunks (one block each).
MIN_BLOCKS = 4096

#: At most this many nodes per thread in a chunk (chunk length ≤ BLOCK times this).
MAX_NODES_PER_THREAD = 16

#: NVRTC options of the production build: C++17, multiply-adds fused.
NVRTC_OPTIONS: tuple[str, ...] = ("--std=c++17", "--fmad=true")

#: NVRTC options of the parity build: no FMA contraction (see the module docstring).
NVRTC_PARITY_OPTIONS: tuple[str, ...] = ("--std=c++17", "--fmad=false")

_SUM_NAMES = ("S_V", "S_T", "S_KIN", "S_SHADOW", "S_POT", "S_GRAD2", "S_DG")


def red_layout(lat: Lattice) -> dict[str, slice]:
    """The reduction buffer (doubles), part by part: ``sums`` (NSUM), ``area_e`` (V per
    area), ``gmax`` (d·n_areas maxima of g_k, ``[k * n_areas + a]``), then what the
    device-side CFL clamp writes, ``s_eff`` (the speed factor applied per area) and
    ``clamped`` (1.0 where the clamp acted), and ``mg`` (Σ|∇g| per area, on publishing
    ticks)."""
    n, d = lat.n_areas, lat.ndim
    sizes = {"sums": NSUM, "area_e": n, "gmax": d * n, "s_eff": n, "clamped": n, "mg": n}
    out, at = {}, 0
    for name, size in sizes.items():
        out[name] = slice(at, at + size)
        at += size
    return out


def red_len(lat: Lattice) -> int:
    """Doubles in the reduction buffer (:func:`red_layout`)."""
    return red_layout(lat)["mg"].stop


def index_dtype(lat: Lattice) -> type[np.signedinteger[Any]]:
    """The kernels' node index type: int32 while every offset into g (d · nodes) fits."""
    return np.int32 if lat.ndim * lat.n_nodes <= np.iinfo(np.int32).max else np.int64


@dataclass(frozen=True)
class Chunks:
    """The lattice cut into area-pure chunks of consecutive nodes (one block each).

    ``first``: index dtype, shape ``(n + 1,)``: chunk c is nodes ``[first[c], first[c+1])``.
    ``area_first``: int32, shape ``(n_areas + 1,)``: area a's chunks are
    ``[area_first[a], area_first[a+1])``. ``length``: the chunk length (a multiple of
    BLOCK; an area's last chunk may be shorter)."""

    first: np.ndarray[Any, np.dtype[np.signedinteger[Any]]]
    area_first: np.ndarray[Any, np.dtype[np.int32]]
    length: int

    @property
    def n(self) -> int:
        return len(self.first) - 1

    def slices(self, n_slices: int) -> list[tuple[int, int]]:
        """``n_slices`` consecutive chunk ranges ``(c0, c1)`` covering all chunks, as
        even as possible (some are empty when there are fewer chunks than slices)."""
        return [(j * self.n // n_slices, (j + 1) * self.n // n_slices) for j in range(n_slices)]


def chunks(lat: Lattice) -> Chunks:
    """The chunks of ``lat`` (see the module docstring)."""
    per_thread = min(MAX_NODES_PER_THREAD, max(1, lat.n_nodes // (BLOCK * MIN_BLOCKS)))
    length = BLOCK * per_thread
    first: list[int] = []
    area_first = [0]
    for a in range(lat.n_areas):
        lo = lat.area_bounds[a] * lat.row_size
        hi = lat.area_bounds[a + 1] * lat.row_size
        first += range(lo, hi, length)
        area_first.append(len(first))
    first.append(lat.n_nodes)
    return Chunks(
        np.asarray(first, dtype=index_dtype(lat)), np.asarray(area_first, dtype=np.int32), length
    )


def prelude(lat: Lattice) -> str:
    """``#define``s of one lattice: geometry, table columns, sum layout, the axis
    X-macro. Both builds (CUDA and host) start with it."""
    mant, exp = float(np.float32(2.0 * np.pi)).hex().split("p")
    two_pi = f"{mant.rstrip('0')}p{exp}"  # exact float32 2π as a C++17 hex literal
    lines = [
        f"#define NDIM {lat.ndim}",
        f"#define N_NODES {lat.n_nodes}LL",
        f"#define ROW_SIZE {lat.row_size}LL",
        f"#define N_AREAS {lat.n_areas}",
        f"#define N_CHUNKS {chunks(lat).n}",
        f"#define IDX32 {int(index_dtype(lat) is np.int32)}",
        f"#define NCOEF {NCOEF}",
        *(f"#define C_{name} {i}" for i, name in enumerate(COLUMNS)),
        f"#define NSUM {NSUM}",
        *(f"#define {name} {i}" for i, name in enumerate(_SUM_NAMES)),
        *(f"#define RED_{name.upper()} {sl.start}" for name, sl in red_layout(lat).items()),
        f"#define RED_LEN {red_len(lat)}",
        f"#define BLOCK {BLOCK}",
        f"#define FORCE_MIN_BLOCKS {FORCE_MIN_BLOCKS}",
        f"#define SETTLE_MIN_BLOCKS {SETTLE_MIN_BLOCKS}",
        f"#define TWO_PI_F {two_pi}f",
        "#define FOR_EACH_AXIS(X) "
        + " ".join(
            f"X({k}, {n}LL, {s}LL)"
            for k, (n, s) in enumerate(zip(lat.shape, lat.strides, strict=True))
        ),
    ]
    if len(_SUM_NAMES) != NSUM:
        raise RuntimeError("sum layout out of step with reductions.NSUM")
    return "\n".join(lines) + "\n"


COMMON = r"""
// ---- one text, two builds: CUDA (nvrtc/nvcc) and host C++ (tests) ---------------
#ifdef __CUDACC__
#define DEVICE __device__ __forceinline__
#else
#include <math.h>
#include <string.h>
#define DEVICE static inline
struct float2 { float x; float y; };
#endif

typedef unsigned long long u64;
#if IDX32
typedef int idx_t;  // 32-bit index and offset arithmetic when d * N fits: cheaper
#else
typedef long long idx_t;
#endif

#define ENGS_FLT_MIN 0x1p-126f

DEVICE unsigned int f32_bits(float x) {
#ifdef __CUDACC__
  return __float_as_uint(x);
#else
  unsigned int u;
  memcpy(&u, &x, sizeof u);
  return u;
#endif
}

DEVICE float bits_f32(unsigned int u) {
#ifdef __CUDACC__
  return __uint_as_float(u);
#else
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
#endif
}

// max of non-negative floats held as bits: a NaN's pattern (either sign) is above +inf's
DEVICE unsigned int umax(unsigned int a, unsigned int b) { return a > b ? a : b; }

DEVICE int area_of(const int* area_of_row, idx_t i) {
  return area_of_row[i / (idx_t)ROW_SIZE];
}

// splitmix64 at position (tick * N + i), then Box-Muller: noise.complex_normal.
DEVICE float2 complex_normal(u64 base, idx_t i) {
  u64 z = base + (u64)i * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z = z ^ (z >> 31);
  float r = (float)(z >> 41);
  r = r + 0.5f;
  r = r * 0x1p-23f;
  r = logf(r);
  r = -r;
  r = sqrtf(r);
  float th = (float)((z >> 17) & 0x7FFFFFULL);
  th = th * 0x1p-23f;
  th = th * TWO_PI_F;
  float s, c;
  sincosf(th, &s, &c);  // one argument reduction for both (same values as sinf, cosf)
  float2 xi;
  xi.x = c * r;
  xi.y = s * r;
  return xi;
}

// Half kick, noise kick, drift and shift of node i (integrator.half_kick, noise_kick,
// drift, in that order of operations).
// c: the node's row of the table; p (Pi) and q (Psi) in and out, f the force.
DEVICE void kick_drift_core(idx_t i, const float* c, float2& p, const float2 f, float2& q,
                            u64 noise_base, int noise_on, int shift_on, float h,
                            float half_h) {
  const float damp = c[C_DAMP];
  p.x = p.x * damp;
  p.y = p.y * damp;
  p.x = p.x + f.x * half_h;
  p.y = p.y + f.y * half_h;
  if (noise_on) {
    const float sigma = c[C_NOISE];
    const float2 xi = complex_normal(noise_base, i);
    p.x = p.x + xi.x * sigma;
    p.y = p.y + xi.y * sigma;
  }
  q.x = q.x + p.x * h;
  q.y = q.y + p.y * h;
  if (shift_on) {
    q.x = q.x + c[C_SHIFT_RE];
    q.y = q.y + c[C_SHIFT_IM];
  }
}

DEVICE void node_kick_drift(idx_t i, float2* psi, float2* pi, const float2* force,
                            const int* area_of_row, const float* coef, u64 noise_base,
                            int noise_on, int shift_on, float h, float half_h) {
  float2 p = pi[i];
  float2 q = psi[i];
  kick_drift_core(i, coef + area_of(area_of_row, i) * NCOEF, p, force[i], q, noise_base,
                  noise_on, shift_on, h, half_h);
  pi[i] = p;
  psi[i] = q;
}

struct EdgeAcc {
  float lx, ly;      // L_g Psi
  float pot, grad2;  // sum_k g_k |grad_k Psi|^2, sum_k |grad_k Psi|^2
  float dg;          // sum_k |g'_k - g_k|
};

// Edge k of node i: flux divergence, edge sums and the Hebbian update
// (integrator.force_sweep and plasticity.hebbian_update, same operand order).
template <int K, long long NK, long long SK>
DEVICE void edge_step(idx_t i, float2 q, const float2* psi, const float* g, float* g_next,
                      float* anchor, float eta_h, float lam_h, float kap_h, float mu_h,
                      float gmin, float gmax, EdgeAcc& a, unsigned int* mx) {
  const idx_t ck = (i / (idx_t)SK) % (idx_t)NK;
  const idx_t ip = (ck + 1 < (idx_t)NK) ? i + (idx_t)SK : i - (idx_t)((NK - 1) * SK);
  const idx_t im = (ck > 0) ? i - (idx_t)SK : i + (idx_t)((NK - 1) * SK);
  const idx_t off = (idx_t)K * (idx_t)N_NODES;
  const float2 qp = psi[ip];
  const float2 qm = psi[im];
  const float gk = g[off + i];
  const float gkm = g[off + im];
  const float dpx = qp.x - q.x, dpy = qp.y - q.y;  // grad_k Psi(x)
  const float dmx = q.x - qm.x, dmy = q.y - qm.y;  // grad_k Psi(x - e_k)
  a.lx = a.lx + dpx * gk;
  a.ly = a.ly + dpy * gk;
  a.lx = a.lx - dmx * gkm;
  a.ly = a.ly - dmy * gkm;
  const float s2 = dpx * dpx + dpy * dpy;
  a.pot = a.pot + gk * s2;
  a.grad2 = a.grad2 + s2;
  float corr = q.x * qp.x;  // Re(Psi(x) conj Psi(x + e_k))
  corr = corr + q.y * qp.y;
  corr = corr * eta_h;
  const float ck_ = anchor[off + i];  // c: the consolidated metric
  float t = gk - ck_;
  t = t * lam_h;
  corr = corr - t;
  float gn = gk + corr;
  gn = gn < gmin ? gmin : gn;  // clamp that keeps NaN, like np.clip (fminf/fmaxf
  gn = gn > gmax ? gmax : gn;  // would turn a NaN into a plausible g_min: silent)
  g_next[off + i] = gn;
  float u = gn - ck_;  // c' = (c + h kappa (g' - c)) - h mu (c - 1), in place (local)
  u = u * kap_h;
  float w = ck_ - 1.0f;
  w = w * mu_h;
  float cn = ck_ + u;
  cn = cn - w;
  anchor[off + i] = cn;
  a.dg = a.dg + fabsf(gn - gk);
  mx[K] = umax(mx[K], f32_bits(gn));  // the running max of g'_k (see umax)
}

// The partial sums of one thread, one block or one area: the NSUM sums in double and,
// per axis k, the largest g'_k as float bits (see umax).
struct Part {
  double v[NSUM];
  unsigned int mx[NDIM];
};

DEVICE void part_zero(Part& p) {
  for (int j = 0; j < NSUM; ++j) p.v[j] = 0.0;
  for (int k = 0; k < NDIM; ++k) p.mx[k] = 0u;
}

DEVICE void part_add(Part& into, const Part& p) {
  for (int j = 0; j < NSUM; ++j) into.v[j] = into.v[j] + p.v[j];
  for (int k = 0; k < NDIM; ++k) into.mx[k] = umax(into.mx[k], p.mx[k]);
}

// One thread's sums over its nodes of a chunk (at most MAX_NODES_PER_THREAD), in float:
// registers are what limits the force kernel's occupancy; Part takes them in double.
struct NodeSums {
  float v[NSUM];
  unsigned int mx[NDIM];
};

DEVICE void part_from(Part& p, const NodeSums& s) {
  for (int j = 0; j < NSUM; ++j) p.v[j] = (double)s.v[j];
  for (int k = 0; k < NDIM; ++k) p.mx[k] = s.mx[k];
}

// The force step of node i in area a: F = c2 L_g Psi (returned), the second half kick of
// pn (Pi, in and out), plasticity; the node's sums added to p.
DEVICE float2 force_core(idx_t i, int a, const float2* psi, float2& pn, const float* g,
                         float* g_next, float* anchor, const float* coef, float half_h,
                         float gmin, float gmax, float kap_h, float mu_h, NodeSums& p) {
  const float* c = coef + a * NCOEF;
  const float2 q = psi[i];
  const float eta_h = c[C_ETA_H], lam_h = c[C_LAM_H];
  EdgeAcc acc;
  acc.lx = 0.0f; acc.ly = 0.0f; acc.pot = 0.0f; acc.grad2 = 0.0f; acc.dg = 0.0f;
#define ENGS_EDGE(K, NK, SK) \
  edge_step<K, NK, SK>(i, q, psi, g, g_next, anchor, eta_h, lam_h, kap_h, mu_h, gmin, gmax, \
                       acc, p.mx);
  FOR_EACH_AXIS(ENGS_EDGE)
#undef ENGS_EDGE
  const float c2 = c[C_C2];
  float2 f;
  f.x = acc.lx * c2;
  f.y = acc.ly * c2;
  const float damp = c[C_DAMP];
  pn.x = pn.x * damp;
  pn.y = pn.y * damp;
  pn.x = pn.x + f.x * half_h;
  pn.y = pn.y + f.y * half_h;
  const float e = q.x * q.x + q.y * q.y;
  const float w = c[C_INV_S2];
  p.v[S_V] = p.v[S_V] + e;
  p.v[S_T] = p.v[S_T] + log2f(fmaxf(e, ENGS_FLT_MIN)) * e;
  p.v[S_KIN] = p.v[S_KIN] + (pn.x * pn.x + pn.y * pn.y) * w;
  p.v[S_SHADOW] = p.v[S_SHADOW] + (f.x * f.x + f.y * f.y) * w;
  p.v[S_POT] = p.v[S_POT] + acc.pot;
  p.v[S_GRAD2] = p.v[S_GRAD2] + acc.grad2;
  p.v[S_DG] = p.v[S_DG] + acc.dg;
  return f;
}

DEVICE void node_force(idx_t i, int a, const float2* psi, float2* pi, float2* force,
                       const float* g, float* g_next, float* anchor, const float* coef,
                       float half_h, float gmin, float gmax, float kap_h, float mu_h,
                       NodeSums& p) {
  float2 pn = pi[i];
  force[i] = force_core(i, a, psi, pn, g, g_next, anchor, coef, half_h, gmin, gmax, kap_h,
                        mu_h, p);
  pi[i] = pn;
}

// Pipelined: the force step of tick n - 1 (table coef_f) on Psi_n (psi), then the kick and
// drift of tick n (table coef_k) with F still in registers, Psi_{n+1} into psi_out. The
// same operations in the same order as node_force then node_kick_drift, without F's round
// trip through memory and a second pass over Psi and Pi.
DEVICE void node_force_kick_drift(idx_t i, int a, const float2* psi, float2* psi_out,
                                  float2* pi, const float* g, float* g_next, float* anchor,
                                  const float* coef_f, const float* coef_k, float half_h,
                                  float gmin, float gmax, float kap_h, float mu_h,
                                  u64 noise_base, int noise_on, int shift_on, float h,
                                  NodeSums& p) {
  float2 pn = pi[i];
  const float2 f = force_core(i, a, psi, pn, g, g_next, anchor, coef_f, half_h, gmin, gmax,
                              kap_h, mu_h, p);
  float2 q = psi[i];
  kick_drift_core(i, coef_k + a * NCOEF, pn, f, q, noise_base, noise_on, shift_on, h, half_h);
  pi[i] = pn;
  psi_out[i] = q;
}

// The pipelined step's share of thread t in chunk [first, last) of area a.
DEVICE void pipelined_thread(idx_t first, idx_t last, int t, int a, const float2* psi,
                             float2* psi_out, float2* pi, const float* g, float* g_next,
                             float* anchor, const float* coef_f, const float* coef_k,
                             float half_h, float gmin, float gmax, float kap_h, float mu_h,
                             u64 noise_base, int noise_on, int shift_on, float h, Part& p) {
  NodeSums s;
  for (int j = 0; j < NSUM; ++j) s.v[j] = 0.0f;
  for (int k = 0; k < NDIM; ++k) s.mx[k] = 0u;
  for (idx_t i = first + (idx_t)t; i < last; i += (idx_t)BLOCK)
    node_force_kick_drift(i, a, psi, psi_out, pi, g, g_next, anchor, coef_f, coef_k, half_h,
                          gmin, gmax, kap_h, mu_h, noise_base, noise_on, shift_on, h, s);
  part_from(p, s);
}

// Thread t's share of chunk [first, last) (area a): nodes first + t, first + t + BLOCK, ...
DEVICE void force_thread(idx_t first, idx_t last, int t, int a, const float2* psi,
                         float2* pi, float2* force, const float* g, float* g_next,
                         float* anchor, const float* coef, float half_h, float gmin,
                         float gmax, float kap_h, float mu_h, Part& p) {
  NodeSums s;
  for (int j = 0; j < NSUM; ++j) s.v[j] = 0.0f;
  for (int k = 0; k < NDIM; ++k) s.mx[k] = 0u;
  for (idx_t i = first + (idx_t)t; i < last; i += (idx_t)BLOCK)
    node_force(i, a, psi, pi, force, g, g_next, anchor, coef, half_h, gmin, gmax, kap_h,
               mu_h, s);
  part_from(p, s);
}

DEVICE void part_store(const Part& p, int c, double* part, unsigned int* part_max) {
  for (int j = 0; j < NSUM; ++j) part[c * NSUM + j] = p.v[j];
  for (int k = 0; k < NDIM; ++k) part_max[c * NDIM + k] = p.mx[k];
}

// Thread t's share of area a's partial rows, for the finishing reduction.
DEVICE void area_thread(int a, int t, const int* area_chunk, const double* part,
                        const unsigned int* part_max, Part& p) {
  for (int c = area_chunk[a] + t; c < area_chunk[a + 1]; c += BLOCK) {
    for (int j = 0; j < NSUM; ++j) p.v[j] = p.v[j] + part[c * NSUM + j];
    for (int k = 0; k < NDIM; ++k) p.mx[k] = umax(p.mx[k], part_max[c * NDIM + k]);
  }
}

// Area a's reduced partials into the reduction buffer, its sums added to the totals
// (areas in order, so the totals are reproducible bit for bit).
DEVICE void area_store(int a, const Part& p, double* red, double* total) {
  red[RED_AREA_E + a] = p.v[S_V];
  for (int k = 0; k < NDIM; ++k) red[RED_GMAX + k * N_AREAS + a] = (double)bits_f32(p.mx[k]);
  for (int j = 0; j < NSUM; ++j) total[j] = total[j] + p.v[j];
}

// The CFL guard of area a on the device: cfl.area_lambda_bound, cfl.speed_limit and the
// speed columns of coefficients.derive_tick_table, the same float64 operations in the same
// order, so the clamped table is the host's bit for bit. Reads the per-area maxima of g in
// red and the requested speed factor s_req[a]; writes area a's C2 and INV_S2 and, for
// telemetry, the applied speed factor and whether the clamp acted.
DEVICE void clamp_area(int a, double* red, const double* s_req, float* coef, double v0,
                       double v0h) {
  const int prev = (a + N_AREAS - 1) % N_AREAS;  // the area before a along axis 0
  double lam = 0.0;
  for (int k = 0; k < NDIM; ++k) {
    const double ga = red[RED_GMAX + k * N_AREAS + a];
    const double gp = red[RED_GMAX + k * N_AREAS + prev];
    double m = (gp != gp || gp > ga) ? gp : ga;  // np.maximum: a NaN propagates
    m = m + ga;
    lam = lam + m;
  }
  lam = lam * 2.0;
  double lim = sqrt(lam);
  lim = lim * v0h;
  lim = 1.0 / lim;  // inf when lam = 0
  const double s = s_req[a];
  const bool clamped = s > lim;
  const double se = (s != s) ? s : ((lim != lim || lim < s) ? lim : s);  // np.minimum
  double w = se * v0;
  w = w * w;
  coef[a * NCOEF + C_C2] = (float)w;
  const double w2 = se * se;
  coef[a * NCOEF + C_INV_S2] = (float)(w2 > 0.0 ? 1.0 / w2 : 0.0);  // s = 0: no kinetic term
  red[RED_S_EFF + a] = se;
  red[RED_CLAMPED + a] = clamped ? 1.0 : 0.0;
}

// |grad g|^2 contribution of axis J at node i: sum_k (g_k(x + e_J) - g_k(x))^2.
template <int J, long long NJ, long long SJ>
DEVICE float metric_axis(idx_t i, const float* g) {
  const idx_t cj = (i / (idx_t)SJ) % (idx_t)NJ;
  const idx_t ip = (cj + 1 < (idx_t)NJ) ? i + (idx_t)SJ : i - (idx_t)((NJ - 1) * SJ);
  float s = 0.0f;
  for (int k = 0; k < NDIM; ++k) {
    const idx_t off = (idx_t)k * (idx_t)N_NODES;
    const float dd = g[off + ip] - g[off + i];
    s = s + dd * dd;
  }
  return s;
}

DEVICE float node_metric_grad(idx_t i, const float* g) {
  float acc = 0.0f;
#define ENGS_MG(J, NJ, SJ) acc = acc + metric_axis<J, NJ, SJ>(i, g);
  FOR_EACH_AXIS(ENGS_MG)
#undef ENGS_MG
  return sqrtf(acc);
}

DEVICE double metric_thread(idx_t first, idx_t last, int t, const float* g) {
  double s = 0.0;
  for (idx_t i = first + (idx_t)t; i < last; i += (idx_t)BLOCK)
    s = s + (double)node_metric_grad(i, g);
  return s;
}

DEVICE double area_metric_thread(int a, int t, const int* area_chunk, const double* mg_part) {
  double s = 0.0;
  for (int c = area_chunk[a] + t; c < area_chunk[a + 1]; c += BLOCK) s = s + mg_part[c];
  return s;
}
"""

KERNELS = r"""
// ---- GPU-only: block reductions and the kernels --------------------------------
// The result is in thread 0. A block reusing one in a loop syncs between calls.
template <int NV>
__device__ __forceinline__ void block_sum(double (&v)[NV]) {
  __shared__ double sh[NV][BLOCK / 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int j = 0; j < NV; ++j)
    for (int off = 16; off > 0; off >>= 1) v[j] += __shfl_down_sync(0xffffffffu, v[j], off);
  if (lane == 0)
    for (int j = 0; j < NV; ++j) sh[j][warp] = v[j];
  __syncthreads();
  if (warp == 0) {
#pragma unroll
    for (int j = 0; j < NV; ++j) {
      v[j] = (lane < BLOCK / 32) ? sh[j][lane] : 0.0;
      for (int off = 16; off > 0; off >>= 1) v[j] += __shfl_down_sync(0xffffffffu, v[j], off);
    }
  }
}

template <int NV>
__device__ __forceinline__ void block_umax(unsigned int (&v)[NV]) {
  __shared__ unsigned int sh[NV][BLOCK / 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int j = 0; j < NV; ++j)
    for (int off = 16; off > 0; off >>= 1)
      v[j] = umax(v[j], __shfl_down_sync(0xffffffffu, v[j], off));
  if (lane == 0)
    for (int j = 0; j < NV; ++j) sh[j][warp] = v[j];
  __syncthreads();
  if (warp == 0) {
#pragma unroll
    for (int j = 0; j < NV; ++j) {
      v[j] = (lane < BLOCK / 32) ? sh[j][lane] : 0u;
      for (int off = 16; off > 0; off >>= 1)
        v[j] = umax(v[j], __shfl_down_sync(0xffffffffu, v[j], off));
    }
  }
}

// The CFL clamp of a tick's table (one block, a thread per area; more areas than
// threads loop).
extern "C" __global__ void __launch_bounds__(BLOCK)
clamp_table(double* __restrict__ red, const double* __restrict__ s_req,
            float* __restrict__ coef, double v0, double v0h) {
  for (int a = threadIdx.x; a < N_AREAS; a += BLOCK) clamp_area(a, red, s_req, coef, v0, v0h);
}

extern "C" __global__ void __launch_bounds__(BLOCK)
kick_drift(float2* __restrict__ psi, float2* __restrict__ pi, const float2* __restrict__ force,
           const int* __restrict__ area_of_row, const float* __restrict__ coef,
           u64 noise_base, int noise_on, int shift_on, float h, float half_h) {
  const idx_t i = (idx_t)blockIdx.x * BLOCK + (idx_t)threadIdx.x;
  if (i < (idx_t)N_NODES)
    node_kick_drift(i, psi, pi, force, area_of_row, coef, noise_base, noise_on, shift_on, h,
                    half_h);
}

// One block per chunk; its partial row in part / part_max (finish_sums reduces them).
extern "C" __global__ void __launch_bounds__(BLOCK, SETTLE_MIN_BLOCKS)
force_kick_plasticity(const float2* __restrict__ psi, float2* __restrict__ pi,
                      float2* __restrict__ force, const float* __restrict__ g,
                      float* __restrict__ g_next, float* __restrict__ anchor,
                      const idx_t* __restrict__ chunk_first,
                      const int* __restrict__ area_of_row, const float* __restrict__ coef,
                      double* __restrict__ part, unsigned int* __restrict__ part_max,
                      float half_h, float gmin, float gmax, float kap_h, float mu_h) {
  const int c = blockIdx.x;
  const idx_t first = chunk_first[c];
  Part p;
  part_zero(p);
  force_thread(first, chunk_first[c + 1], threadIdx.x, area_of(area_of_row, first), psi, pi,
               force, g, g_next, anchor, coef, half_h, gmin, gmax, kap_h, mu_h, p);
  block_sum<NSUM>(p.v);
  block_umax<NDIM>(p.mx);
  if (threadIdx.x == 0) part_store(p, c, part, part_max);
}

// The pipelined step (node_force_kick_drift), one block per chunk like the force kernel.
extern "C" __global__ void __launch_bounds__(BLOCK, FORCE_MIN_BLOCKS)
force_kick_drift(const float2* __restrict__ psi, float2* __restrict__ psi_out,
                 float2* __restrict__ pi, const float* __restrict__ g,
                 float* __restrict__ g_next, float* __restrict__ anchor,
                 const idx_t* __restrict__ chunk_first, const int* __restrict__ area_of_row,
                 const float* __restrict__ coef_f, const float* __restrict__ coef_k,
                 double* __restrict__ part, unsigned int* __restrict__ part_max, float half_h,
                 float gmin, float gmax, float kap_h, float mu_h, u64 noise_base,
                 int noise_on, int shift_on, float h) {
  const int c = blockIdx.x;
  const idx_t first = chunk_first[c];
  Part p;
  part_zero(p);
  pipelined_thread(first, chunk_first[c + 1], threadIdx.x, area_of(area_of_row, first), psi,
                   psi_out, pi, g, g_next, anchor, coef_f, coef_k, half_h, gmin, gmax, kap_h,
                   mu_h, noise_base, noise_on, shift_on, h, p);
  block_sum<NSUM>(p.v);
  block_umax<NDIM>(p.mx);
  if (threadIdx.x == 0) part_store(p, c, part, part_max);
}

// One block: the partial rows per area, in area order, into the reduction buffer.
extern "C" __global__ void __launch_bounds__(BLOCK)
finish_sums(const int* __restrict__ area_chunk, const double* __restrict__ part,
            const unsigned int* __restrict__ part_max, double* __restrict__ red) {
  double total[NSUM];
  for (int j = 0; j < NSUM; ++j) total[j] = 0.0;
  for (int a = 0; a < N_AREAS; ++a) {
    Part p;
    part_zero(p);
    area_thread(a, threadIdx.x, area_chunk, part, part_max, p);
    block_sum<NSUM>(p.v);
    block_umax<NDIM>(p.mx);
    if (threadIdx.x == 0) area_store(a, p, red, total);
    __syncthreads();  // the reductions' shared rows are reused by the next area
  }
  if (threadIdx.x == 0)
    for (int j = 0; j < NSUM; ++j) red[j] = total[j];
}

// Blocks c0 + blockIdx.x: one chunk each, its sum of |grad g| into mg_part[c].
extern "C" __global__ void __launch_bounds__(BLOCK)
metric_grad(const float* __restrict__ g, const idx_t* __restrict__ chunk_first, int c0,
            double* __restrict__ mg_part) {
  const int c = c0 + blockIdx.x;
  double v[1] = {metric_thread(chunk_first[c], chunk_first[c + 1], threadIdx.x, g)};
  block_sum<1>(v);
  if (threadIdx.x == 0) mg_part[c] = v[0];
}

extern "C" __global__ void __launch_bounds__(BLOCK)
metric_finish(const int* __restrict__ area_chunk, const double* __restrict__ mg_part,
              double* __restrict__ out) {
  for (int a = 0; a < N_AREAS; ++a) {
    double v[1] = {area_metric_thread(a, threadIdx.x, area_chunk, mg_part)};
    block_sum<1>(v);
    if (threadIdx.x == 0) out[a] = v[0];
    __syncthreads();
  }
}
"""

#: Every kernel of the module, in launch order.
KERNEL_NAMES = (
    "clamp_table", "kick_drift", "force_kick_plasticity", "force_kick_drift", "finish_sums",
    "metric_grad", "metric_finish",
)  # fmt: skip

HOST_HARNESS = r"""
// ---- host build only: the kernels with each block's threads run one after another,
// the block reductions as sums in thread order ---------------------------------------
extern "C" void host_clamp_table(double* red, const double* s_req, float* coef, double v0,
                                 double v0h) {
  for (int a = 0; a < N_AREAS; ++a) clamp_area(a, red, s_req, coef, v0, v0h);
}

extern "C" void host_kick_drift(float2* psi, float2* pi, const float2* force,
                                const int* area_of_row, const float* coef, u64 noise_base,
                                int noise_on, int shift_on, float h, float half_h) {
  for (idx_t i = 0; i < (idx_t)N_NODES; ++i)
    node_kick_drift(i, psi, pi, force, area_of_row, coef, noise_base, noise_on, shift_on, h,
                    half_h);
}

// Each chunk's block: its threads run one after another (thread(first, last, t, a, p)
// adds thread t's share to p), their partial sums added in thread order, the row stored.
template <class Thread>
static void host_blocks(const idx_t* chunk_first, const int* area_of_row, double* part,
                        unsigned int* part_max, Thread thread) {
  for (int c = 0; c < N_CHUNKS; ++c) {
    const idx_t first = chunk_first[c];
    const int a = area_of(area_of_row, first);
    Part block;
    part_zero(block);
    for (int t = 0; t < BLOCK; ++t) {
      Part p;
      part_zero(p);
      thread(first, chunk_first[c + 1], t, a, p);
      part_add(block, p);
    }
    part_store(block, c, part, part_max);
  }
}

extern "C" void host_force(const float2* psi, float2* pi, float2* force, const float* g,
                           float* g_next, float* anchor, const idx_t* chunk_first,
                           const int* area_of_row, const float* coef, double* part,
                           unsigned int* part_max, float half_h, float gmin, float gmax,
                           float kap_h, float mu_h) {
  host_blocks(chunk_first, area_of_row, part, part_max,
              [&](idx_t first, idx_t last, int t, int a, Part& p) {
                force_thread(first, last, t, a, psi, pi, force, g, g_next, anchor, coef,
                             half_h, gmin, gmax, kap_h, mu_h, p);
              });
}

extern "C" void host_force_kick_drift(const float2* psi, float2* psi_out, float2* pi,
                                      const float* g, float* g_next, float* anchor,
                                      const idx_t* chunk_first, const int* area_of_row,
                                      const float* coef_f, const float* coef_k, double* part,
                                      unsigned int* part_max, float half_h, float gmin,
                                      float gmax, float kap_h, float mu_h, u64 noise_base,
                                      int noise_on, int shift_on, float h) {
  host_blocks(chunk_first, area_of_row, part, part_max,
              [&](idx_t first, idx_t last, int t, int a, Part& p) {
                pipelined_thread(first, last, t, a, psi, psi_out, pi, g, g_next, anchor,
                                 coef_f, coef_k, half_h, gmin, gmax, kap_h, mu_h, noise_base,
                                 noise_on, shift_on, h, p);
              });
}

extern "C" void host_finish_sums(const int* area_chunk, const double* part,
                                 const unsigned int* part_max, double* red) {
  double total[NSUM];
  for (int j = 0; j < NSUM; ++j) total[j] = 0.0;
  for (int a = 0; a < N_AREAS; ++a) {
    Part block;
    part_zero(block);
    for (int t = 0; t < BLOCK; ++t) {
      Part p;
      part_zero(p);
      area_thread(a, t, area_chunk, part, part_max, p);
      part_add(block, p);
    }
    area_store(a, block, red, total);
  }
  for (int j = 0; j < NSUM; ++j) red[j] = total[j];
}

extern "C" void host_metric_grad(const float* g, const idx_t* chunk_first, int c0, int c1,
                                 double* mg_part) {
  for (int c = c0; c < c1; ++c) {
    double s = 0.0;
    for (int t = 0; t < BLOCK; ++t) s = s + metric_thread(chunk_first[c], chunk_first[c + 1], t, g);
    mg_part[c] = s;
  }
}

extern "C" void host_metric_finish(const int* area_chunk, const double* mg_part, double* out) {
  for (int a = 0; a < N_AREAS; ++a) {
    double s = 0.0;
    for (int t = 0; t < BLOCK; ++t) s = s + area_metric_thread(a, t, area_chunk, mg_part);
    out[a] = s;
  }
}
"""


def module_source(lat: Lattice) -> str:
    """The CUDA module of ``lat`` (``cupy.RawModule(code=..., options=NVRTC_OPTIONS)``,
    or :data:`NVRTC_PARITY_OPTIONS`)."""
    return prelude(lat) + COMMON + KERNELS


def host_source(lat: Lattice) -> str:
    """The same per-node and per-thread functions as C++ for the CPU, with the harness."""
    return prelude(lat) + COMMON + HOST_HARNESS
