import math

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from harness.metrics import (
    cllr,
    ece,
    fit_llr,
    min_cllr,
    pair_bootstrap_rate,
    pav,
    subject_bootstrap,
)
from harness.metrics.bootstrap import subject_multiplicities
from harness.metrics.clustered import _cr_variance, cluster_counts
from harness.metrics.intervals import clopper_pearson


def _clustered(seed=0, S=40, m=15):
    rng = np.random.default_rng(seed)
    u = rng.normal(0, 1.0, S)
    subj = np.repeat(np.arange(S), m)
    pos = 2 + u[subj] + rng.normal(0, 0.3, subj.size)
    ia, ib = np.triu_indices(S, 1)
    neg = 0.7 * (u[ia] + u[ib]) + rng.normal(0, 0.5, ia.size)
    return subj, pos, ia, ib, neg


def _min_cllr_reference(neg, pos):
    s = np.r_[neg, pos]
    y = np.r_[np.zeros(len(neg)), np.ones(len(pos))]
    p = IsotonicRegression(y_min=0, y_max=1).fit(s, y).predict(s)
    with np.errstate(divide="ignore"):
        llr = np.log(p) - np.log1p(-p) - np.log(len(pos) / len(neg))
    ln, lp = llr[: len(neg)], llr[len(neg):]
    return 0.5 * (np.mean(np.logaddexp(0, ln)) + np.mean(np.logaddexp(0, -lp))) / np.log(2)


@pytest.mark.parametrize("seed", range(3))
def test_min_cllr_matches_sklearn_reference(seed):
    rng = np.random.default_rng(seed)
    neg, pos = np.round(rng.normal(0, 1, 700), 1), np.round(rng.normal(1.5, 1, 300), 1)  # ties
    assert min_cllr(neg, pos) == pytest.approx(_min_cllr_reference(neg, pos), rel=1e-10)


def test_cllr_and_min_cllr_bounds():
    assert cllr([0.0, 0.0], [0.0]) == pytest.approx(1.0)
    assert min_cllr([0, 1], [2, 3]) == 0.0  # separable
    assert min_cllr([1, 1, 1], [1, 1]) == pytest.approx(1.0)  # uninformative
    assert cllr([-np.inf], [np.inf]) == 0.0
    assert cllr([np.inf], [0.0]) == np.inf
    rng = np.random.default_rng(4)
    neg, pos = rng.normal(0, 1, 2000), rng.normal(2, 1, 2000)
    m = fit_llr(neg, pos)
    assert min_cllr(neg, pos) <= cllr(m(neg), m(pos)) + 1e-12
    # a badly scaled LLR costs more than the calibrated one
    assert cllr(5 * m(neg), 5 * m(pos)) > cllr(m(neg), m(pos))


def test_fit_llr_recovers_gaussian_llr():
    rng = np.random.default_rng(1)
    neg, pos = rng.normal(0, 1, 20000), rng.normal(2, 1, 5000)  # true LLR(s) = 2 s - 2
    m = fit_llr(neg, pos, "logistic")
    assert m.params["slope"] == pytest.approx(2, abs=0.1)
    assert m.params["intercept"] == pytest.approx(-2, abs=0.1)
    assert m.posterior(1.0, prior=0.5) == pytest.approx(0.5, abs=0.03)
    mp = fit_llr(neg, pos, "pav")
    assert mp(1.0) == pytest.approx(0.0, abs=0.3)
    v = mp(np.linspace(-3, 5, 200))
    assert np.all(v[1:] >= v[:-1]) and v[0] == -np.inf and v[-1] == np.inf
    assert "times more likely if the same person" in m.describe(2.5)
    assert "times more likely if different people" in m.describe(-1.0)
    assert "unbounded" in mp.describe(100.0)
    with pytest.raises(ValueError, match="method"):
        fit_llr(neg, pos, "spline")


def test_fit_llr_separable_is_finite():
    m = fit_llr([0.0, 0.1, 0.2], [0.8, 0.9, 1.0])
    assert math.isfinite(m(0.5)) and m(1.0) > m(0.0)


def test_ece_hand():
    assert ece([0.1, 0.1, 0.9, 0.9], [0, 1, 1, 1], n_bins=10) == pytest.approx(0.25)
    assert ece([1.0, 0.0], [1, 0]) == 0.0
    with pytest.raises(ValueError, match="probs must lie"):
        ece([1.5], [1])
    with pytest.raises(ValueError, match="labels must be 0/1"):
        ece([0.5], [2])


def test_two_way_variance_by_hand():
    # cross trials (0,1) x2 (once as (1,0)), (2,3), (0,2), (3,4); residual products summed over ordered trial pairs
    # that share a person, the two (0,1) trials (sharing BOTH people) counted once
    err = np.array([1, 1, 0, 1, 0], bool)
    a, b = np.array([0, 1, 2, 0, 3]), np.array([1, 0, 3, 2, 4])
    e = err - err.mean()
    subj = [{0, 1}, {0, 1}, {2, 3}, {0, 2}, {3, 4}]
    share = np.array([[bool(s & t) for t in subj] for s in subj], float)
    v = e @ share @ e / 25
    k = share.sum() / 25
    assert v > 0 and k < 1
    assert _cr(err, a, b) == pytest.approx(v / (1 - k))
    # one-way equivalent: clustering the FNMR-style same-subject trials by person
    err1 = np.array([1, 1, 0, 0, 1, 0], bool)
    s1 = np.array([0, 0, 1, 1, 2, 2])
    e1 = err1 - err1.mean()
    tot = np.bincount(s1, e1)
    assert _cr(err1, s1) == pytest.approx((tot @ tot / 36) / (1 - 12 / 36))
    assert _cr(err1, s1, s1) == pytest.approx(_cr(err1, s1))


def _cr(err, a, b=None):
    """The cluster-robust variance of harness.metrics.clustered (the design-effect estimate's numerator)."""
    ca, cb, k, n = cluster_counts(err, a, b)
    if cb is not None and not np.any(ca != cb):
        cb = None
    return _cr_variance(ca, cb, k, n, float(np.mean(err)))


