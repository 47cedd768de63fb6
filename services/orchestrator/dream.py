"""The dream buffer (dream-weave replay): a bounded buffer of recent experiences and its
sampler. Not ``engs replay`` (the session-log re-run, orchestrator/session.py).

Seed 003 §8.1 (AUTO-03): during naps, experiences are replayed with probability::

    P(i) ∝ β(N)·Priority_i + (1 - β(N))·Diversity_i

Choices the seed leaves open (docs/orchestrator.md §7):

* Priority_i = |δ_i| + ε (the TD error when it was recorded: "focusing on errors"),
  Diversity_i = ‖φ_i - φ̄‖₂ (distance of its critic features from the buffer's mean:
  "broadening generalisation"). Each is normalised to sum 1 before mixing, so β is the
  probability mass on the priority term whatever the two scales are.
* β(N) = N: high norepinephrine focuses replay on errors, low spreads it.
* The dream noise temperature is set by dopamine (:func:`gates.dream_temperature`) and
  handed to the learning code with each batch (the seed injects it into counterfactual
  simulations; the physics also receives it as ``area_noise`` while napping).

What is recorded (one row per experience; the learning code of a later issue reads
them): the ENGS cycle, a summary of the critic features φ(s) (the field features and
each cue's elapsed time: critic.Features.summarise), the reward, the TD error, the levels
[D, S, N, A], per-area activity from telemetry and the latest DMN metrics (seed 000:
the cognitive outcomes credit is assigned to). Rows live in preallocated ring arrays;
recording allocates nothing. The buffer is checkpointed (:meth:`DreamBuffer.state`,
bytes-exact, only the filled rows): the area model's sleep consolidation samples it
inside the step, so a restart or ``engs replay`` that began with an empty buffer would
dream other dreams and diverge at the first nap (docs/areas.md).

Writer: the control cycle (``add``); ``sample`` is called by the nap's learning code on
the same thread, with the ENGS's seeded generator (deterministic).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from engs.services.orchestrator.inputs import N_DMN

F64Array = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True)
class DreamBatch:
    """Sampled experiences (copies; the caller owns them). Row i of every array is
    sample i."""

    slots: np.ndarray[Any, np.dtype[np.int64]]
    probability: F64Array
    """P(slot) under the mixture, shape (n,)."""
    cycle: np.ndarray[Any, np.dtype[np.int64]]
    features: F64Array
    """φ(s), shape (n, n_features)."""
    reward: F64Array
    td_error: F64Array
    levels: F64Array
    """[D, S, N, A] at recording, shape (n, 4)."""
    activity: np.ndarray[Any, np.dtype[np.float32]]
    """Per-area activity from telemetry, shape (n, n_areas)."""
    dmn: F64Array
    """Latest DMN metrics at recording, shape (n, 5) (inputs.DMN_FIELDS order)."""
    beta: float
    noise_temperature: float


class DreamState(msgspec.Struct, frozen=True, kw_only=True):
    """The filled rows of a :class:`DreamBuffer` (slots 0..size-1), as raw little-endian
    bytes (base64 in JSON), and the ring position."""

    capacity: int
    n_features: int
    n_areas: int
    next: int
    size: int
    cycle: bytes
    features: bytes
    reward: bytes
    td_error: bytes
    levels: bytes
    activity: bytes
    dmn: bytes


class DreamBuffer:
    """Ring buffer of the most recent ``capacity`` experiences."""

    def __init__(self, capacity: int, n_features: int, n_areas: int, priority_floor: float) -> None:
        self.capacity = capacity
        self._floor = priority_floor
        self._cycle = np.zeros(capacity, dtype=np.int64)
        self._features = np.zeros((capacity, n_features))
        self._reward = np.zeros(capacity)
        self._td = np.zeros(capacity)
        self._levels = np.zeros((capacity, 4))
        self._activity = np.zeros((capacity, n_areas), dtype=np.float32)
        self._dmn = np.zeros((capacity, N_DMN))
        self._next = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(
        self,
        cycle: int,
        features: F64Array,
        reward: float,
        td_error: float,
        levels: tuple[float, float, float, float],
        activity: np.ndarray[Any, Any] | None,
        dmn: tuple[float, ...],
    ) -> None:
        i = self._next
        self._cycle[i] = cycle
        self._features[i] = features
        self._reward[i] = reward
        self._td[i] = td_error
        self._levels[i] = levels
        if activity is None:
            self._activity[i] = 0.0
        else:
            self._activity[i] = activity
        self._dmn[i] = dmn
        self._next = (i + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)

    def _arrays(self) -> dict[str, np.ndarray[Any, Any]]:
        return {
            "cycle": self._cycle, "features": self._features, "reward": self._reward,
            "td_error": self._td, "levels": self._levels, "activity": self._activity,
            "dmn": self._dmn,
        }  # fmt: skip

    def state(self) -> DreamState:
        """The filled rows and ring position, bytes-exact."""
        n = self._size
        rows = {k: np.ascontiguousarray(a[:n]).tobytes() for k, a in self._arrays().items()}
        return DreamState(
            capacity=self.capacity,
            n_features=self._features.shape[1],
            n_areas=self._activity.shape[1],
            next=self._next,
            size=n,
            **rows,
        )

    def load_state(self, st: DreamState) -> None:
        """Restore :meth:`state` of a buffer of the same shape; ValueError otherwise."""
        shape = (self.capacity, self._features.shape[1], self._activity.shape[1])
        if (st.capacity, st.n_features, st.n_areas) != shape:
            raise ValueError(
                f"replay state of capacity {st.capacity}, {st.n_features} features, "
                f"{st.n_areas} areas; this buffer has {shape[0]}, {shape[1]}, {shape[2]}"
            )
        if not (0 <= st.size <= self.capacity and 0 <= st.next < self.capacity):
            raise ValueError(f"replay state size {st.size} / next {st.next} out of range")
        decoded = {}
        for name, arr in self._arrays().items():
            data: bytes = getattr(st, name)
            row = arr[0].nbytes
            if len(data) != st.size * row:
                raise ValueError(f"replay state `{name}`: {len(data)} bytes for {st.size} rows")
            decoded[name] = np.frombuffer(data, dtype=arr.dtype).reshape((st.size, *arr.shape[1:]))
        for name, arr in self._arrays().items():
            arr[: st.size] = decoded[name]
            arr[st.size :] = 0
        self._next, self._size = st.next, st.size

    def probabilities(self, beta: float) -> F64Array:
        """P(i) over the filled slots 0..len-1 (slot order, not age order)."""
        n = self._size
        if n == 0:
            return np.zeros(0)
        priority = np.abs(self._td[:n]) + self._floor
        priority /= priority.sum()
        feats = self._features[:n]
        dist = np.linalg.norm(feats - feats.mean(axis=0), axis=1)
        total = dist.sum()
        diversity = dist / total if total > 0.0 else np.full(n, 1.0 / n)
        b = min(1.0, max(0.0, beta))
        p = b * priority + (1.0 - b) * diversity
        return p / p.sum()

    def sample(
        self, n: int, beta: float, noise_temperature: float, rng: np.random.Generator
    ) -> DreamBatch:
        """Draw ``n`` experiences (with replacement) from P(i)."""
        p = self.probabilities(beta)
        if len(p) == 0:
            raise ValueError("the replay buffer is empty: nothing to dream about yet")
        slots = rng.choice(len(p), size=n, replace=True, p=p).astype(np.int64)
        return DreamBatch(
            slots=slots,
            probability=p[slots],
            cycle=self._cycle[slots],
            features=self._features[slots],
            reward=self._reward[slots],
            td_error=self._td[slots],
            levels=self._levels[slots],
            activity=self._activity[slots],
            dmn=self._dmn[slots],
            beta=beta,
            noise_temperature=noise_temperature,
        )
