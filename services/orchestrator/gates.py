"""Gates: the dimensionless multipliers the ENGS publishes for the physics.

Pure functions of the global levels (seed 003 §3.3, §4.1, §5.1, §5.2; GAP-005):

* plasticity gate  η/η₀ = 1 + tanh(κ_D (D - D_eq))          in (0, 2)
* elasticity gate  λ/λ₀ = 0.5 + 0.5·tanh(κ_S (S - S_eq))    in (0, 1)
* speed gain       v/v₀ = 1/s_eff = 1 + N²                  in [1, 2]
* relevance gate   τ = clamp(base - slope·N, floor, ceiling)

Departures from the seed, and why (docs/orchestrator.md, seed notes):

* The seed's gates have no gain inside the tanh. Then ``1 + tanh(D - 0.5)`` spans
  only [0.54, 1.46] and ``0.5 + 0.5·tanh(S - 0.5)`` bottoms at 0.27, so neither the
  "plasticity lock" (η ≈ 0 at D = 0), "hyper-plasticity" (η ≈ 2η₀ at D = 1) nor
  λ → 0 at S = 0 that the seed (§3.3, GAP-029 lesions) claims is reached. With
  κ = 5: 0.013 / 1 / 1.987 at D = 0 / 0.5 / 1 and 0.0067 at S = 0 (ARCHITECTURE §6.9).
* s_eff: the seed has ``s/(1+N)`` in §5.1 and ``s/(1+N²)`` in GAP-005. We take the
  quadratic form, which the physics implements (ARCHITECTURE §3): arousal barely
  changes the wave speed at calm levels (N_eq = 0.3 gives 1.09) and doubles it in
  panic, and the CFL guard of the physics bounds the product either way (§6.6).
* Relevance: ``clamp(0.6 - 0.3N, 0.1, 0.95)`` bottoms at 0.3, not the τ = 0 the panic
  lesion (GAP-029: "threshold drops to 0") claims. Slope 0.6 and floor 0 keep the
  calm value 0.6 and reach 0 at N = 1 (configurable).

Callers: :mod:`engs.services.orchestrator.engs` once per cycle.
"""

from __future__ import annotations

import math


def plasticity_gate(d: float, centre: float, gain: float) -> float:
    """η/η₀ = 1 + tanh(κ (D - D_eq)): Hebbian rate multiplier, in (0, 2)."""
    return 1.0 + math.tanh(gain * (d - centre))


def elasticity_gate(s: float, centre: float, gain: float) -> float:
    """λ/λ₀ = 0.5 + 0.5·tanh(κ (S - S_eq)): restoring-force multiplier, in (0, 1)."""
    return 0.5 + 0.5 * math.tanh(gain * (s - centre))


def speed_gain(n: float) -> float:
    """v/v₀ = 1/s_eff with s_eff = s_local / (1 + N²) and s_local = 1 (GAP-005)."""
    return 1.0 + n * n


def relevance_gate(n: float, base: float, slope: float, floor: float, ceiling: float) -> float:
    """τ(N) = clamp(base - slope·N, floor, ceiling): RGT admission threshold."""
    return min(ceiling, max(floor, base - slope * n))


def dream_temperature(d: float, t_min: float, t_max: float) -> float:
    """Noise temperature of dream-weave replay (seed 003 §8.1): high dopamine means
    satisfaction with the current model (low noise), low dopamine high variance."""
    return t_max - (t_max - t_min) * min(1.0, max(0.0, d))
