"""Every analytic gradient of the area model against central finite differences.

Each test puts a model in a scrambled state (random parameters and levels: binding
saturated in some areas and not others, edges at their caps, levels clamped by max Δ,
levels in and out of their bands), runs the forward half of a cycle, and compares the
analytic gradient with (L(θ + ε) - L(θ - ε)) / 2ε for a sample of coordinates of every
parameter group: relative error < 1e-4 on each coordinate (absolute < 1e-9 where the
gradient vanishes)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pytest

from engs.services.orchestrator.areas.homeostasis import hm_objective
from engs.services.orchestrator.areas.model import AreaNeurochemistry
from engs.services.orchestrator.areas.receptors import local_objective
from tests.services.orchestrator.areas.helpers import make_model, make_synthetic, scramble

EPS = 1e-6
LEVELS = (0.7, 0.35, 0.55, 0.6)
DMN = (0.05, -0.02, 0.03, 0.9, 0.01)


def _cycle(m: AreaNeurochemistry) -> None:
    m.forward_cycle(levels=LEVELS, cortisol=0.2, boredom=0.4, napping=False, dmn=DMN, node="3.6")


def _check(
    loss: Callable[[], float],
    theta: np.ndarray[Any, Any],
    grad: np.ndarray[Any, Any],
    idx: np.ndarray[Any, Any],
) -> int:
    """Compare ``grad[idx]`` with central differences of ``loss`` in ``theta[idx]``
    (``theta`` a view the loss reads); returns how many coordinates had a gradient."""
    flat_t, flat_g = theta.reshape(-1), grad.reshape(-1)
    nonzero = 0
    for i in idx:
        old = flat_t[i]
        flat_t[i] = old + EPS
        up = loss()
        flat_t[i] = old - EPS
        down = loss()
        flat_t[i] = old
        fd = (up - down) / (2 * EPS)
        a = flat_g[i]
        scale = max(abs(a), abs(fd))
        if scale < 1e-9:
            continue
        nonzero += 1
        assert abs(a - fd) / scale < 1e-4, f"coordinate {i}: analytic {a!r}, finite diff {fd!r}"
    loss()  # leave the forward state at θ
    return nonzero


def _sample(rng: np.random.Generator, grad: np.ndarray[Any, Any], n: int) -> np.ndarray[Any, Any]:
    """Up to ``n`` coordinates with a gradient and a few without."""
    flat = grad.reshape(-1)
    live = np.flatnonzero(flat != 0.0)
    dead = np.flatnonzero(flat == 0.0)
    pick = [rng.choice(live, size=min(n, live.size), replace=False)]
    if dead.size:
        pick.append(rng.choice(dead, size=min(5, dead.size), replace=False))
    return np.concatenate(pick)


#: (graph, seed) of each scrambled model the gradients are checked in.
SCRAMBLED = pytest.mark.parametrize(
    ("graph", "seed"), [("default", 1), ("default", 2), ("synthetic", 3)]
)


def _scrambled(graph: str, seed: int, values: dict[str, Any]) -> AreaNeurochemistry:
    """The default projection graph, or a random one with area → area edges, scrambled
    by ``seed`` and run through the forward half of a cycle (binding saturated in some
    areas and not in others)."""
    m = make_model(values) if graph == "default" else make_synthetic(60, values)
    scramble(m, seed)
    _cycle(m)
    assert (~m.flows.unsat[m.n0 :]).any() and m.flows.unsat[m.n0 :].any()
    return m


def _agrees(
    loss: Callable[[], float],
    value: float,
    seed: int,
    groups: Iterable[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], int]],
) -> int:
    """Check that ``loss`` is the analytic ``value`` and, for each (θ, gradient, n) of
    ``groups`` in turn, the gradient at up to ``n`` coordinates sampled from ``seed``;
    returns how many coordinates had a gradient."""
    assert loss() == pytest.approx(value, rel=1e-12)
    rng = np.random.default_rng(seed)
    return sum(_check(loss, theta, grad, _sample(rng, grad, n)) for theta, grad, n in groups)


@SCRAMBLED
def test_homeostasis_module_gradient_matches_finite_differences(graph: str, seed: int) -> None:
    m = _scrambled(graph, seed, {"orchestrator.areas.homeostasis.beta_sparsity": 0.3,
                                 "orchestrator.areas.homeostasis.beta_energy": 0.2})  # fmt: skip
    held = m.hm_inputs()
    fl = m.flows
    # the scrambled state exercises every branch of the transfer
    assert (~fl.edge_ok[m.kin.mask > 0]).any()
    assert (~fl.ok).any()
    value, dw, db, dg = m.learner.hm_gradients(held)

    def loss() -> float:
        _cycle(m)
        return hm_objective(m.kin, m.flows, m.mods.s, held, m.hc).value

    groups = ((m.mods.w, dw, 40), (m.mods.b, db, 40), (m.mods.g, dg, 40))
    assert _agrees(loss, value, seed, groups) >= 80


@SCRAMBLED
def test_receptor_network_gradient_matches_finite_differences(graph: str, seed: int) -> None:
    m = _scrambled(graph, seed, {"orchestrator.areas.receptors.w_energy": 0.3,
                                 "orchestrator.areas.receptors.drift": 0.05})  # fmt: skip
    held = m.local_inputs()
    obj = local_objective(m.kin, m.flows, m.nets.y, m.nets.ymax, held, m.rc)
    value, dw, db = m.learner.receptor_gradients(obj)

    def loss() -> float:
        _cycle(m)
        o = local_objective(m.kin, m.flows, m.nets.y, m.nets.ymax, held, m.rc)
        return o.value + m.rc.drift * m.learner.receptor_drift()[0]

    groups = (
        group
        for net in range(3)  # density, sensitivity, release
        for group in ((m.nets.w[net], dw[net], 30), (m.nets.b[net], db[net], 15))
    )
    assert _agrees(loss, value, seed, groups) >= 120


def test_eligibility_increments_are_the_output_gradients() -> None:
    """The traces accumulate (y - ȳ) ∂y/∂θ: check ∂(c·s)/∂(w, b) and ∂(c·y)/∂(W, b)."""
    m = make_model()
    scramble(m, 4)
    _cycle(m)
    rng = np.random.default_rng(4)
    c_s = rng.normal(size=m.mods.s.shape)
    c_y = rng.normal(size=m.nets.y.shape)
    dz = c_s * m.mods.dsdz
    dzy = c_y * m.nets.dydz

    def out_s() -> float:
        _cycle(m)
        return float((c_s * m.mods.s).sum())

    def out_y() -> float:
        _cycle(m)
        return float((c_y * m.nets.y).sum())

    n = _check(
        out_s, m.mods.w, dz[..., None] * m.mods.x, _sample(rng, dz[..., None] * m.mods.x, 30)
    )
    n += _check(out_s, m.mods.b, dz, _sample(rng, dz, 20))
    dw = dzy[..., None] * m.ctx[None, :, None, :]
    n += _check(out_y, m.nets.w, dw, _sample(rng, dw, 30))
    n += _check(out_y, m.nets.b, dzy, _sample(rng, dzy, 20))
    assert n >= 90
