"""The GAP-005 coupling matrix: eigenvalue stability, the Gershgorin diagnostic, the
transient peak, the exact linear step, and refusal of an unstable matrix."""

from __future__ import annotations

import math
from pathlib import Path

import msgspec
import numpy as np
import pytest

from engs.services.orchestrator.coupling import (
    LinearStep,
    analyse,
    expm,
    gershgorin_margins,
    restoring,
    transient_peak,
)
from engs.services.orchestrator.inputs import CycleInputs
from engs.shared.config import load_config
from engs.shared.errors import ConfigError
from engs.shared.layout import Cause
from tests.services.orchestrator.helpers import (
    DECOUPLED,
    FakeTelemetry,
    make_config,
    make_engs,
)

CAPACITY = 5.0e6


def test_default_matrix_entries_follow_the_seed_signs_and_units() -> None:
    m = make_config().orchestrator.coupling.matrix(CAPACITY)
    expected = np.array(
        [
            [-0.15, -0.10, 0.08, 0.0],
            [0.05, -0.05, -0.07, 0.02],
            [0.03, -0.06, -0.20, 0.05],
            # ATP row: -phi / capacity (NMU/s over NMU = 1/s on the ratio scale)
            [-1500.0 / CAPACITY, 0.0, -800.0 / CAPACITY, -1e-4],
        ]
    )
    np.testing.assert_array_equal(m, expected)


def test_default_matrix_eigenvalues() -> None:
    m = make_config().orchestrator.coupling.matrix(CAPACITY)
    rep = analyse(m)
    eig = np.array([complex(re, im) for re, im in rep.eigenvalues])
    # Sum of eigenvalues = trace = -(0.15 + 0.05 + 0.20 + 0.0001).
    assert eig.sum().real == pytest.approx(-0.4001, abs=1e-12)
    assert abs(eig.sum().imag) < 1e-12
    # The values docs/orchestrator.md §2 quotes.
    np.testing.assert_allclose(
        eig,
        [-1.43708e-4, -0.0803605 + 0.0313461j, -0.0803605 - 0.0313461j, -0.2392353],
        rtol=1e-5,
    )
    assert rep.stable and rep.spectral_abscissa == pytest.approx(-1.43708e-4, rel=1e-5)


def test_default_matrix_is_stable_at_every_cost_scale() -> None:
    """The ATP drains scale with host, temperature and lattice size; the couplings are
    chosen so that no plausible scale destabilises the matrix (docs §2)."""
    c = make_config().orchestrator.coupling
    for scale in [0.0, *np.geomspace(1e-3, 1e5, 41)]:
        assert np.linalg.eigvals(c.matrix(CAPACITY, float(scale))).real.max() < 0.0, scale


def test_seed_matrix_fails_gershgorin_but_is_stable_by_eigenvalues() -> None:
    """ARCHITECTURE §6.3: the seed's own row D violates the diagonal dominance the seed
    claims (0.15 < 0.10 + 0.08), yet the matrix is stable."""
    m = make_config().orchestrator.coupling.matrix(CAPACITY)
    margins = gershgorin_margins(m)
    assert margins[0] == pytest.approx(0.15 - (0.10 + 0.08), abs=1e-15)
    assert margins[0] < 0.0
    rep = analyse(m)
    assert not rep.gershgorin_ok
    assert rep.stable


def test_unstable_matrix_from_toml_is_refused_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "engs.toml"
    path.write_text(
        "[orchestrator.coupling]\nlambda_d = 0.05\nkappa_dn = 0.5\nkappa_nd = 0.5\n",
        encoding="utf-8",
    )
    m = np.array(
        [
            [-0.05, -0.10, 0.5, 0.0],
            [0.05, -0.05, -0.07, 0.02],
            [0.5, -0.06, -0.20, 0.05],
            [-1500.0 / CAPACITY, 0.0, -800.0 / CAPACITY, -1e-4],
        ]
    )
    abscissa = float(np.linalg.eigvals(m).real.max())
    assert abscissa > 0.3  # the D-N loop: 0.5 x 0.5 > 0.05 x 0.2
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    msg = str(info.value)
    assert msg.startswith(
        "invalid configuration: `coupling`: the matrix M is unstable: spectral abscissa "
        f"max Re λ = {abscissa:+.4g} /s, expected < 0 (eigenvalues "
    )
    assert msg.endswith(f") - at `$.orchestrator` (in {path})")


def test_stable_matrix_from_toml_loads(tmp_path: Path) -> None:
    path = tmp_path / "engs.toml"
    path.write_text("[orchestrator.coupling]\nlambda_d = 0.3\n", encoding="utf-8")
    assert load_config(path, env={}).orchestrator.coupling.lambda_d == 0.3


def test_expm_matches_the_closed_form_of_a_jordan_block() -> None:
    # M = [[-1, k], [0, -1]] has e^{Mt} = e^{-t} [[1, kt], [0, 1]].
    k = 7.0
    for t in (0.0, 1e-3, 0.5, 3.0, 40.0):
        want = math.exp(-t) * np.array([[1.0, k * t], [0.0, 1.0]])
        got = expm(np.array([[-1.0, k], [0.0, -1.0]]) * t)
        np.testing.assert_allclose(got, want, rtol=1e-12)  # squaring grows rounding


def test_transient_peak_of_a_non_normal_matrix_matches_the_closed_form() -> None:
    # ‖e^{Mt}‖₂ = e^{-t} (kt/2 + sqrt(1 + (kt/2)²)) for the Jordan block above.
    k = 10.0
    t = np.linspace(0.0, 5.0, 2_000_001)
    u = k * t / 2.0
    closed = np.exp(-t) * (u + np.sqrt(1.0 + u * u))
    peak, t_peak = transient_peak(np.array([[-1.0, k], [0.0, -1.0]]))
    assert peak == pytest.approx(closed.max(), rel=1e-9)
    assert t_peak == pytest.approx(t[closed.argmax()], abs=1e-5)


def test_transient_peak_of_a_normal_stable_matrix_is_one() -> None:
    assert transient_peak(np.diag([-1.0, -2.0])) == (1.0, 0.0)
    assert transient_peak(np.diag([-1.0, 0.5]))[0] == math.inf


def test_linear_step_decoupled_is_exponential_relaxation() -> None:
    c = make_config(DECOUPLED).orchestrator.coupling
    dt = 0.01
    step = LinearStep(c, CAPACITY, dt)
    d, s, n, a = step.advance(0.9, 0.1, 0.7, 0.4)
    assert d == pytest.approx(0.5 + math.exp(-0.15 * dt) * 0.4, abs=1e-15)
    assert s == pytest.approx(0.5 + math.exp(-0.05 * dt) * -0.4, abs=1e-15)
    assert n == pytest.approx(0.3 + math.exp(-0.20 * dt) * 0.4, abs=1e-15)
    assert a == pytest.approx(1.0 + math.exp(-1e-4 * dt) * -0.6, abs=1e-15)


def test_linear_step_coupled_matches_a_taylor_series() -> None:
    c = make_config().orchestrator.coupling
    dt = 0.01
    step = LinearStep(c, CAPACITY, dt)
    x = np.array([0.9, 0.2, 0.6, 0.5])
    eq = np.array(c.x_eq)
    m = c.matrix(CAPACITY) * dt
    phi, term = np.eye(4), np.eye(4)
    for k in range(1, 12):  # ‖M dt‖ ~ 4e-3: 11 terms are far below rounding
        term = term @ m / k
        phi = phi + term
    np.testing.assert_allclose(step.advance(*x), eq + phi @ (x - eq), rtol=0, atol=1e-15)


def test_restoring_term_is_quadratic_and_dissipative() -> None:
    assert restoring(0.8, 0.5, 0.1) == pytest.approx(-0.1 * 0.3 * 0.3)
    assert restoring(0.2, 0.5, 0.1) == pytest.approx(+0.1 * 0.3 * 0.3)
    assert restoring(0.5, 0.5, 0.1) == 0.0


# A coupling set stable on the reference host but not once the ATP drains are scaled
# up 100x (a large lattice on a slow host): the D → A → S → D loop is positive.
MARGINAL = {"orchestrator.coupling.kappa_sa": 0.03}


def test_runtime_scaling_can_destabilise_and_falls_back_to_the_diagonal() -> None:
    c = make_config(MARGINAL).orchestrator.coupling
    assert np.linalg.eigvals(c.matrix(CAPACITY, 1.0)).real.max() < 0.0
    step = LinearStep(c, CAPACITY, 0.01)
    assert step.stable
    assert not step.set_cost_scale(100.0)
    # Decoupled fallback: D moves by its own decay only, whatever S, N and A are.
    d, *_ = step.advance(0.9, 0.0, 1.0, 0.0)
    assert d == pytest.approx(0.5 + math.exp(-0.15 * 0.01) * 0.4, abs=1e-15)
    assert step.set_cost_scale(1.0)


def test_engs_raises_unstable_when_the_lattice_grows_and_clears_it_after() -> None:
    engs = make_engs(MARGINAL)
    tel = FakeTelemetry(engs, n_nodes=4096)
    assert engs.step(CycleInputs(), tel.next()).causes == 0
    tel.record["n_nodes"] = 4096 * 100  # activity scale 100
    res = engs.step(CycleInputs(), tel.next())
    assert res.cause_set == Cause.UNSTABLE
    assert engs.stability_report().spectral_abscissa > 0.0
    tel.record["n_nodes"] = 4096
    res = engs.step(CycleInputs(), tel.next())
    assert res.causes == 0
    changed = [e for e in res.events if e.__class__.__name__ == "CausesChanged"]
    assert changed and msgspec.to_builtins(changed[0])["cleared"] == int(Cause.UNSTABLE)
