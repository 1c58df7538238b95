"""Export: versioned schema, content hash, what it records, MLflow registration of the decision."""

from __future__ import annotations

import json

import jsonschema
import pytest

from harness.export.operating_point import build_operating_point, read_operating_point, validate, write_operating_point
from harness.export.schema import SCHEMA, SCHEMA_VERSION
from harness.policy import choose_thresholds
from functools import partial

from harness.runtime import content_sha256
from harness.runtime import load as _load

load = partial(_load, allow_not_deployable=True)

from ._synth import random_tables
from .test_runtime import DATASET, EMB, MODELS, PAD, export


def test_export_validates_and_records_everything(tmp_path):
    path, doc, _ = export(tmp_path, {"name": "min_cost", "review": True, "review_budget": 0.05})
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    validate(doc)
    assert doc == read_operating_point(path)
    assert doc["schema_version"] == SCHEMA_VERSION and doc["content_sha256"] == content_sha256(doc)
    assert doc["created_at"][:2] == "20" and doc["harness_version"] and doc["git_sha"]
    assert doc["models"]["embedder"]["weights_sha256"] == EMB and doc["models"]["pad"]["preprocessing"]
    th = doc["thresholds"]
    assert th["review_band"] and th["bands"]["pad"]["reject_below"] <= th["t_pad"] and th["policy"] == "min_cost"
    assert doc["policy"]["inputs"]["review_budget"] == 0.05 and "on_selection_data" in doc["policy"]
    ev = doc["expected_rates_on_eval"]
    assert ev["partition"] == "eval" and not ev["selected_on_same_data"]
    for r in (ev["verif"]["fmr"], ev["pad"]["bpcer"], ev["system"]["iapar"], ev["decisions"]["genuine"]["review"]):
        assert {"k", "n", "lo", "hi", "value"} <= set(r) and r["lo"] <= r["value"] <= r["hi"]
    assert {s["name"] for s in doc["standards"]} >= {"fido_biometric_component", "nist_sp800_63a_4"}
    assert doc["dataset"]["counts"]["eval"]["genuine_trials"] == 120
    assert doc["lookup"]["match"]["n_impostor"] == 360 and "print_photo" in doc["lookup"]["pad"]["species"]
    assert doc["config"] == {"policy": {"name": "min_cost", "review": True, "review_budget": 0.05}}


def test_selection_on_eval_is_marked_in_the_export(tmp_path):
    _, doc, _ = export(tmp_path, {"name": "target_rates", "select_on": "eval"})
    assert doc["thresholds"]["selected_on_eval_data"] is True and doc["policy"]["selected_on"] == "eval"
    assert doc["expected_rates_on_eval"]["selected_on_same_data"] is True
    assert "EVALUATION data" in doc["thresholds"]["notes"][0]


def test_invalid_document_is_not_written(tmp_path):
    t, p = random_tables(0, n_gen=20, n_att=20)
    op = choose_thresholds(t, p, {"name": "eer"})
    bad_models = {"embedder": {"name": "e", "weights_sha256": "not-a-sha", "preprocessing": ""},
                  "pad": MODELS["pad"]}
    doc = build_operating_point(config={}, models=bad_models, op=op, dataset=DATASET, trials=t, probes=p)
    with pytest.raises(ValueError, match="models/embedder/weights_sha256"):
        write_operating_point(doc, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_ensemble_weights_sha_is_accepted(tmp_path):
    t, p = random_tables(0, n_gen=20, n_att=20)
    op = choose_thresholds(t, p, {"name": "eer", "standards": "none"})
    models = MODELS | {"pad": MODELS["pad"] | {"weights_sha256": PAD + "+" + "f" * 64}}
    doc = build_operating_point(config={}, models=models, op=op, dataset=DATASET, trials=t, probes=p)
    path = write_operating_point(doc, tmp_path / "ens.json")
    assert load(path, embedder_sha256=EMB, pad_sha256=PAD + "+" + "f" * 64)
    assert doc["standards"] == []


def test_register_as_mlflow_pyfunc_with_alias(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    from harness.export.mlflow_model import log_export, register_operating_point

    path, doc, (t, _) = export(tmp_path, {"name": "bands", "review_budget": 0.1})
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    # an explicit artifact location: the sqlite store's default is ./mlruns in the working directory
    exp = mlflow.tracking.MlflowClient(tracking_uri=uri).create_experiment(
        "op-test", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.log_artifact(str(path))
    refused = log_export(run.info.run_id, doc, path, tracking_uri=uri, register_as="kyc-face", alias="candidate")
    assert refused["registered"] is None and "not deployable" in refused["not_registered_because"]
    out = log_export(run.info.run_id, doc, path, tracking_uri=uri, register_as="kyc-face", alias="candidate",
                     allow_not_deployable=True)
    reg = out["registered"]
    assert reg["name"] == "kyc-face" and reg["alias"] == "candidate" and reg["version"] == "1"
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    tags = client.get_run(run.info.run_id).data.tags
    assert tags["op.content_sha256"] == doc["content_sha256"] and tags["standard.gbt_38671_2020"] == "not evaluated"
    model = mlflow.pyfunc.load_model("models:/kyc-face@candidate")
    sample = t.head(50)
    pred = model.predict(sample[["match_score", "pad_score"]])
    op = load(path, embedder_sha256=EMB, pad_sha256=PAD)
    assert list(pred["decision"]) == [op.decide(m, p).outcome for m, p in zip(sample["match_score"], sample["pad_score"])]
    # registering again moves the alias to version 2
    again = register_operating_point(path, model_name="kyc-face", tracking_uri=uri, run_id=run.info.run_id,
                                     allow_not_deployable=True)
    assert again["version"] == "2"
    assert str(client.get_model_version_by_alias("kyc-face", "candidate").version) == "2"
    json.dumps(reg)
