"""The statistics the verdicts rest on, against values known in closed form or tabulated."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from engs.services.validate.stats import (
    betainc,
    f_sf,
    granger,
    normal_sf2,
    slope_test,
    t_sf2,
    two_proportion_z,
    welch_t,
)


@pytest.mark.parametrize(("a", "x"), [(0.5, 0.3), (2.5, 0.7), (7.0, 0.95), (30.0, 0.2)])
def test_betainc_closed_forms(a: float, x: float) -> None:
    # I_x(a, 1) = x^a and I_x(1, b) = 1 - (1 - x)^b
    assert betainc(a, 1.0, x) == pytest.approx(x**a, rel=1e-12)
    assert betainc(1.0, a, x) == pytest.approx(1.0 - (1.0 - x) ** a, rel=1e-12)


def test_betainc_symmetry_and_ends() -> None:
    assert betainc(3.2, 4.7, 0.0) == 0.0
    assert betainc(3.2, 4.7, 1.0) == 1.0
    for x in (0.01, 0.3, 0.5, 0.8):
        assert betainc(3.2, 4.7, x) + betainc(4.7, 3.2, 1.0 - x) == pytest.approx(1.0, abs=1e-13)
    with pytest.raises(ValueError, match="x in"):
        betainc(1.0, 1.0, 1.5)


@pytest.mark.parametrize(
    ("stat", "fn", "expected"),
    [
        # two-sided 5 % and 1 % critical values of Student's t, F and the normal (tables)
        (2.228138852, lambda v: t_sf2(v, 10), 0.05),
        (63.65674116, lambda v: t_sf2(v, 1), 0.01),
        (1.959963985, normal_sf2, 0.05),
        (4.964602744, lambda v: f_sf(v, 1, 10), 0.05),
        (3.098391212, lambda v: f_sf(v, 3, 20), 0.05),
    ],
)
def test_tail_probabilities_match_tables(
    stat: float, fn: Callable[[float], float], expected: float
) -> None:
    assert fn(stat) == pytest.approx(expected, rel=1e-7)


def test_f_with_two_numerator_df_closed_form() -> None:
    # P(F(2, ν) > f) = (1 + 2f/ν)^(-ν/2)
    for f, nu in ((0.5, 7), (3.15, 60), (12.0, 200)):
        assert f_sf(f, 2, nu) == pytest.approx((1 + 2 * f / nu) ** (-nu / 2), rel=1e-10)


def test_f_and_t_agree() -> None:
    # F(1, ν) = t(ν)²: the F upper tail equals the two-sided t tail.
    for t, nu in ((0.7, 4), (2.1, 17), (5.0, 60)):
        assert f_sf(t * t, 1, nu) == pytest.approx(t_sf2(t, nu), rel=1e-10)


def test_two_proportion_z_by_hand() -> None:
    r = two_proportion_z(45, 60, 15, 60)
    pooled = 60 / 120
    z = (0.75 - 0.25) / math.sqrt(pooled * (1 - pooled) * (2 / 60))
    assert r.statistic == pytest.approx(z)
    assert r.p_value == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert two_proportion_z(10, 20, 10, 20).p_value == pytest.approx(1.0)


def test_welch_by_hand() -> None:
    a = np.array([5.1, 4.9, 5.6, 5.8, 6.0, 5.2])
    b = np.array([4.1, 4.4, 3.9, 4.8, 4.2])
    r = welch_t(a, b)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    assert r.statistic == pytest.approx((a.mean() - b.mean()) / math.sqrt(va + vb))
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    assert r.df[0] == pytest.approx(df)
    assert r.p_value == pytest.approx(t_sf2(r.statistic, df))


def test_slope_test_recovers_a_line() -> None:
    rng = np.random.default_rng(3)
    x = np.linspace(0, 1, 40)
    y = 0.5 + 2.0 * x + rng.normal(0, 0.1, x.size)
    r = slope_test(x, y)
    assert r.slope == pytest.approx(2.0, abs=0.15)
    assert r.test.p_value < 1e-10
    flat = slope_test(x, rng.normal(0, 1, x.size))
    assert flat.test.p_value > 0.01


def test_granger_finds_a_planted_lag_and_not_a_reverse_one() -> None:
    rng = np.random.default_rng(7)
    n = 3000
    x = rng.normal(size=n)
    y = np.zeros(n)
    for t in range(2, n):
        y[t] = 0.3 * y[t - 1] + 0.5 * x[t - 2] + rng.normal(scale=1.0)
    fwd = granger(x, y, 3)
    rev = granger(y, x, 3)
    assert fwd.p_value < 1e-50
    assert rev.p_value > 0.01
    assert fwd.df == (3.0, float(n - 3 - 7))


def test_granger_size_on_independent_series() -> None:
    # Under the null the p-values are uniform: about 5 % of 200 independent pairs fall
    # below 0.05 (binomial 10 ± 3.1; the bound is 4 sd).
    rng = np.random.default_rng(11)
    hits = sum(
        granger(rng.normal(size=300), rng.normal(size=300), 2).p_value < 0.05 for _ in range(200)
    )
    assert 0 <= hits <= 23
