"""Receptor homeostasis (seed 000): tolerance through sensitivity, the NoiseLeak
regression, β annealing, the three-factor credit of DMN outcomes, the node context."""

from __future__ import annotations

import itertools
import zlib
from typing import Any

import numpy as np
import pytest

from engs.services.orchestrator.areas.model import AreaNeurochemistry
from engs.services.orchestrator.areas.receptors import (
    N_DMN,
    N_GLOBALS,
    SENSITIVITY,
    ActivityRegression,
    annealed_beta,
    build_context,
    context_size,
    node_bucket,
)
from engs.shared.config import ReceptorConfig
from engs.shared.layout import N_NT
from tests.services.orchestrator.areas.helpers import make_model, rest_step

DA = 0


@pytest.mark.parametrize("learning", [True, False])
def test_receptors_alone_restore_effective_levels_by_tolerance(learning: bool) -> None:
    """Homeostasis Module frozen, D held at 0.9: the levels μ stay high, but learning
    receptors down-regulate their sensitivity until the effective levels x = ŝ·μ the
    physics sees are back in their bands (≈ 40 s); frozen receptors leave them out."""
    m = make_model(
        {
            "orchestrator.areas.homeostasis.learning": False,
            "orchestrator.areas.receptors.learning": learning,
        }
    )
    for i in range(4_500):
        rest_step(m, i, levels=(0.9, 0.5, 0.3, 1.0))
    x, lo, hi = m.x[:, DA], m.lo[:, DA], m.hi[:, DA]
    assert np.all(m.mu[m.n0 :, DA] > hi)  # the levels themselves stayed high
    shat = m.nets.y[SENSITIVITY, m.n0 :, DA]
    if learning:
        assert np.all((x >= lo) & (x <= hi)), x
        assert np.all(shat < 0.8)  # down-regulated
    else:
        assert np.all(x > hi)
        assert np.all(shat == 1.0)


def test_noise_leak_separates_explained_from_unexplained_activity() -> None:
    rng = np.random.default_rng(3)
    explained, noise = ActivityRegression(2, 0.01), ActivityRegression(2, 0.01)
    coef = rng.normal(size=(2, N_NT))
    for _ in range(3_000):
        u = rng.uniform(0.0, 1.0, (2, N_NT))
        explained.update(u, (coef * u).sum(axis=1) + 0.3 + 1e-3 * rng.normal(size=2))
        noise.update(u, rng.normal(size=2))
    explained.refit()
    noise.refit()
    assert np.all(explained.noise_leak < 0.01)
    np.testing.assert_allclose(explained.beta[:, :N_NT], coef, atol=0.05)
    np.testing.assert_allclose(explained.beta[:, N_NT], 0.3, atol=0.05)
    assert np.all(noise.noise_leak > 0.9)


def test_model_feeds_the_regression_from_telemetry_and_ignores_bad_records() -> None:
    m = make_model()
    for i in range(50):
        rest_step(m, i, activity=np.array([1.0, 2.0, 3.0, 4.0]) * (1 + 0.1 * (i % 3)))
    seen = int(m.regression.n[0])
    stats = m.regression.syy.copy()
    rest_step(m, 50, activity=np.array([1.0, np.nan, 3.0, 4.0]))  # a SCRAMmed record
    rest_step(m, 51, activity=np.array([1.0, -2.0, 3.0, 4.0]))
    rest_step(m, 52, activity=None)
    assert int(m.regression.n[0]) == seen == 50
    assert np.array_equal(m.regression.syy, stats)
    assert np.all((m.activity > 0.0) & (m.activity < 1.0))  # S̄ = act / (act + Ā)


def test_beta_is_annealed_upward_from_small() -> None:
    rc = ReceptorConfig()
    betas = [annealed_beta(rc, t) for t in (0.0, 10.0, 60.0, 120.0, 600.0, 1e6)]
    assert betas[0] == pytest.approx(rc.beta_start) and betas[-1] == pytest.approx(rc.beta_end)
    assert all(a < b for a, b in itertools.pairwise(betas))


def _twin(m: AreaNeurochemistry) -> AreaNeurochemistry:
    twin = make_model()
    twin.load_state_dict(m.state_dict())
    return twin


def test_dmn_outcomes_credit_the_eligibility_traces() -> None:
    """A DMN report adds exactly rate x advantage x trace to each module's parameters:
    α1 (ΔC - C̄) for the modulators, β_t (Eff_cog - Ē) for the receptor networks."""
    m = make_model()
    rng = np.random.default_rng(8)
    for i in range(300):  # varying levels: outputs deviate from their means
        rest_step(m, i, levels=tuple(rng.uniform(0.2, 0.8, 4)))
    a, b = _twin(m), _twin(m)
    assert a.params.theta.tobytes() == m.params.theta.tobytes()
    dmn = (0.3, 0.1, 0.05, 1.0, 0.02)  # a better-than-usual outcome
    levels = (0.6, 0.5, 0.3, 1.0)
    base_c, base_e = float(a.learner.baselines[0]), float(a.learner.baselines[1])
    rest_step(a, 300, levels=levels, dmn=dmn, dmn_new=True)
    rest_step(b, 300, levels=levels, dmn=dmn, dmn_new=False)
    assert np.array_equal(a.params.trace, b.params.trace)  # the traces do not see it
    ps = a.params
    diff = a.params.theta - b.params.theta
    hm, net = a.learner.hm, a.learner.net
    adv_c = a.hc.alpha_coherence * (dmn[0] - base_c)
    adv_e = a.metrics.beta * (a.metrics.eff_cog - base_e)
    assert adv_c > 0 and adv_e > 0
    np.testing.assert_allclose(diff[hm], ps.lr[hm] * adv_c * ps.trace[hm], rtol=1e-6, atol=1e-15)
    np.testing.assert_allclose(diff[net], ps.lr[net] * adv_e * ps.trace[net], rtol=1e-6, atol=1e-15)
    assert np.abs(diff[hm]).max() > 0 and np.abs(diff[net]).max() > 0
    # and the baselines move towards the outcome
    assert a.learner.baselines[0] > base_c
    assert np.array_equal(b.learner.baselines, m.learner.baselines)


def test_the_cognitive_node_is_a_stable_one_hot_context() -> None:
    assert node_bucket("3.6", 8) == zlib.crc32(b"3.6") % 8
    assert node_bucket(None, 8) == -1
    c = context_size(8)
    k, n0 = 3, 1
    out = np.zeros((k, c))
    args: Any = (np.zeros((k, N_NT)), np.zeros((k - n0, N_NT)), np.zeros((k - n0, N_NT)),
                 np.zeros(N_GLOBALS), np.zeros(N_DMN))  # fmt: skip
    build_context(*args, node_bucket("3.6", 8), n0, out)
    hot = out[:, 3 * N_NT + N_GLOBALS + N_DMN :]
    assert np.array_equal(hot.sum(axis=1), np.ones(k))
    assert np.argmax(hot[0]) == node_bucket("3.6", 8)
    other = next(f"n{i}" for i in range(20) if node_bucket(f"n{i}", 8) != node_bucket("3.6", 8))
    build_context(*args, node_bucket(other, 8), n0, out)
    assert np.argmax(out[0, 3 * N_NT + N_GLOBALS + N_DMN :]) != node_bucket("3.6", 8)
    build_context(*args, -1, n0, out)
    assert not out[:, 3 * N_NT + N_GLOBALS + N_DMN :].any()
