"""A defensible operating point: one regression test per audit finding (dominated thresholds, independence,
failures to acquire, float safety, unmeasurable rates, the worst-species rule), the evidence rules of the
standards, and property tests for "never dominated on dev", "dev FMR <= target" and decision agreement."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.evaluate import evaluate, people_rate
from harness.partition_metrics import evaluate_partition, unmeasurable
from harness.metrics.clustered import clustered_upper_bound
from harness.metrics.pad import worst_species
from harness.policy import choose_thresholds, select
from harness.policy.bounds import pad_threshold_on_bound
from harness.policy.data import ScoreSets, score_sets
from harness.policy.refine import decision_disagreements, place
from harness.policy.standards import evaluate_criterion, evaluate_preset, load_preset
from harness.runtime import signing_key

from ._synth import people_tables

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _dominated_1d(t: float, neg: np.ndarray, pos: np.ndarray) -> bool:
    """True when a stricter threshold rejects more negatives with the same positives accepted."""
    above = pos[pos >= t]
    nxt = above.min() if above.size else np.inf
    return bool(np.any((neg >= t) & (neg < nxt)))


def _people_sets(n_people: int, m: int, att_scores, bona_scores, species="print_photo") -> ScoreSets:
    att = np.asarray(att_scores, dtype=np.float64)
    bona = np.asarray(bona_scores, dtype=np.float64)
    att_subj = np.asarray([f"a{i % n_people}" for i in range(att.size)])
    bona_subj = np.asarray([f"b{i % n_people}" for i in range(bona.size)])
    gen = np.full(n_people * m, 0.9)
    return ScoreSets("dev", gen, np.full(gen.size, 0.9), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0),
                     np.zeros(0, str), bona, att, np.asarray([species] * att.size),
                     gen_subj=np.repeat([f"g{i}" for i in range(n_people)], m), imp_subj=np.zeros(0, str),
                     imp_ref=np.zeros(0, str), att_subj=np.zeros(0, str), bona_pad_subj=bona_subj,
                     att_pad_subj=att_subj)


# ------------------------------------------------------------------- finding 1: a dominated threshold is exported


def test_finding1_pad_threshold_is_not_dominated():
    """Repro of the audit: the loosest threshold meeting the APCER target let 30/615 prints through where a
    stricter one let 1 through with the same 0/359 bona fide rejected."""
    rng = np.random.default_rng(0)
    att = np.r_[rng.uniform(0.0, 0.0002, 584), rng.uniform(0.0002, 0.3, 30), [0.7]]  # 615 attacks
    bona = rng.uniform(0.75, 1.0, 359)  # no bona fide below 0.75
    ss = _people_sets(60, 6, att, bona)
    pol = {"name": "target_rates", "target_apcer": 0.2, "target_fmr": 0.5, "min_subjects": 1}
    res = select(ss, pol)
    sel = res["selection"]["pad"]
    assert np.count_nonzero(att >= sel["loosest_meeting_rule"]) > 1  # what the old rule exported
    t = res["t_pad"]
    assert not _dominated_1d(t, att, bona)
    # every attack below the lowest bona fide score is rejected at no customer cost (0.7 included)
    assert np.count_nonzero(att >= t) == 0 and np.count_nonzero(bona < t) == 0 and t <= bona.min()


def test_finding1_match_threshold_is_not_dominated():
    """The same for t_match: 11 impostors accepted with 3 genuine rejected, where a stricter threshold accepts 9."""
    t, pr = people_tables(seed=3, people=14, frames=8)
    op = choose_thresholds(t, pr, {"name": "target_rates", "target_fmr": 0.2, "target_apcer": 0.3, "min_subjects": 1})
    ss = score_sets(t, pr, "dev")
    assert not _dominated_1d(op["t_match"], ss.imp_m, ss.gen_m)
    assert not _dominated_1d(op["t_pad"], ss.att_pad, ss.bona_pad)
    for axis in ("match", "pad"):
        pl = op["plateau"][axis]
        assert pl["lower_end"] <= op["t_match" if axis == "match" else "t_pad"] <= pl["upper_end"]
        dev = pl["rates"]["dev"]
        key = "fmr" if axis == "match" else "apcer_max"
        assert dev["lower_end"][key]["k"] == dev["upper_end"][key]["k"] == dev["exported"][key]["k"]
        assert set(pl["rates"]) == {"dev", "eval"}


@pytest.mark.parametrize("policy", ["target_rates", "eer", "bands", "joint", "min_cost"])
def test_every_policy_exports_a_non_dominated_point(policy):
    t, pr = people_tables(seed=5, people=12, frames=6)
    op = choose_thresholds(t, pr, {"name": policy, "target_fmr": 0.3, "target_apcer": 0.3, "target_iapar": 0.3,
                                   "min_subjects": 1, "max_grid": 64})
    ss = score_sets(t, pr, "dev")
    tm, tp = op["t_match"], op["t_pad"]
    if policy in ("target_rates", "eer", "bands"):
        assert not _dominated_1d(tm, ss.imp_m, ss.gen_m)
        assert not _dominated_1d(tp, ss.att_pad, ss.bona_pad)
    else:  # 2-D: no single-axis move on the full dev scores improves it (and the grid step was applied)
        acc = (ss.gen_m >= tm) & (ss.gen_p >= tp)
        nm = ss.gen_m[(ss.gen_p >= tp) & (ss.gen_m >= tm)]
        nxt = nm.min() if nm.size else np.inf
        bad_m = np.r_[ss.imp_m[ss.imp_p >= tp], ss.att_m[ss.att_p >= tp]]
        assert not np.any((bad_m >= tm) & (bad_m < nxt))
        npd = ss.gen_p[(ss.gen_m >= tm) & (ss.gen_p >= tp)]
        nxt = npd.min() if npd.size else np.inf
        bad_p = np.r_[ss.imp_p[ss.imp_m >= tm], ss.att_p[ss.att_m >= tm]]
        assert not np.any((bad_p >= tp) & (bad_p < nxt))
        assert acc.any()


# ---------------------------------------------------------------- finding 2: verdicts assume independent trials


def test_finding2_one_person_frr_verdict_is_insufficient_evidence():
    """The FIDO 'FRR: pass' rested on 86 genuine attempts of a single person."""
    from harness.evaluate import Outcome

    oc = {"system_frr": Outcome(np.zeros(86, bool), np.asarray(["p1"] * 86))}
    rates = {"system": {"genuine_rejection": people_rate(np.zeros(86, bool), ["p1"] * 86)}}
    crit = next(c for c in load_preset("fido_biometric_component")["criteria"] if c["id"] == "frr")
    v = evaluate_criterion(crit, rates, 0.8, oc, (245, "FIDO"))
    assert v["verdict"] == "insufficient evidence" and "1 subject" in v["reason"]


def test_finding2_thresholds_chosen_on_people_not_frames():
    """50 frames of each of 6 people with 0 false matches: trial-level Clopper-Pearson would 'support' FMR 1 %;
    the people-aware rule does not, and says how many people are needed."""
    rng = np.random.default_rng(1)
    a, b = np.nonzero(~np.eye(6, dtype=bool))
    a, b = np.repeat(a, 50), np.repeat(b, 50)
    imp = rng.normal(0, 1, a.size)
    ss = ScoreSets("dev", np.ones(6), np.ones(6), imp, np.ones(imp.size), np.zeros(0), np.zeros(0), np.zeros(0, str),
                   np.ones(6), np.zeros(1), np.asarray(["x"]), gen_subj=np.asarray([f"p{i}" for i in range(6)]),
                   imp_subj=a.astype(str), imp_ref=b.astype(str))
    res = select(ss, {"name": "target_rates", "target_fmr": 0.01, "target_apcer": 0.9})
    assert not res["selection"]["match"]["supported"]
    assert "people are needed" in res["selection"]["match"]["note"]
    assert np.count_nonzero(imp >= res["t_match"]) == 0


# ----------------------------------------------------------------- finding 4: failures to acquire are folded in


def test_finding4_fta_in_frr_far_and_iapar():
    t, pr = people_tables(seed=2, people=10, frames=2, attacks=2, species=("print", "replay"),
                          fta_genuine=6, fta_attack=4)
    # keep 14 genuine trials in dev: 6 failures to acquire among 20 genuine attempts
    dev_gen = t[(t["partition"] == "dev") & (t["kind"] == "genuine")]
    t = t.drop(dev_gen.index[14:])
    pr = pr[~pr["sample_id"].isin(dev_gen["probe_id"].iloc[14:]) | (pr["partition"] != "dev")]
    bands = {"match": {"accept_at_or_above": -10.0, "reject_below": -10.0},
             "pad": {"accept_at_or_above": -10.0, "reject_below": -10.0}}  # accept every scored attempt
    r, _ = evaluate(t, pr, "dev", bands)
    frr = r["system"]["genuine_rejection"]
    assert (frr["k"], frr["n"]) == (6, 20)  # ISO/IEC 19795-1: FRR = FTA + FNMR (1 - FTA) = 6/20, not 0/14
    assert (r["verif"]["fnmr"]["k"], r["verif"]["fnmr"]["n"]) == (0, 14)  # the matcher alone: comparisons only
    far = r["system"]["zero_effort_fmr"]
    n_imp = int(((t["partition"] == "dev") & (t["kind"] == "impostor")).sum())
    assert far["n"] == n_imp + 6 * 9 and far["k"] == n_imp  # FTA impostor attempts: in the denominator only
    iapar = r["system"]["iapar"]
    assert (iapar["k"], iapar["n"]) == (20, 24)  # 20 attack trials accepted, 4 FTA attack presentations counted
    nr = r["pad"]["non_response"]
    assert (nr["bona_fide"]["k"], nr["attack"]["k"]) == (6, 4)
    assert set(nr["attack_per_species"]) == {"print", "replay"}
    assert sum(x["k"] for x in nr["attack_per_species"].values()) == 4


# --------------------------------------------------------------------- finding 5: thresholds are not float-safe


def test_finding5_float32_scores_and_threshold_agree():
    att = np.float32([0.1, 0.2, 0.7])
    bona = np.float32([0.9, 0.95, 0.99])
    ss = _people_sets(3, 1, att.astype(np.float64), bona.astype(np.float64))
    res = select(ss, {"name": "target_rates", "target_apcer": 0.5, "target_fmr": 0.5, "apcer_rule": "point",
                      "min_subjects": 1})
    pl = place(res["t_pad"], np.r_[att, bona].astype(np.float64), np.r_[att, bona].astype(np.float64))
    t = pl["threshold"]
    assert pl["float32_safe"] and pl["disagreements"] == 0
    assert float(np.float32(t)) == t  # a float32 number
    k64 = int(np.count_nonzero(att.astype(np.float64) >= t))
    assert k64 == int(np.count_nonzero(att >= np.float32(t))) == 0  # the metric and a float32 runtime agree
    assert 0.7 < t <= float(np.float32(0.9))


@SETTINGS
@given(scores=st.lists(st.floats(-1, 1, width=32, allow_nan=False), min_size=2, max_size=60), pick=st.integers(0, 59))
def test_placed_threshold_decides_the_same_everywhere(scores, pick):
    s32 = np.asarray(scores, dtype=np.float32)
    s64 = s32.astype(np.float64)
    t0 = float(np.nextafter(s64[pick % s64.size], np.inf))
    pl = place(t0, s64, s64)
    t = pl["threshold"]
    t_json = json.loads(json.dumps({"t": t}))["t"]
    ref = s64 >= t
    assert np.array_equal(ref, s32 >= np.float32(t))
    assert np.array_equal(ref, (torch.from_numpy(s32) >= torch.tensor(t, dtype=torch.float32)).numpy())
    assert np.array_equal(ref, (torch.from_numpy(s64) >= torch.tensor(t_json, dtype=torch.float64)).numpy())
    assert np.array_equal(ref, np.asarray([float(x) >= t_json for x in s32.tolist()]))
    # same dev decisions as the policy's own threshold
    assert np.array_equal(ref, s64 >= t0)
    assert decision_disagreements(s64, t) == 0


def test_runtime_decides_like_the_metrics_on_a_real_export(tmp_path):
    from harness.export.operating_point import build_operating_point, write_operating_point

    t, pr = people_tables(seed=7, people=12, frames=4)
    op = choose_thresholds(t, pr, {"name": "target_rates", "target_fmr": 0.3, "target_apcer": 0.3, "min_subjects": 1})
    doc = build_operating_point(config={"policy": {"name": "target_rates"}},
                                models={"embedder": {"name": "e", "weights_sha256": "a" * 64, "preprocessing": "x"},
                                        "pad": {"name": "p", "weights_sha256": "b" * 64, "preprocessing": "y"}},
                                op=op, dataset={"name": "synth", "manifest_sha256": "c" * 64, "samples": 1},
                                trials=t, probes=pr, key=signing_key())
    write_operating_point(doc, tmp_path / "op.json")
    from harness.runtime import load

    rt = load(tmp_path / "op.json", embedder_sha256="a" * 64, pad_sha256="b" * 64, allow_not_deployable=True)
    m = t["match_score"].to_numpy()
    p = t["pad_score"].to_numpy()
    want = (m >= op["t_match"]) & (p >= op["t_pad"])
    got = np.asarray([rt.decide(float(a), float(b)).outcome == "accept" for a, b in zip(m, p)])
    assert np.array_equal(want, got)
    got32 = (m.astype(np.float32) >= np.float32(op["t_match"])) & (p.astype(np.float32) >= np.float32(op["t_pad"]))
    assert np.count_nonzero(want != got32) == (op["plateau"]["match"]["disagreements"] +
                                               op["plateau"]["pad"]["disagreements"]) or not np.any(want != got32)


# ------------------------------------------------------- finding 6: unmeasurable rates and the worst-species rule


def test_finding6_bpcer1000_on_565_attacks_is_flagged():
    t, pr = people_tables(seed=4, people=8, frames=3, attacks=71)  # 568 attacks per partition
    op = choose_thresholds(t, pr, {"name": "target_rates", "min_subjects": 1})
    m = evaluate_partition(t, pr, "eval", op["report"]["rates"])
    assert m["pad"]["bpcer1000"]["measurable"] is False and "bpcer" not in m["pad"]["bpcer1000"]
    assert m["pad"]["bpcer20"]["measurable"] is True and "n_subjects" in m["pad"]["bpcer20"]["bpcer"]
    flagged = {u["metric"] for u in unmeasurable({"eval": m}, op)}
    assert "pad/eval/bpcer1000" in flagged and "pad/eval/bpcer20" not in flagged
    assert any(k.startswith("verif/eval/fnmr_at_fmr/fmr_1e-6") for k in flagged)


def test_finding6_worst_species_tie_is_one_rule_everywhere():
    per = {"replay": {"value": 0.1, "n": 10}, "print": {"value": 0.1, "n": 20}, "mask": {"value": 0.1, "n": 20}}
    assert worst_species(per) == "mask"  # same value: more presentations, then the alphabetically first
    # a tie in the data: the threshold rule and the evaluation name the same species
    att = np.r_[np.linspace(0, 1, 20), np.linspace(0, 1, 20)]
    sp = np.r_[["replay"] * 20, ["print"] * 20]
    subj = np.asarray([f"p{i % 10}" for i in range(40)])
    r = pad_threshold_on_bound(np.ones(5), att, sp, 0.3, attack_subjects=subj)
    per2 = {s: people_rate(att[sp == s] >= r["threshold"], subj[sp == s]) for s in ("print", "replay")}
    assert r["apcer_max_species"] == worst_species(per2) == "print"


# ------------------------------------------------------------------------------------------ one source


def test_summary_export_report_and_verdicts_read_one_computation():
    t, pr = people_tables(seed=6, people=12, frames=4)
    op = choose_thresholds(t, pr, {"name": "target_rates", "target_fmr": 0.3, "target_apcer": 0.3, "min_subjects": 1})
    m = evaluate_partition(t, pr, "eval", op["report"]["rates"])
    r = op["report"]["rates"]
    assert m["verif"]["at_operating_point"]["fmr"] == r["verif"]["fmr"]
    assert m["pad"]["at_operating_point"]["apcer_max"] == r["pad"]["apcer_max"]
    assert m["system"]["iapar"] == r["system"]["iapar"]
    for rate in (r["verif"]["fmr"], r["verif"]["fnmr"], r["pad"]["bpcer"], r["system"]["iapar"]):
        assert rate["n_subjects"] >= 1 and "cp_hi" in rate


# -------------------------------------------------------------------------------------- evidence rules


def _fido_frr(people: int) -> dict:
    subj = np.repeat([f"p{i}" for i in range(people)], 5)  # FIDO: 5 genuine transactions per person
    err = np.zeros(subj.size, bool)
    err[0] = True
    from harness.evaluate import Outcome

    oc = {"system_frr": Outcome(err, subj)}
    rates = {"system": {"genuine_rejection": people_rate(err, subj)}}
    preset = load_preset("fido_biometric_component")
    preset = dict(preset, criteria=[c for c in preset["criteria"] if c["id"] == "frr"])
    return evaluate_preset(preset, rates, oc)


def test_evidence_rule_at_the_standards_minimum_passes_one_fewer_does_not():
    assert _fido_frr(245)["verdict"] == "pass"
    v = _fido_frr(244)
    assert v["verdict"] == "insufficient evidence" and "244 subjects" in v["criteria"][0]["reason"]


def test_evidence_rule_harness_default_where_the_standard_is_silent():
    from harness.evaluate import Outcome

    preset = load_preset("ibeta_pad_level1")
    preset = dict(preset, criteria=[c for c in preset["criteria"] if c["id"] == "bpcer"])
    out = {}
    for people in (10, 9):
        subj = np.repeat([f"p{i}" for i in range(people)], 400)
        err = np.zeros(subj.size, bool)
        out[people] = evaluate_preset(preset, {"pad": {"bpcer": people_rate(err, subj)}}, {"bpcer": Outcome(err, subj)})
    assert out[10]["verdict"] == "pass"
    assert out[9]["verdict"] == "insufficient evidence" and "harness default" in out[9]["criteria"][0]["reason"]


# ------------------------------------------------------------------------------------------ properties


@SETTINGS
@given(seed=st.integers(0, 10**6), people=st.integers(3, 14), target=st.sampled_from([0.05, 0.1, 0.3]))
def test_property_dev_fmr_bound_of_exported_threshold_meets_target_when_supported(seed, people, target):
    t, pr = people_tables(seed=seed, people=people, frames=3, attacks=3)
    op = choose_thresholds(t, pr, {"name": "target_rates", "target_fmr": target, "target_apcer": target,
                                   "min_subjects": 1, "standards": "none"})
    ss = score_sets(t, pr, "dev")
    assert not _dominated_1d(op["t_match"], ss.imp_m, ss.gen_m)
    assert not _dominated_1d(op["t_pad"], ss.att_pad, ss.bona_pad)
    if op["selection"]["match"]["supported"]:
        r = clustered_upper_bound(ss.imp_m >= op["t_match"], ss.imp_subj, ss.imp_ref)
        assert r.hi <= target
    else:
        assert np.count_nonzero(ss.imp_m >= op["t_match"]) == 0
    if op["selection"]["pad"]["supported"]:
        for s in set(ss.att_pad_species.tolist()):
            sel = ss.att_pad_species == s
            assert clustered_upper_bound(ss.att_pad[sel] >= op["t_pad"], ss.att_pad_subj[sel]).hi <= target
