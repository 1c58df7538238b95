"""Selection policies on synthetic score sets with known answers (computed by hand or independently of the code)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from harness.metrics.pad import bpcer_at_apcer
from harness.metrics.verification import threshold_for_fmr
from harness.policy import choose_thresholds, select
from harness.policy.bounds import max_errors_within, min_n_for_zero_errors, threshold_on_bound

from ._synth import random_tables, score_sets, tables

up = lambda v: float(np.nextafter(v, np.inf))  # noqa: E731  the loosest threshold rejecting score v


def cp_hi(k: int, n: int, conf: float = 0.95) -> float:
    """Clopper-Pearson upper end, written out independently of harness.metrics."""
    return 1.0 if k == n else float(stats.beta.ppf(1 - (1 - conf) / 2, k + 1, n - k))


# ------------------------------------------------------------------------------------------------ target FMR


def cp_up1(k: int, n: int, conf: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound, written out independently of harness.metrics."""
    return 1.0 if k == n else float(stats.beta.ppf(conf, k + 1, n - k))


def test_target_fmr_upper_bound_known_answer():
    imp = np.arange(1000, dtype=np.float64)  # distinct scores 0..999, one person per trial (independent trials)
    ss = score_sets(gen=[(990.0, 0.9)], imp=[(v, 0.9) for v in imp], att=[(0.0, 0.1)])
    res = select(ss, {"name": "target_rates", "target_fmr": 0.01, "target_apcer": 0.5, "min_subjects": 1})
    sel = res["selection"]["match"]
    k = int(np.count_nonzero(imp >= sel["loosest_meeting_rule"]))
    # never looser than trial-level one-sided Clopper-Pearson; with independent trials hardly stricter
    assert cp_up1(k, 1000) <= 0.01 and k >= max(j for j in range(1000) if cp_up1(j, 1000) <= 0.01) - 1
    assert sel["supported"] and sel["achieved_fmr"]["k"] == k and sel["bound_at_loosest"] <= 0.01
    assert sel["side"] == "one-sided upper" and sel["confidence"] == 0.95
    # the one genuine (990) is rejected at that threshold anyway: rejecting every impostor costs nothing
    assert res["t_match"] == up(999.0)


def test_target_fmr_too_few_trials_is_said_and_rejects_all_seen():
    imp = np.linspace(0, 1, 100)
    r = threshold_on_bound(imp, 0.01, 0.95, what="FMR", noun="impostor trials")
    assert not r["supported"]
    assert r["threshold"] == up(1.0) and r["achieved"]["k"] == 0
    assert r["needed_subjects"] is not None and "people are needed" in r["note"]
    assert "NOT shown" in r["note"]


def test_min_n_for_zero_errors_matches_closed_form():
    for target, conf in ((0.01, 0.95), (0.0001, 0.8), (0.07, 0.95), (0.03, 0.8)):
        n = min_n_for_zero_errors(target, conf)
        assert cp_hi(0, n, conf) <= target < cp_hi(0, n - 1, conf)
        assert n == math.ceil(math.log((1 - conf) / 2) / math.log(1 - target)) or abs(
            n - math.log((1 - conf) / 2) / math.log(1 - target)) < 1


def test_max_errors_within_is_monotone_and_exact():
    assert max_errors_within(50, 0.05) is None  # 0/50 -> upper bound 7.1% > 5%: too few
    for n in (100, 400, 3000):
        k = max_errors_within(n, 0.05)
        assert cp_hi(k, n) <= 0.05 < cp_hi(k + 1, n)


def test_point_rules_equal_the_metric_library():
    rng = np.random.default_rng(3)
    imp = rng.normal(size=500)
    bona = rng.normal(2, 1, size=200)
    att = rng.normal(0, 1, size=300)
    sp = np.where(np.arange(300) % 3 == 0, "mask", "print")
    ss = score_sets(gen=[(3.0, b) for b in bona], imp=[(v, 0.0) for v in imp],
                    att=[(0.0, a, s) for a, s in zip(att, sp)])
    res = select(ss, {"name": "target_rates", "target_fmr": 0.01, "fmr_rule": "point", "target_apcer": 0.05,
                      "apcer_rule": "point"})
    assert res["selection"]["match"]["loosest_meeting_rule"] == threshold_for_fmr(imp, 0.01).threshold
    assert res["selection"]["pad"]["loosest_meeting_rule"] == bpcer_at_apcer(bona, att, sp, 0.05)["threshold"]
    # then moved up to the lowest genuine / bona fide score at or above it (same FNMR / BPCER, fewer accepted)
    g = np.full(200, 3.0)
    assert res["t_match"] == 3.0 and np.count_nonzero(g < res["t_match"]) == 0
    assert res["t_pad"] == bona[bona >= res["selection"]["pad"]["loosest_meeting_rule"]].min()


def test_pad_upper_bound_rule_per_species():
    # species A: 1000 attacks 0..999, species B: 20 attacks (too few for 5% on the bound); one person per attack
    a = [(0.0, float(v), "A") for v in range(1000)] + [(0.0, float(v) / 10, "B") for v in range(20)]
    ss = score_sets(gen=[(1.0, 2000.0)], att=a)
    res = select(ss, {"name": "target_rates", "target_fmr": 0.5, "target_apcer": 0.05, "apcer_rule": "upper_bound",
                      "min_subjects": 1})
    per = res["selection"]["pad"]["per_species"]
    kA = int(np.count_nonzero(np.arange(1000) >= per["A"]["threshold"]))
    assert cp_up1(kA, 1000) <= 0.05 and per["A"]["bound"] <= 0.05 and per["A"]["supported"]
    assert per["B"]["supported"] is False and per["B"]["threshold"] == up(1.9)
    assert res["selection"]["pad"]["loosest_meeting_rule"] == max(per["A"]["threshold"], up(1.9))
    assert res["supported"] is False
    assert res["t_pad"] == 2000.0  # the only bona fide score: every attack rejected at no customer cost


# ------------------------------------------------------------------------------------------------------- EER


def test_eer_known_answer():
    ss = score_sets(gen=[(4, 0.9), (5, 0.8), (6, 0.7), (7, 0.6)], imp=[(0, 0.9), (1, 0.9), (2, 0.9), (3, 0.9)],
                    att=[(5, 0.1), (5, 0.2), (5, 0.3), (5, 0.4)])
    res = select(ss, {"name": "eer"})
    assert res["t_match"] == 4.0 and res["selection"]["match"]["eer"] == 0.0
    assert res["t_pad"] == 0.6 and res["selection"]["pad"]["eer_non_iso"] == 0.0


# -------------------------------------------------------------------------------------------------- min cost

COST = {"name": "min_cost", "attack_prevalence": 0.1, "impostor_prevalence": 0.0, "loss_per_accepted_fraud": 100.0,
        "cost_per_rejected_customer": 1.0, "cost_per_review": 0.5, "max_grid": None}
GEN = [(0.9, 0.9), (0.9, 0.8), (0.9, 0.3)]
ATT = [(0.9, 0.1, "print"), (0.9, 0.5, "print")]


def test_min_cost_known_answer_without_review():
    # t_pad in (0.5, 0.8]: no attack accepted, 1/3 genuine rejected -> 0.9 * 1 * 1/3 = 0.3 (every other choice
    # costs more: (0.1, 0.3] -> 5.0, (0.3, 0.5] -> 5.3, (0.8, 0.9] -> 0.6, accept all -> 10)
    res = select(score_sets(gen=GEN, att=ATT), COST)
    # the grid optimum just above 0.5 moves up to the lowest accepted genuine PAD score (0.8): same cost and
    # decisions, the non-dominated end
    assert res["selection"]["grid_choice"]["t_pad"] == up(0.5)
    assert res["t_pad"] == 0.8 and res["t_match"] == 0.9
    assert res["pad_reject"] == res["t_pad"] and res["match_reject"] == res["t_match"]
    assert res["selection"]["on_selection_data"]["expected_cost"] == pytest.approx(0.3)
    t, p = tables({"dev": {"genuine": GEN, "attack": ATT}, "eval": {"genuine": GEN, "attack": ATT}})
    op = choose_thresholds(t, p, COST)
    assert op["t_pad"] == float(np.float32(0.65))  # the float32 number nearest the middle of the gap (0.5, 0.8]
    assert op["plateau"]["pad"]["gap"] == [0.5, 0.8] and op["plateau"]["pad"]["float32_safe"]


def test_min_cost_known_answer_with_review():
    # accept pad >= next(0.5); review pad in [next(0.1), next(0.5)); reject below: the 0.3 customer and the 0.5
    # attack go to review: cost = 0.9 * 0.5 * 1/3 + 0.1 * 0.5 * 1/2 = 0.175 (< 0.3 without review)
    res = select(score_sets(gen=GEN, att=ATT), COST | {"review": True})
    assert (res["t_pad"], res["pad_reject"]) == (up(0.5), up(0.1))
    ev = res["selection"]["on_selection_data"]
    assert ev["expected_cost"] == pytest.approx(0.175) and ev["review_rate"] == pytest.approx(0.35)


def test_min_cost_review_budget_binds():
    # budget 10%: the 0.175 band reviews 35%; reviewing only the attack costs 0.325 > 0.3, so no review is best
    res = select(score_sets(gen=GEN, att=ATT), COST | {"review": True, "review_budget": 0.1})
    ev = res["selection"]["on_selection_data"]
    assert ev["review_rate"] <= 0.1 and ev["expected_cost"] == pytest.approx(0.3)
    assert res["t_pad"] == up(0.5)


def test_min_cost_without_attack_trials_is_flagged():
    res = select(score_sets(gen=GEN, imp=[(0.1, 0.9)]), COST)
    assert res["supported"] is False and any("no attack trials" in n for n in res["notes"])


# ------------------------------------------------------------------------------------------------------ bands


def test_bands_known_answer():
    gen = [(0.9, 0.9), (0.9, 0.25), (0.2, 0.9), (0.9, 0.05)]
    imp = [(0.1, 0.9), (0.2, 0.9), (0.3, 0.9), (0.4, 0.9)]
    att = [(0.9, 0.1, "print"), (0.9, 0.2, "print"), (0.9, 0.3, "print"), (0.9, 0.4, "print")]
    pol = {"name": "bands", "target_fmr": 0.25, "fmr_rule": "point", "target_apcer": 0.25, "review_budget": 0.25,
           "max_grid": None}
    res = select(score_sets(gen=gen, imp=imp, att=att), pol | {"apcer_rule": "point"})
    # accept thresholds: 1 of 4 impostors / attacks allowed -> just above the 2nd highest (0.3), then up to the
    # lowest genuine score above (0.9): the same genuine accepted, no impostor / attack accepted
    assert res["selection"]["match"]["loosest_meeting_rule"] == up(0.3) == res["selection"]["pad"]["loosest_meeting_rule"]
    assert res["t_match"] == 0.9 and res["t_pad"] == 0.9
    # budget = 1 of 4 genuine in review: 2 rejected whichever is reviewed; ties -> fewer attacks let through to
    # review: reviewing (0.2, 0.9) lets no attack through (reviewing (0.9, 0.25) would let 2 through), then the
    # higher reject thresholds: match reject just above 0.1, PAD reject at 0.9
    assert res["match_reject"] == up(0.1) and res["pad_reject"] == 0.9
    assert res["selection"]["genuine"] == {"accepted": "1/4", "reviewed": "1/4", "rejected": "2/4",
                                           "rejected_without_review_band": "3/4"}


def test_bands_zero_budget_is_two_thresholds():
    t, p = random_tables(1)
    op = choose_thresholds(t, p, {"name": "bands", "review_budget": 0.0})
    assert op["review_band"] is False and op["bands"]["match"]["reject_below"] == op["t_match"]


# ------------------------------------------------------------------------------------------------------ joint


def test_joint_known_answer():
    gen = [(0.9, 0.9), (0.9, 0.4), (0.4, 0.9)]
    att = [(0.95, 0.3, "print"), (0.5, 0.95, "print")]
    imp = [(0.3, 0.9)]
    pol = {"name": "joint", "target_iapar": 0.01, "target_fmr": 0.01, "rule": "point", "max_grid": None}
    res = select(score_sets(gen=gen, imp=imp, att=att), pol)
    # the only way to keep 2 genuine with 0 attacks / impostors: t_match in (0.5, 0.9], t_pad in (0.3, 0.4];
    # the grid picks the lower corner, the non-dominated refinement the upper one (same dev decisions)
    assert (res["selection"]["grid_choice"]["t_match"], res["selection"]["grid_choice"]["t_pad"]) == (up(0.5), up(0.3))
    assert (res["t_match"], res["t_pad"]) == (0.9, 0.4)
    assert res["selection"]["achieved"]["genuine_rejection"]["k"] == 1
    assert res["selection"]["achieved"]["iapar"]["k"] == 0 and res["supported"] is True


def test_joint_too_few_attacks_on_the_bound_is_unsupported():
    gen = [(0.9, 0.9)] * 5
    att = [(0.95, 0.3, "print")] * 10
    res = select(score_sets(gen=gen, imp=[(0.1, 0.9)] * 500, att=att), {"name": "joint", "target_iapar": 0.07})
    assert res["supported"] is False and any("too few attack trials" in n for n in res["notes"])
    assert res["selection"]["achieved"]["iapar"]["k"] == 0


# ---------------------------------------------------------------------------------------------- dev -> eval


def test_selected_on_dev_reported_on_eval_by_default():
    t, p = random_tables(2)
    op = choose_thresholds(t, p, {"name": "target_rates"})
    assert op["selected_on"] == "dev" and op["selected_on_eval_data"] is False
    assert op["report"]["partition"] == "eval" and op["report"]["selected_on_same_data"] is False
    assert op["on_selection_data"]["partition"] == "dev"
    # the thresholds depend on dev only: changing eval scores changes nothing
    t2 = t.copy()
    t2.loc[t2["partition"] == "eval", "match_score"] += 1.0
    op2 = choose_thresholds(t2, p, {"name": "target_rates"})
    assert (op2["t_match"], op2["t_pad"]) == (op["t_match"], op["t_pad"])


def test_select_on_eval_needs_the_flag_and_is_marked():
    t, p = random_tables(2)
    op = choose_thresholds(t, p, {"name": "target_rates", "select_on": "eval"})
    assert op["selected_on"] == "eval" and op["selected_on_eval_data"] is True
    assert "EVALUATION data" in op["notes"][0] and op["report"]["selected_on_same_data"] is True
    with pytest.raises(ValueError, match="select_on"):
        choose_thresholds(t, p, {"name": "target_rates", "select_on": "all"})


def test_unknown_policy_and_bad_inputs_are_clear_errors():
    t, p = random_tables(0, n_gen=10, n_att=10)
    with pytest.raises(ValueError, match="policy.name must be one of"):
        choose_thresholds(t, p, {"name": "magic"})
    with pytest.raises(ValueError, match="target_fmr"):
        choose_thresholds(t, p, {"name": "target_rates", "target_fmr": 1.5})
    with pytest.raises(ValueError, match="attack_prevalence"):
        choose_thresholds(t, p, {"name": "min_cost", "attack_prevalence": 0.7, "impostor_prevalence": 0.4})


def test_missing_classes_give_no_threshold_and_a_note():
    t, p = tables({"dev": {"genuine": [(0.9, 0.9)]}, "eval": {"genuine": [(0.9, 0.9)]}})
    op = choose_thresholds(t, p, {"name": "target_rates"})
    assert op["t_match"] is None and op["bands"] is None and "report" not in op
    assert any("no impostor trials" in n for n in op["notes"])
