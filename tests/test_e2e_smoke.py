"""End to end: `python -m harness experiment=smoke` on real NUAA images with real models, tracked in MLflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.export.operating_point import content_sha256

pytestmark = pytest.mark.shared
ROOT = Path(__file__).resolve().parent.parent


def _run(tmp: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HARNESS_RESULTS=str(tmp / "results"), MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db",
               HARNESS_CACHE=str(tmp / "wcache"))
    return subprocess.run([sys.executable, "-m", "harness", "experiment=smoke", "runtime.progress=false", *overrides],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory, shared):
    tmp = tmp_path_factory.mktemp("smoke")
    first = _run(tmp)
    assert first.returncode == 0, first.stderr[-3000:]
    second = _run(tmp)
    assert second.returncode == 0, second.stderr[-3000:]
    dirs = sorted((tmp / "results" / "runs").glob("*/*"))
    assert len(dirs) == 2
    return tmp, [json.loads((d / "summary.json").read_text()) for d in dirs], dirs, first.stdout


def test_every_sample_accounted_for(smoke_runs):
    _, (s, _), _, stdout = smoke_runs
    a = s["accounting"]
    assert a["input_samples"] == 32 and a["scored"] + a["fta"] + a["rejected"] == 32
    assert a["detect_computed"] == 32 and a["detect_cached"] == 0
    # smoke protocol: 4 subjects x first 2 bona fide enrolled; 2 bona fide probes + 4 attacks each
    assert a["enrolled_subjects"] == 4 and a["probe_samples"] == 24
    assert a["dev_genuine_trials"] + a["eval_genuine_trials"] == 8
    assert a["dev_attack_trials"] + a["eval_attack_trials"] == 16
    assert a["dev_impostor_trials"] + a["eval_impostor_trials"] == 8  # 2 subjects per partition: 4 probes x 1
    assert "samples 32: scored" in stdout and "eval EER" in stdout


def test_metrics_carry_counts_and_intervals(smoke_runs):
    _, (s, _), _, _ = smoke_runs
    v = s["metrics"]["eval"]["verif"]
    assert v["n_genuine"] == 4 and v["n_impostor"] == 4
    fmr = v["eer"]["fmr"]
    assert fmr["n"] == 4 and 0 <= fmr["k"] <= 4 and fmr["lo"] <= fmr["value"] <= fmr["hi"]
    assert v["fnmr_at_fmr"]["fmr_1e-2"]["measurable"] is False  # 4 impostors cannot measure 1%
    p = s["metrics"]["eval"]["pad"]
    assert p["n_bona_fide"] == 4 and p["n_attack"] == 8
    op = p["at_operating_point"]
    assert op["apcer_max"]["n"] == 8 and op["bpcer"]["n"] == 4
    assert s["metrics"]["eval"]["system"]["iapar"]["n"] == 8
    assert s["operating_point"]["selected_on"] == "dev" and s["operating_point"]["selected_on_eval_data"] is False


def test_second_run_recomputes_nothing_and_matches(smoke_runs):
    _, (s1, s2), _, _ = smoke_runs
    a = s2["accounting"]
    assert a["detect_computed"] == a["embed_computed"] == a["pad_computed"] == 0
    assert a["detect_cached"] == 32 and a["embed_cached"] == a["pad_cached"] == 32
    assert s1["metrics"] == s2["metrics"] and s1["operating_point"] == s2["operating_point"]


def test_artifacts_and_operating_point(smoke_runs):
    _, (s, _), (d, _), _ = smoke_runs
    for f in ("summary.json", "operating_point.json", "scores.csv", "trials.csv", "threshold_table.csv",
              "roc.png", "det.png", "hist_match.png", "hist_pad.png"):
        assert (d / f).is_file() and (d / f).stat().st_size > 0, f
    doc = json.loads((d / "operating_point.json").read_text())
    assert doc["content_sha256"] == content_sha256(doc)
    assert doc["thresholds"]["t_match"] == s["operating_point"]["t_match"]
    assert doc["models"]["embedder"]["weights_sha256"] == "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
    assert doc["dataset"]["samples"] == 32 and len(doc["dataset"]["manifest_sha256"]) == 64


def test_mlflow_run_has_params_metrics_artifacts(smoke_runs):
    import mlflow
    from mlflow.tracking import MlflowClient

    tmp, (s, _), _, _ = smoke_runs
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp}/mlflow.db")
    run = client.get_run(s["run"]["mlflow_run_id"])
    assert run.data.params["dataset.list"] == "ci_smoke.csv" and run.data.params["embedder.name"] == "dlib_resnet"
    assert run.data.tags["pad"] == "minifasnet_v2"
    m = run.data.metrics
    assert m["verif/eval/eer/value"] == pytest.approx(s["metrics"]["eval"]["verif"]["eer"]["value"])
    assert m["pad/eval/at_operating_point/bpcer/n"] == 4
    assert m["counts/input_samples"] == 32
    names = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"summary.json", "operating_point.json", "threshold_table.csv", "roc.png", "det.png"} <= names
    assert mlflow.get_tracking_uri()  # import sanity


def test_missing_data_is_one_clear_error(tmp_path):
    r = _run(tmp_path, "dataset.root=/nonexistent/nuaa")
    assert r.returncode == 2
    assert "error: NUAA dataset not found at /nonexistent/nuaa" in r.stderr
    assert "Traceback" not in r.stderr


def _rates(d, path=""):
    """Every rate dict (has k and n) anywhere in ``d``, with its path."""
    if isinstance(d, dict):
        if "k" in d and "n" in d and "value" in d:
            yield path, d
        for k, v in d.items():
            yield from _rates(v, f"{path}/{k}")
    elif isinstance(d, list):
        for i, v in enumerate(d):
            yield from _rates(v, f"{path}/{i}")


def test_defensible_operating_point_end_to_end(smoke_runs):
    """Every rate carries its people; the export, the summary and the verdicts read one computation; the thresholds
    are float32 numbers inside their plateau; too few people read 'insufficient evidence', never 'pass'."""
    _, (s, _), dirs, stdout = smoke_runs
    doc = json.loads((dirs[0] / "operating_point.json").read_text())
    assert doc["schema_version"] == "3.3"
    for where, r in list(_rates(s["metrics"])) + list(_rates(doc["expected_rates_on_eval"])):
        assert "n_subjects" in r, where
    assert doc["expected_rates_on_eval"]["verif"]["fmr"] == s["metrics"]["eval"]["verif"]["at_operating_point"]["fmr"]
    assert doc["expected_rates_on_eval"]["system"]["iapar"] == s["metrics"]["eval"]["system"]["iapar"]
    for axis, t in (("match", doc["thresholds"]["t_match"]), ("pad", doc["thresholds"]["t_pad"])):
        pl = doc["thresholds"]["plateau"][axis]
        assert pl["threshold"] == t and pl["float32_safe"] and pl["disagreements"] == 0
        assert float(__import__("numpy").float32(t)) == t
        assert pl["lower_end"] <= t <= (pl["upper_end"] if pl["upper_end"] is not None else float("inf"))
    verdicts = {st["name"]: st["verdict"] for st in doc["standards"]}
    assert "pass" not in verdicts.values()  # 2 people per partition support nothing
    frr = next(c for st in doc["standards"] if st["name"] == "fido_biometric_component" for c in st["criteria"]
               if c["id"] == "frr")
    assert frr["verdict"] == "insufficient evidence"
    assert doc["policy"]["evidence"]["threshold_rule_side"] == "one-sided upper"
    assert any(u["metric"] == "verif/eval/fnmr_at_fmr/fmr_1e-2" for u in doc["unmeasurable"])
    assert "people" in stdout
