"""Drivers (ENGS → nuclei) and effects (area levels → physics coefficients): the gates
are gates.py's, every neuromodulator moves exactly one coefficient, and the drivers
follow the documented rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engs.services.orchestrator import gates
from engs.services.orchestrator.areas import effects as fx
from engs.shared.layout import N_NT, NEUROMODULATORS
from tests.services.orchestrator.helpers import make_config

COEFFS = ("plasticity", "elasticity", "speed", "drive_gain", "damping", "noise_gain",
          "stimulus_gain")  # fmt: skip


def test_vectorised_gates_are_the_gates_of_gates_py() -> None:
    x = np.linspace(-0.5, 1.5, 201)
    for vec, scalar, args in (
        (fx.plasticity_gates, gates.plasticity_gate, (0.5, 5.0)),
        (fx.elasticity_gates, gates.elasticity_gate, (0.5, 5.0)),
    ):
        expected = np.array([scalar(float(v), *args) for v in x])
        np.testing.assert_allclose(vec(x, *args), expected, rtol=1e-15, atol=1e-15)
    expected = np.array([gates.speed_gain(float(v)) for v in x])
    np.testing.assert_allclose(fx.speed_gains(x), expected, rtol=1e-15)


def test_every_neuromodulator_moves_exactly_one_coefficient() -> None:
    """No passenger chemicals: raising one NT's level in every area changes exactly one
    of the seven published coefficients, and each coefficient has exactly one NT."""
    oc = make_config().orchestrator
    ef = fx.Effects(oc, 3)
    base = np.tile(fx.rest_levels(oc), (3, 1))
    ef.update(base)
    ref = {c: getattr(ef, c).copy() for c in COEFFS}
    owner: dict[str, str] = {}
    for n, name in enumerate(NEUROMODULATORS):
        x = base.copy()
        x[:, n] += 0.1
        ef.update(x)
        moved = [c for c in COEFFS if not np.allclose(getattr(ef, c), ref[c], rtol=1e-12)]
        assert len(moved) == 1, (name, moved)
        owner[moved[0]] = name
    assert sorted(owner) == sorted(COEFFS)
    assert owner == {
        "plasticity": "DA", "elasticity": "5HT", "speed": "NE", "noise_gain": "OXT",
        "stimulus_gain": "TST", "drive_gain": "HA", "damping": "ORX",
    }  # fmt: skip


def test_multipliers_are_one_at_rest_and_bounded() -> None:
    oc = make_config().orchestrator
    ef = fx.Effects(oc, 1)
    ef.update(fx.rest_levels(oc)[None, :])
    for c in ("drive_gain", "damping", "noise_gain", "stimulus_gain"):
        assert getattr(ef, c)[0] == 1.0
    for v in (0.0, 1.0):
        ef.update(np.full((1, N_NT), v))
        for c in ("drive_gain", "damping", "noise_gain", "stimulus_gain"):
            assert 0.5 < getattr(ef, c)[0] < 1.5
    ef.update(np.full((1, N_NT), 1.0))
    assert ef.drive_gain[0] == pytest.approx(1 + 0.5 * math.tanh(2.5))  # histamine: more drive
    assert ef.damping[0] == pytest.approx(1 - 0.5 * math.tanh(2.5))  # orexin: less damping
    assert ef.noise_gain[0] == pytest.approx(1 - 0.5 * math.tanh(2.5))  # oxytocin: less noise


def _drivers(oc: object, **sig: float) -> np.ndarray:
    rest = fx.rest_signals(oc)  # type: ignore[arg-type]
    s = rest.copy()
    for k, v in sig.items():
        s[fx.SIGNALS.index(k)] = v
    return fx.drivers(fx.driver_matrix(oc), fx.rest_levels(oc), s, rest)  # type: ignore[arg-type]


def test_drivers_follow_the_documented_rows() -> None:
    oc = make_config().orchestrator
    rest = fx.rest_levels(oc)
    np.testing.assert_array_equal(_drivers(oc), rest)
    da, sht, ne, oxt, tst, ha, orx = range(N_NT)
    d = _drivers(oc, dopamine=0.8, serotonin=0.2, norepinephrine=0.9)
    assert (d[da], d[sht], d[ne]) == pytest.approx((0.8, 0.2, 0.9))  # one to one
    assert d[tst] == pytest.approx(0.5 + 0.3 * 0.3)  # winner effect
    assert d[ha] == pytest.approx(0.5 + 0.3 * 0.6)  # arousal
    nap = _drivers(oc, nap=1.0)
    assert nap[ha] == pytest.approx(0.1) and nap[orx] == pytest.approx(0.1)  # silent in sleep
    assert _drivers(oc, atp=0.2)[orx] == pytest.approx(0.9)  # hunger excites orexin
    stressed = _drivers(oc, cortisol=0.6)
    assert stressed[tst] == pytest.approx(0.2) and stressed[oxt] == pytest.approx(0.32)
    assert _drivers(oc, safety=0.0)[oxt] == pytest.approx(0.0)
    assert np.all((_drivers(oc, dopamine=5.0, cortisol=-9.0) >= 0) & (_drivers(oc) <= 1))
    # a config row replaces that NT's row only
    oc2 = make_config({"orchestrator.areas.drivers": {"OXT": {"serotonin": 1.0}}}).orchestrator
    d2 = _drivers(oc2, serotonin=0.7, cortisol=0.6)
    assert d2[oxt] == pytest.approx(0.7) and d2[tst] == pytest.approx(0.2)
