"""Attempts and transactions (harness/flow.py): transaction-level rates from real sequences of attempts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from harness.flow import (DEFAULTS, evaluate_flow, independent_accept, independent_not_passed, transactions,
                          validate_flow)

ROOT = Path(__file__).resolve().parents[2]
BANDS = {"match": {"accept_at_or_above": 0.6, "reject_below": 0.5},
         "pad": {"accept_at_or_above": 0.4, "reject_below": 0.3}}
#: (match, pad) per planted outcome; "pad_only": the PAD is fooled but the matcher rejects
SCORES = {"accept": (0.9, 0.9), "reject": (0.1, 0.9), "review": (0.55, 0.9), "pad_only": (0.1, 0.9),
          "pad_reject": (0.9, 0.1)}


def make(genuine: dict, attacks: dict | None = None, durations: dict | None = None, n_frames: int | None = None):
    """``(trials, probes)`` of partition ``eval`` from planted outcomes in capture order: ``genuine`` = {person:
    [outcome, ...]}, ``attacks`` = {(person, species): [outcome, ...]}; outcomes are keys of :data:`SCORES`,
    ``"fta"`` (no face) or ``"rejected"`` (unreadable). Orders are assigned in REVERSE sample-id order so that a test
    relying on sample-id order would fail. ``durations`` = {person: seconds per attempt}."""
    trials, probes = [], []
    items = [(p, "none", o, "bona_fide") for p, o in genuine.items()]
    items += [(p, sp, o, "attack") for (p, sp), o in (attacks or {}).items()]
    for person, species, outs, label in items:
        for i, o in enumerate(outs):
            sid = f"{label}-{person}-{species}-{len(outs) - i:03d}"  # ids descend as order ascends
            status = o if o in ("fta", "rejected") else "scored"
            m, p = SCORES.get(o, (np.nan, np.nan))
            probes.append({"sample_id": sid, "subject": person, "label": label, "species": species,
                           "status": status, "pad_score": p if status == "scored" else np.nan, "partition": "eval",
                           "order": i, "duration_s": (durations or {}).get(person, np.nan),
                           "n_frames": n_frames if n_frames is not None else np.nan})
            if status == "scored":
                trials.append({"kind": "genuine" if label == "bona_fide" else "attack", "partition": "eval",
                               "probe_id": sid, "probe_subject": person, "ref_subject": person, "species": species,
                               "match_score": m, "pad_score": p})
    return pd.DataFrame(trials), pd.DataFrame(probes)


def _draw(rng, n, fail, bad="reject", good="accept"):
    return [bad if x else good for x in rng.random(n) < fail]


def test_independent_attempts_match_the_formula():
    rng = np.random.default_rng(7)
    p, a = 0.3, 0.1
    gen = {f"g{i}": _draw(rng, 6, p) for i in range(400)}
    att = {(f"g{i}", "print"): _draw(rng, 6, a, bad="accept", good="pad_reject") for i in range(400)}
    trials, probes = make(gen, att)
    out = evaluate_flow(trials, probes, BANDS, {"max_attempts": [1, 2, 3]}, "eval")
    json.dumps(out, allow_nan=False)
    p_hat = np.mean([o == "reject" for v in gen.values() for o in v])
    a_hat = np.mean([o == "accept" for v in att.values() for o in v])
    for k in (1, 2, 3):
        g = out["genuine"][str(k)]
        assert g["transactions"] == 400 * 6 // k and g["people"] == 400
        r = g["not_passed"]
        assert r["lo"] <= p ** k <= r["hi"], (k, r)
        assert g["formula_not_passed"] == pytest.approx(p_hat ** k)
        assert g["formula_frr"] == pytest.approx(p_hat ** k)
        assert g["single_attempt"]["not_accepted"]["value"] == pytest.approx(p_hat)
        ia = out["attack"][str(k)]["pooled"]["iapar"]
        assert ia["lo"] <= 1 - (1 - a) ** k <= ia["hi"], (k, ia)
        sp = out["attack"][str(k)]["per_species"]["print"]
        assert sp["formula_iapar"] == pytest.approx(1 - (1 - a_hat) ** k)
        assert sp["iapar"]["k"] == ia["k"] and sp["transactions"] == 400 * 6 // k
    # more attempts: fewer honest failures, more accepted attacks (real values)
    assert out["genuine"]["3"]["not_passed"]["value"] < out["genuine"]["1"]["not_passed"]["value"]
    assert out["attack"]["3"]["pooled"]["iapar"]["value"] > out["attack"]["1"]["pooled"]["iapar"]["value"]
    assert "independent attempts would give" in out["genuine"]["3"]["text"]
    assert "IAPAR rises from" in out["attack"]["3"]["pooled"]["text"]


def test_goats_make_the_real_rate_exceed_the_formula():
    rng = np.random.default_rng(11)
    gen = {f"goat{i}": ["reject"] * 6 for i in range(20)}
    gen.update({f"p{i}": _draw(rng, 6, 0.1) for i in range(80)})
    trials, probes = make(gen)
    g = evaluate_flow(trials, probes, BANDS, {"max_attempts": 3}, "eval")["genuine"]["3"]
    n_fail = sum(v[j:j + 3] == ["reject"] * 3 for v in gen.values() for j in (0, 3))
    assert g["frr"]["k"] == n_fail and g["frr"]["n"] == 200 and n_fail >= 40
    assert g["frr"]["value"] == pytest.approx(n_fail / 200)
    assert g["frr"]["value"] > 5 * g["formula_frr"]
    assert g["not_passed"]["value"] > 5 * g["formula_not_passed"]
    assert g["formula_not_passed"] < 0.05 < 0.15 < g["not_passed"]["value"]


def test_people_with_fewer_attempts_than_k_are_excluded_and_counted():
    trials, probes = make({"A": ["reject", "reject", "accept", "accept", "reject"], "B": ["accept", "accept"],
                           "C": ["reject"]})
    out = evaluate_flow(trials, probes, BANDS, {"max_attempts": [1, 3]}, "eval")
    g3, g1 = out["genuine"]["3"], out["genuine"]["1"]
    assert (g3["transactions"], g3["people"], g3["people_short"], g3["attempts_short"], g3["attempts_unused"]) == \
        (1, 1, 2, 3, 2)
    assert g3["expected_attempts"] == {"mean": 3.0, "distribution": {"1": 0, "2": 0, "3": 1}}
    assert (g1["transactions"], g1["people_short"], g1["attempts_unused"]) == (8, 0, 0)
    assert "fewer than k attempts" in out["note"]


def test_transactions_end_states():
    seq = ["reject", "review", "reject", "accept"]
    assert transactions(seq, 4) == [("review", 2)]
    assert transactions(seq, 4, review_on_band=False) == [("pass", 4)]
    assert transactions(seq, 4, review_after_failures=2, review_on_band=False) == [("review", 2)]
    assert transactions(seq, 2, review_on_band=False) == [("reject", 2), ("pass", 2)]
    assert transactions(seq, 2, review_on_band=False, on_exhausted="review") == [("review", 2), ("pass", 2)]
    assert transactions(["reject"] * 3, 3, review_after_failures=3) == [("review", 3)]
    assert transactions(["reject"] * 3, 3, review_after_failures=4) == [("reject", 3)]
    assert transactions(["fta", "accept", "reject"], 2) == [("pass", 2)]  # fta fails; leftover ignored
    assert transactions(["accept"], 2) == []


def test_review_band_and_exhaustion_in_the_rates():
    gen = {f"p{i}": ["review", "accept", "reject", "reject"] for i in range(10)}
    trials, probes = make(gen)
    g = evaluate_flow(trials, probes, BANDS, {"max_attempts": 2}, "eval")["genuine"]["2"]
    assert (g["review_rate"]["k"], g["frr"]["k"], g["pass_rate"]["k"], g["transactions"]) == (10, 10, 0, 20)
    assert g["review_per_10000"]["value"] == pytest.approx(5000.0)
    g = evaluate_flow(trials, probes, BANDS, {"max_attempts": 2, "review_on_band": False, "on_exhausted": "review"},
                      "eval")["genuine"]["2"]
    assert (g["review_rate"]["k"], g["frr"]["k"], g["pass_rate"]["k"]) == (10, 0, 10)
    assert g["formula_frr"] == 0.0


def test_fta_fails_and_rejected_files_are_not_attempts():
    # D has no enrolment template (no trial against D): D's fta is no attempt of an enrolled person
    trials, probes = make({"A": ["fta", "accept"], "B": ["rejected", "accept"], "C": ["fta", "fta", "accept"],
                           "D": ["fta"]}, {("A", "mask"): ["fta", "accept"]})
    out = evaluate_flow(trials, probes, BANDS, {"max_attempts": [1, 2]}, "eval")
    g1, g2 = out["genuine"]["1"], out["genuine"]["2"]
    assert (g1["transactions"], g1["frr"]["k"], g1["people"]) == (6, 3, 3)
    assert (g2["transactions"], g2["people_short"], g2["frr"]["k"], g2["pass_rate"]["k"]) == (2, 1, 1, 1)
    assert (g2["attempts_unused"], g2["expected_attempts"]["distribution"]) == (1, {"1": 0, "2": 2})
    c = out["counts"]
    assert (c["bona_fide_rejected_excluded"], c["genuine_fta_attempts"], c["genuine_attempts"]) == (1, 3, 6)
    a1, a2 = out["attack"]["1"]["per_species"]["mask"], out["attack"]["2"]["per_species"]["mask"]
    assert (a1["iapar"]["k"], a1["iapar"]["n"], a1["apcer"]["k"]) == (1, 2, 1)
    assert (a2["iapar"]["k"], a2["iapar"]["n"], a2["apcer"]["k"]) == (1, 1, 1)


def test_attempts_follow_capture_order_not_sample_id():
    trials, probes = make({"A": ["accept", "reject"]})  # capture order: accept first (ids descend)
    g = evaluate_flow(trials, probes, BANDS, {"max_attempts": 2}, "eval")["genuine"]["2"]
    assert g["expected_attempts"]["distribution"] == {"1": 1, "2": 0}


def test_pad_only_apcer_counts_pad_passes_the_system_rejects():
    trials, probes = make({}, {(f"v{i}", "replay"): ["pad_only", "pad_reject"] for i in range(5)})
    a = evaluate_flow(trials, probes, BANDS, {"max_attempts": 2}, "eval")["attack"]["2"]["pooled"]
    assert (a["apcer"]["k"], a["iapar"]["k"], a["transactions"]) == (5, 0, 5)
    assert a["formula_apcer"] == pytest.approx(1 - 0.5 ** 2)


@pytest.mark.parametrize("bad, key", [({"max_attempts": 0}, "max_attempts"), ({"max_attempts": [1, 0]},
                                      "max_attempts"), ({"max_attempts": True}, "max_attempts"),
                                      ({"on_exhausted": "maybe"}, "on_exhausted"), ({"colour": 1}, "colour"),
                                      ({"review_after_failures": 0}, "review_after_failures"),
                                      ({"fps": -2}, "fps"), ({"attempt": "frame"}, "attempt"),
                                      ({"window_frames": 0}, "window_frames"), ({"enabled": "yes"}, "enabled")])
def test_validate_flow_names_the_bad_key(bad, key):
    with pytest.raises(ValueError, match=rf"^flow\.{key}: "):
        validate_flow(bad)


def test_validate_flow_fills_defaults():
    c = validate_flow({"max_attempts": [3, 1, 3], "fps": 25})
    assert c["max_attempts"] == [1, 3] and c["fps"] == 25.0 and c["on_exhausted"] == "reject"
    assert validate_flow(None) == DEFAULTS


def test_time_to_pass():
    gen = {"A": ["reject", "accept"], "B": ["accept", "accept"]}
    trials, probes = make(gen, durations={"A": 2.0, "B": 3.0})
    g = evaluate_flow(trials, probes, BANDS, {"max_attempts": 2}, "eval")["genuine"]["2"]
    assert g["time_to_pass_s"] == {"mean": 3.5, "median": 3.5, "n": 2}
    trials, probes = make(gen, n_frames=30)
    g = evaluate_flow(trials, probes, BANDS, {"max_attempts": 2}, "eval")["genuine"]["2"]
    assert g["time_to_pass_s"] is None and "omitted" in g["time_to_pass_note"]
    g = evaluate_flow(trials, probes, BANDS, {"max_attempts": 2, "fps": 15}, "eval")["genuine"]["2"]
    assert g["time_to_pass_s"] == {"mean": 3.0, "median": 3.0, "n": 2}  # A: 2 attempts x 2 s, B: 1 x 2 s


def test_formulas():
    assert independent_not_passed(0.3, 3) == pytest.approx(0.027)
    assert independent_accept(0.1, 3) == pytest.approx(1 - 0.9 ** 3)
    # a review stop after the first failure: only the first attempt can pass
    assert independent_accept(0.5, 3, review_after_failures=1) == pytest.approx(0.5)
    assert independent_not_passed(0.5, 3, p_stop=0.5) == pytest.approx(0.5)


def test_disabled_flow():
    trials, probes = make({"A": ["accept"]})
    out = evaluate_flow(trials, probes, BANDS, {"enabled": False}, "eval")
    assert out["enabled"] is False and "genuine" not in out


def test_default_yaml_validates_unchanged():
    cfg = OmegaConf.load(ROOT / "conf" / "flow" / "default.yaml")
    assert validate_flow(cfg) == DEFAULTS
    assert validate_flow(OmegaConf.to_container(cfg)) == DEFAULTS
