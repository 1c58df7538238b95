"""Hypothesis property tests: selection rules never break their target and are the loosest possible."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.metrics import (
    apcer_max,
    apcer_per_species,
    bpcer_at_apcer,
    eer,
    eer_rocch,
    error_rates,
    roc,
    roc_counts,
    threshold_for_fmr,
    threshold_for_fnmr,
)

# few distinct values -> many ties; plus arbitrary finite floats
tied = st.integers(-6, 6).map(lambda i: i / 4)
anyf = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
score = st.one_of(tied, anyf)
scores = st.lists(score, min_size=1, max_size=60)
target = st.one_of(st.floats(0, 1), st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.29, 0.5, 1.0]))
SET = settings(max_examples=150, deadline=None)


@SET
@given(scores, target)
def test_threshold_for_fmr_meets_target_and_is_loosest(neg, tgt):
    neg = np.asarray(neg)
    ch = threshold_for_fmr(neg, tgt)
    k = np.count_nonzero(neg >= ch.threshold)
    assert ch.achieved.k == k and k / neg.size <= tgt  # never exceeds the target on its own data
    assert ch.reachable == (tgt >= 1 / neg.size) or math.isclose(tgt, 1 / neg.size)
    if ch.threshold == -math.inf:
        assert tgt >= 1
        return
    lower = neg[neg < ch.threshold]
    assert lower.size  # the threshold sits just above some negative
    nxt = lower.max()  # next lower candidate threshold: accepts at least one more negative
    assert np.count_nonzero(neg >= nxt) / neg.size > tgt
    assert np.nextafter(nxt, math.inf) == ch.threshold  # nothing representable in between


@SET
@given(scores, target)
def test_threshold_for_fnmr_meets_target_and_is_strictest(pos, tgt):
    pos = np.asarray(pos)
    ch = threshold_for_fnmr(pos, tgt)
    assert np.count_nonzero(pos < ch.threshold) / pos.size <= tgt
    if ch.threshold == math.inf:
        return
    above = pos[pos > ch.threshold]
    if above.size:  # the next higher candidate rejects too many
        assert np.count_nonzero(pos < above.min()) / pos.size > tgt


@SET
@given(scores, scores, st.lists(score, min_size=2, max_size=10))
def test_rates_monotone_in_threshold(neg, pos, ts):
    ts = sorted(ts)
    r = [error_rates(neg, pos, t) for t in ts]
    assert all(a[0] >= b[0] for a, b in zip(r, r[1:]))  # FMR non-increasing
    assert all(a[1] <= b[1] for a, b in zip(r, r[1:]))  # FNMR non-decreasing


@SET
@given(scores, scores)
def test_roc_equals_brute_force(neg, pos):
    thr, n_fa, n_fr = roc_counts(neg, pos)
    n, p = np.asarray(neg), np.asarray(pos)
    assert thr[0] == math.inf and np.all(thr[1:-1] > thr[2:]) if thr.size > 2 else True
    assert set(thr[1:].tolist()) == set(np.r_[n, p].tolist())
    for t, a, b in zip(thr, n_fa, n_fr):
        assert a == np.count_nonzero(n >= t) and b == np.count_nonzero(p < t)
    _, fmr, fnmr = roc(neg, pos)
    assert np.all(np.diff(fmr) >= 0) and np.all(np.diff(fnmr) <= 0)


@SET
@given(scores, scores)
def test_eer_rules(neg, pos):
    e, t = eer(neg, pos)
    fmr, fnmr = error_rates(neg, pos, t)
    assert e == (fmr + fnmr) / 2
    thr, f, fn = roc(neg, pos)
    assert abs(fmr - fnmr) == np.min(np.abs(f - fn))
    assert eer_rocch(neg, pos) <= max(fmr, fnmr) + 1e-12
    assert eer_rocch(neg, pos) <= np.min(np.maximum(f, fn)) + 1e-12


species_st = st.sampled_from(["print", "replay", "mask", "3d"])


@SET
@given(st.lists(st.tuples(score, species_st), min_size=1, max_size=60), score)
def test_apcer_max_dominates_every_species(pairs, t):
    att = [p[0] for p in pairs]
    sp = [p[1] for p in pairs]
    per = apcer_per_species(att, sp, t)
    name, worst = apcer_max(att, sp, t)
    assert set(per) == set(sp)
    assert all(worst.value >= r.value for r in per.values()) and per[name] == worst
    assert sum(r.n for r in per.values()) == len(att)


@SET
@given(st.lists(st.tuples(score, species_st), min_size=1, max_size=60), scores, target)
def test_bpcer_at_apcer_every_species_meets_target_and_is_loosest(pairs, bf, tgt):
    att = np.asarray([p[0] for p in pairs])
    sp = np.asarray([p[1] for p in pairs])
    out = bpcer_at_apcer(bf, att, sp, tgt)
    thr = out["threshold"]
    assert all(r.value <= tgt for r in out["per_species"].values())
    assert out["apcer_max"].value <= tgt
    if thr == -math.inf:
        return
    nxt = att[att < thr].max()
    worse = apcer_per_species(att, sp, nxt)
    assert max(r.value for r in worse.values()) > tgt
