"""The ``decision`` block (harness.report.decision) on synthetic trials: evidence rules, species not tested, targets
reconciled with the standards, the policy comparison, the per-10,000 figures, and the description markdown."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.export.reselect import load_policy
from harness.policy import choose_thresholds
from harness.report.decision import ATTACK_FAMILIES, build_decision, decision_for_run, evidence_rate
from harness.report.decision_page import description_markdown, first_page


def synthetic(n_people: int, seed: int = 0, attack_match: float = 0.8):
    """Trials and probes of ``n_people`` per partition: genuine, impostor (2 per probe) and print-photo attacks."""
    rng = np.random.default_rng(seed)
    trials, probes = [], []
    for part in ("dev", "eval"):
        subs = [f"{part}{i:03d}" for i in range(n_people)]
        for s in subs:
            for j in range(8):
                label = "bona_fide" if j < 4 else "attack"
                pad = float(rng.beta(9, 2) if label == "bona_fide" else rng.beta(2, 9))
                sid = f"{s}_{j}"
                probes.append({"sample_id": sid, "subject": s, "label": label, "status": "scored", "partition": part,
                               "species": "none" if label == "bona_fide" else "print_photo", "pad_score": pad})
                kind = "genuine" if label == "bona_fide" else "attack"
                trials.append({"kind": kind, "partition": part, "probe_id": sid, "probe_subject": s, "ref_subject": s,
                               "species": probes[-1]["species"], "pad_score": pad,
                               "match_score": float(rng.normal(0.8 if kind == "genuine" else attack_match, 0.1))})
                if label == "bona_fide":
                    for o in rng.choice([x for x in subs if x != s], 2, replace=False):
                        trials.append({"kind": "impostor", "partition": part, "probe_id": sid, "probe_subject": s,
                                       "ref_subject": str(o), "species": "none", "pad_score": pad,
                                       "match_score": float(rng.normal(0.2, 0.1))})
    return pd.DataFrame(trials), pd.DataFrame(probes)


def summary_for(trials, probes, policy_name="target_rates", **overrides):
    pol = load_policy(policy_name, [f"{k}={v}" for k, v in overrides.items()])
    op = choose_thresholds(trials, probes, pol)
    subs = probes.groupby("partition")["subject"].unique()
    return {"run": {"name": "synthetic", "report_partition": "eval"},
            "dataset": {"name": "synthetic", "subjects": int(probes["subject"].nunique()),
                        "partitions": {p: sorted(v) for p, v in subs.items()}},
            "models": {"embedder": {"name": "emb", "score_scale": "cosine similarity", "score_range": [-1, 1]},
                       "pad": {"name": "pad", "score_scale": "probability of live", "score_range": [0, 1]}},
            "operating_point": op}, pol


def test_evidence_rule_few_people_is_insufficient_many_is_measured():
    few = {"k": 1, "n": 400, "value": 0.0025, "lo": 0.0, "hi": 0.2, "n_subjects": 4}
    many = few | {"n_subjects": 40}
    assert evidence_rate(few, 10)["evidence"] == "insufficient"
    r = evidence_rate(many, 10)
    assert r["evidence"] == "measured"
    assert r["per_10000"] == {"value": pytest.approx(25.0), "lo": 0.0, "hi": pytest.approx(2000.0)}
    assert evidence_rate(many | {"estimable": False}, 10)["evidence"] == "insufficient"


@pytest.mark.parametrize("n_people, expect", [(4, "insufficient"), (40, "measured")])
def test_first_page_shows_insufficient_evidence_instead_of_the_number(n_people, expect):
    trials, probes = synthetic(n_people)
    s, pol = summary_for(trials, probes)
    d = build_decision(s, trials, probes, policy=pol)
    rej = d["outcomes"]["honest_customers"]["rejected"]
    assert rej["evidence"] == expect and rej["n_subjects"] == n_people
    page = first_page(d)
    if expect == "insufficient":
        assert f"insufficient evidence: <span class=\"num\">{n_people} people</span>" in page
    else:
        assert "per 10,000" in page and f"{n_people} people" in page


def test_species_not_tested_are_named_and_attacks_per_species_are_counted():
    trials, probes = synthetic(12, attack_match=0.8)
    s, pol = summary_for(trials, probes)
    d = build_decision(s, trials, probes, policy=pol)
    assert list(d["tested"]["species_tested"]) == ["print_photo"]
    assert [x["species"] for x in d["tested"]["species_not_tested"]] == [k for k in ATTACK_FAMILIES if k != "print_photo"]
    (a,) = d["outcomes"]["attacks"]
    t = trials[(trials["partition"] == "eval") & (trials["kind"] == "attack")]
    # matching alone accepts the attacks that reach the victim's own threshold: an independent count
    assert a["accepted_by_matching_alone"]["k"] == int((t["match_score"] >= s["operating_point"]["t_match"]).sum())
    assert a["accepted_by_matching_alone"]["n"] == len(t)
    sysr = s["operating_point"]["report"]["rates"]["system"]["iapar_per_species"]["print_photo"]
    assert a["accepted_by_system"]["k"] == sysr["k"] and a["accepted_by_system"]["n"] == sysr["n"]


def test_targets_supported_is_reconciled_with_failing_standards():
    trials, probes = synthetic(40)
    s, pol = summary_for(trials, probes)
    s["operating_point"]["supported"] = True
    s["operating_point"]["report"]["standards"] = [{"name": "x", "title": "X", "verdict": "fail", "disclaimer": "c"}]
    d = build_decision(s, trials, probes, policy=pol)
    assert d["decision"]["targets"] == {"FMR": 0.01, "APCER": 0.05}
    assert "not contradicted" in d["standards"]["reconciliation"] and d["standards"]["tally"]["fail"] == 1
    s["operating_point"]["supported"] = False
    d = build_decision(s, trials, probes, policy=pol)
    assert "NOT shown to be met" in d["standards"]["reconciliation"]


def test_decision_for_run_compares_the_policies_and_describes_itself():
    trials, probes = synthetic(12)
    s, pol = summary_for(trials, probes)
    d = decision_for_run(s, trials, probes, pol, capture="synthetic capture")
    rows = d["alternatives"]["rows"]
    assert [r["policy"] for r in rows] == ["target_rates", "eer", "min_cost", "bands"]
    assert rows[0]["chosen"] and not any(r["chosen"] for r in rows[1:])
    assert rows[0]["t_match"] == s["operating_point"]["t_match"]
    mc = next(r for r in rows if r["policy"] == "min_cost")
    ref = choose_thresholds(trials, probes, load_policy("min_cost") | {"standards": "none"})
    assert mc["t_match"] == ref["t_match"] and mc["t_pad"] == ref["t_pad"]
    assert d["alternatives"]["cost_model"]["impostor_prevalence"] == 0.001  # conf/policy/min_cost.yaml
    assert all(r["expected_cost"] is not None and r["expected_cost"] >= 0 for r in rows)
    md = d["description_markdown"]
    assert md == description_markdown(d) and f"{s['operating_point']['t_match']:.6g}" in md and "Not tested" in md
    assert d["score_meaning"]["match"]["scale"] == "cosine similarity"
    table = d["score_meaning"]["match"]["table"]
    assert any(r["score"] == s["operating_point"]["t_match"] for r in table)
    ev = trials[(trials["partition"] == "eval") & (trials["kind"] == "impostor")]["match_score"].to_numpy()
    for r in table:
        assert r["fmr"]["k"] == int((ev >= r["score"]).sum())


def test_verification_only_data_decides_by_face_matching_alone():
    """No attacks (e.g. experiment=faceapi_bbt): no liveness threshold; the page says so and the matcher's own
    rates on eval stand in for the system's (the run used to crash here)."""
    trials, probes = synthetic(12)
    trials = trials[trials["kind"] != "attack"].reset_index(drop=True)
    probes = probes[probes["label"] != "attack"].reset_index(drop=True)
    s, pol = summary_for(trials, probes)
    assert s["operating_point"]["t_pad"] is None
    d = decision_for_run(s, trials, probes, pol)
    o = d["outcomes"]
    assert o["basis"].startswith("face matching only") and o["attacks"] == []
    g = trials[(trials["partition"] == "eval") & (trials["kind"] == "genuine")]
    assert o["honest_customers"]["rejected"]["k"] == int((g["match_score"] < s["operating_point"]["t_match"]).sum())
    page = first_page(d)
    assert "no liveness threshold" in page and "printed photo" in page.split("NOT tested:")[1]
    assert "no liveness threshold" in d["description_markdown"]
