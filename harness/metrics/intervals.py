"""Binomial rates with exact (Clopper–Pearson) confidence intervals.

Every error rate in this package is a :class:`Rate`: the raw count ``k`` of errors out of ``n`` trials, the point
estimate ``k/n`` and a two-sided ``1 - alpha`` interval. Clopper–Pearson is conservative (coverage ≥ nominal for
every true rate) and assumes independent trials; when trials share subjects they are not independent and the
interval is too narrow (see :mod:`harness.metrics.bootstrap` and ``benchmarks/coverage_study.py``).
"""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["Rate", "clopper_pearson", "rule_of_three", "rate", "format_percent"]


def _as_count(x: Any, name: str) -> int:
    try:
        v = operator.index(x)
    except TypeError:
        if isinstance(x, float) and x.is_integer():
            v = int(x)
        else:
            raise ValueError(f"{name} must be a non-negative integer count, got {x!r}") from None
    return int(v)


def _check_kn(k: Any, n: Any) -> tuple[int, int]:
    n = _as_count(n, "n")
    k = _as_count(k, "k")
    if n <= 0:
        raise ValueError(f"n must be positive: a rate over n={n} trials is undefined (no trials of this kind)")
    if not 0 <= k <= n:
        raise ValueError(f"k must satisfy 0 <= k <= n, got k={k}, n={n}")
    return k, n


def _check_alpha(alpha: float) -> float:
    a = float(alpha)
    if not 0.0 < a < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    return a


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact two-sided ``1 - alpha`` interval for a binomial proportion ``k/n`` (Clopper & Pearson, 1934).

    ``lo = Beta(alpha/2; k, n-k+1)`` (0 when k == 0), ``hi = Beta(1-alpha/2; k+1, n-k)`` (1 when k == n).
    """
    k, n = _check_kn(k, n)
    a = _check_alpha(alpha)
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def rule_of_three(n: int) -> float:
    """Approximate one-sided 95 % upper bound ``3/n`` on a rate when 0 errors were seen in ``n`` trials."""
    n = _as_count(n, "n")
    if n <= 0:
        raise ValueError(f"n must be positive for the rule of three, got n={n}")
    return 3.0 / n


def format_percent(x: float) -> str:
    """``0.0003 -> '0.030%'``; keeps two significant digits below 0.001 % (``1.2e-7 -> '0.000012%'``)."""
    if math.isnan(x):
        return "nan"
    p = 100.0 * x
    if p == 0.0:
        return "0%"
    if abs(p) >= 0.001:
        return f"{p:.3f}%"
    return np.format_float_positional(p, precision=2, unique=False, fractional=False, trim="-") + "%"


@dataclass(frozen=True)
class Rate:
    """An error rate ``k/n`` with its confidence interval ``[lo, hi]`` and how it was computed."""

    k: int
    n: int
    value: float
    lo: float
    hi: float
    method: str
    alpha: float = 0.05

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["confidence"] = 1.0 - self.alpha
        return d

    def __str__(self) -> str:
        return f"{self.k}/{self.n} = {format_percent(self.value)} [{format_percent(self.lo)}, {format_percent(self.hi)}]"

    def __float__(self) -> float:
        return float(self.value)


def rate(k: int, n: int, alpha: float = 0.05) -> Rate:
    """``k`` errors in ``n`` trials as a :class:`Rate` with a Clopper–Pearson ``1 - alpha`` interval.

    When ``k == 0`` the method string also states the rule-of-three bound ``3/n`` (one-sided 95 %).
    ``n == 0`` raises ``ValueError``: a rate over no trials does not exist.
    """
    k, n = _check_kn(k, n)
    a = _check_alpha(alpha)
    lo, hi = clopper_pearson(k, n, a)
    method = "clopper-pearson"
    if k == 0:
        method = f"clopper-pearson (rule of 3: ≤ {format_percent(rule_of_three(n))})"
    return Rate(k=k, n=n, value=k / n, lo=lo, hi=hi, method=method, alpha=a)
