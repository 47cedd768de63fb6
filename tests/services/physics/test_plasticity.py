"""Hebbian plasticity with consolidation: correlated neighbours strengthen,
anti-correlated weaken, no dopamine means no learning, serotonin sets how fast the metric
returns to its consolidated value, which follows the metric slowly and forgets slowly
(plasticity.py)."""

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


def test_without_consolidation_high_serotonin_returns_to_unit_metric_faster() -> None:
    f, c = frozen_field({"consolidation_rate": 0.0})
    c.plasticity[:] = 0.0
    c.elasticity[:] = [4.0, 0.5]  # area 0: high S; area 1: low S
    f.set_state(g=np.full((2, *SHAPE), 2.5), anchor=np.ones((2, *SHAPE)), coeffs=c)
    ticks = 500
    for _ in range(ticks):
        f.step(c)
    g = f.g_host()
    dev0 = np.abs(g[:, :4] - 1.0).max()
    dev1 = np.abs(g[:, 4:] - 1.0).max()
    assert dev0 < dev1
    # κ = 0: c decays to 1 on its own (μ) from 1, so it stays 1 and
    # dg/dt = -λ(g - 1) exactly: explicit Euler (1 - hλ)^n
    lam0 = f.params.lam0
    for dev, mult in ((dev0, 4.0), (dev1, 0.5)):
        np.testing.assert_allclose(dev, 1.5 * (1 - 1e-3 * lam0 * mult) ** ticks, rtol=1e-3)


def _reference(g0: float, c0: float, lam: float, kappa: float, mu: float, ticks: int) -> tuple:
    """The two-variable Euler of plasticity.py with no correlation, in float64."""
    h, g, cc = 1e-3, g0, c0
    for _ in range(ticks):
        g = g - h * lam * (g - cc)
        cc = cc + h * kappa * (g - cc) - h * mu * (cc - 1.0)
    return g, cc


def test_serotonin_pulls_the_metric_to_its_consolidated_value() -> None:
    f, c = frozen_field()
    c.plasticity[:] = 0.0
    c.elasticity[:] = [4.0, 0.0]  # area 0: high S; area 1: S = 0 (λ = 0)
    f.set_state(g=np.full((2, *SHAPE), 2.5), anchor=np.full((2, *SHAPE), 1.5), coeffs=c)
    ticks = 2000
    for _ in range(ticks):
        f.step(c)
    g, anchor = f.g_host(), f.anchor_host()
    p = f.params
    g0, c0 = _reference(2.5, 1.5, p.lam0 * 4.0, p.kappa, p.mu, ticks)
    g1, c1 = _reference(2.5, 1.5, 0.0, p.kappa, p.mu, ticks)
    np.testing.assert_allclose(g[:, :4], g0, rtol=1e-4)
    np.testing.assert_allclose(anchor[:, :4], c0, rtol=1e-4)
    np.testing.assert_allclose(g[:, 4:], g1, rtol=1e-4)  # λ = 0: g never moves
    np.testing.assert_allclose(anchor[:, 4:], c1, rtol=1e-4)
    # high S: g went to c (not to 1), and c kept most of its learning over 2 s
    assert abs(g0 - c0) < 0.05 and c0 > 1.4
    assert g1 == 2.5


def test_a_held_pattern_is_consolidated_and_a_blip_is_not() -> None:
    """Potentiation held for 60 s survives 5 s of elastic return; the same potentiation
    held for 0.5 s does not — and with consolidation off (the flip), neither does."""

    def kept(hold_s: float, cfg: dict[str, float] | None = None) -> float:
        f, c = frozen_field(cfg)
        c.plasticity[:] = 0.0
        c.elasticity[:] = 1.0
        g = np.full((2, *SHAPE), 2.0, np.float32)
        f.set_state(g=g, anchor=np.ones_like(g), coeffs=c)
        c.elasticity[:] = 0.0  # hold g at 2 (λ = 0) while c follows it
        for _ in range(round(hold_s * 1000)):
            f.step(c)
        c.elasticity[:] = 4.0  # strong return to c
        for _ in range(5000):
            f.step(c)
        return float(f.g_host().mean() - 1.0)

    held, blip = kept(60.0), kept(0.5)
    assert held > 0.6  # κ 0.05/s, μ 0.02/s: c → 1 + (κ/(κ+μ))(1 - e^{-(κ+μ)t}) ≈ 0.7
    assert blip < 0.05
    assert kept(60.0, {"consolidation_rate": 0.0}) < 0.01


def test_forgetting_without_forgetting_rate_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="forgetting_rate"):
        config(SHAPE, areas=2, consolidation_rate=0.1, forgetting_rate=0.0)


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


def test_plasticity_off_freezes_the_consolidated_metric_too() -> None:
    """``Mode.PLASTICITY_OFF`` (Coefficients.metric_frozen) stops κ and μ as well as η
    and λ: neither g nor c moves; without it c follows g."""
    moved = []
    for frozen in (True, False):
        f, c = frozen_field()
        c.plasticity[:] = 0.0
        c.elasticity[:] = 0.0
        f.set_state(g=np.full((2, *SHAPE), 2.0), anchor=np.full((2, *SHAPE), 1.5), coeffs=c)
        c.metric_frozen = frozen
        for _ in range(500):
            f.step(c)
        np.testing.assert_array_equal(f.g_host(), np.float32(2.0))
        moved.append(float(np.abs(f.anchor_host() - 1.5).max()))
    assert moved[0] == 0.0
    assert moved[1] > 1e-3
