"""The learned critic: features by hand, one TD(λ) update by hand, and the recorded
dopamine signatures it reproduces where the energy value cannot (ARCHITECTURE §6.10)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.orchestrator.critic import Features, LinearTdCritic
from services.orchestrator.inputs import CycleInputs, Stimulus
from tests.services.orchestrator.helpers import GLOBAL_ONLY, make_config, make_engs

DT = 0.01


def test_microstimuli_by_hand() -> None:
    cfg = make_config().orchestrator.critic  # K = 10, σ = 0.08, τ = 1 s
    f = Features(cfg, DT)
    phi = np.zeros(f.n)
    assert f.n == 3 + 2 * 10
    f.build(phi, 0.4, 0.9, cue=True, reward=False)
    assert phi[:3].tolist() == [1.0, 0.4, 0.9]
    # y = 1: feature k is exp(-(1 - k/10)² / (2 · 0.08²)).
    cue = phi[3:13]
    assert cue[9] == 1.0
    assert cue[8] == pytest.approx(math.exp(-(0.1**2) / (2 * 0.08**2)))
    assert phi[13:].tolist() == [0.0] * 10  # no reward yet
    for _ in range(50):  # 0.5 s later: y = e^{-0.5}
        f.build(phi, 0.4, 0.9, cue=False, reward=False)
    y = math.exp(-0.5)
    assert f.cue_trace == pytest.approx(y, rel=1e-12)
    assert phi[3 + 5] == pytest.approx(y * math.exp(-((y - 0.6) ** 2) / (2 * 0.08**2)), rel=1e-12)


def test_td_lambda_update_by_hand() -> None:
    cfg = make_config({"orchestrator.critic.alpha": 0.3}).orchestrator.critic
    c = LinearTdCritic(3, cfg, gamma=0.9, lam=0.5)
    p0, p1, p2 = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    a = 0.3 / 3
    d1 = c.update(p0, 1.0, p1)  # w = 0: δ = 1; e = p0; w = a p0
    assert d1 == 1.0
    np.testing.assert_allclose(c.weights, [a, 0.0, 0.0])
    d2 = c.update(p1, 0.0, p2)  # δ = 0 + 0.9·0 - 0 = 0; e = 0.45 p0 + p1
    assert d2 == 0.0
    np.testing.assert_allclose(c.traces, [0.45, 1.0, 0.0])
    d3 = c.update(p2, 2.0, p0)  # δ = 2 + 0.9 a - 0; e = 0.45·(0.45, 1, 0) + p2
    assert d3 == pytest.approx(2.0 + 0.9 * a)
    np.testing.assert_allclose(c.traces, [0.2025, 0.45, 1.0])
    np.testing.assert_allclose(c.weights, np.array([a, 0, 0]) + a * d3 * c.traces)


CUE = CycleInputs(stimuli=(Stimulus(area=0, amplitude=1.0),))
REWARD = CycleInputs(reward=1.0)
IDLE = CycleInputs()
DELAY = 50  # cycles from cue to reward: 0.5 s


def _conditioning(value_model: str) -> tuple[list[float], list[float], float]:
    """Cue at t = 0, reward 0.5 s later, random 2-6 s trials (seed 11). Returns the δ at
    the cue and at the reward per trial, and the summed δ around the expected reward
    time in one final omission trial."""
    engs = make_engs({**GLOBAL_ONLY, "orchestrator.dopamine.value_model": value_model})
    rng = np.random.default_rng(11)
    at_cue, at_reward = [], []
    for _ in range(120):
        deltas = []
        for k in range(int(rng.integers(200, 600))):
            inp = CUE if k == 0 else REWARD if k == DELAY else IDLE
            engs.step(inp, None)
            deltas.append(engs.td_error)
        at_cue.append(deltas[0])
        at_reward.append(deltas[DELAY])
    omitted = 0.0
    for k in range(400):
        engs.step(CUE if k == 0 else IDLE, None)
        if DELAY - 10 <= k < DELAY + 30:
            omitted += engs.td_error
    return at_cue, at_reward, omitted


def test_critic_reproduces_burst_transfer_and_omission_dip() -> None:
    at_cue, at_reward, omitted = _conditioning("critic")
    # First trial: an unexpected reward gives the full burst, the cue nothing.
    assert at_reward[0] == pytest.approx(1.0, abs=1e-3)
    assert abs(at_cue[0]) < 1e-3
    # Trained: the burst has moved to the cue and mostly left the predicted reward.
    assert np.mean(at_cue[-20:]) > 0.2
    assert np.mean(at_reward[-20:]) < 0.5
    # Omission: a dip where the reward was due.
    assert omitted < -0.3


def test_energy_value_cannot_learn_the_prediction() -> None:
    at_cue, at_reward, omitted = _conditioning("energy")
    assert min(at_reward) > 0.99  # every reward stays a full surprise
    assert max(abs(x) for x in at_cue) < 1e-3  # the cue never predicts anything
    assert abs(omitted) < 1e-3  # and its absence is not missed
