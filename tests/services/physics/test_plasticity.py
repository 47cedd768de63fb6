"""Hebbian plasticity: correlated neighbours strengthen, anti-correlated weaken, no
dopamine means no learning, serotonin sets how fast the metric returns to 1."""

from __future__ import annotations

import numpy as np

from engs.services.physics.coefficients import Coefficients
from engs.services.physics.field import Field
from tests.services.physics.support import config

SHAPE = (8, 8)


def frozen_field(cfg_kw: dict[str, float] | None = None) -> tuple[Field, Coefficients]:
    """A field whose Ψ does not move (speed 0, no damping, no drive): only g evolves."""
    f = Field(config(SHAPE, areas=2, **(cfg_kw or {})))
    c = Coefficients(2)
    c.speed[:] = 0.0
    c.damping[:] = 0.0
    return f, c


def test_correlated_neighbours_strengthen_and_anticorrelated_weaken() -> None:
    f, c = frozen_field()
    c.elasticity[:] = 0.0
    psi = np.ones(SHAPE, np.complex64) * (0.6 + 0.8j)  # every neighbour pair in phase
    psi[:, 4:] *= np.where(np.arange(4) % 2 == 0, 1, -1)[None, :]  # columns 4..7 alternate
    f.set_state(psi=psi, coeffs=c)
    for _ in range(200):
        f.step(c)
    g = f.g_host()
    # axis 0 edges everywhere join equal values: Re(ΨΨ*) = |Ψ|² = 1 > 0
    assert (g[0] > 1.0).all()
    np.testing.assert_allclose(g[0], 1.0 + 200 * 1e-3 * 0.5 * 1.0, rtol=1e-4)
    # axis 1 edges inside columns 0..3 join equal values; 4..6 join opposite signs
    assert (g[1][:, 0:3] > 1.0).all()
    assert (g[1][:, 4:7] < 1.0).all()


def test_no_dopamine_means_the_metric_does_not_change() -> None:
    f, c = frozen_field()
    c.plasticity[:] = 0.0  # D ≈ 0: area_plasticity ≈ 0
    c.elasticity[:] = 1.0
    psi = np.full(SHAPE, 2.0 + 0j, np.complex64)
    f.set_state(psi=psi, coeffs=c)
    for _ in range(300):
        r = f.step(c)
    np.testing.assert_array_equal(f.g_host(), 1.0)
    assert r.plasticity_work == 0.0


def test_high_serotonin_area_returns_to_unit_metric_faster() -> None:
    f, c = frozen_field()
    c.plasticity[:] = 0.0
    c.elasticity[:] = [4.0, 0.5]  # area 0: high S; area 1: low S
    f.set_state(g=np.full((2, *SHAPE), 2.5), coeffs=c)
    ticks = 500
    for _ in range(ticks):
        f.step(c)
    g = f.g_host()
    dev0 = np.abs(g[:, :4] - 1.0).max()
    dev1 = np.abs(g[:, 4:] - 1.0).max()
    assert dev0 < dev1
    # explicit Euler of dg/dt = -λ(g - 1): (1 - hλ)^n
    lam0 = f.params.lam0
    for dev, mult in ((dev0, 4.0), (dev1, 0.5)):
        np.testing.assert_allclose(dev, 1.5 * (1 - 1e-3 * lam0 * mult) ** ticks, rtol=1e-3)


def test_conductance_stays_within_its_clamps() -> None:
    f, c = frozen_field({"plasticity_rate": 50.0, "conductance_max": 3.0})
    c.elasticity[:] = 0.0
    psi = np.ones(SHAPE, np.complex64) * 3.0
    psi[::2] *= -1  # rows alternate: axis 0 anti-correlated, axis 1 correlated
    f.set_state(psi=psi, coeffs=c)
    for _ in range(500):
        f.step(c)
    g = f.g_host()
    np.testing.assert_array_equal(g[0], np.float32(0.05))
    np.testing.assert_array_equal(g[1], np.float32(3.0))
    # the CFL bound follows the learned metric: G = g_max in every area
    np.testing.assert_allclose(f.g_area_max[1], 3.0)
