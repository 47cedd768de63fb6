"""The learned critic: linear TD(λ) over state features (ARCHITECTURE §6.10).

A value defined only as the field energy (seed 003 §3.1) cannot learn predictions,
so it cannot reproduce the recorded dopamine signatures GAP-029 asks for (burst to an
unexpected reward, transfer of the burst to a predictive cue, dip at an omitted
reward). This critic can; the seed's energy value stays in as a feature, and the
dopamine config picks which value drives D (``dopamine.value_model``).

Features φ(s), float64, shape (3 + 2K,), all in [0, 1]:

* 1 (bias: the tonic, average-reward part of the value)
* V_E = E / (E + Ē), the seed's normalised field energy (:mod:`dopamine`)
* H / log2(n_nodes), the field's normalised Shannon entropy
* K cue microstimuli and K reward microstimuli (Ludvig, Sutton & Kehoe 2008,
  "Stimulus representation and the timing of reward-prediction errors in models of
  the dopamine system", Neural Computation 20): an onset sets a memory trace y = 1
  that decays as e^{-t/τ}; feature k is y·exp(-(y - k/K)² / 2σ²), a bump that peaks
  later and lower for smaller k, so a linear critic can time a reward that follows a
  cue. A cue onset is any stimulus input, a reward onset any non-zero reward. The
  reward's own microstimuli are what let the learned value drop within one cycle
  once a predicted reward has arrived (the cue's bumps are ~0.1 s wide), so the burst
  at a predicted reward can vanish as in the recordings.

Learning (Sutton & Barto 2018 §12.2, accumulating traces), once per cycle::

    δ = R + γ w·φ(s') - w·φ(s);   e ← γλ e + φ(s);   w ← w + (α/F) δ e

with γ and λ per cycle (per-second figures raised to dt). Writer and reader: the
control cycle (single thread); arrays are preallocated and updated in place.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np

from shared.config import CriticConfig

F64Array = np.ndarray[Any, np.dtype[np.float64]]

#: Fixed feature columns before the microstimuli.
BIAS, ENERGY, ENTROPY = 0, 1, 2
N_FIXED = 3


class CriticState(msgspec.Struct, frozen=True):
    weights: list[float]
    traces: list[float]
    features: list[float]  # φ(s) of the last cycle, the next update's "s"
    cue_trace: float
    reward_trace: float


class Features:
    """Builds φ(s') each cycle into a preallocated array; keeps the two onset traces."""

    def __init__(self, cfg: CriticConfig, dt: float) -> None:
        self.k = cfg.microstimuli
        self.n = N_FIXED + 2 * self.k
        self._centres = np.arange(1, self.k + 1, dtype=np.float64) / self.k
        self._inv_two_sigma2 = 1.0 / (2.0 * cfg.microstimulus_width**2)
        self._decay = math.exp(-dt / cfg.cue_tau_s)
        self.cue_trace = 0.0
        self.reward_trace = 0.0
        self._tmp = np.empty(self.k)

    def build(
        self, out: F64Array, energy_value: float, entropy_frac: float, cue: bool, reward: bool
    ) -> None:
        """Fill ``out`` (shape (n,)) with φ for this cycle; ``cue`` / ``reward``: an onset
        happened in this cycle."""
        self.cue_trace = 1.0 if cue else self.cue_trace * self._decay
        self.reward_trace = 1.0 if reward else self.reward_trace * self._decay
        out[BIAS] = 1.0
        out[ENERGY] = energy_value
        out[ENTROPY] = entropy_frac
        k = self.k
        self._micro(self.cue_trace, out[N_FIXED : N_FIXED + k])
        self._micro(self.reward_trace, out[N_FIXED + k :])

    def _micro(self, y: float, out: F64Array) -> None:
        np.subtract(self._centres, y, out=self._tmp)
        np.square(self._tmp, out=self._tmp)
        self._tmp *= -self._inv_two_sigma2
        np.exp(self._tmp, out=out)
        out *= y


class LinearTdCritic:
    """V(s) = w·φ(s), learned by TD(λ)."""

    def __init__(self, n_features: int, cfg: CriticConfig, gamma: float, lam: float) -> None:
        self.n = n_features
        self.weights = np.zeros(n_features)
        self.traces = np.zeros(n_features)
        self._step = np.zeros(n_features)
        self._alpha = cfg.alpha / n_features
        self._gamma = gamma
        self._gl = gamma * lam

    def value(self, phi: F64Array) -> float:
        return float(self.weights @ phi)

    def update(self, phi: F64Array, reward: float, phi_next: F64Array) -> float:
        """One TD(λ) step on the transition s → s'; returns δ."""
        delta = reward + self._gamma * self.value(phi_next) - self.value(phi)
        self.traces *= self._gl
        self.traces += phi
        np.multiply(self.traces, self._alpha * delta, out=self._step)
        self.weights += self._step
        return delta
