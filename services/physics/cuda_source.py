"""CUDA source of the fused tick kernels, and its twin build for the CPU.

Three kernels per lattice (CuPy ``RawModule``, compiled by NVRTC once per shape):

``kick_drift``             half kick (damping, force), noise kick, drift, shift;
                           also zeroes the reduction buffer for the next kernel.
``force_kick_plasticity``  the 2d-neighbour stencil: F = v² L_g Ψ, the second half
                           kick, the Hebbian update of the node's d edges into g' (and of their
                           consolidated metric c, in place),
                           and every per-tick sum (V, Σ e log₂ e, kinetic, shadow,
                           potential, Σ|∇Ψ|², Σ|Δg|, per-area V, per-area max g_k),
                           block-reduced and accumulated with one atomic per block.
``metric_grad``            per-area Σ |∇g| (every ``metric_grad_every`` ticks).

So a tick is two launches, one 32·n_areas-byte table upload and one download of
7 + n_areas·(d + 1) doubles. The per-node arithmetic lives in ``DEVICE`` functions shared by the
kernels and by a host harness: :func:`host_source` compiles the *same text* as C++
for the CPU (``DEVICE`` = ``static inline``, ``float2`` a plain struct), which is how
the tests run this source on a machine without a GPU and compare it with the NumPy
twin (:mod:`integrator`) node for node. Only the block reductions and atomics are
GPU-only; they are checked by the ``gpu``-marked tests.

The operation order of every per-node expression is the NumPy twin's, and the code is
compiled without FMA contraction (``--fmad=false`` / ``-ffp-contract=off``), so the
elementwise parts agree bit for bit (up to the last-ulp differences of logf, sinf,
cosf, log2f between CUDA, glibc and NumPy's SIMD loops).

Geometry and layout constants are compile-time macros generated from the lattice
(:func:`prelude`); the per-axis stencil is unrolled by an X-macro, so every index
division is by a constant.
"""

from __future__ import annotations

import numpy as np

from engs.services.physics.coefficients import COLUMNS, NCOEF
from engs.services.physics.lattice import Lattice
from engs.services.physics.reductions import NSUM

BLOCK = 256

#: NVRTC options: C++17, no FMA contraction (see the module docstring).
NVRTC_OPTIONS: tuple[str, ...] = ("--std=c++17", "--fmad=false")

_SUM_NAMES = ("S_V", "S_T", "S_KIN", "S_SHADOW", "S_POT", "S_GRAD2", "S_DG")


def red_len(lat: Lattice) -> int:
    """Doubles in the reduction buffer: NSUM sums, n_areas area energies, then d·n_areas
    per-area maxima of g_k (stored as double bit patterns, ``[k * n_areas + a]``)."""
    return NSUM + lat.n_areas + lat.ndim * lat.n_areas


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
        f"#define NCOEF {NCOEF}",
        *(f"#define C_{name} {i}" for i, name in enumerate(COLUMNS)),
        f"#define NSUM {NSUM}",
        *(f"#define {name} {i}" for i, name in enumerate(_SUM_NAMES)),
        "#define RED_AREA_E NSUM",
        "#define RED_GMAX (NSUM + N_AREAS)",
        f"#define RED_LEN {red_len(lat)}",
        f"#define BLOCK {BLOCK}",
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
#define DEVICE static inline
struct float2 { float x; float y; };
#endif

typedef unsigned long long u64;
#if N_NODES <= 2147483647LL
typedef int idx_t;  // 32-bit index arithmetic when it fits: cheaper divisions
#else
typedef long long idx_t;
#endif

#define ENGS_FLT_MIN 0x1p-126f

// max that propagates NaN (np.max does; fmaxf would drop it and hide a bad metric)
DEVICE float max_nan(float a, float b) { return (a != a || a > b) ? a : b; }

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
DEVICE void node_kick_drift(idx_t i, float2* psi, float2* pi, const float2* force,
                            const int* area_of_row, const float* coef, u64 noise_base,
                            int noise_on, int shift_on, float h, float half_h) {
  const float* c = coef + area_of(area_of_row, i) * NCOEF;
  float2 p = pi[i];
  const float2 f = force[i];
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
  float2 q = psi[i];
  q.x = q.x + p.x * h;
  q.y = q.y + p.y * h;
  if (shift_on) {
    q.x = q.x + c[C_SHIFT_RE];
    q.y = q.y + c[C_SHIFT_IM];
  }
  pi[i] = p;
  psi[i] = q;
}

struct EdgeAcc {
  float lx, ly;      // L_g Psi
  float pot, grad2;  // sum_k g_k |grad_k Psi|^2, sum_k |grad_k Psi|^2
  float dg;          // sum_k |g'_k - g_k|
  float gmax[NDIM];  // g'_k (per-area maxima are taken by the reduction)
};

// Edge k of node i: flux divergence, edge sums and the Hebbian update
// (integrator.force_sweep and plasticity.hebbian_update, same operand order).
template <int K, long long NK, long long SK>
DEVICE void edge_step(idx_t i, float2 q, const float2* psi, const float* g, float* g_next,
                      float* anchor, float eta_h, float lam_h, float kap_h, float mu_h,
                      float gmin, float gmax, EdgeAcc& a) {
  const idx_t ck = (i / (idx_t)SK) % (idx_t)NK;
  const idx_t ip = (ck + 1 < (idx_t)NK) ? i + (idx_t)SK : i - (idx_t)((NK - 1) * SK);
  const idx_t im = (ck > 0) ? i - (idx_t)SK : i + (idx_t)((NK - 1) * SK);
  const long long off = (long long)K * N_NODES;
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
  a.gmax[K] = gn;
}

struct NodeOut {
  float e, elog, kin, shadow, pot, grad2, dg;
  float gmax[NDIM];
  int area;
};

// The force step of node i: F = c2 L_g Psi, second half kick, plasticity, node sums.
DEVICE void node_force(idx_t i, const float2* psi, float2* pi, float2* force, const float* g,
                       float* g_next, float* anchor, const int* area_of_row, const float* coef,
                       float half_h, float gmin, float gmax, float kap_h, float mu_h,
                       NodeOut& o) {
  const int a = area_of(area_of_row, i);
  const float* c = coef + a * NCOEF;
  const float2 q = psi[i];
  const float eta_h = c[C_ETA_H], lam_h = c[C_LAM_H];
  EdgeAcc acc;
  acc.lx = 0.0f; acc.ly = 0.0f; acc.pot = 0.0f; acc.grad2 = 0.0f; acc.dg = 0.0f;
#define ENGS_EDGE(K, NK, SK) \
  edge_step<K, NK, SK>(i, q, psi, g, g_next, anchor, eta_h, lam_h, kap_h, mu_h, gmin, gmax, \
                       acc);
  FOR_EACH_AXIS(ENGS_EDGE)
#undef ENGS_EDGE
  const float c2 = c[C_C2];
  float2 f;
  f.x = acc.lx * c2;
  f.y = acc.ly * c2;
  force[i] = f;
  float2 p = pi[i];
  const float damp = c[C_DAMP];
  p.x = p.x * damp;
  p.y = p.y * damp;
  p.x = p.x + f.x * half_h;
  p.y = p.y + f.y * half_h;
  pi[i] = p;
  const float e = q.x * q.x + q.y * q.y;
  const float w = c[C_INV_S2];
  o.e = e;
  o.elog = log2f(fmaxf(e, ENGS_FLT_MIN)) * e;
  o.kin = (p.x * p.x + p.y * p.y) * w;
  o.shadow = (f.x * f.x + f.y * f.y) * w;
  o.pot = acc.pot;
  o.grad2 = acc.grad2;
  o.dg = acc.dg;
  for (int k = 0; k < NDIM; ++k) o.gmax[k] = acc.gmax[k];
  o.area = a;
}

// |grad g|^2 contribution of axis J at node i: sum_k (g_k(x + e_J) - g_k(x))^2.
template <int J, long long NJ, long long SJ>
DEVICE float metric_axis(idx_t i, const float* g) {
  const idx_t cj = (i / (idx_t)SJ) % (idx_t)NJ;
  const idx_t ip = (cj + 1 < (idx_t)NJ) ? i + (idx_t)SJ : i - (idx_t)((NJ - 1) * SJ);
  float s = 0.0f;
  for (int k = 0; k < NDIM; ++k) {
    const long long off = (long long)k * N_NODES;
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
"""

KERNELS = r"""
// ---- GPU-only: block reductions and the kernels --------------------------------
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
__device__ __forceinline__ void block_max(float (&v)[NV]) {
  __shared__ float sh[NV][BLOCK / 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int j = 0; j < NV; ++j)
    for (int off = 16; off > 0; off >>= 1)
      v[j] = max_nan(v[j], __shfl_down_sync(0xffffffffu, v[j], off));
  if (lane == 0)
    for (int j = 0; j < NV; ++j) sh[j][warp] = v[j];
  __syncthreads();
  if (warp == 0) {
#pragma unroll
    for (int j = 0; j < NV; ++j) {
      v[j] = (lane < BLOCK / 32) ? sh[j][lane] : 0.0f;
      for (int off = 16; off > 0; off >>= 1)
        v[j] = max_nan(v[j], __shfl_down_sync(0xffffffffu, v[j], off));
    }
  }
}

// Positive doubles order like their bit patterns, so an unsigned 64-bit atomicMax on
// the bits is a float max (g >= g_min > 0; a NaN bit pattern wins, which is wanted).
__device__ __forceinline__ void atomic_max_pos(double* addr, float v) {
  atomicMax(reinterpret_cast<unsigned long long*>(addr),
            static_cast<unsigned long long>(__double_as_longlong(static_cast<double>(v))));
}

extern "C" __global__ void __launch_bounds__(BLOCK)
kick_drift(float2* __restrict__ psi, float2* __restrict__ pi, const float2* __restrict__ force,
           const int* __restrict__ area_of_row, const float* __restrict__ coef,
           double* __restrict__ red, u64 noise_base, int noise_on, int shift_on, float h,
           float half_h) {
  const long long i = (long long)blockIdx.x * BLOCK + threadIdx.x;
  if (i < RED_LEN) red[i] = 0.0;  // for force_kick_plasticity, next on the stream
  if (i < N_NODES)
    node_kick_drift((idx_t)i, psi, pi, force, area_of_row, coef, noise_base, noise_on,
                    shift_on, h, half_h);
}

extern "C" __global__ void __launch_bounds__(BLOCK)
force_kick_plasticity(const float2* __restrict__ psi, float2* __restrict__ pi,
                      float2* __restrict__ force, const float* __restrict__ g,
                      float* __restrict__ g_next, float* __restrict__ anchor,
                      const int* __restrict__ area_of_row, const float* __restrict__ coef,
                      double* __restrict__ red, float half_h, float gmin, float gmax,
                      float kap_h, float mu_h) {
  const long long first = (long long)blockIdx.x * BLOCK;
  const long long i = first + threadIdx.x;
  NodeOut o;
  o.e = 0.0f; o.elog = 0.0f; o.kin = 0.0f; o.shadow = 0.0f; o.pot = 0.0f; o.grad2 = 0.0f;
  o.dg = 0.0f; o.area = 0;
  for (int k = 0; k < NDIM; ++k) o.gmax[k] = 0.0f;
  if (i < N_NODES)
    node_force((idx_t)i, psi, pi, force, g, g_next, anchor, area_of_row, coef, half_h, gmin,
               gmax, kap_h, mu_h, o);
  // Areas are contiguous index ranges, so a block almost always lies in one area:
  // then one atomic per block per quantity; a block straddling a boundary falls back
  // to one atomic per node for the per-area quantities.
  const long long last = (first + BLOCK < N_NODES ? first + BLOCK : N_NODES) - 1;
  const int a0 = area_of(area_of_row, (idx_t)first);
  const bool uniform = a0 == area_of(area_of_row, (idx_t)last);
  if (!uniform && i < N_NODES) {
    atomicAdd(&red[RED_AREA_E + o.area], (double)o.e);
    for (int k = 0; k < NDIM; ++k) atomic_max_pos(&red[RED_GMAX + k * N_AREAS + o.area], o.gmax[k]);
  }
  double v[NSUM + 1] = {o.e, o.elog, o.kin, o.shadow, o.pot, o.grad2, o.dg, o.e};
  block_sum<NSUM + 1>(v);
  block_max<NDIM>(o.gmax);
  if (threadIdx.x == 0) {
    for (int j = 0; j < NSUM; ++j) atomicAdd(&red[j], v[j]);
    if (uniform) {
      atomicAdd(&red[RED_AREA_E + a0], v[NSUM]);
      for (int k = 0; k < NDIM; ++k) atomic_max_pos(&red[RED_GMAX + k * N_AREAS + a0], o.gmax[k]);
    }
  }
}

extern "C" __global__ void __launch_bounds__(BLOCK)
metric_grad(const float* __restrict__ g, const int* __restrict__ area_of_row,
            double* __restrict__ out) {
  const long long first = (long long)blockIdx.x * BLOCK;
  const long long i = first + threadIdx.x;
  const float m = i < N_NODES ? node_metric_grad((idx_t)i, g) : 0.0f;
  const long long last = (first + BLOCK < N_NODES ? first + BLOCK : N_NODES) - 1;
  const int a0 = area_of(area_of_row, (idx_t)first);
  const bool uniform = a0 == area_of(area_of_row, (idx_t)last);
  if (!uniform && i < N_NODES) atomicAdd(&out[area_of(area_of_row, (idx_t)i)], (double)m);
  double v[1] = {m};
  block_sum<1>(v);
  if (threadIdx.x == 0 && uniform) atomicAdd(&out[a0], v[0]);
}
"""

HOST_HARNESS = r"""
// ---- host build only: the same per-node functions over all nodes, sequentially ----
extern "C" void host_kick_drift(float2* psi, float2* pi, const float2* force,
                                const int* area_of_row, const float* coef, u64 noise_base,
                                int noise_on, int shift_on, float h, float half_h) {
  for (idx_t i = 0; i < (idx_t)N_NODES; ++i)
    node_kick_drift(i, psi, pi, force, area_of_row, coef, noise_base, noise_on, shift_on, h,
                    half_h);
}

extern "C" void host_force(const float2* psi, float2* pi, float2* force, const float* g,
                           float* g_next, float* anchor, const int* area_of_row,
                           const float* coef, double* red, float half_h, float gmin,
                           float gmax, float kap_h, float mu_h) {
  for (int j = 0; j < RED_LEN; ++j) red[j] = 0.0;
  for (idx_t i = 0; i < (idx_t)N_NODES; ++i) {
    NodeOut o;
    node_force(i, psi, pi, force, g, g_next, anchor, area_of_row, coef, half_h, gmin, gmax,
               kap_h, mu_h, o);
    const double v[NSUM] = {o.e, o.elog, o.kin, o.shadow, o.pot, o.grad2, o.dg};
    for (int j = 0; j < NSUM; ++j) red[j] += v[j];
    red[RED_AREA_E + o.area] += o.e;
    for (int k = 0; k < NDIM; ++k) {
      double* m = &red[RED_GMAX + k * N_AREAS + o.area];
      *m = (double)max_nan(o.gmax[k], (float)*m);
    }
  }
}

extern "C" void host_metric_grad(const float* g, const int* area_of_row, double* out) {
  for (int a = 0; a < N_AREAS; ++a) out[a] = 0.0;
  for (idx_t i = 0; i < (idx_t)N_NODES; ++i)
    out[area_of(area_of_row, i)] += (double)node_metric_grad(i, g);
}
"""


def module_source(lat: Lattice) -> str:
    """The CUDA module of ``lat`` (for ``cupy.RawModule(code=..., options=NVRTC_OPTIONS)``)."""
    return prelude(lat) + COMMON + KERNELS


def host_source(lat: Lattice) -> str:
    """The same per-node functions as C++ for the CPU, with the sequential harness."""
    return prelude(lat) + COMMON + HOST_HARNESS
