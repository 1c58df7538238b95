"""Replay: on a real NUAA smoke run the runtime reproduces 100% of the offline decisions, for the run's own
export and for exports re-made from its trials with other policies (min cost with review, three bands)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli import main as cli_main
from harness.runtime import load
from tests.conftest import run_smoke

pytestmark = pytest.mark.shared
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def nuaa_run(tmp_path_factory, shared):
    tmp = tmp_path_factory.mktemp("replay")
    run_dir, summary, _ = run_smoke(tmp)
    exports = {"target_rates": run_dir / "operating_point.json"}
    for name, extra in (("min_cost", ["--set", "review=true", "--set", "cost_per_review=1.0"]),
                        ("bands", ["--set", "review_budget=0.25"])):
        out = run_dir / f"operating_point.{name}.json"
        assert cli_main(["export", str(run_dir), "--policy", name, *extra, "-o", str(out)]) == 0
        exports[name] = out
    return tmp, run_dir, summary, exports


def _trials(run_dir: Path) -> pd.DataFrame:
    t = pd.read_csv(run_dir / "trials.csv", dtype=str, keep_default_na=False)
    t["match_score"] = t["match_score"].map(float)  # exact round trip of the written floats
    t["pad_score"] = t["pad_score"].map(float)
    return t


def _offline(t: pd.DataFrame, bands: dict) -> np.ndarray:
    """The decision rule written out directly on trials.csv (independent of the runtime and of harness.policy)."""
    m, p = t["match_score"].to_numpy(), t["pad_score"].to_numpy()
    reject = (p < bands["pad"]["reject_below"]) | (m < bands["match"]["reject_below"])
    accept = ~reject & (m >= bands["match"]["accept_at_or_above"]) & (p >= bands["pad"]["accept_at_or_above"])
    return np.where(accept, "accept", np.where(reject, "reject", "review"))


@pytest.mark.parametrize("policy", ["target_rates", "min_cost", "bands"])
def test_runtime_reproduces_every_offline_decision(nuaa_run, policy):
    _, run_dir, summary, exports = nuaa_run
    models = summary["models"]
    op = load(exports[policy], embedder_sha256=models["embedder"]["weights_sha256"],
              pad_sha256=models["pad"]["weights_sha256"], allow_not_deployable=True)  # smoke: 2 people per side
    t = _trials(run_dir)
    assert len(t) == 32
    offline = _offline(t, op.doc["thresholds"]["bands"])
    online = np.array([op.decide(m, p).outcome for m, p in zip(t["match_score"], t["pad_score"])])
    assert (online == offline).mean() == 1.0
    # the export's expected eval counts are the same decisions
    ev = t["partition"] == "eval"
    for kind, counts in op.doc["expected_rates_on_eval"]["decisions"].items():
        sel = ev & (t["kind"] == kind)
        for outcome, r in counts.items():
            assert r["k"] == int((online[sel] == outcome).sum()) and r["n"] == int(sel.sum())
    assert op.doc["dataset"]["samples"] == 32 and op.doc["policy"]["name"] == policy


def test_run_export_agrees_with_the_run_summary(nuaa_run):
    tmp, run_dir, s, exports = nuaa_run
    doc = json.loads(exports["target_rates"].read_text())
    op_s = s["operating_point"]
    assert doc["thresholds"]["t_match"] == op_s["t_match"] and doc["thresholds"]["t_pad"] == op_s["t_pad"]
    assert op_s["selected_on"] == "dev" and op_s["selected_on_eval_data"] is False and op_s["notes"]
    t = _trials(run_dir)
    dec = _offline(t, doc["thresholds"]["bands"])
    ev = (t["partition"] == "eval").to_numpy()
    sysm = s["metrics"]["eval"]["system"]  # computed by the experiment's own evaluate_partition
    assert sysm["iapar"]["k"] == int(((t["kind"] == "attack").to_numpy() & ev & (dec == "accept")).sum())
    assert sysm["genuine_rejection"]["k"] == int(((t["kind"] == "genuine").to_numpy() & ev & (dec != "accept")).sum())
    assert doc["lookup"]["partition"] == "eval" and doc["lookup"]["match"]["n_impostor"] == 4
    verdicts = {x["name"]: x["verdict"] for x in doc["standards"]}
    assert verdicts["gbt_38671_2020"] == "not evaluated"
    assert verdicts["fido_biometric_component"] in ("insufficient evidence", "fail")  # 4 impostors cannot show 1e-4
    from mlflow.tracking import MlflowClient

    tags = MlflowClient(tracking_uri=f"sqlite:///{tmp}/mlflow.db").get_run(s["run"]["mlflow_run_id"]).data.tags
    assert tags["op.content_sha256"] == doc["content_sha256"] and tags["op.policy"] == "target_rates"


def test_cli_decide_replays_and_refuses(nuaa_run, tmp_path):
    _, run_dir, s, exports = nuaa_run
    emb, pad = s["models"]["embedder"]["weights_sha256"], s["models"]["pad"]["weights_sha256"]
    out = tmp_path / "decisions.csv"
    cmd = [sys.executable, "-m", "harness.cli", "decide", str(exports["bands"]), "--embedder-sha256", emb,
           "--pad-sha256", pad, "--allow-not-deployable"]
    r = subprocess.run(cmd + ["--csv", str(run_dir / "trials.csv"), "-o", str(out)], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    with open(out, newline="") as f:
        got = [row["decision"] for row in csv.DictReader(f)]
    doc = json.loads(exports["bands"].read_text())
    assert got == list(_offline(_trials(run_dir), doc["thresholds"]["bands"]))
    r = subprocess.run([sys.executable, "-m", "harness.cli", "decide", str(exports["bands"]), "--embedder-sha256",
                        "0" * 64, "--pad-sha256", pad, "--match", "0.5", "--pad", "0.5", "--allow-not-deployable"],
                       cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 3 and "refused: model mismatch" in r.stderr
