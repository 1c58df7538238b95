"""``python -m harness.official``: every official protocol of OULU-NPU, Replay-Attack, SiW, CASIA-FASD and MSU-MFSD
as one per-video table, on small trees generated from real faces (:mod:`tests.protocols.real_trees`), scored by
the real models; the numbers agree with the per-video scores the run wrote, and reach MLflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.metrics.verification import eer

from . import real_trees

pytestmark = [pytest.mark.shared, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
MAKERS = {"oulu_npu": real_trees.make_oulu_real, "replay_attack": real_trees.make_replay_attack_real,
          "siw": real_trees.make_siw_real, "casia_fasd": real_trees.make_casia_real,
          "msu_mfsd": real_trees.make_msu_real}


@pytest.fixture(scope="module")
def results(tmp_path_factory, shared):
    """One official run per database (one score cache for all: the trees share their few distinct videos)."""
    tmp = tmp_path_factory.mktemp("official")
    env = dict(os.environ, HARNESS_RESULTS=str(tmp / "results"), HARNESS_CACHE=str(tmp / "wcache"),
               MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db", MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    out = {}
    for name, make in MAKERS.items():
        root = make(tmp / "db" / name)
        before = set((tmp / "results" / "runs").glob("*/*"))
        r = subprocess.run([sys.executable, "-m", "harness.official", f"dataset={name}", f"dataset.root={root}",
                            "dataset.frames=uniform:2", "runtime.progress=false"],
                           cwd=tmp, env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
        (run_dir,) = set((tmp / "results" / "runs").glob("*/*")) - before
        out[name] = (run_dir, json.loads((run_dir / "summary.json").read_text()), r.stdout)
    out["_uri"] = env["MLFLOW_TRACKING_URI"]
    return out


def _rows(results, name):
    return results[name][1]["protocol_table"]["rows"]


def test_oulu_protocols_1_to_4_with_mean_and_std_over_the_folds(results):
    run_dir, s, stdout = results["oulu_npu"]
    rows = _rows(results, "oulu_npu")
    assert list(rows) == ["P1", "P2", *[f"P3-{f}" for f in range(1, 7)], *[f"P4-{f}" for f in range(1, 7)]]
    summ = s["protocol_table"]["summary"]
    assert set(summ) == {"P3", "P4"} and summ["P3"]["acer"]["n"] == 6
    vals = [rows[f"P4-{f}"]["acer"] for f in range(1, 7)]
    assert summ["P4"]["acer"]["mean"] == pytest.approx(np.mean(vals))
    assert summ["P4"]["acer"]["std"] == pytest.approx(np.std(vals, ddof=1))
    table = pd.read_csv(run_dir / "protocol_table.csv")
    assert table["protocol"].tolist()[-2:] == ["P3 mean +- std", "P4 mean +- std"]
    for r in rows.values():  # ISO names with people behind them; literature numbers labelled
        assert {"apcer_per_species", "apcer_max", "bpcer", "acer"} <= set(r)
        assert r["bpcer"]["n_subjects"] >= 1 and "not an ISO" in r["non_iso"]["acer"]
    assert "P3 mean +- std" in stdout


def test_the_row_is_the_per_video_scores_the_run_wrote(results):
    """Recompute OULU P1 from protocol_presentations: EER threshold on dev videos, APCER/BPCER on test videos."""
    run_dir, s, _ = results["oulu_npu"]
    pres = pd.read_parquet(run_dir / "protocol_presentations.parquet")
    p1 = pres[(pres["protocol"] == "P1") & (pres["status"] == "scored")]
    dev, test = p1[p1["split"] == "dev"], p1[p1["split"] == "test"]
    _, thr = eer(dev.loc[dev["label"] == "attack", "pad_score"].to_numpy(),
                 dev.loc[dev["label"] == "bona_fide", "pad_score"].to_numpy())
    row = _rows(results, "oulu_npu")["P1"]
    assert row["threshold"] == pytest.approx(thr)
    bona = test[test["label"] == "bona_fide"]
    assert (row["bpcer"]["k"], row["bpcer"]["n"]) == (int((bona["pad_score"] < thr).sum()), len(bona))
    for sp, r in row["apcer_per_species"].items():
        a = test[(test["label"] == "attack") & (test["species"] == sp)]
        assert (r["k"], r["n"]) == (int((a["pad_score"] >= thr).sum()), len(a))
    assert (pres.groupby(["protocol", "sample_id"]).size() == 1).all()  # one row per video and sub-protocol
    assert set(pres["n_frames"]) == {2}


def test_replay_siw_casia_and_msu_tables(results):
    assert list(_rows(results, "replay_attack")) == ["grandtest"]
    assert _rows(results, "replay_attack")["grandtest"]["hter"] is not None
    siw = _rows(results, "siw")
    assert list(siw) == ["P1", "P2-1", "P2-2", "P2-3", "P2-4", "P3-1", "P3-2"]
    assert set(results["siw"][1]["protocol_table"]["summary"]) == {"P2", "P3"}
    casia = _rows(results, "casia_fasd")
    assert list(casia) == ["overall", "low", "normal", "high"]
    assert casia["overall"]["videos"]["test"] == sum(casia[q]["videos"]["test"] for q in ("low", "normal", "high"))
    msu = _rows(results, "msu_mfsd")["official"]
    run_dir = results["msu_mfsd"][0]
    pres = pd.read_parquet(run_dir / "protocol_presentations.parquet")
    real = pres[pres["label"] == "bona_fide"]
    assert len(real) == 2 and real["pad_score"].notna().all()  # the two real MSU videos, one score each
    assert msu["videos"]["test"] == int((pres["split"] == "test").sum())


def test_report_and_mlflow_carry_the_table(results):
    run_dir, s, _ = results["oulu_npu"]
    html = (run_dir / "report.html").read_text()
    assert 'id="protocol-table"' in html and "P4 mean +- std" in html
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=results["_uri"])
    run = client.get_run(s["run"]["mlflow_run_id"])
    m = run.data.metrics
    assert m["protocol/P4/acer/mean"] == pytest.approx(s["protocol_table"]["summary"]["P4"]["acer"]["mean"])
    assert m["protocol/P1/bpcer/value"] == pytest.approx(s["protocol_table"]["rows"]["P1"]["bpcer"]["value"])
    assert run.info.status == "FINISHED" and run.data.tags["kind"] == "official_protocols"
