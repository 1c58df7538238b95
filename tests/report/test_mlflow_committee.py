"""What a risk committee finds in the MLflow run of a real smoke experiment (sqlite store, one run per module):
a finished run with a description, the dataset as an input (digest = the manifest sha256's first 36 characters, the
whole sha256 in its profile and tag), a short list of named metrics (no ``system/...``: MLflow's system-metrics tab;
no constants such as ``.../confidence``), the ``decision/*`` headline equal to summary.json, the evidence constants
as params, an experiment that opens on runs (not traces); and a registered decision model with a signature that
hangs off that evaluation run, which stays FINISHED."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import pytest

from tests.conftest import run_smoke

pytestmark = [pytest.mark.shared, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = "face-pad-harness"


@pytest.fixture(autouse=True)
def _restore_mlflow_globals():
    """register_operating_point sets the process's tracking URI and experiment: put them back after each test."""
    import mlflow

    env = os.environ.get("MLFLOW_TRACKING_URI")
    uri = mlflow.get_tracking_uri()
    yield
    mlflow.set_tracking_uri(uri)
    if env is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = env


@pytest.fixture(scope="module")
def signing_key():
    with pytest.MonkeyPatch.context() as mp:
        key = secrets.token_hex(32)
        mp.setenv("HARNESS_SIGNING_KEY", key)
        mp.delenv("HARNESS_SIGNING_KEY_FILE", raising=False)
        yield key


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, shared, signing_key):
    """``python -m harness experiment=smoke`` into a temporary results tree and sqlite store."""
    run_dir, summary, uri = run_smoke(tmp_path_factory.mktemp("committee"))
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id])
    return uri, client, exp, runs, run_dir, summary


def test_one_finished_run_with_a_description(smoke):
    _, _, _, runs, _, summary = smoke
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_id == summary["run"]["mlflow_run_id"]
    note = run.data.tags.get("mlflow.note.content", "")
    assert note.strip()
    given = (summary.get("decision") or {}).get("description_markdown")
    if given:  # the decision block's markdown, verbatim (up to MLflow's tag limit)
        assert note == given[:len(note)]
    else:
        assert "Targets supported" in note and "people" in note


def test_dataset_input_carries_the_manifest_sha256(smoke):
    _, client, _, runs, _, summary = smoke
    run = client.get_run(runs[0].info.run_id)
    (inp,) = run.inputs.dataset_inputs
    sha = summary["dataset"]["manifest_sha256"]
    assert len(sha) == 64
    assert inp.dataset.name == summary["dataset"]["name"]
    assert inp.dataset.digest == sha[:36]  # mlflow.utils.validation.MAX_DATASET_DIGEST_SIZE
    assert json.loads(inp.dataset.profile)["manifest_sha256"] == sha
    tags = {t.key: t.value for t in inp.tags}
    assert tags["manifest_sha256"] == sha and tags["mlflow.data.context"] == "eval"
    source = json.loads(inp.dataset.source)["uri"]
    assert source == str(summary["dataset"].get("source") or summary["dataset"]["name"])


def test_few_named_metrics_and_evidence_params(smoke):
    _, _, _, runs, _, summary = smoke
    m, params = runs[0].data.metrics, runs[0].data.params
    assert len(m) < 150, len(m)
    assert not [k for k in m if k.startswith("system/")]
    constants = ("alpha", "confidence", "design_effect", "cp_lo", "cp_hi", "target", "min_negatives", "target_apcer")
    assert not [k for k in m if k.rsplit("/", 1)[-1] in constants]
    assert params["evidence.confidence"] == "0.95"
    assert params["evidence.min_subjects"] == str(summary["operating_point"]["evidence"]["min_subjects"])
    assert "evidence.interval" in params
    ev = summary["metrics"]["eval"]
    for f in ("k", "n", "value", "lo", "hi", "n_subjects"):  # a rate of the decision: all six fields
        assert m[f"system_level/eval/iapar/{f}"] == pytest.approx(ev["system"]["iapar"][f])
        assert m[f"verif/eval/at_operating_point/fmr/{f}"] == pytest.approx(ev["verif"]["at_operating_point"]["fmr"][f])
    assert m["verif/eval/at_operating_point/threshold"] == pytest.approx(summary["operating_point"]["t_match"])
    assert m["counts/input_samples"] == summary["accounting"]["input_samples"]


def test_headline_decision_metrics_equal_the_summary(smoke):
    _, _, _, runs, _, summary = smoke
    m = runs[0].data.metrics
    ev, op = summary["metrics"]["eval"], summary["operating_point"]
    expected = {"decision/eval_fmr": ev["verif"]["at_operating_point"]["fmr"]["value"],
                "decision/eval_fnmr": ev["verif"]["at_operating_point"]["fnmr"]["value"],
                "decision/eval_apcer_max": ev["pad"]["at_operating_point"]["apcer_max"]["value"],
                "decision/eval_bpcer": ev["pad"]["at_operating_point"]["bpcer"]["value"],
                "decision/eval_iapar": ev["system"]["iapar"]["value"],
                "decision/eval_genuine_rejection": ev["system"]["genuine_rejection"]["value"],
                "decision/t_match": op["t_match"], "decision/t_pad": op["t_pad"],
                "decision/targets_supported": float(op["supported"])}
    for k, v in expected.items():
        assert m[k] == pytest.approx(v), k


def test_experiment_opens_on_runs_and_console_summary_is_an_artifact(smoke):
    _, client, exp, runs, run_dir, _ = smoke
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development"
    names = {f.path for f in client.list_artifacts(runs[0].info.run_id)}
    assert "summary.json" in names
    assert "console_summary.txt" in names and "__main__.log" in names
    text = (run_dir / "console_summary.txt").read_text()
    assert "thresholds (chosen on dev)" in text and "note: " in text  # the summary and its notes
    log_text = (run_dir / "__main__.log").read_text()
    assert "console summary:" in log_text and text.strip().splitlines()[-1] in log_text


def test_registered_model_hangs_off_the_evaluation_run(smoke):
    import mlflow

    from harness.export.mlflow_model import register_operating_point

    uri, client, _, runs, run_dir, _ = smoke
    rid = runs[0].info.run_id
    out = register_operating_point(run_dir / "operating_point.json", model_name="kyc-face-committee",
                                   allow_not_deployable=True, tracking_uri=uri)  # run_id None: found by its tag
    assert out["run_id"] == rid
    mv = client.get_model_version("kyc-face-committee", out["version"])
    assert mv.run_id == rid
    info = mlflow.models.get_model_info(out["model_uri"])
    sig = info.signature
    assert sig is not None
    assert [(c.name, c.type.name) for c in sig.inputs.inputs] == [("match_score", "double"), ("pad_score", "double")]
    assert [c.name for c in sig.outputs.inputs] == ["decision", "reason", "evidence"]
    assert {c.type.name for c in sig.outputs.inputs} == {"string"}
    after = client.get_run(rid)
    assert after.info.status == "FINISHED" and after.info.end_time == runs[0].info.end_time
    assert len(client.search_runs([runs[0].info.experiment_id])) == 1  # no bare run was made
    pred = mlflow.pyfunc.load_model(out["model_uri"]).predict(
        __import__("pandas").DataFrame({"match_score": [1.0], "pad_score": [1.0]}))
    assert list(pred.columns) == ["decision", "reason", "evidence"]


def test_without_an_evaluation_run_a_tagged_run_holds_the_model(smoke, tmp_path):
    from harness.export.mlflow_model import NO_EVALUATION_RUN_TAG, register_operating_point

    _, _, _, _, run_dir, _ = smoke
    uri = f"sqlite:///{tmp_path}/other.db"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    client.create_experiment(EXPERIMENT, artifact_location=(tmp_path / "art").as_uri())
    out = register_operating_point(run_dir / "operating_point.json", model_name="kyc-face-bare",
                                   allow_not_deployable=True, tracking_uri=uri)
    run = client.get_run(out["run_id"])
    assert run.info.status == "FINISHED" and "op.content_sha256" in run.data.tags[NO_EVALUATION_RUN_TAG]
