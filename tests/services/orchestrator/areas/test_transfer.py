"""The seed-002 transfer: mass accounting, safety limits under adversarial inputs, the
steady state, and calibration."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engs.services.orchestrator.areas.model import AreaNeurochemistry
from engs.services.orchestrator.areas.transfer import Flows, forward, steady_state
from engs.shared.layout import state_dtype
from tests.services.orchestrator.areas.helpers import (
    make_model,
    make_synthetic,
    rest_step,
    scramble,
)


def _random_step(m: AreaNeurochemistry, rng: np.random.Generator, cycle: int) -> None:
    rest_step(
        m,
        cycle,
        levels=tuple(float(v) for v in rng.uniform(0.0, 1.0, 4)),
        cortisol=float(rng.uniform()),
        boredom=float(rng.uniform()),
        napping=bool(rng.random() < 0.1),
        dmn=tuple(float(v) for v in rng.normal(0.0, 0.2, 5)),
        dmn_new=bool(rng.random() < 0.05),
        activity=rng.uniform(0.0, 5.0, m.n_areas),
    )


@pytest.mark.parametrize("graph", ["default", "synthetic"])
def test_mass_leaving_the_sources_is_accounted_for(graph: str) -> None:
    """Every cycle and every NT: what leaves the sources equals what arrives plus
    spillover plus what binding degrades, and the change of the total held in all sites
    (read from the state, before and after) equals synthesis minus every loss."""
    m = make_model() if graph == "default" else make_synthetic(100)
    scramble(m, 11)
    rng = np.random.default_rng(11)
    fl, kin = m.flows, m.kin
    saw = {"spilled": 0.0, "clipped": 0.0, "capped": 0}
    for cycle in range(150):
        before = m.mu.copy()
        _random_step(m, rng, cycle)
        after = m.mu
        # transfers leave their sources and reach their targets, edge by edge
        out = np.zeros_like(before)
        np.add.at(out, m.graph.src, fl.sent)
        influx = np.zeros_like(before)
        np.add.at(influx, m.graph.tgt, fl.sent)
        np.testing.assert_allclose(fl.out, out, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(fl.influx, influx, rtol=1e-12, atol=1e-15)
        sent = fl.sent.sum(axis=0)
        np.testing.assert_allclose(
            sent, (fl.arrived + fl.spilled + fl.degraded).sum(axis=0), rtol=1e-12, atol=1e-15
        )
        ledger = (
            fl.synthesised.sum(axis=0) - fl.decayed.sum(axis=0) - fl.spilled.sum(axis=0)
            - fl.degraded.sum(axis=0) - fl.clipped.sum(axis=0)
        )  # fmt: skip
        np.testing.assert_allclose((after - before).sum(axis=0), ledger, rtol=1e-9, atol=1e-12)
        assert np.all(after >= 0.0)
        saw["spilled"] += float(fl.spilled.sum())
        saw["clipped"] += float(np.abs(fl.clipped).sum())
        saw["capped"] += int((~fl.edge_ok & (kin.mask > 0)).sum())
    # the run exercised every loss term (the ledger was not trivially balanced)
    assert saw["spilled"] > 0 and saw["clipped"] > 0 and saw["capped"] > 0


_finite = st.floats(-1e6, 1e6, allow_nan=False)
_activity = st.one_of(
    st.floats(0.0, 1e30),
    st.floats(-1e3, 0.0),
    st.just(float("nan")),
    st.just(float("inf")),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31),
    levels=st.lists(st.floats(-10.0, 10.0), min_size=4, max_size=4),
    cortisol=st.floats(-10.0, 10.0),
    dmn=st.lists(_finite, min_size=5, max_size=5),
    activity=st.lists(_activity, min_size=4, max_size=4),
    extreme=st.sampled_from(["max", "min", "random"]),
    napping=st.booleans(),
)
def test_ceilings_and_max_delta_hold_for_adversarial_inputs(
    seed: int,
    levels: list[float],
    cortisol: float,
    dmn: list[float],
    activity: list[float],
    extreme: str,
    napping: bool,
) -> None:
    m = _MODEL
    m.load_state_dict(_SNAPSHOT)
    scramble(m, seed)
    rng = np.random.default_rng(seed)
    ps = m.params
    if extreme == "random":
        ps.theta[...] = rng.uniform(ps.lo, ps.hi)
    else:  # every learned parameter at a bound
        ps.theta[...] = ps.hi if extreme == "max" else np.maximum(ps.lo, -ps.hi)
    m.mu[m.n0 :] = rng.choice([0.0, 1.0], size=m.mu[m.n0 :].shape)  # at floor and ceiling
    kin = m.kin
    out = np.zeros((), state_dtype(8))
    for cycle in range(4):
        prev = m.mu.copy()
        rest_step(
            m,
            cycle,
            levels=tuple(levels),
            cortisol=cortisol,
            napping=napping,
            dmn=tuple(dmn),
            dmn_new=True,
            activity=np.array(activity),
        )
        mu = m.mu
        assert np.all(np.isfinite(mu)) and np.all(mu >= 0.0)
        assert np.all(mu <= kin.ceiling)  # hard ceilings (nuclei: their stores)
        step = np.abs(mu - prev)[m.n0 :]
        assert np.all(step <= kin.max_delta[m.n0 :] * (1 + 1e-12) + 1e-15)
        assert np.all(np.isfinite(ps.theta))
        assert np.all((ps.theta >= ps.lo) & (ps.theta <= ps.hi))
        assert np.all((m.x >= 0.0) & (m.x <= 1.0))
        m.fill(out, 1.0, 1.0, np.ones(m.n_areas))
        for f in ("area_plasticity", "area_elasticity", "area_speed", "area_damping",
                  "area_drive", "area_noise", "area_stimulus", "area_nt"):  # fmt: skip
            assert np.all(np.isfinite(out[f])), f
        n = m.n_areas
        assert np.all((out["area_plasticity"][:n] >= 0) & (out["area_plasticity"][:n] <= 2))
        assert np.all((out["area_speed"][:n] >= 1) & (out["area_speed"][:n] <= 2))
        for f in ("area_damping", "area_noise", "area_stimulus"):
            assert np.all((out[f][:n] >= 0.5 - 1e-6) & (out[f][:n] <= 1.5 + 1e-6)), f
        # the drive passes the receptors' saturating response: never above A_max
        a_max = m.scaling.a_max
        assert np.all((out["area_drive"][:n] > 0) & (out["area_drive"][:n] <= a_max + 1e-6))


_MODEL = make_model()
_SNAPSHOT = _MODEL.state_dict()


def test_steady_state_is_a_fixed_point_of_the_cycle() -> None:
    m = make_synthetic(100)
    scramble(m, 5)
    kin = m.kin
    kin.cap_edge[...] = np.inf  # the steady state ignores caps and clamps
    kin.cap_recv[...] = np.where(kin.receives, np.inf, 0.0)
    kin.max_delta[...] = np.inf
    kin.ceiling[...] = np.inf
    m.forward_cycle(
        levels=(0.6, 0.4, 0.5, 0.9), cortisol=0.1, boredom=0.2, napping=False,
        dmn=(0.0, 0.0, 0.0, 1.0, 0.0), node=None,
    )  # fmt: skip
    y = m.nets.y
    prop = m.mods.g * m.mods.s * y[2].reshape(-1)[kin.idx_src].reshape(m.mods.s.shape)
    ss = steady_state(kin, prop, m.driver[None, :])
    fl = Flows(m.n_sites, m.n_edges)
    forward(kin, ss.mu[0], m.mods.s, m.mods.g, y[2], np.ones_like(y[0]), m.driver, fl)
    np.testing.assert_allclose(fl.post, ss.mu[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fl.sent, ss.sent[0], rtol=1e-9, atol=1e-15)


def test_calibration_rests_every_area_at_its_configured_level() -> None:
    m = make_model()
    n0 = m.n0
    np.testing.assert_allclose(m.mu[n0:], m.rest_centre, rtol=1e-8)
    # rest = the NT's resting level x the innervation weights (projections.toml)
    da, sht, ne = m.rest_centre[:, 0], m.rest_centre[:, 1], m.rest_centre[:, 2]
    np.testing.assert_allclose(da, [0.3, 0.5, 0.5, 0.6], rtol=1e-12)  # sensory .. limbic
    np.testing.assert_allclose(sht, [0.5, 0.5, 0.5, 0.6], rtol=1e-12)
    np.testing.assert_allclose(ne, [0.36, 0.3, 0.3, 0.3], rtol=1e-12)
    np.testing.assert_allclose(m.lo, m.rest_centre - 0.1)
    # resting influx binds half the receptor capacity; gains stay near the weights
    flows: list[Any] = []
    rest_step(m, 1)
    flows.append(m.flows)
    occ = m.flows.bound[n0:] / m.flows.cap[n0:]
    np.testing.assert_allclose(occ, 0.5, rtol=1e-3)
    carried = m.kin.mask > 0
    ratio = m.mods.g[carried] / m.graph.weight[carried]
    assert ratio.min() > 0.5 and ratio.max() < 2.0
    # and one cycle at rest moves nothing measurably
    np.testing.assert_allclose(m.mu[n0:], m.rest_centre, rtol=1e-6)
