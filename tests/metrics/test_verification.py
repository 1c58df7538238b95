import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import det_curve, roc_curve

from harness.metrics import (
    det,
    eer,
    eer_details,
    eer_rocch,
    error_counts,
    error_rates,
    far_frr_with_fta,
    fnmr_at_fmr_table,
    rates_at,
    roc,
    roc_counts,
    threshold_for_fmr,
    threshold_for_fnmr,
)


def _sk(neg, pos):
    y = np.r_[np.zeros(len(neg)), np.ones(len(pos))]
    s = np.r_[neg, pos]
    return y, s


# ------------------------------------------------------------------------------------------ hand-computed cases
NEG = [0.1, 0.5, 0.5, 0.9]
POS = [0.5, 0.7, 1.0]


def test_ties_at_threshold_are_accepted():
    assert error_counts(NEG, POS, 0.5) == (3, 0)
    assert error_rates(NEG, POS, 0.5) == (0.75, 0.0)
    assert error_rates(NEG, POS, 0.7) == (0.25, 1 / 3)
    assert error_rates(NEG, POS, math.inf) == (0.0, 1.0)
    assert error_rates(NEG, POS, -math.inf) == (1.0, 0.0)


def test_rates_at_carries_counts():
    r = rates_at(NEG, POS, 0.7)
    assert (r["fmr"].k, r["fmr"].n, r["fnmr"].k, r["fnmr"].n) == (1, 4, 1, 3)
    assert r["threshold"] == 0.7


def test_roc_hand():
    thr, n_fa, n_fr = roc_counts(NEG, POS)
    assert thr.tolist() == [math.inf, 1.0, 0.9, 0.7, 0.5, 0.1]
    assert n_fa.tolist() == [0, 0, 1, 1, 3, 4]
    assert n_fr.tolist() == [3, 2, 2, 1, 0, 0]
    _, fmr, fnmr = roc(NEG, POS)
    assert fmr.tolist() == [0, 0, 0.25, 0.25, 0.75, 1]
    assert fnmr.tolist() == pytest.approx([1, 2 / 3, 2 / 3, 1 / 3, 0, 0])


def test_all_equal_scores():
    thr, fmr, fnmr = roc([1, 1, 1], [1, 1])
    assert thr.tolist() == [math.inf, 1.0]
    assert fmr.tolist() == [0, 1] and fnmr.tolist() == [1, 0]
    e, t = eer([1, 1, 1], [1, 1])
    assert e == 0.5 and t == math.inf  # tie in |FMR-FNMR| and in mean -> higher threshold
    assert eer_rocch([1, 1, 1], [1, 1]) == pytest.approx(0.5)


def test_single_negative():
    ch = threshold_for_fmr([0.3], 0.5)
    assert not ch.reachable and ch.achieved.k == 0 and ch.achieved.n == 1
    assert ch.threshold > 0.3 and ch.threshold == np.nextafter(0.3, 1)
    assert "below 1/N" in ch.note
    ch1 = threshold_for_fmr([0.3], 1.0)
    assert ch1.reachable and ch1.threshold == -math.inf and ch1.achieved.value == 1.0


def test_threshold_for_fmr_ties():
    neg = [1.0, 2.0, 2.0, 2.0, 3.0]
    ch = threshold_for_fmr(neg, 0.2)
    assert ch.threshold == np.nextafter(2.0, 3.0) and ch.achieved.k == 1
    ch = threshold_for_fmr(neg, 0.6)  # 3/5 allowed, but the tie at 2 makes 4/5 the next step: stays at 1/5
    assert ch.threshold == np.nextafter(2.0, 3.0) and ch.achieved.k == 1 and ch.reachable
    assert error_rates(neg, [0.0], 2.0)[0] == 0.8 > 0.6  # one step lower breaks the target


def test_threshold_for_fmr_float_rounding():
    neg = np.arange(100, dtype=float)
    ch = threshold_for_fmr(neg, 0.29)  # 0.29*100 == 28.999999999999996
    assert ch.achieved.k == 29 and ch.threshold == np.nextafter(70.0, 71.0)


def test_threshold_for_fmr_float32_stays_float32_exact():
    neg = np.linspace(0, 1, 1001).astype(np.float32)
    ch = threshold_for_fmr(neg, 0.01)
    assert ch.threshold == float(np.nextafter(neg[-11], np.float32(2)))
    assert np.float32(ch.threshold) == ch.threshold  # representable in float32
    assert np.count_nonzero(neg >= np.float32(ch.threshold)) == 10


def test_threshold_for_fmr_target_below_1_over_n():
    ch = threshold_for_fmr(np.arange(1000.0), 1e-4)
    assert not ch.reachable and ch.achieved.k == 0 and ch.threshold > 999
    assert "30000 negatives" in ch.note


def test_threshold_for_fnmr():
    pos = [0.1, 0.2, 0.2, 0.5, 0.9]
    ch = threshold_for_fnmr(pos, 0.2)  # k = 1 -> threshold = 2nd lowest = 0.2, FNMR = #{<0.2} = 1
    assert ch.threshold == 0.2 and ch.achieved.k == 1 and ch.reachable
    assert error_rates([0.0], pos, np.nextafter(0.2, 1))[1] > 0.2
    ch = threshold_for_fnmr(pos, 0.1)
    assert ch.threshold == 0.1 and ch.achieved.k == 0 and not ch.reachable


def test_eer_hand():
    neg, pos = [0, 1, 2, 3], [2, 3, 4, 5]
    assert eer(neg, pos) == (0.25, 3.0)
    d = eer_details(neg, pos)
    assert (d["fmr"].k, d["fnmr"].k) == (1, 1) and d["threshold"] == 3.0
    assert eer_rocch(neg, pos) == pytest.approx(0.25)


def test_eer_rocch_below_discrete():
    neg, pos = [0.0, 3.0], [1.0, 2.0]
    assert eer(neg, pos) == (0.5, 2.0)
    assert eer_rocch(neg, pos) == pytest.approx(1 / 3)


def test_eer_rocch_can_exceed_mean_rule():
    assert eer([0.0], [0.0, 1.0]) == (0.25, 1.0)
    assert eer_rocch([0.0], [0.0, 1.0]) == pytest.approx(1 / 3)


def test_separable():
    assert eer([0, 1], [2, 3])[0] == 0.0
    assert eer_rocch([0, 1], [2, 3]) == 0.0


def test_table_marks_unmeasurable():
    rng = np.random.default_rng(3)
    neg, pos = rng.normal(0, 1, 1000), rng.normal(3, 1, 500)
    rows = fnmr_at_fmr_table(neg, pos)
    assert [r["target"] for r in rows] == [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6]
    assert [r["measurable"] for r in rows] == [True, True, True, False, False, False]
    assert rows[3]["fnmr"] is None and rows[3]["fnmr_at_reject_all_negatives"].n == 500
    for r in rows[:3]:
        assert r["fmr"].value <= r["target"] and r["fnmr"].k == np.count_nonzero(pos < r["threshold"])
    assert rows[2]["rule_of_3_negatives"] == 3000


def test_far_frr_with_fta():
    far, frr = far_frr_with_fta(0.01, 0.02, 0.1)
    assert far == pytest.approx(0.009) and frr == pytest.approx(0.118)
    with pytest.raises(ValueError):
        far_frr_with_fta(0.01, 0.02, 1.5)


# ------------------------------------------------------------------------------------------- input validation
@pytest.mark.parametrize(
    "neg,pos,msg",
    [
        ([], [1.0], "negatives is empty"),
        ([1.0], [], "positives is empty"),
        ([np.nan, 1.0, np.nan], [1.0], "negatives contain 2 NaN scores"),
        ([1.0], [np.inf, 0.0], "positives contain 1 infinite score"),
        ([1.0], [-np.inf], "positives contain 1 infinite score"),
        ([[1.0, 2.0]], [1.0], "1-D"),
    ],
)
def test_bad_input(neg, pos, msg):
    for f in (lambda: roc(neg, pos), lambda: error_rates(neg, pos, 0.5), lambda: eer(neg, pos)):
        with pytest.raises(ValueError, match=msg):
            f()


def test_bad_threshold_and_target():
    with pytest.raises(ValueError, match="NaN"):
        error_rates([1.0], [1.0], float("nan"))
    with pytest.raises(ValueError, match="target"):
        threshold_for_fmr([1.0], -0.1)
    with pytest.raises(ValueError, match="negatives is empty"):
        threshold_for_fmr([], 0.1)


# ------------------------------------------------------------------------------------------- against sklearn
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("decimals", [1, 2, None])
def test_roc_matches_sklearn(seed, decimals):
    rng = np.random.default_rng(seed)
    nn, npos = rng.integers(1, 3000), rng.integers(1, 800)
    neg, pos = rng.normal(0, 1, nn), rng.normal(1, 1, npos)
    if decimals is not None:  # lots of ties, also across classes
        neg, pos = np.round(neg, decimals), np.round(pos, decimals)
    thr, fmr, fnmr = roc(neg, pos)
    fpr, tpr, th = roc_curve(*_sk(neg, pos), drop_intermediate=False)
    np.testing.assert_array_equal(thr, th)
    np.testing.assert_allclose(fmr, fpr, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fnmr, 1 - tpr, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_det_matches_sklearn(seed):
    rng = np.random.default_rng(100 + seed)
    neg, pos = np.round(rng.normal(0, 1, 2000), 2), np.round(rng.normal(2, 1, 700), 2)
    fpr, fnr, th = det_curve(*_sk(neg, pos))
    thr, x, y = det(neg, pos)
    _, fmr, fnmr = roc(neg, pos)
    order = np.argsort(thr)
    idx = order[np.searchsorted(thr[order], th)]
    assert np.array_equal(thr[idx], th)
    np.testing.assert_allclose(fmr[idx], fpr, atol=1e-12)
    np.testing.assert_allclose(fnmr[idx], fnr, atol=1e-12)
    np.testing.assert_allclose(x[idx], norm.ppf(fpr), atol=1e-9)
    np.testing.assert_allclose(y[idx], norm.ppf(fnr), atol=1e-9)
    assert np.isneginf(x[0]) and np.isposinf(y[0])  # the +inf threshold
    _, xc, yc = det(neg, pos, clip=1e-6)
    assert np.isfinite(xc).all() and np.isfinite(yc).all()


def test_roc_float32_and_mixed_dtypes():
    rng = np.random.default_rng(7)
    neg, pos = rng.random(500).astype(np.float32), rng.random(300).astype(np.float32)
    thr, fmr, fnmr = roc(neg, pos)
    assert thr.dtype == np.float32
    fpr, tpr, th = roc_curve(*_sk(neg, pos), drop_intermediate=False)
    np.testing.assert_array_equal(thr, th)
    np.testing.assert_allclose(fmr, fpr, atol=1e-12)
    thr2, _, _ = roc(neg.astype(np.float64), list(pos))
    assert thr2.dtype == np.float64 and thr2.size == thr.size


def test_roc_torch_matches_numpy():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    for dt in (np.float32, np.float64):
        neg, pos = np.round(rng.normal(0, 1, 3000), 2).astype(dt), np.round(rng.normal(1, 1, 900), 2).astype(dt)
        t_np, f_np, fn_np = roc(neg, pos)
        t_t, f_t, fn_t = roc(torch.from_numpy(neg), torch.from_numpy(pos))
        assert isinstance(t_t, torch.Tensor)
        np.testing.assert_array_equal(t_t.numpy(), t_np)
        np.testing.assert_array_equal(f_t.numpy(), f_np)
        np.testing.assert_array_equal(fn_t.numpy(), fn_np)
    with pytest.raises(ValueError, match="negatives contain 1 NaN"):
        roc(torch.tensor([1.0, float("nan")]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="positives is empty"):
        roc(torch.tensor([1.0]), torch.tensor([]))


def test_roc_torch_cuda_if_available():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    rng = np.random.default_rng(12)
    neg, pos = rng.random(100_000).astype(np.float32), rng.random(20_000).astype(np.float32)
    t, f, fn = roc(torch.from_numpy(neg).cuda(), torch.from_numpy(pos).cuda())
    assert t.is_cuda
    from harness.metrics.torch_backend import roc_counts_torch

    tc, a, b = roc_counts_torch(neg, pos, device="cuda")
    t_c, a_np, b_np = roc_counts(neg, pos)
    np.testing.assert_array_equal(tc.cpu().numpy(), t_c)
    np.testing.assert_array_equal(a.cpu().numpy(), a_np)
    np.testing.assert_array_equal(b.cpu().numpy(), b_np)
    t_np, f_np, fn_np = roc(neg, pos)
    np.testing.assert_array_equal(t.cpu().numpy(), t_np)
    np.testing.assert_array_equal(f.cpu().numpy(), f_np)
    np.testing.assert_array_equal(fn.cpu().numpy(), fn_np)
