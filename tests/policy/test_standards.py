"""Standards presets: every preset states its source and knowledge; verdicts follow the confidence bounds."""

from __future__ import annotations

import pytest

from harness.metrics.intervals import rate
from harness.policy.standards import (available_presets, evaluate_criterion, evaluate_preset, load_preset,
                                      resolve_standards)

EXPECTED = {"fido_biometric_component", "ibeta_pad_level1", "ibeta_pad_level2", "nist_sp800_63a_4", "android_class3",
            "gbt_38671_2020"}


def R(k, n, people=10_000):
    """A rate dict without per-trial outcomes (verdicts then fall back to Clopper-Pearson on k/n) from ``people``
    people."""
    return rate(k, n).to_dict() | {"n_subjects": people}


def rates(**kw):
    """A measure()-shaped dict: verif/pad/system groups."""
    out = {"partition": "eval", "verif": {}, "pad": {}, "system": {}}
    for key, val in kw.items():
        group, name = key.split("__")
        out[group][name] = val
    return out


def test_every_preset_is_present_and_says_what_it_knows():
    assert EXPECTED <= set(available_presets())
    for name in EXPECTED:
        p = load_preset(name)
        assert p["name"] == name and p["title"] and p["source"] and len(p["what_we_know"]) > 80
        assert 0 < p["confidence"] < 1
        for c in p["criteria"]:
            assert {"id", "metric", "limit", "provenance"} <= set(c), (name, c)


def test_bound_rule_pass_fail_insufficient():
    crit = {"id": "x", "metric": "iapar", "op": "<", "limit": 0.07}
    assert evaluate_criterion(crit, rates(system__iapar=R(0, 100)), 0.95)["verdict"] == "pass"  # hi 3.6%
    assert evaluate_criterion(crit, rates(system__iapar=R(20, 100)), 0.95)["verdict"] == "fail"  # lo 12.7%
    v = evaluate_criterion(crit, rates(system__iapar=R(0, 8)), 0.95)
    assert v["verdict"] == "insufficient evidence" and "51 trials would be needed" in v["reason"]
    # "<" vs "<=" at the edge: 0/n with the upper bound exactly at the limit
    n = 52
    hi = rate(0, n).hi
    assert evaluate_criterion({"id": "y", "metric": "bpcer", "op": "<=", "limit": hi},
                              rates(pad__bpcer=R(0, n)), 0.95)["verdict"] == "pass"
    assert evaluate_criterion({"id": "y", "metric": "bpcer", "op": "<", "limit": hi},
                              rates(pad__bpcer=R(0, n)), 0.95)["verdict"] == "insufficient evidence"


def test_confidence_level_matters():
    crit = {"id": "frr", "metric": "system_frr", "op": "<=", "limit": 0.03}
    r = rates(system__genuine_rejection=R(0, 60))  # 0/60: 95% upper bound 5.96% > 3%
    assert evaluate_criterion(crit, r, 0.95)["verdict"] == "insufficient evidence"
    # 0/80 on an 80% interval: upper bound 2.84% <= 3%
    assert evaluate_criterion(crit, rates(system__genuine_rejection=R(0, 80)), 0.80)["verdict"] == "pass"


def test_zero_count_rule_for_published_zero_percent_criteria():
    crit = {"id": "apcer_zero", "metric": "apcer_per_species", "limit": 0.0, "rule": "zero_count", "min_n": 150}
    ok = evaluate_criterion(crit, rates(pad__apcer_per_species={"print": R(0, 150), "replay": R(0, 200)}), 0.95)
    assert ok["verdict"] == "pass"
    few = evaluate_criterion(crit, rates(pad__apcer_per_species={"print": R(0, 8)}), 0.95)
    assert few["verdict"] == "insufficient evidence"
    bad = evaluate_criterion(crit, rates(pad__apcer_per_species={"print": R(0, 150), "replay": R(1, 150)}), 0.95)
    assert bad["verdict"] == "fail" and bad["per_species"]["replay"]["verdict"] == "fail"


def test_coverage_never_fails_and_missing_metrics_are_not_evaluable():
    crit = {"id": "cov", "metric": "attack_species_count", "rule": "coverage", "limit": 6}
    v = evaluate_criterion(crit, rates(pad__apcer_per_species={"print": R(0, 500)}), 0.95)
    assert v["verdict"] == "insufficient evidence" and v["value"] == 1
    v = evaluate_criterion({"id": "far", "metric": "system_fmr", "op": "<=", "limit": 1e-4}, rates(), 0.95)
    assert v["verdict"] == "not evaluable"


def test_fido_preset_verdicts():
    fido = load_preset("fido_biometric_component")
    good = rates(system__zero_effort_fmr=R(0, 30000), system__genuine_rejection=R(2, 1000),
                 system__iapar=R(1, 500), system__iapar_per_species={"print": R(0, 250), "replay": R(1, 250)})
    assert evaluate_preset(fido, good)["verdict"] == "pass"
    small = rates(system__zero_effort_fmr=R(0, 4), system__genuine_rejection=R(0, 4),
                  system__iapar=R(0, 8), system__iapar_per_species={"print": R(0, 8)})
    assert evaluate_preset(fido, small)["verdict"] == "insufficient evidence"
    bad = good | {"system": good["system"] | {"genuine_rejection": R(100, 1000)}}
    out = evaluate_preset(fido, bad)
    assert out["verdict"] == "fail" and {c["id"]: c["verdict"] for c in out["criteria"]}["frr"] == "fail"
    assert "not a certification" in out["disclaimer"]


def test_gbt_preset_is_not_evaluated_rather_than_guessed():
    out = evaluate_preset(load_preset("gbt_38671_2020"), rates(system__iapar=R(0, 1000)))
    assert out["verdict"] == "not evaluated" and out["criteria"] == []


def test_resolve_standards():
    assert {p["name"] for p in resolve_standards("all")} == set(available_presets())
    assert [p["name"] for p in resolve_standards("nist_sp800_63a_4,android_class3")] == ["nist_sp800_63a_4",
                                                                                       "android_class3"]
    assert resolve_standards("none") == []
    with pytest.raises(ValueError, match="unknown standards preset"):
        resolve_standards(["nope"])


def test_too_few_people_turns_a_pass_into_insufficient_evidence_but_never_hides_a_fail():
    crit = {"id": "x", "metric": "iapar", "op": "<", "limit": 0.07}
    v = evaluate_criterion(crit, rates(system__iapar=R(0, 1000, people=9)), 0.95)
    assert v["verdict"] == "insufficient evidence" and "9 subjects" in v["reason"] and "harness default" in v["reason"]
    assert evaluate_criterion(crit, rates(system__iapar=R(0, 1000, people=10)), 0.95)["verdict"] == "pass"
    assert evaluate_criterion(crit, rates(system__iapar=R(300, 1000, people=2)), 0.95)["verdict"] == "fail"
    v = evaluate_criterion(crit | {"min_subjects": 50, "min_subjects_source": "lab plan"},
                           rates(system__iapar=R(0, 1000, people=49)), 0.95)
    assert v["verdict"] == "insufficient evidence" and "lab plan" in v["reason"] and v["min_subjects"] == 50


def test_every_preset_states_where_its_minimum_number_of_people_comes_from():
    for name in EXPECTED:
        p = load_preset(name)
        assert p.get("min_subjects_source"), name
        assert "brief" not in str(p).lower(), name  # sources are public documents, never an internal brief
