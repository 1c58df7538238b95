"""Third-party scores (``dataset=scores``): a real run's scores written as a vendor's score CSV and as bob 4-column
files give that run's metrics and thresholds; the export names the vendor and the runtime checks its identity."""

from __future__ import annotations

import hashlib
from pathlib import Path

import json

import pytest

from tests.vendor.writers import numbers, run_scores, write_bob4, write_csv

pytestmark = pytest.mark.slow


def _sha256(path) -> str:
    """sha256 of the file's bytes, computed here (the independent reference)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _pad_pooled(pad: dict) -> dict:
    """The PAD numbers that do not name a species (pooled): BPCER, APCER_max and the threshold-free rates."""
    at = pad["at_operating_point"]
    return numbers({"bpcer": at["bpcer"], "apcer_max": at["apcer_max"], "threshold": at["threshold"],
                   **{k: pad[k] for k in ("n_bona_fide", "n_attack", "n_subjects", "eer_non_iso", "bpcer20")}},
                  drop=("apcer_per_species", "apcer_max_species", "attack_per_species", "species", "not_measurable_because"))


@pytest.fixture(scope="module")
def csv_run(smoke_run, tmp_path_factory):
    run_dir, _ = smoke_run
    tmp = tmp_path_factory.mktemp("vendor_csv")
    path = write_csv(run_dir, tmp / "acme_v4.csv")
    return path, run_scores(tmp, path, "dataset.vendor.name=acme", "dataset.vendor.version=4.2")


def test_csv_gives_the_runs_metrics_and_thresholds(smoke_run, csv_run):
    _, ref = smoke_run
    _, got = csv_run
    for key in ("t_match", "t_pad", "supported"):
        assert got["operating_point"][key] == ref["operating_point"][key]
    for part in ("dev", "eval"):
        assert numbers(got["metrics"][part]["verif"]) == numbers(ref["metrics"][part]["verif"])
        assert numbers(got["metrics"][part]["pad"]) == numbers(ref["metrics"][part]["pad"])  # per species too
        assert numbers(got["metrics"][part]["system"]) == numbers(ref["metrics"][part]["system"])
    assert got["models"]["pad"]["vendor"]["name"] == "acme" and "weights_sha256" not in got["models"]["pad"]
    assert got["accounting"]["scored"] == ref["accounting"]["probe_samples"]


def test_bob_four_column_files_give_the_runs_pooled_metrics(smoke_run, tmp_path):
    run_dir, ref = smoke_run
    ver, pad = write_bob4(run_dir, tmp_path / "scores-verification", tmp_path / "scores-pad")
    got = run_scores(tmp_path, f"[{ver},{pad}]")
    assert (got["operating_point"]["t_match"], got["operating_point"]["t_pad"]) == \
        (ref["operating_point"]["t_match"], ref["operating_point"]["t_pad"])
    for part in ("dev", "eval"):
        assert numbers(got["metrics"][part]["verif"]) == numbers(ref["metrics"][part]["verif"])
        assert _pad_pooled(got["metrics"][part]["pad"]) == _pad_pooled(ref["metrics"][part]["pad"])
        # bob files carry no species: every attack is one pooled species, 'unknown'
        assert set(got["metrics"][part]["pad"]["at_operating_point"]["apcer_per_species"]) == {"unknown"}


def test_unknown_species_is_reported_as_its_own_species(smoke_run, tmp_path):
    run_dir, ref = smoke_run
    probes = __import__("harness.rundir", fromlist=["read_table"]).read_table(run_dir, "probes")
    attacks = probes[probes["label"] == "attack"].sort_values("sample_id")
    unknown = {sid: "" for sid in attacks.groupby("subject")["sample_id"].first()}  # one attack per person: unknown
    got = run_scores(tmp_path, write_csv(run_dir, tmp_path / "partly_unknown.csv", species=unknown))
    for part in ("dev", "eval"):
        per = got["metrics"][part]["pad"]["at_operating_point"]["apcer_per_species"]
        n_unknown = sum(1 for sid in unknown if (probes.set_index("sample_id").loc[sid, "partition"] == part))
        assert set(per) == {"print_photo", "unknown"} and per["unknown"]["n"] == n_unknown
        assert per["print_photo"]["n"] + per["unknown"]["n"] == ref["metrics"][part]["pad"]["n_attack"]


def test_export_names_the_vendor_and_the_runtime_checks_its_identity(csv_run, tmp_path):
    from harness.runtime import OperatingPointRefused, load

    path, got = csv_run
    op_path = f"{got['run_dir']}/operating_point.json"
    doc = json.loads(open(op_path).read())
    assert doc["schema_version"] == "3.3"
    vendor = doc["models"]["embedder"]["vendor"]
    assert vendor == doc["models"]["pad"]["vendor"]
    assert (vendor["name"], vendor["version"], vendor["sdk_build"]) == ("acme", "4.2", None)
    assert vendor["identity"] == _sha256(path) == vendor["score_files"][0]["sha256"]
    trust = dict(trusted_content_sha256=doc["content_sha256"], allow_not_deployable=True)
    op = load(op_path, embedder_sha256=None, pad_sha256=None, vendor_identity=_sha256(path), **trust)
    assert op.decide(match_score=doc["thresholds"]["t_match"], pad_score=doc["thresholds"]["t_pad"]).outcome == "accept"
    changed = tmp_path / "acme_v4_edited.csv"
    changed.write_text(path.read_text().replace("0.9", "0.8", 1))
    with pytest.raises(OperatingPointRefused, match="vendor mismatch") as e:
        load(op_path, embedder_sha256=None, pad_sha256=None, vendor_identity=_sha256(changed), **trust)
    assert "\n" not in str(e.value) and vendor["identity"] in str(e.value)
    with pytest.raises(OperatingPointRefused, match="no vendor identity given"):
        load(op_path, embedder_sha256=None, pad_sha256=None, **trust)
    # the command line and the MLflow pyfunc take the same identity (python -m harness.cli ... --vendor-identity)
    from harness.cli import EXIT_REFUSED, main as cli
    from harness.export.mlflow_model import model_config

    base = ["--trust-content-sha256", doc["content_sha256"], "--allow-not-deployable"]
    m, p = str(doc["thresholds"]["t_match"]), str(doc["thresholds"]["t_pad"])
    assert cli(["decide", op_path, "--vendor-identity", _sha256(path), "--match", m, "--pad", p, *base]) == 0
    assert cli(["decide", op_path, "--vendor-identity", _sha256(changed), "--match", m, "--pad", p, *base]) == EXIT_REFUSED
    cfg = model_config(doc)
    assert cfg["vendor_identity"] == vendor["identity"] and cfg["embedder_sha256"] is None
