"""The CFL guard: a huge speed gain (norepinephrine N → 1) is clamped, counted, and
the clamped operator satisfies v² h² λ_max <= 1 exactly (dense eigenvalues)."""

from __future__ import annotations

import numpy as np
import pytest

from engs.services.physics.coefficients import Coefficients
from engs.services.physics.field import Field
from tests.services.physics.support import config, dense_minus_laplacian, random_field


@pytest.mark.parametrize("shape", [(12,), (6, 5), (4, 3, 3)])
def test_large_speed_gain_is_clamped_counted_and_stable(shape: tuple[int, ...]) -> None:
    f = Field(config(shape, areas=3, wave_speed=100.0))
    rng = np.random.default_rng(5)
    g = rng.uniform(0.3, 4.0, size=(len(shape), *shape))
    c = Coefficients(3)
    c.plasticity[:] = 0.0
    c.elasticity[:] = 0.0
    c.damping[:] = 0.0
    c.speed[:] = [50.0, 1.0, 20.0]  # areas 0 and 2 far above the limit
    f.set_state(psi=random_field(shape, 4), g=g, coeffs=c)
    r = f.step(c)
    assert r.cfl_clamps == 2
    s = f.table.s_eff
    assert s[1] == 1.0 and s[0] < 50.0 and s[2] < 20.0
    # the operator actually integrated: K = diag(v²) (−L_g), per node
    lat = f.lattice
    v = (f.params.v0 * s[lat.area_of_node]).reshape(-1)
    k = (v**2)[:, None] * dense_minus_laplacian(lat, f.g_host().astype(np.float64))
    lam = np.linalg.eigvals(k).real.max()
    assert lam * f.params.h**2 <= 1.0 + 1e-9
    h0 = r.hamiltonian
    for _ in range(2000):
        r = f.step(c)
        assert r.cfl_clamps == 2
    assert r.nonfinite == 0
    assert abs(r.hamiltonian - h0) / h0 < 0.01


def test_unclamped_speed_above_the_true_limit_would_diverge() -> None:
    # Sanity check that the guard matters: bypass it and the field blows up.
    shape = (16,)
    f = Field(config(shape, areas=1, wave_speed=1500.0))  # (vh)² λ = 9 > 4
    c = Coefficients(1)
    c.damping[:] = 0.0
    c.plasticity[:] = 0.0
    c.elasticity[:] = 0.0
    f.set_state(psi=random_field(shape, 8), coeffs=c)
    f.lambda_bound[:] = 1e-6  # lie to the guard: no clamp
    f._update_lambda_bound = lambda: None  # type: ignore[method-assign]
    for _ in range(200):
        r = f.step(c)
    assert r.cfl_clamps == 0
    assert r.nonfinite > 0 or r.energy > 1e12
