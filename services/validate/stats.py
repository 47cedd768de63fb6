"""Statistics for the assays, in NumPy and ``math`` only (no SciPy dependency).

* :func:`betainc`: the regularised incomplete beta function I_x(a, b), by the continued
  fraction of Numerical Recipes (Press et al. 2007, §6.4) evaluated with the modified
  Lentz method, ``math.lgamma`` for the prefactor. Every p-value below reduces to it.
* :func:`f_sf`, :func:`t_sf2`, :func:`normal_sf2`: survival functions of the F, Student t
  (two-sided) and standard normal (two-sided) distributions.
* :func:`two_proportion_z`: the pooled two-proportion z-test.
* :func:`welch_t`: Welch's unequal-variance t-test with the Welch–Satterthwaite df.
* :func:`slope_test`: ordinary least squares y = a + b·x and the t-test of b = 0.
* :func:`granger`: the Granger (1969) F-test of "x helps predict y": y_t regressed on
  a constant and p lags of y (restricted) and additionally p lags of x (unrestricted),
  F = ((RSS_r − RSS_u)/p) / (RSS_u/(n − 2p − 1)) with (p, n − 2p − 1) df.

Pure functions of their arguments; used by the assay modules of this package.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

_EPS = 1e-15
_TINY = 1e-300
_MAX_ITER = 500


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (NR §6.4), modified Lentz."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = _TINY if abs(d) < _TINY else d
    d = 1.0 / d
    h = d
    for m in range(1, _MAX_ITER + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = _TINY if abs(d) < _TINY else d
        c = 1.0 + aa / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = _TINY if abs(d) < _TINY else d
        c = 1.0 + aa / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            return h
    raise ArithmeticError(f"betainc({a}, {b}, {x}): continued fraction did not converge")


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) for a, b > 0, x in [0, 1]."""
    if not (a > 0.0 and b > 0.0):
        raise ValueError(f"betainc needs a, b > 0, got {a}, {b}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"betainc needs x in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def f_sf(f: float, d1: float, d2: float) -> float:
    """P(F > f) for F ~ F(d1, d2)."""
    if f <= 0.0:
        return 1.0
    if math.isinf(f):
        return 0.0
    return betainc(d2 / 2.0, d1 / 2.0, d2 / (d2 + d1 * f))


def t_sf2(t: float, df: float) -> float:
    """Two-sided P(|T| > |t|) for T ~ Student t(df)."""
    if math.isinf(t):
        return 0.0
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def normal_sf2(z: float) -> float:
    """Two-sided P(|Z| > |z|) for a standard normal Z."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def fmt_p(p: float) -> str:
    """A p-value for a report: ``p = 0.032``, ``p = 4.1e-09``, ``p < 1e-300`` (underflow)."""
    if p <= 0.0:
        return "p < 1e-300"
    return f"p = {p:.2g}"


def _ratio(num: float, den: float) -> float:
    """num / den, with ±inf (or 0 for 0/0) when the denominator vanishes."""
    if den == 0.0:
        return 0.0 if num == 0.0 else math.copysign(math.inf, num)
    return num / den


@dataclass(frozen=True)
class TestResult:
    """A test statistic, its degrees of freedom (0 where none) and p-value."""

    statistic: float
    p_value: float
    df: tuple[float, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"statistic": self.statistic, "p_value": self.p_value, "df": list(self.df)}


def two_proportion_z(k1: int, n1: int, k2: int, n2: int) -> TestResult:
    """Pooled two-proportion z-test of p1 = p2 (two-sided); z > 0 when p1 > p2."""
    if n1 <= 0 or n2 <= 0:
        raise ValueError("two_proportion_z needs n1, n2 > 0")
    p1, p2 = k1 / n1, k2 / n2
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    z = _ratio(p1 - p2, se)
    return TestResult(z, normal_sf2(z) if math.isfinite(z) else 0.0)


def welch_t(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> TestResult:
    """Welch's t-test of mean(a) = mean(b) (two-sided); t > 0 when mean(a) > mean(b)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size < 2 or b.size < 2:
        raise ValueError("welch_t needs at least two samples per group")
    va, vb = float(a.var(ddof=1)) / a.size, float(b.var(ddof=1)) / b.size
    diff = float(a.mean() - b.mean())
    if va + vb == 0.0:
        t = 0.0 if diff == 0.0 else math.copysign(math.inf, diff)
        return TestResult(t, 1.0 if diff == 0.0 else 0.0, (float(a.size + b.size - 2),))
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    return TestResult(t, t_sf2(t, df), (df,))


@dataclass(frozen=True)
class SlopeResult:
    slope: float
    intercept: float
    test: TestResult


def slope_test(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> SlopeResult:
    """OLS fit y = a + b x and the two-sided t-test of b = 0 (n - 2 df)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = x.size
    if n < 3 or y.size != n:
        raise ValueError("slope_test needs at least three (x, y) pairs of equal length")
    xm, ym = float(x.mean()), float(y.mean())
    sxx = float(((x - xm) ** 2).sum())
    if sxx == 0.0:
        raise ValueError("slope_test needs x values that differ")
    b = float(((x - xm) * (y - ym)).sum()) / sxx
    a = ym - b * xm
    rss = float(((y - a - b * x) ** 2).sum())
    se = math.sqrt(rss / (n - 2) / sxx)
    t = _ratio(b, se)
    return SlopeResult(b, a, TestResult(t, t_sf2(t, n - 2) if math.isfinite(t) else 0.0, (n - 2,)))


def _lagged(series: np.ndarray[Any, Any], p: int) -> np.ndarray[Any, Any]:
    """Columns series[t-1], ..., series[t-p] for t = p .. n-1."""
    n = series.size
    return np.column_stack([series[p - k : n - k] for k in range(1, p + 1)])


def _rss(design: np.ndarray[Any, Any], target: np.ndarray[Any, Any]) -> float:
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    resid = target - design @ coef
    return float(resid @ resid)


def granger(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], lags: int) -> TestResult:
    """F-test that ``lags`` past values of x improve the prediction of y beyond its own
    past (Granger 1969). Series are standardised first (the test is scale-free)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size != y.size:
        raise ValueError("granger needs two series of equal length")
    n_obs = x.size - lags
    df2 = n_obs - 2 * lags - 1
    if lags < 1 or df2 < 1:
        raise ValueError(f"granger: {x.size} samples are too few for {lags} lags")
    xs = (x - x.mean()) / (x.std() or 1.0)
    ys = (y - y.mean()) / (y.std() or 1.0)
    target = ys[lags:]
    ones = np.ones((n_obs, 1))
    ylags = _lagged(ys, lags)
    restricted = np.hstack([ones, ylags])
    full = np.hstack([restricted, _lagged(xs, lags)])
    rss_r = _rss(restricted, target)
    rss_u = _rss(full, target)
    if rss_u <= 0.0:
        return TestResult(math.inf, 0.0, (float(lags), float(df2)))
    f = max(0.0, (rss_r - rss_u) / lags) / (rss_u / df2)
    return TestResult(f, f_sf(f, lags, df2), (float(lags), float(df2)))
