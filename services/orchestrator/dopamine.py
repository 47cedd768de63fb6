"""Dopamine: the TD error and the seed's energy value (seed 003 §3.1-§3.2).

    δ = R + γ V(s') - V(s)                                          (§3.1)
    D(t+1) = clamp(D + β·δ - λ_decay (D - D_base), 0, 1)            (§3.2)

The tonic update is not done here: D is one component of the coupled state, so its
homeostatic decay is the coupling matrix's diagonal (λ_D = 0.15 s⁻¹, GAP-005) and
β·δ_DA — the phasic signal, δ with negative errors compressed (SN-54) — enters as an
impulse once per cycle, beside the average-reward drive (SN-55;
:mod:`engs.services.orchestrator.engs`). With the
cross-couplings at rest this is exactly §3.2 with λ_decay = 1 - e^{-λ_D·dt}
(0.0015 at 100 Hz; §3.2's "≈ 0.01" per step is replaced by the matrix's rate, which
the seed gives twice with different numbers). All rewards that arrive within one cycle
are summed into R (the seed's lock-free CAS accumulation becomes a per-cycle sum,
:class:`engs.services.orchestrator.inputs.InputAccumulator`).

The discount: the seed's γ = 0.95 carries no time unit. Read per 10 ms cycle it is a
0.2 s horizon, and with a value that does not vanish at rest (the field energy) it
gives a standing δ = -(1-γ)V̄ every cycle: -0.025 per cycle at V̄ = 0.5, enough to pin
D at 0 (the anhedonia trap, by construction). We read γ per *second* and use
γ_cycle = γ^{dt} (0.99949 at 100 Hz): a 20 s horizon, the same at any cycle rate, and a
standing bias of β·0.33·(1-γ_cycle)V̄ ≈ 8.5e-6 per cycle for this value (the learned
critic has none: no feature of it is constant).

The energy value (§3.1: V = ∫|Ψ|²) is normalised as V = E / (E + Ē) with Ē a running
mean of the field energy: dimensionless in [0, 1), 0.5 at the typical energy, with no
dependence on the physics' field units.
"""

from __future__ import annotations

import math

import msgspec


def td_error(reward: float, value_next: float, value: float, gamma: float) -> float:
    """δ = R + γ V(s') - V(s) (seed 003 §3.1)."""
    return reward + gamma * value_next - value


def phasic(delta: float, negative_gain: float) -> float:
    """The phasic dopamine response to a TD error: linear in a positive δ, compressed
    by ``negative_gain`` for a negative one (Bayer & Glimcher 2005, Neuron 47:129: the
    firing rate cannot fall as far below its ~5 Hz baseline as a burst rises above it)."""
    return delta if delta >= 0.0 else negative_gain * delta


def per_cycle(rate_per_s: float, dt: float) -> float:
    """A per-second factor (discount, trace decay) as a per-cycle factor: rate^dt."""
    return rate_per_s**dt


class EnergyValueState(msgspec.Struct, frozen=True):
    scale: float | None
    value: float


class EnergyValue:
    """V = E / (E + Ē): the seed's value, normalised by the running energy scale Ē."""

    def __init__(self, tau_s: float, dt: float) -> None:
        self._alpha = 1.0 - math.exp(-dt / tau_s)
        self.scale: float | None = None  # Ē; None until the first energy
        self.value = 0.0

    def update(self, energy: float) -> float:
        """Fold in this cycle's field energy (finite, ≥ 0) and return V(s')."""
        scale = energy if self.scale is None else self.scale
        scale += self._alpha * (energy - scale)
        self.scale = scale
        total = energy + scale
        self.value = energy / total if total > 0.0 else 0.0
        return self.value

    def state(self) -> EnergyValueState:
        return EnergyValueState(scale=self.scale, value=self.value)

    def load_state(self, st: EnergyValueState) -> None:
        self.scale = st.scale
        self.value = st.value
