"""The computed mode spectrum (services/physics/modes.py) and the defaults chosen from it
(issue 13): the drive sits far from every mode it forces, the field stays bounded under an
input step, and the old 10 Hz carrier is shown resonant by the same checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engs.services.physics.backend import numpy_backend
from engs.services.physics.cfl import global_lambda_bound
from engs.services.physics.coefficients import Coefficients
from engs.services.physics.field import make_field
from engs.services.physics.lattice import Lattice
from engs.services.physics.modes import (
    drive_detuning,
    leapfrog_hz,
    mode_frequencies_hz,
    spectrum_ceiling_hz,
)
from engs.shared.config import Config, PhysicsConfig
from tests.services.physics.support import SEED, dense_minus_laplacian

#: "Several linewidths" (issue 13), with margin.
MIN_LINEWIDTHS = 10.0


@pytest.mark.parametrize("shape", [(6,), (8, 4), (4, 3, 2)])
def test_spectrum_equals_the_dense_operators_eigenvalues(shape: tuple[int, ...]) -> None:
    lat = Lattice(list(shape), ["a"])
    g = np.full((len(shape), *shape), 1.7)
    lam = np.linalg.eigvalsh(dense_minus_laplacian(lat, g))
    v, h = 30.0, 1e-3
    dense = leapfrog_hz(v * np.sqrt(lam[lam > 1e-9]), h)
    want = np.unique(np.round(dense, 9))
    got = mode_frequencies_hz(shape, v, h, g=1.7)
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_leapfrog_rings_at_the_stated_frequency_not_the_continuous_one() -> None:
    # a ring's mode m integrated by Störmer–Verlet: count the phase it turns in 2000 steps
    n, m, v, h, steps = 16, 5, 300.0, 1e-3, 2000
    lat = Lattice([n], ["a"])
    k = dense_minus_laplacian(lat, np.ones((1, n))) * v * v
    x = np.arange(n)
    q = np.cos(2 * np.pi * m * x / n)
    p = np.zeros(n)
    signal = np.zeros(steps)
    for i in range(steps):
        p -= 0.5 * h * (k @ q)
        q += h * p
        p -= 0.5 * h * (k @ q)
        signal[i] = q[0]
    crossings = np.count_nonzero(np.diff(np.sign(signal)) != 0)
    measured = crossings / 2 / (steps * h)
    stated = float(mode_frequencies_hz([n], v, h)[m - 1])
    continuous = 2 * v * math.sin(math.pi * m / n) / (2 * math.pi)
    assert abs(measured - stated) < 1.0 / (steps * h)
    assert abs(stated - continuous) > 1.0 / (steps * h)  # the dispersion is resolved


def test_no_metric_the_cfl_guard_allows_rings_above_the_ceiling() -> None:
    rng = np.random.default_rng(SEED)
    shape = (6, 5)
    lat = Lattice(list(shape), ["a"])
    h = 1e-3
    for _ in range(20):
        g = rng.uniform(0.05, 4.0, size=(2, *shape))
        v_max = 1.0 / (h * math.sqrt(global_lambda_bound(g)))  # what the guard clamps to
        lam = np.linalg.eigvalsh(dense_minus_laplacian(lat, g))
        top = float(np.nanmax(leapfrog_hz(v_max * np.sqrt(np.maximum(lam, 0.0)), h)))
        assert top <= spectrum_ceiling_hz(1.0 / h) + 1e-9


def test_default_drive_is_many_linewidths_from_every_forced_mode() -> None:
    p = Config().physics
    orch = Config().orchestrator
    # the largest damping an area can see: γ₀ times the orexin multiplier's top, or the
    # emergency damping while CRITICAL
    gamma = max(p.damping * (1.0 + orch.areas.effect_gain), p.emergency_damping)
    at_rest = drive_detuning(p.shape, p.wave_speed, p.tick_hz, p.carrier_hz, gamma)
    any_metric = drive_detuning(
        p.shape,
        p.wave_speed,
        p.tick_hz,
        p.carrier_hz,
        gamma,
        speed_range=(1.0, 2.0),
        g_range=(p.conductance_min, p.conductance_max),
    )
    assert at_rest.linewidths >= MIN_LINEWIDTHS
    assert any_metric.linewidths >= MIN_LINEWIDTHS
    assert p.carrier_hz > any_metric.ceiling_hz  # above every mode, whatever g and N


def test_the_old_10_hz_carrier_fails_the_same_check() -> None:
    p = Config().physics
    old = drive_detuning(p.shape, p.wave_speed, p.tick_hz, 10.0, 0.1)
    assert old.linewidths < MIN_LINEWIDTHS  # N sweeps a mode across it
    fixed_speed = drive_detuning(p.shape, p.wave_speed, p.tick_hz, 10.0, 0.1, (1.0, 1.0))
    assert fixed_speed.distance_hz < 1.0  # < 1 Hz from a mode even at N = 0


def test_carrier_defaults_to_a_quarter_of_the_tick_rate_and_must_stay_below_nyquist() -> None:
    assert PhysicsConfig().carrier_hz == 250.0
    assert PhysicsConfig(tick_hz=500.0).carrier_hz == 125.0
    with pytest.raises(ValueError, match=r"`drive_hz` < tick_hz / 2 expected"):
        PhysicsConfig(tick_hz=500.0, drive_hz=250.0)


def _peak_over_implied(drive_hz: float | None, speed_gain: float) -> float:
    """Energy peak after one area's drive steps 0.4 -> 0.8 (the others at 0.4), over the
    energy the drive implies (|Ψ| = A under a uniform drive), metric frozen."""
    shape = [64, 4]
    cfg = PhysicsConfig(
        shape=shape, areas=["a0", "a1", "a2", "a3"], drive_hz=drive_hz, seed=SEED,
        plasticity_rate=0.0, elasticity_rate=0.0,
    )  # fmt: skip
    field = make_field(cfg, numpy_backend("test"))
    coeffs = Coefficients(4)
    coeffs.drive[:] = 0.4
    coeffs.speed[:] = speed_gain
    for _ in range(2000):
        field.step(coeffs)
    coeffs.drive[1] = 0.8
    implied = float((coeffs.drive.astype(np.float64) ** 2 * field.lattice.area_nodes).sum())
    peak = 0.0
    for _ in range(6000):
        r = field.step(coeffs)
        peak = max(peak, r.energy)
    return peak / implied


#: Speed gains 1 + N² for N = 0, 0.3 (calm), 0.6, 1.
SPEED_GAINS = (1.0, 1.09, 1.36, 2.0)


def test_field_stays_bounded_under_an_input_step_at_the_default_carrier() -> None:
    peaks = [_peak_over_implied(None, s) for s in SPEED_GAINS]
    assert max(peaks) <= 1.5, peaks
    old = [_peak_over_implied(10.0, s) for s in SPEED_GAINS]
    assert max(old) > 3.0, old  # the 10 Hz carrier rings at some arousal level
