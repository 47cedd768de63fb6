"""Dopamine: the TD error, the tonic update inside the coupled step, the energy value,
and the standing bias of a per-cycle γ (docs/orchestrator.md §3)."""

from __future__ import annotations

import math

import pytest

from services.orchestrator.dopamine import EnergyValue, per_cycle, td_error
from services.orchestrator.inputs import CycleInputs
from tests.services.orchestrator.helpers import DECOUPLED, GLOBAL_ONLY, FakeTelemetry, make_engs

DT = 0.01


def test_td_error_by_hand() -> None:
    assert td_error(1.0, 0.4, 0.3, 0.9) == pytest.approx(1.0 + 0.36 - 0.3)
    assert td_error(0.0, 0.5, 0.5, 1.0) == 0.0
    assert per_cycle(0.95, DT) == pytest.approx(math.exp(0.01 * math.log(0.95)))


def test_energy_value_is_normalised_by_its_running_scale() -> None:
    ev = EnergyValue(tau_s=60.0, dt=DT)
    assert ev.update(100.0) == 0.5  # the first reading is the scale
    alpha = 1.0 - math.exp(-DT / 60.0)
    scale = 100.0 + alpha * (300.0 - 100.0)
    assert ev.update(300.0) == pytest.approx(300.0 / (300.0 + scale))
    assert ev.update(0.0) == 0.0


def test_tonic_update_is_the_seed_formula_with_the_matrix_decay() -> None:
    """With couplings at rest: D' = D + β·δ - λ_decay (D - D_base), λ_decay = 1 - e^{-λ_D dt},
    and all rewards of one cycle count once, summed."""
    engs = make_engs({**DECOUPLED, "orchestrator.dopamine.value_model": "energy"})
    engs.dopamine = 0.7
    res = engs.step(CycleInputs(reward=0.75), None)  # e.g. 0.5 + 0.25 arriving together
    assert res.causes == 0
    delta = 0.75 + per_cycle(0.95, DT) * 0.0 - 0.0  # no telemetry: V = 0 before and after
    lam_decay = 1.0 - math.exp(-0.15 * DT)
    assert engs.td_error == pytest.approx(delta, abs=1e-15)
    assert engs.dopamine == pytest.approx(0.7 + 0.1 * delta - lam_decay * (0.7 - 0.5), abs=1e-15)


def test_dopamine_clamps_to_unit_interval() -> None:
    engs = make_engs({**DECOUPLED, "orchestrator.dopamine.value_model": "energy"})
    engs.step(CycleInputs(reward=-1e6), None)
    assert engs.dopamine == 0.0
    engs.step(CycleInputs(reward=1e6), None)
    assert engs.dopamine == 1.0


def _steady_dopamine(gamma_per_s: float, cycles: int) -> float:
    engs = make_engs(
        {
            **DECOUPLED,
            **GLOBAL_ONLY,
            "orchestrator.dopamine.value_model": "energy",
            "orchestrator.dopamine.gamma": gamma_per_s,
        }
    )
    tel = FakeTelemetry(engs, energy=250.0)
    for _ in range(cycles):
        engs.step(CycleInputs(), tel.next())
    return engs.dopamine


def test_energy_value_standing_bias_with_gamma_per_second() -> None:
    """A constant field gives V = 1/2 and δ = -(1 - γ_c)/2 every cycle; D settles at
    D_base + β δ / (1 - e^{-λ_D dt}) (docs §3): about 0.483 with γ = 0.95 per second."""
    g = per_cycle(0.95, DT)
    predicted = 0.5 + 0.1 * (-(1.0 - g) * 0.5) / (1.0 - math.exp(-0.15 * DT))
    assert predicted == pytest.approx(0.4829, abs=1e-4)
    assert _steady_dopamine(0.95, 12_000) == pytest.approx(predicted, abs=1e-5)


def test_seed_gamma_per_cycle_pins_dopamine_at_zero() -> None:
    """The seed's γ = 0.95 read per 10 ms cycle (0.95^100 per second) drives D to 0 in
    a resting field: the anhedonia trap by construction (seed note)."""
    assert _steady_dopamine(0.95**100, 3_000) == 0.0
