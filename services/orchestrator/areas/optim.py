"""Gradient descent over one flat vector holding every learned array of the area model.

Why plain (clipped) SGD and not Adam: Adam's per-parameter normalisation turns every
one-sided term — sparsity, energy, the binding reward — into drift at the full step size
until the parameter reaches the boundary of some other term, whatever the weights say.
Tried: the density networks shrank receptor capacity to the resting influx within 10 s
(no headroom for phasic release), and the release networks' energy term and the
modulators' band term fought until s saturated. The losses are normalised instead, so
every term's gradient is O(1) per parameter (projected band errors, flows relative to
their resting values, sums per (area, receptor)), and plain descent balances the terms
as they are weighted; the seed's rates (002 §9: modulators 1e-3, base gains 1e-4) keep
their SGD meaning. Each step is clipped to ±:data:`MAX_STEP` per parameter (a guard
against the rare huge gradient, e.g. a spillover fraction of a vanishing influx).

Why one flat vector: the modulators' (w, b), the base gains and the receptor networks'
(W, b) are five arrays of different shapes, rates and bounds; one update over a single
vector with per-element rates and bounds costs the same few NumPy calls as one array
(the cycle is dominated by call overhead, not arithmetic). Each named array is a view
into the vector, so the rest of the code keeps its shapes; a frozen module gets rate 0.

Deterministic; :attr:`ParamSet.theta` and the traces are checkpointed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

F64Array = np.ndarray[Any, np.dtype[np.float64]]

MAX_STEP = 0.01
"""Largest change of one parameter in one cycle."""


class ParamSet:
    """Named parameter arrays as views of one vector, with their gradients, eligibility
    traces, per-element rates and bounds."""

    def __init__(self, specs: list[tuple[str, tuple[int, ...]]]) -> None:
        sizes = [math.prod(shape) for _, shape in specs]
        total = sum(sizes)
        self.theta = np.zeros(total)
        self.grad = np.zeros(total)
        self.trace = np.zeros(total)
        """Eligibility traces, same layout (three-factor credit)."""
        self.lr = np.zeros(total)
        self.lo = np.full(total, -np.inf)
        self.hi = np.full(total, np.inf)
        self.slices: dict[str, slice] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        off = 0
        for (name, shape), n in zip(specs, sizes, strict=True):
            self.slices[name] = slice(off, off + n)
            self.shapes[name] = shape
            off += n
        self._scratch = np.zeros(total)
        self._views: dict[tuple[str, str], F64Array] = {}

    def view(self, name: str, which: str = "theta") -> F64Array:
        """The array ``name`` as a view of ``theta`` (or ``grad``, ``trace``); views are
        made once and cached (the vectors are never reallocated)."""
        key = (name, which)
        v = self._views.get(key)
        if v is None:
            vec: F64Array = getattr(self, which)
            v = self._views[key] = vec[self.slices[name]].reshape(self.shapes[name])
        return v

    def configure(self, name: str, lr: float, lo: float, hi: float) -> None:
        sl = self.slices[name]
        self.lr[sl] = lr
        self.lo[sl] = lo
        self.hi[sl] = hi

    def step(self) -> None:
        """θ -= clip(lr · grad, ±MAX_STEP) (non-finite → 0), then clip θ to its bounds."""
        tmp = self._scratch
        np.multiply(self.lr, self.grad, out=tmp)
        # a non-finite gradient (an overflow under extreme inputs) is no step at all,
        # never a non-finite parameter
        np.nan_to_num(tmp, copy=False, nan=0.0, posinf=MAX_STEP, neginf=-MAX_STEP)
        np.maximum(tmp, -MAX_STEP, out=tmp)
        np.minimum(tmp, MAX_STEP, out=tmp)
        self.theta -= tmp
        np.maximum(self.theta, self.lo, out=self.theta)
        np.minimum(self.theta, self.hi, out=self.theta)

    def arrays(self) -> dict[str, np.ndarray[Any, Any]]:
        """What a checkpoint must hold (θ and the traces)."""
        return {"params.theta": self.theta, "params.trace": self.trace}
