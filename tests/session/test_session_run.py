"""A real smoke run reports per presentation and per retry flow: the grouping and counts stated, the rates per
presentation through the one metrics function (labelled), the presentation tables in the run directory, the flow in
summary.json, the MLflow run, the report and the console summary."""

from __future__ import annotations

import numpy as np
import pytest

from harness import rundir
from harness.decision_rule import decide_arrays
from harness.evaluate import evaluate
from tests.conftest import run_smoke

pytestmark = [pytest.mark.shared, pytest.mark.slow]


@pytest.fixture(scope="module")
def run(tmp_path_factory, shared):
    """The smoke experiment with attempts = presentations (its presentations are 1-2 frames: no 10-frame windows)."""
    return run_smoke(tmp_path_factory.mktemp("session"), "flow=default")


def test_presentations_are_stated_counted_and_labelled(run):
    run_dir, s, _ = run
    p = s["presentations"]
    assert p["unit"] == "presentation" and s["metrics_unit"] == "frame"
    assert p["grouping"] == "nuaa: frames sharing subject + label + glasses + pos_code + session"
    assert p["aggregation"]["rule"] == "mean" and p["template"] == "mean"
    pres = rundir.read_table(run_dir, "presentations")
    scores = rundir.read_table(run_dir, "scores")
    assert {"presentation", "capture_order"} <= set(scores.columns)
    for part, by_label in p["counts"].items():
        for label, c in by_label.items():
            g = pres[(pres["partition"] == part) & (pres["label"] == label)]
            assert c["presentations"] == len(g) and c["people"] == g["subject"].nunique()
            assert c["frames"] == int(g["n_frames"].sum())
    # every probe frame is in exactly one presentation (enrolment frames are not probes, even where the dataset's
    # rule puts them in the same recording)
    probes = rundir.read_table(run_dir, "probes")
    probe_frames = scores[scores["sample_id"].isin(set(probes["sample_id"]))]
    assert len(probe_frames) == int(pres["n_frames"].sum())
    assert set(probe_frames["presentation"]) == set(pres["sample_id"])
    assert p["metrics"]["eval"]["unit"] == "presentation"


def test_presentation_rates_are_the_one_metrics_function_on_the_presentation_tables(run):
    run_dir, s, _ = run
    pres = rundir.read_table(run_dir, "presentations")
    ptr = rundir.read_table(run_dir, "presentation_trials")
    rates, _ = evaluate(ptr, pres, "eval", s["operating_point"]["bands"], unit="presentation")
    got = s["presentations"]["metrics"]["eval"]
    assert got["system"]["iapar"] == rates["system"]["iapar"]
    assert got["pad"]["at_operating_point"]["bpcer"] == rates["pad"]["bpcer"]
    assert rates["counts"]["attack_presentations"] == s["presentations"]["counts"]["eval"]["attack"]["scored"]


def test_the_aggregated_pad_score_is_the_mean_of_the_presentation_frames(run):
    run_dir, _, _ = run
    pres = rundir.read_table(run_dir, "presentations").set_index("sample_id")
    scores = rundir.read_table(run_dir, "scores")
    ok = scores[scores["status"] == "scored"]
    ok = ok[ok["sample_id"].isin(set(rundir.read_table(run_dir, "probes")["sample_id"]))]
    for pid, g in ok.groupby("presentation"):
        if pid in pres.index:
            assert pres.loc[pid, "pad_score"] == pytest.approx(float(np.mean(g["pad_score"])), rel=0, abs=1e-12)


def test_flow_with_one_attempt_is_the_single_presentation_decision(run):
    """k = 1: every transaction is one presentation, so its rates are the per-presentation decisions."""
    run_dir, s, _ = run
    f = s["flow"]
    assert f["attempt"] == "presentation" and f["partition"] == "eval"
    ptr = rundir.read_table(run_dir, "presentation_trials")
    att = ptr[(ptr["partition"] == "eval") & (ptr["kind"] == "attack")]
    accepted = decide_arrays(att["match_score"], att["pad_score"], s["operating_point"]["bands"]) == "accept"
    k1 = f["attack"]["1"]["pooled"]
    assert (k1["iapar"]["k"], k1["iapar"]["n"]) == (int(accepted.sum()), len(att))
    gen = ptr[(ptr["partition"] == "eval") & (ptr["kind"] == "genuine")]
    g1 = f["genuine"]["1"]
    assert g1["transactions"] == len(gen)
    not_acc = decide_arrays(gen["match_score"], gen["pad_score"], s["operating_point"]["bands"]) != "accept"
    assert g1["not_passed"]["k"] == int(not_acc.sum())
    # k = 2: attackers with 4 presentations give 2 transactions each; the count is stated
    assert f["attack"]["2"]["pooled"]["transactions"] == len(att) // 2
    assert "text" in g1 and "with 1 attempt" in g1["text"]


def test_mlflow_report_and_console_carry_the_session_results(run):
    run_dir, s, uri = run
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    (r,) = client.search_runs([client.get_experiment_by_name("face-pad-harness").experiment_id])
    m = r.data.metrics
    want = s["presentations"]["metrics"]["eval"]["system"]["iapar"]
    assert m["presentation/eval/iapar/value"] == pytest.approx(want["value"])
    assert m["presentation/eval/iapar/hi"] == pytest.approx(want["hi"])
    assert m["flow/attack/k2/iapar/value"] == pytest.approx(s["flow"]["attack"]["2"]["pooled"]["iapar"]["value"])
    assert r.data.params["presentation.grouping"] == s["presentations"]["grouping"]
    assert r.data.params["flow.attempt"] == "presentation"
    html = (run_dir / "report.html").read_text()
    assert 'id="session"' in html and 'id="flow-attack"' in html and 'id="unit-rates"' in html
    console = (run_dir / "console_summary.txt").read_text()
    assert "presentations (nuaa: frames sharing" in console and "flow (attacks): with 2 attempts" in console


def test_a_run_without_thresholds_gets_presentations_but_no_flow(run):
    """An operating point missing a threshold (a verification-only dataset): presentations are still pooled and
    counted, the per-presentation rates carry no decision, and the flow says why it is not there."""
    from harness.session_metrics import has_thresholds, session_results

    run_dir, s, _ = run
    assert not has_thresholds({"match": {"accept_at_or_above": None}, "pad": {"accept_at_or_above": 0.5}})
    assert has_thresholds(s["operating_point"]["bands"])
    samples = rundir.read_table(run_dir, "scores")
    emb = np.random.default_rng(0).normal(size=(len(samples), 8))  # any embeddings: only the rates change
    bands = {"match": {"accept_at_or_above": None, "reject_below": None},
             "pad": {"accept_at_or_above": 0.5, "reject_below": 0.5}}
    res = session_results(samples, emb, {"enrol": {"mode": "first_k", "k": 2}, "partition": "subjects",
                                         "dev_fraction": 0.5, "seed": 0}, {"bands": bands}, "cosine", "nuaa",
                          None, {"attempt": "presentation"})
    assert res.presentations["counts"] == s["presentations"]["counts"]
    assert "at_operating_point" not in res.presentations["metrics"]["eval"]["pad"]
    assert res.flow["enabled"] is False and "no match or PAD threshold" in res.flow["note"]
