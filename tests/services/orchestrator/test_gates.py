"""The gates reach the regimes the seed claims for them (ARCHITECTURE §6.9)."""

from __future__ import annotations

import math

import pytest

from engs.services.orchestrator.gates import (
    dream_temperature,
    elasticity_gate,
    plasticity_gate,
    relevance_gate,
    speed_gain,
)

KAPPA = 5.0


def test_plasticity_gate_at_d_0_half_1() -> None:
    # 1 + tanh(5 (D - 0.5)): 1 - tanh 2.5 = 0.0134, 1, 1 + tanh 2.5 = 1.9866.
    assert plasticity_gate(0.0, 0.5, KAPPA) == pytest.approx(0.013385, abs=1e-6)
    assert plasticity_gate(0.5, 0.5, KAPPA) == 1.0
    assert plasticity_gate(1.0, 0.5, KAPPA) == pytest.approx(1.986615, abs=1e-6)
    # "Plasticity lock" ≈ 0 and "hyper-plasticity" ≈ 2 (seed §3.3) ...
    assert plasticity_gate(0.0, 0.5, KAPPA) < 0.02
    assert plasticity_gate(1.0, 0.5, KAPPA) > 1.98
    # ... which the seed's gain-free gate does not reach: 0.54 and 1.46.
    assert plasticity_gate(0.0, 0.5, 1.0) == pytest.approx(1.0 - math.tanh(0.5))
    assert plasticity_gate(0.0, 0.5, 1.0) > 0.5


def test_elasticity_gate_at_s_0_half_1() -> None:
    assert elasticity_gate(0.0, 0.5, KAPPA) == pytest.approx(0.5 - 0.5 * math.tanh(2.5))
    assert elasticity_gate(0.0, 0.5, KAPPA) < 0.01  # λ → 0 at S = 0 (the S lesion)
    assert elasticity_gate(0.5, 0.5, KAPPA) == 0.5
    assert elasticity_gate(1.0, 0.5, KAPPA) > 0.99
    assert elasticity_gate(0.0, 0.5, 1.0) == pytest.approx(0.2689, abs=1e-4)  # seed: 0.27


def test_speed_gain_is_one_over_s_eff_with_the_quadratic_law() -> None:
    assert speed_gain(0.0) == 1.0
    assert speed_gain(0.3) == pytest.approx(1.09)
    assert speed_gain(1.0) == 2.0


def test_relevance_gate_reaches_zero_in_panic() -> None:
    def tau(n: float) -> float:
        return relevance_gate(n, 0.6, 0.6, 0.0, 0.95)

    assert tau(0.0) == pytest.approx(0.6)  # calm: discerning (seed)
    assert tau(0.5) == pytest.approx(0.3)
    assert tau(1.0) == 0.0  # the panic lesion's claim (GAP-029)
    # The seed's clamp(0.6 - 0.3N, 0.1, 0.95) stops at 0.3.
    assert relevance_gate(1.0, 0.6, 0.3, 0.1, 0.95) == pytest.approx(0.3)


def test_dream_temperature_falls_with_dopamine() -> None:
    assert dream_temperature(0.0, 0.5, 2.0) == 2.0
    assert dream_temperature(0.5, 0.5, 2.0) == 1.25
    assert dream_temperature(1.0, 0.5, 2.0) == 0.5
