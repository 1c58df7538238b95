"""Threshold transfer between real runs (:mod:`harness.transfer`): the smoke experiment's dev -> its eval and ->
the faceapi_bbt-style verification rows, checked against an independent numpy recount of the target's tables, against
the run's own choice, in MLflow, and bad inputs (missing run directory, a partition the run lacks, a file changed
after the run, an unknown key) each stopping in one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from harness.transfer import main, run_transfer
from harness.transfer_eval import HONEST, ORACLE

pytestmark = [pytest.mark.shared, pytest.mark.slow]


def _recount(run_dir, part, t_match, t_pad) -> dict:
    """k/n and people of FMR, FNMR, BPCER, APCER per species at (t_match, t_pad), by hand from the Parquet tables."""
    t = pd.read_parquet(run_dir / "trials.parquet")
    p = pd.read_parquet(run_dir / "probes.parquet")
    if part != "all":
        t, p = t[t["partition"] == part], p[p["partition"] == part]
    gen, imp = t[t["kind"] == "genuine"], t[t["kind"] == "impostor"]
    ok = p[p["status"] == "scored"]
    bona, att = ok[ok["label"] == "bona_fide"], ok[ok["label"] == "attack"]
    out = {"fmr": (int(np.sum(imp["match_score"].to_numpy() >= t_match)), len(imp),
                   len(set(imp["probe_subject"]) | set(imp["ref_subject"]))),
           "fnmr": (int(np.sum(gen["match_score"].to_numpy() < t_match)), len(gen), gen["probe_subject"].nunique()),
           "bpcer": (int(np.sum(bona["pad_score"].to_numpy() < t_pad)), len(bona), bona["subject"].nunique())}
    for sp, g in att.groupby("species"):
        out[f"apcer[{sp}]"] = (int(np.sum(g["pad_score"].to_numpy() >= t_pad)), len(g), g["subject"].nunique())
    return out


def _kn(r: dict) -> tuple[int, int, int]:
    return r["k"], r["n"], r["n_subjects"]


@pytest.fixture(scope="module")
def smoke_transfer(smoke_run, tmp_path_factory, monkeypatch_module):
    run_dir, summary, uri = smoke_run
    monkeypatch_module.setenv("MLFLOW_TRACKING_URI", uri)
    out = tmp_path_factory.mktemp("transfer_out")
    doc = run_transfer([f"select={run_dir}:dev", f"eval={run_dir}:eval,{run_dir}:all", f"out={out}"])
    return run_dir, summary, uri, doc, out


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_thresholds_are_the_runs_own_and_rates_match_a_numpy_recount(smoke_transfer):
    """Chosen on dev by the run's policy through the run's machinery: the same thresholds the run exported; every
    transferred rate equals a hand recount on the target rows (k, n, people); the interval brackets the value."""
    run_dir, summary, _, doc, _ = smoke_transfer
    (fold,) = doc["folds"]
    op = fold["operating_point"]
    assert (op["t_match"], op["t_pad"]) == (summary["operating_point"]["t_match"], summary["operating_point"]["t_pad"])
    for target, part in zip(fold["targets"], ("eval", "all")):
        ref = _recount(run_dir, part, op["t_match"], op["t_pad"])
        tr = target["transferred"]
        assert _kn(tr["verif"]["fmr"]) == ref["fmr"] and _kn(tr["verif"]["fnmr"]) == ref["fnmr"]
        assert _kn(tr["pad"]["bpcer"]) == ref["bpcer"]
        assert {f"apcer[{s}]": _kn(r) for s, r in tr["pad"]["apcer_per_species"].items()} == {
            k: v for k, v in ref.items() if k.startswith("apcer[")}
        for r in (tr["verif"]["fmr"], tr["pad"]["bpcer"]):
            assert r["lo"] <= r["value"] <= r["hi"] and r["hi"] > r["lo"]


def test_the_own_comparison_is_the_runs_eval_or_labelled_oracle(smoke_transfer):
    """Target eval with a dev: own thresholds = the run's, own rates = the run's eval rates at its operating point;
    target ``all`` cannot be split: labelled "oracle, same data"."""
    _, summary, _, doc, _ = smoke_transfer
    ev, al = doc["folds"][0]["targets"]
    assert ev["own"]["label"] == HONEST and al["own"]["label"] == ORACLE
    run_eval = summary["metrics"]["eval"]
    assert _kn(ev["own"]["rates"]["verif"]["fmr"]) == _kn(run_eval["verif"]["at_operating_point"]["fmr"])
    assert _kn(ev["own"]["rates"]["pad"]["bpcer"]) == _kn(run_eval["pad"]["at_operating_point"]["bpcer"])
    assert ev["cost"]["verif.fmr"]["delta"] == 0.0  # dev -> eval of one run: the transfer IS the run's own choice


def test_directory_table_report_and_context(smoke_transfer):
    """transfer.json is the source: the CSV rows and the markdown carry its numbers; the context check counts the
    clamped PAD crops of the target (smoke: NUAA frames scaled by MiniFASNet's crop rule run off the frame)."""
    run_dir, _, _, doc, out = smoke_transfer
    saved = json.loads((out / "transfer.json").read_text())
    csv = pd.read_csv(out / "transfer_table.csv")
    row = csv[(csv["rate"] == "BPCER") & (csv["partition"] == "eval")].iloc[0]
    bp = saved["folds"][0]["targets"][0]["transferred"]["pad"]["bpcer"]
    assert (row["transferred_k"], row["transferred_n"], row["transferred_n_subjects"]) == _kn(bp)
    md = (out / "transfer.md").read_text()
    assert f"{bp['k']}/{bp['n']} = " in md and "oracle, same data" in md
    assert "<table>" in (out / "transfer.html").read_text()
    scores = pd.read_parquet(run_dir / "scores.parquet")
    ev = scores[(scores["status"] == "scored")]
    ctx = saved["folds"][0]["targets"][1]["context"]["pad_context_clamped"]["target"]
    assert (ctx["k"], ctx["n"]) == (int(ev["pad_context_clamped"].astype(bool).sum()), len(ev))


def test_logged_to_mlflow_like_a_run(smoke_transfer):
    """One FINISHED MLflow run with the transferred k/n as metrics and transfer.json as an artifact."""
    import mlflow

    _, _, uri, doc, _ = smoke_transfer
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(doc["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["kind"] == "transfer"
    bp = doc["folds"][0]["targets"][0]["transferred"]["pad"]["bpcer"]
    assert run.data.metrics["transfer/0/nuaa_eval/BPCER/transferred/k"] == bp["k"]
    assert "transfer.json" in [a.path for a in client.list_artifacts(run.info.run_id)]


def test_bad_inputs_each_stop_in_one_line(smoke_run, tmp_path, capsys):
    """Missing run directory, a partition the run lacks, a file changed after the run wrote it, an unknown key."""
    run_dir = smoke_run[0]
    changed = tmp_path / "changed"
    shutil.copytree(run_dir, changed)
    with open(changed / "trials.parquet", "ab") as f:
        f.write(b"\0")
    cases = {f"select={tmp_path / 'nope'}:dev": "no such run directory",
             f"select={run_dir}:train": "has no 'train' partition",
             f"select={changed}:dev": "trials.parquet was changed after the run wrote it",
             "selct=x": "unknown key 'selct'"}
    for arg, want in cases.items():
        assert main([arg, f"eval={run_dir}:eval", "tracking=none", f"out={tmp_path / 'o'}"]) == 2
        err = capsys.readouterr().err.strip()
        assert want in err and len(err.splitlines()) == 1, err


def test_presentation_unit_counts_presentations(smoke_run, tmp_path):
    """``unit=presentation``: thresholds chosen and rates counted on the run's presentation tables (one row per
    group of stills), recounted by hand from presentations.parquet."""
    run_dir = smoke_run[0]
    doc = run_transfer([f"select={run_dir}:dev", f"eval={run_dir}:eval", "unit=presentation", "tracking=none",
                        f"out={tmp_path}"])
    (fold,) = doc["folds"]
    t_pad = fold["operating_point"]["t_pad"]
    p = pd.read_parquet(run_dir / "presentations.parquet")
    p = p[(p["partition"] == "eval") & (p["status"] == "scored")]
    bona, att = p[p["label"] == "bona_fide"], p[p["label"] == "attack"]
    tr = fold["targets"][0]["transferred"]
    assert tr["unit"] == "presentation" and doc["unit"] == "presentation"
    assert (tr["pad"]["bpcer"]["k"], tr["pad"]["bpcer"]["n"]) == (int(np.sum(bona["pad_score"] < t_pad)), len(bona))
    assert tr["pad"]["apcer_max"]["n"] == len(att) > 0


def _stopped_after_scoring(run_dir, out):
    """A copy of ``run_dir`` as a run that stopped after scoring leaves it: the scores, trials and probes tables and
    the config, no summary and no presentation tables (they are written after the thresholds)."""
    import json

    shutil.copytree(run_dir, out)
    doc = json.loads((out / "run_manifest.json").read_text())
    for name in ("summary.json", "presentations.parquet", "presentations.csv", "presentation_trials.parquet"):
        doc["files"].pop(name)
        (out / name).unlink()
    (out / "run_manifest.json").write_text(json.dumps(doc))
    return out


def test_presentation_unit_on_a_run_without_presentations_is_refused_in_one_line(smoke_run, tmp_path, capsys):
    """unit=presentation on a run that stopped after scoring: one line saying why (no presentation tables, and
    they cannot be rebuilt without the frames' embeddings); unit=frame on the same run still works (target)."""
    run_dir = smoke_run[0]
    stopped = _stopped_after_scoring(run_dir, tmp_path / "stopped")
    args = [f"select={run_dir}:dev", f"eval={stopped}:eval", "tracking=none"]
    assert main([*args, "unit=presentation", f"out={tmp_path / 'p'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(stopped) in err, err
    assert "presentation_trials.parquet and presentations.parquet" in err and "stopped after scoring" in err
    assert "embeddings" in err and "unit=frame" in err
    doc = run_transfer([*args, f"out={tmp_path / 'f'}"])
    probes = pd.read_parquet(stopped / "probes.parquet")
    n_bona = int(((probes["partition"] == "eval") & (probes["label"] == "bona_fide") & (probes["status"] == "scored")).sum())
    assert doc["unit"] == "frame" and doc["folds"][0]["targets"][0]["transferred"]["pad"]["bpcer"]["n"] == n_bona > 0
