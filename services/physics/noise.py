"""Background noise: a counter-based complex Gaussian per node and tick.

The noise of node ``i`` at tick ``n`` is a pure function of (seed, n, i): the
splitmix64 sequence (Steele, Lea & Flood, "Fast splittable pseudorandom number
generators", OOPSLA 2014) read at position ``n · N + i``, turned into a complex normal
by Box–Muller. Why counter-based rather than a stateful ``Generator``:

* the NumPy path and the CUDA kernel (:mod:`cuda_source`, ``complex_normal``) draw the
  *same* numbers, so the two backends' trajectories can be compared with noise on;
* the GPU draws in registers inside the kick kernel: no noise array crosses memory;
* a tick's noise does not depend on how many ticks ran before or on the backend.

Distribution: ξ = r e^{iθ} with r = sqrt(−ln u₁), θ = 2π u₂, u₁ ∈ (0, 1) and u₂ ∈ [0, 1)
with 23 random bits each, so Re ξ and Im ξ are independent N(0, ½) and E|ξ|² = 1 (the
tail beyond |ξ|² = 16.6 — probability 6·10⁻⁸ — is cut by the 23-bit u₁).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
MASK64 = (1 << 64) - 1
TWO_POW_M23 = 2.0**-23
TWO_PI_F32 = np.float32(2.0 * np.pi)


def mix64(z: int) -> int:
    """The splitmix64 finaliser on a Python int (host side: seeds and keys)."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * MIX1) & MASK64
    z = ((z ^ (z >> 27)) * MIX2) & MASK64
    return z ^ (z >> 31)


def stream_key(seed: int) -> int:
    """The 64-bit key of the noise stream of ``seed`` (decorrelates nearby seeds)."""
    return mix64(seed + GOLDEN)


def tick_base(key: int, tick: int, n_nodes: int) -> int:
    """``key + tick · N · GOLDEN`` mod 2⁶⁴: position 0 of tick ``tick``'s block."""
    return (key + tick * n_nodes * GOLDEN) & MASK64


class NoiseScratch:
    """Preallocated buffers of :func:`complex_normal` for ``n`` nodes on ``xp``."""

    def __init__(self, xp: ModuleType, n: int) -> None:
        self.idx_golden = xp.arange(n, dtype=xp.uint64) * xp.uint64(GOLDEN)
        self.z = xp.empty(n, dtype=xp.uint64)
        self.t = xp.empty(n, dtype=xp.uint64)
        self.r = xp.empty(n, dtype=xp.float32)
        self.theta = xp.empty(n, dtype=xp.float32)


def complex_normal(xp: ModuleType, key: int, tick: int, out: Any, scratch: NoiseScratch) -> Any:
    """Fill ``out`` (complex64, shape ``(N,)`` or the lattice shape, C-contiguous) with
    the noise ξ of every node at ``tick``; E|ξ|² = 1, dimensionless. Allocates nothing.

    Mirrors ``complex_normal`` in the CUDA source operation for operation.
    """
    z, t, r, th = scratch.z, scratch.t, scratch.r, scratch.theta
    n = z.shape[0]
    xp.add(scratch.idx_golden, xp.uint64(tick_base(key, tick, n)), out=z)
    for shift, mult in ((30, MIX1), (27, MIX2)):
        xp.right_shift(z, xp.uint64(shift), out=t)
        xp.bitwise_xor(z, t, out=z)
        xp.multiply(z, xp.uint64(mult), out=z)
    xp.right_shift(z, xp.uint64(31), out=t)
    xp.bitwise_xor(z, t, out=z)
    # u1 = ((z >> 41) + 0.5) 2^-23 in (0, 1); r = sqrt(-ln u1)
    xp.right_shift(z, xp.uint64(41), out=t)
    xp.copyto(r, t, casting="unsafe")
    xp.add(r, np.float32(0.5), out=r)
    xp.multiply(r, np.float32(TWO_POW_M23), out=r)
    xp.log(r, out=r)
    xp.negative(r, out=r)
    xp.sqrt(r, out=r)
    # u2 = ((z >> 17) & (2^23 - 1)) 2^-23 in [0, 1); theta = 2 pi u2
    xp.right_shift(z, xp.uint64(17), out=t)
    xp.bitwise_and(t, xp.uint64(0x7FFFFF), out=t)
    xp.copyto(th, t, casting="unsafe")
    xp.multiply(th, np.float32(TWO_POW_M23), out=th)
    xp.multiply(th, TWO_PI_F32, out=th)
    flat = out.reshape(n)
    re, im = flat.real, flat.imag
    xp.cos(th, out=re)
    xp.multiply(re, r, out=re)
    xp.sin(th, out=im)
    xp.multiply(im, r, out=im)
    return out
