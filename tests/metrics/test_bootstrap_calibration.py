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
    subject_bootstrap_fmr,
    subject_bootstrap_fnmr,
    subject_bootstrap_rate,
)
from harness.metrics.bootstrap import cluster_robust_variance, subject_multiplicities
from harness.metrics.intervals import clopper_pearson


def _clustered(seed=0, S=40, m=15):
    rng = np.random.default_rng(seed)
    u = rng.normal(0, 1.0, S)
    subj = np.repeat(np.arange(S), m)
    pos = 2 + u[subj] + rng.normal(0, 0.3, subj.size)
    ia, ib = np.triu_indices(S, 1)
    neg = 0.7 * (u[ia] + u[ib]) + rng.normal(0, 0.5, ia.size)
    return subj, pos, ia, ib, neg


def test_vectorised_equals_generic_same_seed():
    subj, pos, ia, ib, neg = _clustered()
    # mix same-subject and cross-subject trials in one call to exercise both terms
    a = np.r_[subj, ia]
    b = np.r_[subj, ib]
    err = np.r_[pos < 1.5, neg >= 1.0]
    for mode in ("count", "product"):
        fast = subject_bootstrap_rate(err, a, b, n_boot=60, rng=123, same_subject=mode, method="percentile")
        slow = subject_bootstrap(lambda e: e.mean(), [err], a, b, n_boot=60, rng=123, same_subject=mode)
        np.testing.assert_allclose(fast.replicates, slow.replicates, rtol=1e-12)
        assert fast.estimate == pytest.approx(err.mean())


def test_weights_by_hand():
    # subjects 0,1,2; trials: (0,0) error, (0,1) error, (1,2) ok, (2,2) ok
    err = np.array([1, 1, 0, 0], bool)
    a, b = np.array([0, 0, 1, 2]), np.array([0, 1, 2, 2])
    res = subject_bootstrap_rate(err, a, b, n_boot=5, rng=9, method="percentile")
    C = subject_multiplicities(3, 5, np.random.default_rng(9))
    for r, c in enumerate(C):
        w = np.array([c[0], c[0] * c[1], c[1] * c[2], c[2]], float)
        exp = (w * err).sum() / w.sum() if w.sum() else np.nan
        assert (np.isnan(exp) and np.isnan(res.replicates[r])) or res.replicates[r] == pytest.approx(exp)


def test_subject_interval_wider_than_pair_when_clustered():
    subj, pos, ia, ib, neg = _clustered(1)
    s = subject_bootstrap_fnmr(pos, subj, None, threshold=1.5, n_boot=500, rng=0)
    p = pair_bootstrap_rate(pos < 1.5, n_boot=500, rng=0)
    assert s.estimate == p.estimate == np.mean(pos < 1.5)
    assert (s.hi - s.lo) > 2 * (p.hi - p.lo)
    f = subject_bootstrap_fmr(neg, ia, ib, 1.0, n_boot=300, rng=0)
    assert f.lo <= f.estimate <= f.hi and f.n_subjects == 40


def test_seeded_reproducible_and_degenerate():
    subj, pos, *_ = _clustered(2)
    kw = dict(threshold=1.5, n_boot=100, method="percentile")
    r1 = subject_bootstrap_fnmr(pos, subj, rng=5, **kw)
    r2 = subject_bootstrap_fnmr(pos, subj, rng=np.random.default_rng(5), **kw)
    assert r1.lo == r2.lo and r1.hi == r2.hi
    z = subject_bootstrap_fnmr(pos, subj, threshold=-100, n_boot=50, rng=0, method="percentile")
    assert (z.lo, z.hi, z.estimate) == (0, 0, 0)
    # the default (analytic) interval falls back to Clopper-Pearson on n trials for 0 errors
    z = subject_bootstrap_fnmr(pos, subj, threshold=-100)
    assert z.estimate == 0 and (z.lo, z.hi) == clopper_pearson(0, pos.size) and "Clopper" in z.method


def test_bootstrap_errors():
    with pytest.raises(ValueError, match="errors is empty"):
        subject_bootstrap_rate([], [])
    with pytest.raises(ValueError, match="subjects_a has 2 entries"):
        subject_bootstrap_rate([True], [1, 2])
    with pytest.raises(ValueError, match="negatives contain 1 NaN"):
        subject_bootstrap_fmr([np.nan], [0], [1], 0.5)


# ------------------------------------------------------------------------------------------------- calibration
def test_pav_matches_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(5):
        y = rng.random(300)
        w = rng.integers(1, 6, 300).astype(float)
        ref = IsotonicRegression().fit(np.arange(300), y, sample_weight=w).predict(np.arange(300))
        np.testing.assert_allclose(pav(y, w), ref, atol=1e-12)


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


def test_logit_method_one_trial_per_subject_is_usual_logit_interval():
    # one trial per subject (one-way), or every person in exactly one cross-subject trial (two-way): the
    # cluster-robust variance reduces to the unbiased binomial variance p(1-p)/(n-1), and the interval to the
    # textbook logit (Wald-on-log-odds) interval with a t_{n-1} quantile
    from scipy import stats
    rng = np.random.default_rng(3)
    n = 200
    err = rng.random(n) < 0.1
    p = err.mean()
    var = p * (1 - p) / (n - 1)
    q = stats.t.ppf(0.975, n - 1)
    lg, h = np.log(p / (1 - p)), q * np.sqrt(var) / (p * (1 - p))
    exp = (1 / (1 + np.exp(-(lg - h))), 1 / (1 + np.exp(-(lg + h))))
    one = subject_bootstrap_rate(err, np.arange(n))
    two = subject_bootstrap_rate(err, np.arange(n), np.arange(n, 2 * n))  # disjoint pairs: S = 2n
    assert cluster_robust_variance(err, np.arange(n)) == pytest.approx(var)
    assert cluster_robust_variance(err, np.arange(n), np.arange(n, 2 * n)) == pytest.approx(var)
    assert (one.lo, one.hi) == pytest.approx(exp)
    q2 = stats.t.ppf(0.975, 2 * n - 1)
    assert two.hi - two.lo < one.hi - one.lo and two.n_subjects == 2 * n and q2 < q
    assert one.method.startswith("subject-level cluster-robust") and "two-way" in two.method


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
    assert cluster_robust_variance(err, a, b) == pytest.approx(v / (1 - k))
    # one-way equivalent: clustering the FNMR-style same-subject trials by person
    err1 = np.array([1, 1, 0, 0, 1, 0], bool)
    s1 = np.array([0, 0, 1, 1, 2, 2])
    e1 = err1 - err1.mean()
    tot = np.bincount(s1, e1)
    assert cluster_robust_variance(err1, s1) == pytest.approx((tot @ tot / 36) / (1 - 12 / 36))
    assert cluster_robust_variance(err1, s1, s1) == pytest.approx(cluster_robust_variance(err1, s1))


def test_logit_method_bad_name():
    with pytest.raises(ValueError, match="method must be one of"):
        subject_bootstrap_rate([True, False], [0, 1], method="bca")
