"""Shannon entropy of the field's energy distribution, exact or sampled.

    H = −Σ_i p_i log₂ p_i,   p_i = e_i / S,   e_i = |Ψ_i|²,   S = Σ_i e_i   (seed 003 §6.1)

Rewritten as H = log₂ S − T / S with T = Σ_i e_i log₂ e_i, so only T needs the
logarithm: S is the energy V that every tick computes anyway (:mod:`reductions`).

* exact: T summed over all N nodes (CPU up to ``entropy_exact_max_nodes``; always on
  the GPU, where it is one more term of the fused reduction).
* sampled (CPU, large N): K node indices drawn uniformly *with replacement*,
  T̂ = (N/K) Σ_{j∈sample} e_j log₂ e_j, Ĥ = log₂ S − T̂/S with S exact. E[T̂] = T, and Ĥ is
  linear in T̂, so **Ĥ is unbiased**. Its standard error is
  SE = N · sd(e log₂ e) / (S √K), with the sample standard deviation (ddof = 1); it is
  reported as ``entropy_err_bits``. Cost O(K) beyond the O(N) pass for S.

This replaces the estimator of seed 003 §6.4 (docs/physics.md "Seed notes"): there the
replacement line assigns a float to the whole vector (``reservoir_ = energy``), the loop
visits all N nodes (O(N), not the O(K) claimed), and p = e (N/K)/S puts the (N/K)
factor *inside* the logarithm, biasing H by about −log₂(N/K) bits and making Σp ≠ 1.

Zero-energy nodes contribute 0 (the limit of x log x); e log₂ e is evaluated as
e · log₂ max(e, FLT_MIN), in the same way on both backends.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np

FLT_MIN = np.float32(np.finfo(np.float32).tiny)


def entropy_from_sums(s: float, t: float) -> float:
    """H in bits from S = Σe and T = Σ e log₂ e; 0 for an empty field (S = 0)."""
    if s <= 0.0:
        return 0.0
    return math.log2(s) - t / s


def xlog2x(xp: ModuleType, e: Any, out: Any) -> Any:
    """``out = e · log₂ max(e, FLT_MIN)`` (float32 or float64, no allocation)."""
    xp.maximum(e, FLT_MIN, out=out)
    xp.log2(out, out=out)
    xp.multiply(out, e, out=out)
    return out


def exact_t(xp: ModuleType, e: Any, tmp: Any) -> float:
    """T = Σ e log₂ e over all nodes. ``e``, ``tmp``: float32, same shape."""
    xlog2x(xp, e, tmp)
    return float(xp.sum(tmp, dtype=xp.float64))


class Sampler:
    """The uniform with-replacement sampler of the estimator; buffers preallocated.

    ``rng``: a numpy Generator (seeded by the caller: visible and reproducible).
    """

    def __init__(self, rng: np.random.Generator, k: int) -> None:
        self.rng = rng
        self.k = k
        self.u = np.empty(k, dtype=np.float64)
        self.idx = np.empty(k, dtype=np.intp)
        self.sample32 = np.empty(k, dtype=np.float32)
        self.sample = np.empty(k, dtype=np.float64)
        self.y = np.empty(k, dtype=np.float64)

    def estimate_t(self, e_flat: Any) -> tuple[float, float]:
        """(T̂, SE(T̂)) from K uniform draws of ``e_flat`` (float32, shape ``(N,)``)."""
        n = e_flat.shape[0]
        self.rng.random(out=self.u)
        np.multiply(self.u, n, out=self.u)
        np.floor(self.u, out=self.u)
        np.copyto(self.idx, self.u, casting="unsafe")
        np.minimum(self.idx, n - 1, out=self.idx)  # u < 1 always; guards rounding
        np.take(e_flat, self.idx, out=self.sample32)
        np.copyto(self.sample, self.sample32)
        xlog2x(np, self.sample, self.y)
        mean = float(np.sum(self.y)) / self.k
        np.subtract(self.y, mean, out=self.sample)  # centred: no cancellation in var
        sd = math.sqrt(float(np.dot(self.sample, self.sample)) / (self.k - 1))
        return n * mean, n * sd / math.sqrt(self.k)


def sampled_entropy(s: float, t_hat: float, t_se: float) -> tuple[float, float]:
    """(Ĥ, SE(Ĥ)) in bits from the exact S and the estimate T̂ ± SE(T̂)."""
    if s <= 0.0:
        return 0.0, 0.0
    return math.log2(s) - t_hat / s, t_se / s
