"""Property tests: on its selection data a policy's chosen rates never exceed its targets; min_cost is optimal."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.metrics.clustered import clustered_upper_bound
from harness.metrics.intervals import clopper_pearson
from harness.policy import select
from harness.policy.report import decide_arrays

from ._synth import score_sets

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# few distinct values -> many ties, the hard case for "accept iff score >= t"
score = st.one_of(st.integers(-5, 5).map(float), st.floats(-3, 3, allow_nan=False, width=32).map(float))
pair = st.tuples(score, score)


@SETTINGS
@given(imp=st.lists(score, min_size=1, max_size=400), target=st.floats(0.001, 0.6),
       rule=st.sampled_from(["upper_bound", "point"]))
def test_chosen_fmr_never_exceeds_target_on_selection_data(imp, target, rule):
    ss = score_sets(gen=[(0.0, 0.0)], imp=[(v, 0.0) for v in imp], att=[(0.0, 0.0)])
    res = select(ss, {"name": "target_rates", "target_fmr": target, "fmr_rule": rule, "target_apcer": 0.5,
                      "min_subjects": 1})
    neg = np.asarray(imp)
    sel = res["selection"]["match"]
    for t in (res["t_match"], sel["loosest_meeting_rule"]):  # exported (non-dominated) and the rule's own
        assert np.count_nonzero(neg >= t) / neg.size <= target
    assert res["t_match"] >= sel["loosest_meeting_rule"]
    if rule == "upper_bound" and sel["supported"]:
        t = sel["loosest_meeting_rule"]
        assert clustered_upper_bound(neg >= t, ss.imp_subj, ss.imp_ref).hi <= target
        assert clopper_pearson(int(np.count_nonzero(neg >= t)), neg.size, 0.1)[1] <= target  # never looser than CP
        # loosest: the next lower distinct impostor score as threshold breaks the bound
        lower = neg[neg < t]
        if lower.size:
            assert clustered_upper_bound(neg >= lower.max(), ss.imp_subj, ss.imp_ref).hi > target
    if not sel["supported"]:
        assert np.count_nonzero(neg >= res["t_match"]) == 0


@SETTINGS
@given(att=st.lists(st.tuples(score, st.sampled_from(["a", "b", "c"])), min_size=1, max_size=200),
       target=st.floats(0.001, 0.6), rule=st.sampled_from(["upper_bound", "point"]))
def test_chosen_apcer_never_exceeds_target_for_any_species(att, target, rule):
    ss = score_sets(gen=[(0.0, 9.0)], imp=[(0.0, 0.0)], att=[(0.0, v, s) for v, s in att])
    res = select(ss, {"name": "target_rates", "target_fmr": 0.5, "target_apcer": target, "apcer_rule": rule})
    a = np.asarray([v for v, _ in att])
    sp = np.asarray([s for _, s in att])
    for s in set(sp.tolist()):
        g = a[sp == s]
        assert np.count_nonzero(g >= res["t_pad"]) / g.size <= target


@SETTINGS
@given(gen=st.lists(pair, min_size=1, max_size=40), imp=st.lists(pair, min_size=1, max_size=60),
       att=st.lists(pair, min_size=1, max_size=40), t_iapar=st.floats(0.01, 0.5), t_fmr=st.floats(0.01, 0.5),
       rule=st.sampled_from(["upper_bound", "point"]))
def test_joint_rates_never_exceed_targets_on_selection_data(gen, imp, att, t_iapar, t_fmr, rule):
    ss = score_sets(gen=gen, imp=imp, att=[(m, p, "s") for m, p in att])
    res = select(ss, {"name": "joint", "target_iapar": t_iapar, "target_fmr": t_fmr, "rule": rule, "max_grid": None})
    tm, tp = res["t_match"], res["t_pad"]
    acc = lambda xs: sum(1 for m, p in xs if m >= tm and p >= tp)  # noqa: E731
    assert acc(att) / len(att) <= t_iapar and acc(imp) / len(imp) <= t_fmr
    if rule == "upper_bound" and res["supported"]:
        assert clopper_pearson(acc(att), len(att))[1] <= t_iapar


def _brute_cost(gen, imp, att, w, review):
    """Expected cost of every (hi, lo) pair on the full candidate grid, by direct counting."""
    def cands(vals):
        u = sorted(set(vals))
        return [u[0]] + [float(np.nextafter(v, np.inf)) for v in u]

    gm = cands([m for m, _ in gen + imp + att])
    gp = cands([p for _, p in gen + imp + att])
    pa, pi = w["attack_prevalence"], w["impostor_prevalence"]
    pg = 1 - pa - pi
    L, R, V = w["loss_per_accepted_fraud"], w["cost_per_rejected_customer"], w["cost_per_review"]
    best = np.inf
    his = list(itertools.product(gm, gp))
    for hm, hp in his:
        los = [(lm, lp) for lm, lp in his if lm <= hm and lp <= hp] if review else [(hm, hp)]
        for lm, lp in los:
            def share(xs, what):
                d = decide_arrays([m for m, _ in xs], [p for _, p in xs],
                                  {"match": {"accept_at_or_above": hm, "reject_below": lm},
                                   "pad": {"accept_at_or_above": hp, "reject_below": lp}})
                return float(np.mean(d == what)) if len(xs) else 0.0
            c = (pa * (L * share(att, "accept") + V * share(att, "review"))
                 + pi * (L * share(imp, "accept") + V * share(imp, "review"))
                 + pg * (R * share(gen, "reject") + V * share(gen, "review")))
            best = min(best, c)
    return best


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gen=st.lists(pair, min_size=1, max_size=5), imp=st.lists(pair, min_size=1, max_size=4),
       att=st.lists(pair, min_size=1, max_size=4), pa=st.floats(0.0, 0.5), pi=st.floats(0.0, 0.3),
       L=st.floats(0, 100), R=st.floats(0, 10), V=st.floats(0, 5), review=st.booleans())
def test_min_cost_is_optimal_on_the_grid(gen, imp, att, pa, pi, L, R, V, review):
    w = {"attack_prevalence": pa, "impostor_prevalence": pi, "loss_per_accepted_fraud": L,
         "cost_per_rejected_customer": R, "cost_per_review": V}
    ss = score_sets(gen=gen, imp=imp, att=[(m, p, "s") for m, p in att])
    res = select(ss, {"name": "min_cost", "review": review, "max_grid": None} | w)
    got = res["selection"]["on_selection_data"]["expected_cost"]
    assert got <= _brute_cost(gen, imp, att, w, review) + 1e-9
    assert res["match_reject"] <= res["t_match"] and res["pad_reject"] <= res["t_pad"]


@SETTINGS
@given(gen=st.lists(pair, min_size=1, max_size=40), imp=st.lists(pair, min_size=1, max_size=40),
       att=st.lists(pair, min_size=1, max_size=40), budget=st.floats(0.0, 0.5))
def test_bands_review_rate_within_budget_on_selection_data(gen, imp, att, budget):
    ss = score_sets(gen=gen, imp=imp, att=[(m, p, "s") for m, p in att])
    res = select(ss, {"name": "bands", "target_fmr": 0.3, "fmr_rule": "point", "target_apcer": 0.3,
                      "review_budget": budget, "max_grid": None})
    bands = {"match": {"accept_at_or_above": res["t_match"], "reject_below": res["match_reject"]},
             "pad": {"accept_at_or_above": res["t_pad"], "reject_below": res["pad_reject"]}}
    d = decide_arrays([m for m, _ in gen], [p for _, p in gen], bands)
    assert np.mean(d == "review") <= budget + 1e-12
    assert res["match_reject"] <= res["t_match"] and res["pad_reject"] <= res["t_pad"]
