"""Non-finite values are detected, reported and recoverable; never silent."""

from __future__ import annotations

import numpy as np

from engs.services.physics.coefficients import Coefficients
from engs.services.physics.field import Field
from engs.shared.layout import telemetry_dtype
from tests.services.physics.support import config, random_field

SHAPE = (8, 8)


def test_nan_in_psi_is_detected_reported_and_recovered() -> None:
    f = Field(config(SHAPE, areas=2))
    c = Coefficients(2)
    psi = random_field(SHAPE, 3)
    psi[5, 2] = np.nan
    f.set_state(psi=psi, coeffs=c)
    tel = np.zeros((), dtype=telemetry_dtype(4))
    r = f.step(c, out=tel)
    assert r.nonfinite >= 1
    assert not np.isfinite(r.energy)
    assert int(tel["nonfinite"]) == r.nonfinite
    assert not np.isfinite(float(tel["energy"]))
    # it does not heal by itself: the NaN has spread to its neighbours
    r = f.step(c)
    assert r.nonfinite > 1
    reset = f.recover_nonfinite()
    assert reset > 0  # the Hebbian update wrote NaN into the conductances
    assert np.isfinite(f.g_host()).all()
    for _ in range(5):
        r = f.step(c)
        assert r.nonfinite == 0
        assert np.isfinite(r.energy) and np.isfinite(r.hamiltonian)
    assert np.abs(f.psi_host()).max() == 0.0  # recovery zeroes the field


def test_inf_in_pi_is_detected() -> None:
    f = Field(config(SHAPE, areas=2))
    c = Coefficients(2)
    pi = np.zeros(SHAPE, np.complex64)
    pi[0, 0] = np.inf
    f.set_state(pi=pi, coeffs=c)
    assert f.step(c).nonfinite >= 1


def test_nan_conductance_is_detected_and_reset() -> None:
    f = Field(config(SHAPE, areas=2))
    c = Coefficients(2)
    f.set_state(psi=random_field(SHAPE, 4), coeffs=c)
    f.g[1, 3, 3] = np.nan
    assert f.step(c).nonfinite >= 1
    assert f.recover_nonfinite() >= 1
    g = f.g_host()
    assert np.isfinite(g).all()
    assert f.step(c).nonfinite == 0
