"""The leapfrog conserves the discrete Hamiltonian when it should (undamped, no
plasticity, no drive, no noise) in 1, 2, 3 and 9 dimensions, and damping removes
energy when asked to."""

from __future__ import annotations

import numpy as np
import pytest

from engs.services.physics.coefficients import Coefficients
from engs.services.physics.field import Field
from tests.services.physics.support import config, random_field

# (shape, steps): 10⁴ steps each, small lattices so the suite stays fast.
CASES = [((64,), 10_000), ((8, 8), 10_000), ((4, 4, 4), 10_000), ((2,) * 9, 10_000)]


def conservative(n_areas: int, speeds: list[float]) -> Coefficients:
    c = Coefficients(n_areas)
    c.plasticity[:] = 0.0
    c.elasticity[:] = 0.0
    c.damping[:] = 0.0
    c.noise[:] = 0.0
    c.speed[:] = speeds
    return c


@pytest.mark.parametrize(("shape", "steps"), CASES, ids=str)
def test_energy_drift_below_one_percent_over_ten_thousand_steps(
    shape: tuple[int, ...], steps: int
) -> None:
    # Two areas with different speeds and a random metric: the 1/s² weighting and the
    # g-weighted potential are both exercised. Speeds sit inside the CFL limit.
    # g <= 2 gives λ_max <= 4 · d · 2: run at 80 % of the CFL speed of the fastest area
    v0 = 0.8 / (1e-3 * np.sqrt(8.0 * len(shape)))
    cfg = config(shape, areas=2, wave_speed=v0)
    f = Field(cfg)
    rng = np.random.default_rng(3)
    g = rng.uniform(0.5, 2.0, size=(len(shape), *shape))
    c = conservative(2, [1.0, 0.6])
    f.set_state(psi=random_field(shape, 1), pi=random_field(shape, 2, 50.0), g=g, coeffs=c)
    h0 = None
    worst = 0.0
    for _ in range(steps):
        r = f.step(c)
        assert r.cfl_clamps == 0
        if h0 is None:
            h0 = r.hamiltonian
        worst = max(worst, abs(r.hamiltonian - h0) / h0)
    assert h0 is not None and h0 > 0
    assert worst < 0.01, f"relative energy drift {worst:.2e}"
    np.testing.assert_array_equal(f.g_host(), np.clip(g, 0.05, 4.0).astype(np.float32))


def test_plain_energy_oscillates_but_staggered_hamiltonian_does_not() -> None:
    # Near the CFL limit the textbook ½|Π|² + potential oscillates by O((ωh)²); the
    # staggered kinetic term removes that oscillation. Guards the "which staggering".
    cfg = config((32,), areas=1, wave_speed=300.0)
    f = Field(cfg)
    c = conservative(1, [1.0])
    f.set_state(psi=random_field((32,), 5), coeffs=c)
    hs, plain = [], []
    for _ in range(500):
        r = f.step(c)
        hs.append(r.hamiltonian)
        plain.append(r.hamiltonian + (cfg.dt**2 / 8) * f.sums[3])  # add back the shadow term
    spread = (max(hs) - min(hs)) / np.mean(hs)
    plain_spread = (max(plain) - min(plain)) / np.mean(plain)
    assert spread < 1e-4
    assert plain_spread > 10 * spread


def test_damping_removes_energy_and_emergency_damping_applies_when_critical() -> None:
    shape = (16, 16)
    cfg = config(shape, areas=2, damping=0.0, emergency_damping=5.0)
    c = conservative(2, [1.0, 1.0])
    c.damping[:] = 1.0  # γ = γ0 · 1 = 0: undamped unless critical
    ref, crit = Field(cfg), Field(cfg)
    for f in (ref, crit):
        f.set_state(psi=random_field(shape, 9), coeffs=c)
    h0 = ref.step(c).hamiltonian
    crit.step(c)
    for _ in range(1000):  # 1 s at 1 kHz
        h_ref = ref.step(c).hamiltonian
        h_crit = crit.step(c, critical=True).hamiltonian
    assert abs(h_ref - h0) / h0 < 1e-3
    # energy of a damped oscillator falls like e^{-γt}; γ = 5/s for 1 s
    assert h_crit < 0.05 * h0
    np.testing.assert_allclose(crit.table.gamma, 5.0)


def test_sustained_drive_gives_the_field_its_amplitude_without_drift() -> None:
    # One area driven at A = 0.7: the uniform part of that area's field is A e^{iωt}
    # (bounded), not a secular drift as a force-form drive would give.
    shape = (8, 8)
    cfg = config(shape, areas=1, damping=0.0)
    f = Field(cfg)
    c = conservative(1, [1.0])
    c.drive[:] = 0.7
    amps = []
    for _ in range(3000):
        f.step(c)
        amps.append(abs(f.psi_host().mean()))
    np.testing.assert_allclose(amps, 0.7, rtol=1e-4)
    np.testing.assert_allclose(f.result.area_activity, 0.49, rtol=1e-3)
