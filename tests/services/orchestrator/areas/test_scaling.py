"""Activity scaling (services/orchestrator/areas/receptors.py ActivityScaling): the
receptors each area's drive passes through restore its activity after a drive
step-down, within the saturation's overshoot bound; frozen, they do nothing. The plant
here is the off-resonant field's own law, activity = A² (docs/physics.md §13)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engs.services.orchestrator.areas.receptors import ActivityScaling
from engs.shared.config import ScalingConfig
from tests.services.orchestrator.areas.helpers import make_model

DT = 0.01


def _run(
    sc: ActivityScaling, inputs: list[tuple[float, float]], learning: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Drive one area with (input, seconds) segments; activity = A² each cycle."""
    out = np.zeros(1)
    act, dens = [], []
    for u, seconds in inputs:
        for _ in range(round(seconds / DT)):
            sc.respond(np.array([u]), out)
            a = float(out[0]) ** 2
            sc.observe(np.array([a]), learning)
            act.append(a)
            dens.append(float(sc.density[0]))
    return np.array(act), np.array(dens)


def test_the_calibrated_density_passes_the_awake_drive_unchanged() -> None:
    for drive in (0.2, 1.0, 3.0):
        sc = ActivityScaling(ScalingConfig(), 2, drive, DT)
        out = np.zeros(2)
        sc.respond(np.array([drive, 0.0]), out)
        assert out[0] == pytest.approx(drive, rel=1e-12) and out[1] == 0.0
        assert sc.density[0] == 1.0


@pytest.mark.parametrize("low", [0.3, 0.5, 0.7])
def test_a_deprived_area_recovers_and_overshoots_within_the_saturation_bound(low: float) -> None:
    cfg = ScalingConfig()
    sc = ActivityScaling(cfg, 1, 1.0, DT)
    t = cfg.tau_s
    act, dens = _run(sc, [(1.0, 5.0), (low, 3 * t), (1.0, 4 * t)])
    set_point = act[round(4.0 / DT) : round(5.0 / DT)].mean()
    i_low, i_back = round(5.0 / DT), round((5.0 + 3 * t) / DT)
    assert act[i_low] < 0.8 * set_point  # the step reaches the activity
    assert abs(act[i_back - 1] / set_point - 1.0) <= 0.2  # restored during deprivation
    assert dens[i_back - 1] > 1.2  # by up-regulating the receptors
    peak = act[i_back:].max() / set_point - 1.0
    assert 0.0 < peak <= cfg.headroom**2 - 1.0  # overshoot, bounded by saturation
    assert abs(act[-1] / set_point - 1.0) <= 0.05 and abs(dens[-1] - 1.0) <= 0.05


def test_frozen_receptors_do_not_restore_activity() -> None:
    sc = ActivityScaling(ScalingConfig(), 1, 1.0, DT)
    act, dens = _run(sc, [(1.0, 5.0)])
    set_point = act[-100:].mean()
    act, dens = _run(sc, [(0.5, 300.0)], learning=False)
    assert act[-1] / set_point < 0.6 and np.all(dens == 1.0)


def test_no_deprivation_no_drift() -> None:
    sc = ActivityScaling(ScalingConfig(), 1, 1.0, DT)
    _, dens = _run(sc, [(1.0, 200.0)])
    assert np.abs(dens - 1.0).max() < 1e-9


def test_the_activity_error_relaxes_at_one_rate_in_and_out_of_saturation() -> None:
    # ln(a/a*) decays as e^{-t/τ} whether the response is near-linear (small input) or
    # saturated (large): the step divides by the response's own log-sensitivity
    cfg = ScalingConfig(tau_s=50.0)
    for drive in (0.05, 1.0):
        sc = ActivityScaling(cfg, 1, drive, DT)
        act, _ = _run(sc, [(drive, 5.0), (0.7 * drive, 50.0)])
        a0 = act[round(4.0 / DT) : round(5.0 / DT)].mean()
        e_start = math.log(act[round(5.0 / DT) + 1] / a0)
        e_end = math.log(act[-1] / a0)
        assert e_end / e_start == pytest.approx(math.exp(-1.0), abs=0.05)


def test_disabled_scaling_publishes_the_input_itself() -> None:
    sc = ActivityScaling(ScalingConfig(enabled=False), 1, 1.0, DT)
    out = np.zeros(1)
    sc.respond(np.array([7.5]), out)
    assert out[0] == 7.5


def test_the_model_routes_the_environment_input_through_the_receptors() -> None:
    m = make_model()
    n = m.n_areas
    from engs.shared.layout import state_dtype

    st = np.zeros((), state_dtype(16))
    m.fill(st, 1.0, 0.01, np.zeros(n))
    base = np.array(st["area_drive"][:n], dtype=float)
    m.input_gain[:] = 0.5
    m.input_extra[1] = 0.3
    m.fill(st, 1.0, 0.01, np.zeros(n))
    got = np.array(st["area_drive"][:n], dtype=float)
    sc = m.scaling
    u = 0.5 * m.effects.drive_gain + np.array([0.0, 0.3, 0.0, 0.0])[:n]
    want = sc.a_max * np.tanh(sc.rho0 / sc.a_max * m.effects.response_gain * u)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert np.all(got < base + 0.3)
