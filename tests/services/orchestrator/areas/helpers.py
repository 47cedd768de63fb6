"""Builders shared by the area-model tests: models on the default graph, scrambled
states that exercise every branch (saturated binding, capped edges, clamped levels,
levels out of band), and a quiet stepping loop."""

from __future__ import annotations

from typing import Any

import numpy as np

from engs.services.orchestrator.areas.model import AreaNeurochemistry
from engs.services.orchestrator.areas.projections import synthetic_graph
from engs.services.orchestrator.areas.receptors import SENSITIVITY
from tests.services.orchestrator.helpers import make_config

REST_DMN = (0.0, 0.0, 0.0, 1.0, 0.0)


def make_model(values: dict[str, Any] | None = None) -> AreaNeurochemistry:
    """The area model of the default config with dotted-path overrides."""
    cfg = make_config(values)
    return AreaNeurochemistry(cfg.orchestrator, cfg.physics.areas)


def make_synthetic(n_edges: int, values: dict[str, Any] | None = None) -> AreaNeurochemistry:
    """An area model on a random graph with area → area projections (bench graph)."""
    cfg = make_config(values)
    return AreaNeurochemistry(cfg.orchestrator, (), graph=synthetic_graph(n_edges, seed=7))


def scramble(m: AreaNeurochemistry, seed: int) -> None:
    """Put ``m`` in a random, far-from-rest state (parameters and levels)."""
    rng = np.random.default_rng(seed)
    n0, na = m.n0, m.n_areas
    mask = m.kin.mask
    m.mu[n0:] = rng.uniform(0.05, 0.95, (na, 7))
    m.mu_prev[n0:] = np.clip(m.mu[n0:] + rng.normal(0.0, 0.03, (na, 7)), 0.0, 1.0)
    m.mu[:n0] *= rng.uniform(0.3, 1.5, m.mu[:n0].shape)
    m.mu[:n0] = np.minimum(m.mu[:n0], m.kin.ceiling[:n0])
    m.mods.w[...] = rng.normal(0.0, 0.5, m.mods.w.shape) * mask[..., None]
    m.mods.b[...] = rng.normal(0.0, 0.5, m.mods.b.shape) * mask
    m.mods.g[...] = rng.uniform(0.3, 3.0, m.mods.g.shape) * mask
    m.nets.w[...] = rng.normal(0.0, 0.3, m.nets.w.shape)
    m.nets.b[...] += rng.normal(0.0, 0.5, m.nets.b.shape)
    act = m.nets.active
    m.y_prev[...] = np.where(act, rng.uniform(0.5, 1.5, act.shape), 1.0)
    m.s_prev[...] = rng.uniform(0.0, m.hc.s_max, m.s_prev.shape) * mask
    m.occupancy[...] = rng.uniform(0.2, 1.0, m.occupancy.shape)
    m.regression.beta = rng.normal(0.0, 0.5, m.regression.beta.shape)
    m.regression.noise_leak = rng.uniform(0.0, 0.5, na)
    m.ru[...] = rng.uniform(0.0, 1.0, m.ru.shape)
    m.y_prev[SENSITIVITY, :n0] = 1.0
    # tighter and looser capacities, so some edges sit at their caps
    m.kin.cap_edge *= rng.uniform(0.1, 2.0, m.kin.cap_edge.shape)
    m.kin.cap_recv *= rng.uniform(0.3, 2.0, m.kin.cap_recv.shape)


def rest_step(m: AreaNeurochemistry, cycle: int, **kw: Any) -> Any:
    """One step of ``m`` at the ENGS resting state, overridable by keyword."""
    args: dict[str, Any] = {
        "cycle": cycle,
        "levels": (0.5, 0.5, 0.3, 1.0),
        "cortisol": 0.0,
        "boredom": 0.1,
        "napping": False,
        "dmn": REST_DMN,
        "dmn_new": False,
        "node": None,
        "activity": None,
        "dream": None,
        "rng": np.random.default_rng(0),
    } | kw
    return m.step(**args)
