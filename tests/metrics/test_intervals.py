import math

import numpy as np
import pytest
from scipy.stats import binomtest

from harness.metrics.intervals import Rate, clopper_pearson, format_percent, rate, rule_of_three


def test_k0_n10_known_value():
    lo, hi = clopper_pearson(0, 10)
    assert lo == 0.0
    assert hi == pytest.approx(1 - 0.025 ** (1 / 10), rel=1e-12)  # 0.30849710781876...
    assert hi == pytest.approx(0.3084971078187608, rel=1e-12)


def test_k5_n10_matches_binomtest_exact():
    lo, hi = clopper_pearson(5, 10)
    ref = binomtest(5, 10).proportion_ci(confidence_level=0.95, method="exact")
    assert (lo, hi) == pytest.approx((ref.low, ref.high), rel=1e-10)
    assert (lo, hi) == pytest.approx((0.1870860284474045, 0.8129139715525955), rel=1e-9)


@pytest.mark.parametrize("n", [1, 2, 7, 30, 1000])
@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.01])
def test_grid_matches_binomtest(n, alpha):
    for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
        lo, hi = clopper_pearson(k, n, alpha)
        ref = binomtest(k, n).proportion_ci(confidence_level=1 - alpha, method="exact")
        assert lo == pytest.approx(ref.low, abs=1e-12, rel=1e-9)
        assert hi == pytest.approx(ref.high, abs=1e-12, rel=1e-9)
        assert lo <= k / n <= hi


def test_k_equals_n():
    lo, hi = clopper_pearson(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.025 ** (1 / 10))


def test_rate_str_and_dict():
    r = rate(3, 10000)
    assert str(r) == "3/10000 = 0.030% [0.006%, 0.088%]"
    d = r.to_dict()
    assert d["k"] == 3 and d["n"] == 10000 and d["value"] == 3e-4 and d["method"] == "clopper-pearson"
    assert d["confidence"] == pytest.approx(0.95)
    assert isinstance(r, Rate) and float(r) == 3e-4


def test_rate_zero_mentions_rule_of_three():
    r = rate(0, 300)
    assert r.value == 0 and r.lo == 0
    assert "rule of 3" in r.method and "1.000%" in r.method
    assert rule_of_three(300) == 0.01
    assert r.hi == pytest.approx(1 - 0.025 ** (1 / 300))


@pytest.mark.parametrize("k,n", [(0, 0), (1, 0), (5, 3), (-1, 5), (1.5, 4)])
def test_bad_counts(k, n):
    with pytest.raises(ValueError):
        rate(k, n)


def test_n0_message():
    with pytest.raises(ValueError, match="n must be positive"):
        rate(0, 0)


def test_bad_alpha():
    with pytest.raises(ValueError, match="alpha"):
        clopper_pearson(1, 2, alpha=1.5)


def test_numpy_integer_counts():
    r = rate(np.int64(2), np.int32(8))
    assert r.k == 2 and type(r.k) is int


def test_format_percent_small():
    assert format_percent(0) == "0%"
    assert format_percent(1.2e-7) == "0.000012%"
    assert format_percent(0.5) == "50.000%"
    assert math.isnan(float("nan")) and format_percent(float("nan")) == "nan"
