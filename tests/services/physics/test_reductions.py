"""Per-area activity, metric gradient, costs and the telemetry record on crafted
fields whose values are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from engs.services.physics.coefficients import Coefficients
from engs.services.physics.field import Field
from engs.shared.layout import telemetry_dtype
from tests.services.physics.support import config

SHAPE = (12, 10)  # three areas of four rows


def still(n_areas: int) -> Coefficients:
    c = Coefficients(n_areas)
    c.speed[:] = 0.0  # Ψ does not move during the tick: the reductions see the input
    c.damping[:] = 0.0
    c.plasticity[:] = 0.0
    c.elasticity[:] = 0.0
    return c


def test_area_activity_and_energy_of_a_crafted_field() -> None:
    f = Field(config(SHAPE, areas=3))
    c = still(3)
    psi = np.zeros(SHAPE, np.complex64)
    psi[0:4] = 1.0
    psi[4:8] = 2.0j
    psi[8:12, ::2] = 3.0  # half the nodes of area 2
    f.set_state(psi=psi, coeffs=c)
    r = f.step(c)
    np.testing.assert_allclose(r.area_activity, [1.0, 4.0, 4.5])
    assert r.energy == pytest.approx(40 * (1 + 4) + 20 * 9)


def test_metric_gradient_is_zero_when_uniform_and_exact_on_a_ramp() -> None:
    f = Field(config(SHAPE, areas=3))
    c = still(3)
    g = np.ones((2, *SHAPE))
    f.set_state(g=g, coeffs=c)
    assert np.all(f.step(c).area_metric_grad == 0.0)
    # g_1 = 1 + 0.1 x_1 inside area 1 (rows 4..7, columns 0..9): |∇g| = 0.1 on the
    # ramp's interior; the wrap edge at column 9 sees g jump back by 0.9, and the
    # rows at the area's borders see g_1 change along axis 0 by 0.1 x_1.
    g[1, 4:8] = 1.0 + 0.1 * np.arange(10)[None, :]
    f2 = Field(config(SHAPE, areas=3, metric_grad_every=1))
    f2.set_state(g=g, coeffs=c)
    r = f2.step(c)
    x = 0.1 * np.arange(10)
    inner = np.where(np.arange(10) < 9, 0.1, 0.9)  # d g_1 / d x_1, with the wrap
    row_in = inner  # rows 4..6: only the axis-1 difference
    row_last = np.sqrt(inner**2 + x**2)  # row 7: also g_1(x + e_0) - g_1(x) = -0.1 x_1
    row_before = x  # row 3 (area 0): g_1(x + e_0) - g_1(x) = +0.1 x_1
    a1 = (3 * row_in.sum() + row_last.sum()) / 40
    a0 = row_before.sum() / 40
    np.testing.assert_allclose(r.area_metric_grad, [a0, a1, 0.0], rtol=1e-5)


def test_costs_of_a_plane_wave() -> None:
    shape = (16,)
    f = Field(config(shape, areas=1, cost_wave_weight=0.1, cost_plasticity_weight=1.5))
    c = still(1)
    k = 2 * np.pi / 16
    psi = np.exp(1j * k * np.arange(16)).astype(np.complex64)
    f.set_state(psi=psi, coeffs=c)
    r = f.step(c)
    grad2 = 16 * abs(np.exp(1j * k) - 1) ** 2  # Σ|∇Ψ|² of a unit plane wave
    assert r.kinetic_cost == pytest.approx(grad2 * f.params.h, rel=1e-5)
    assert r.plasticity_work == 0.0
    assert r.metabolic_cost == pytest.approx(0.1 * r.kinetic_cost)


@pytest.mark.parametrize("kind", ["0-d array", "void record"])
def test_write_telemetry_fills_the_physics_fields(kind: str) -> None:
    f = Field(config(SHAPE, areas=3))
    c = still(3)
    psi = np.ones(SHAPE, np.complex64)
    f.set_state(psi=psi, coeffs=c)
    buf = np.zeros(2, dtype=telemetry_dtype(8))
    buf["area_activity"] = 7.0  # stale rows beyond n_areas must be cleared
    rec = np.zeros((), dtype=telemetry_dtype(8)) if kind == "0-d array" else buf[1]
    if kind == "0-d array":
        rec["area_activity"] = 7.0
    r = f.step(c, out=rec)
    out = rec if kind == "0-d array" else buf[1]
    assert int(out["n_nodes"]) == 120 and int(out["n_areas"]) == 3
    assert int(out["backend"]) == 0
    assert float(out["energy"]) == pytest.approx(120.0)
    assert float(out["entropy_bits"]) == pytest.approx(np.log2(120))
    np.testing.assert_allclose(out["area_activity"][:3], 1.0)
    np.testing.assert_array_equal(out["area_activity"][3:], 0.0)
    assert float(out["hamiltonian"]) == pytest.approx(r.hamiltonian)
