"""The harness couples the real ENGS step and the real field exactly as the live loops do,
and its interventions (clamps, replacements, input) do what they say and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from engs.services.orchestrator.engs import Engs
from engs.services.orchestrator.gates import plasticity_gate
from engs.services.orchestrator.inputs import CycleInputs, Stimulus
from engs.services.orchestrator.metabolism import Calibration
from engs.services.physics.backend import numpy_backend
from engs.services.physics.coefficients import Coefficients
from engs.services.physics.field import make_field
from engs.services.validate.sim import (
    Clamp,
    Constant,
    Mechanisms,
    Sim,
    assay_shape,
    derive_config,
    running_mean,
)
from engs.shared.config import Config, load_config
from engs.shared.layout import Cause, state_dtype, telemetry_dtype


@pytest.fixture(scope="module")
def cfg() -> Config:
    return load_config(env={})


def _inputs(k: int) -> CycleInputs:
    if k == 3:
        return CycleInputs(stimuli=(Stimulus(area=0, amplitude=0.3),))
    if k == 7:
        return CycleInputs(reward=1.0)
    return CycleInputs()


def test_the_loop_by_hand_gives_the_same_field(cfg: Config) -> None:
    """The documented loop written out (orchestrator: step, fill_state, new seq; physics:
    10 ticks, each load_state + Field.step, the stimulus on the first tick of a new seq)
    reproduces the harness bit for bit."""
    sim = Sim(cfg, seed=3)
    run_cfg = sim.config
    assert tuple(run_cfg.physics.shape) == assay_shape(cfg) == (cfg.physics.shape[0], 4)
    engs = Engs(
        run_cfg, calibration=Calibration.reference(run_cfg.orchestrator.metabolism.reference_score)
    )
    field = make_field(run_cfg.physics, numpy_backend())
    coeffs = Coefficients(len(run_cfg.physics.areas))
    st = np.zeros((), state_dtype(run_cfg.shm.max_areas))
    tel = np.zeros((), telemetry_dtype(run_cfg.shm.max_areas))
    tick = 0
    for k in range(12):
        engs.step(_inputs(k), tel if tick else None)
        engs.fill_state(st)
        st["seq"] = k + 1
        for j in range(10):
            coeffs.load_state(st, with_stimulus=j == 0)
            field.step(coeffs, critical=False, out=tel)
            tick += 1
            tel["tick"] = tick
        sim.cycle(_inputs(k))
    assert sim.tick == tick == 120
    np.testing.assert_array_equal(sim.field.psi, field.psi)
    np.testing.assert_array_equal(sim.field.g, field.g)
    assert sim.engs.dopamine == engs.dopamine
    assert sim.engs.td_error == engs.td_error
    # without interventions the record is exactly what the ENGS published
    fresh = np.zeros((), state_dtype(run_cfg.shm.max_areas))
    sim.engs.fill_state(fresh)
    fresh["seq"] = sim.state["seq"]
    assert fresh.tobytes() == sim.state.tobytes()


def test_runs_are_deterministic_by_seed(cfg: Config) -> None:
    a, b, c = Sim(cfg, seed=1), Sim(cfg, seed=1), Sim(cfg, seed=2)
    for sim in (a, b, c):
        for k in range(8):
            sim.cycle(_inputs(k))
    np.testing.assert_array_equal(a.field.psi, b.field.psi)
    assert a.tel.tobytes() == b.tel.tobytes()
    assert not np.array_equal(a.field.psi, c.field.psi)  # noise differs


def test_dopamine_clamp_holds_the_level_and_its_gate(cfg: Config) -> None:
    sim = Sim(cfg, clamp=Clamp(dopamine=0.0))
    for _ in range(5):
        sim.cycle(CycleInputs(reward=1.0))  # would raise D without the clamp
    oc = sim.config.orchestrator
    gate = plasticity_gate(0.0, oc.coupling.d_eq, oc.dopamine.gate_gain)
    assert sim.engs.dopamine == 0.0
    assert float(sim.state["dopamine"]) == 0.0
    assert float(sim.state["plasticity_gate"]) == pytest.approx(gate)
    np.testing.assert_allclose(sim.state["area_plasticity"][: sim.n_areas], gate, rtol=1e-6)
    np.testing.assert_allclose(sim.coeffs.plasticity, gate, rtol=1e-6)  # what the field used


def test_norepinephrine_clamp_raises_panic_and_the_physics_sees_it(cfg: Config) -> None:
    sim = Sim(cfg, clamp=Clamp(norepinephrine=1.0))
    for _ in range(3):
        sim.cycle()
    assert sim.result.cause_set & Cause.PANIC
    assert sim.critical_cycles >= 2  # every cycle after the first step saw N = 1
    assert float(sim.state["relevance_gate"]) == 0.0
    assert sim.admit(0.0) and sim.admit(0.2)
    calm = Sim(cfg)
    calm.cycle()
    assert not calm.admit(0.2) and calm.admit(0.9)


def test_mechanism_replacement_and_input_drive(cfg: Config) -> None:
    sim = Sim(cfg, mechanisms=Mechanisms(elasticity_gate=Constant(0.25)))
    sim.drive_gain[:] = 0.5
    sim.drive_extra[1] = 0.2
    sim.cycle()
    n = sim.n_areas
    np.testing.assert_allclose(sim.state["area_elasticity"][:n], 0.25)
    # the input u = 0.5 x drive + extra passes through the areas' receptors (the area
    # model's ActivityScaling), as any input would
    chem = sim.engs.area_chem
    assert chem is not None
    extra = np.array([0.0, 0.2] + [0.0] * (n - 2))
    np.testing.assert_allclose(chem.input_gain, 0.5)
    np.testing.assert_allclose(chem.input_extra, extra)
    sc, fx = chem.scaling, chem.effects
    u = sim.engs.drive * fx.drive_gain * 0.5 + extra
    expected = sc.a_max * np.tanh(sc.rho0 * sc.density * fx.response_gain * u / sc.a_max)
    np.testing.assert_allclose(sim.state["area_drive"][:n], expected, rtol=1e-5)
    # without the area model the published drive itself is rescaled
    plain = Sim(derive_config(cfg, {"orchestrator.areas.enabled": False}))
    plain.drive_gain[:] = 0.5
    plain.drive_extra[:] = extra
    plain.cycle()
    base = np.zeros((), state_dtype(plain.config.shm.max_areas))
    plain.engs.fill_state(base)
    np.testing.assert_allclose(
        plain.state["area_drive"][:n], base["area_drive"][:n] * 0.5 + extra, rtol=1e-6
    )


def test_zero_value_critic_gives_the_reward_as_the_error(cfg: Config) -> None:
    sim = Sim(cfg, mechanisms=Mechanisms(zero_value=True))
    for k in range(30):
        sim.cycle(CycleInputs(reward=0.5) if k % 10 == 0 else CycleInputs())
        assert sim.engs.td_error_critic == (0.5 if k % 10 == 0 else 0.0)


def test_running_mean() -> None:
    np.testing.assert_allclose(running_mean(np.array([1.0, 2.0, 3.0, 4.0]), 2), [1, 1.5, 2.5, 3.5])
