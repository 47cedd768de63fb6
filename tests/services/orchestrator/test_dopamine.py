"""Dopamine: the TD error, the tonic update inside the coupled step, the energy value,
and the standing bias of a per-cycle γ (docs/orchestrator.md §3)."""

from __future__ import annotations

import math

import pytest

from engs.services.orchestrator.dopamine import EnergyValue, per_cycle, td_error
from engs.services.orchestrator.inputs import CycleInputs
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
    """With couplings at rest: D' = D + β·δ_DA - λ_decay (D - D_base) + dt·λ_D·ΔD_eq(R̄),
    λ_decay = 1 - e^{-λ_D dt}; all rewards of one cycle count once, summed, and R̄ is
    their rate averaged over the time elapsed, but over no less than 5 s."""
    engs = make_engs({**DECOUPLED, "orchestrator.dopamine.value_model": "energy"})
    engs.dopamine = 0.7
    res = engs.step(CycleInputs(reward=0.75), None)  # e.g. 0.5 + 0.25 arriving together
    assert res.causes == 0
    delta = 0.75 + per_cycle(0.95, DT) * 0.0 - 0.0  # no telemetry: V = 0 before and after
    lam_decay = 1.0 - math.exp(-0.15 * DT)
    # The bias-corrected mean, over no less than reward_rate_min_s = 5 s of weight.
    alpha = 1.0 - math.exp(-DT / 20.0)
    rbar = alpha * 0.75 / DT / (1.0 - math.exp(-5.0 / 20.0))
    assert engs.reward_rate == pytest.approx(rbar, rel=1e-12)
    tonic = DT * 0.15 * 0.3 * math.tanh(rbar / 1.0)
    assert engs.td_error == pytest.approx(delta, abs=1e-15)
    assert engs.phasic_dopamine == engs.td_error  # a positive δ is passed on linearly
    assert engs.dopamine == pytest.approx(
        0.7 + 0.1 * delta - lam_decay * (0.7 - 0.5) + tonic, abs=1e-15
    )


def test_a_negative_error_is_compressed_in_the_phasic_signal() -> None:
    """Bayer & Glimcher 2005: δ_DA = 0.33·δ for δ < 0; D integrates δ_DA."""
    engs = make_engs({**DECOUPLED, "orchestrator.dopamine.value_model": "energy"})
    engs.step(CycleInputs(reward=-0.6), None)
    assert engs.td_error == pytest.approx(-0.6, abs=1e-15)
    assert engs.phasic_dopamine == pytest.approx(0.33 * -0.6, abs=1e-15)


def test_dopamine_clamps_to_unit_interval_and_delta_is_bounded() -> None:
    """A cycle's summed reward is unbounded (many signals may arrive in one cycle), the
    learning signal is not: δ is clipped at ``critic.delta_bound``; D stays in [0, 1]."""
    engs = make_engs({**DECOUPLED, "orchestrator.dopamine.value_model": "energy"})
    engs.step(CycleInputs(reward=-1e6), None)
    assert engs.td_error == -2.0
    for _ in range(30):
        engs.step(CycleInputs(reward=-1e6), None)
    assert engs.dopamine == 0.0
    engs.step(CycleInputs(reward=1e6), None)
    assert engs.td_error == 2.0
    for _ in range(10):
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
    D_base + β·0.33·δ / (1 - e^{-λ_D dt}) (docs §3; a negative δ is compressed in the
    phasic signal): about 0.494 with γ = 0.95 per second."""
    g = per_cycle(0.95, DT)
    predicted = 0.5 + 0.1 * 0.33 * (-(1.0 - g) * 0.5) / (1.0 - math.exp(-0.15 * DT))
    assert predicted == pytest.approx(0.4943, abs=1e-4)
    assert _steady_dopamine(0.95, 12_000) == pytest.approx(predicted, abs=1e-5)


def test_seed_gamma_per_cycle_pins_dopamine_at_zero() -> None:
    """The seed's γ = 0.95 read per 10 ms cycle (0.95^100 per second) drives D to 0 in
    a resting field: the anhedonia trap by construction (seed note)."""
    assert _steady_dopamine(0.95**100, 3_000) == 0.0


def test_average_reward_rate_tracks_the_rate_and_moves_the_resting_level() -> None:
    """R̄ converges to a steady reward rate (here 0.5 reward/s, one reward of 0.5 every
    second) and D's resting level rises by tonic_gain·tanh(R̄); with tonic_gain 0 (flip)
    the rate is still measured but D does not move."""
    levels = {}
    for gain in (0.3, 0.0):
        engs = make_engs({**DECOUPLED, **GLOBAL_ONLY, "orchestrator.dopamine.tonic_gain": gain})
        for k in range(12_000):  # 120 s
            engs.step(CycleInputs(reward=0.5 if k % 100 == 0 else 0.0), None)
        assert engs.reward_rate == pytest.approx(0.5, rel=0.05)
        levels[gain] = engs.dopamine
    shift = levels[0.3] - levels[0.0]
    assert shift == pytest.approx(0.3 * math.tanh(0.5), abs=0.03)
