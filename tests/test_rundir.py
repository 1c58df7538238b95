"""The run directory contract (harness.rundir): exact round trips, the manifest's sha256 and format version, old
run directories through the old path, and a real smoke run read back by load_run and the report's gallery."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import rundir
from harness.rundir import RunDirError

TRICKY = [0.1 + 0.2, 1e-310, -0.0, 1 / 3, 5e-324, 1.7976931348623157e308, np.nan, 123456789.123456789, -2.5e-17]


def _frames():
    n = len(TRICKY)
    scores = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "subject": [f"p{i % 3}" for i in range(n)],
                           "reason": ["", "a, b", 'quote "x"', "newline\nin it", "ünïcode", "", "", "x", "y"],
                           "frame": np.arange(n, dtype=np.int64), "pad_score": TRICKY,
                           "path": [f"/data/img {i}.jpg" for i in range(n)]})
    for c in rundir.BOX_COLUMNS + rundir.LANDMARK_COLUMNS:
        scores[c] = np.random.default_rng(len(c)).normal(size=n) * 100
    trials = pd.DataFrame({"kind": ["genuine"] * n, "partition": ["dev"] * n, "probe_id": scores["sample_id"],
                           "match_score": TRICKY[::-1], "pad_score": TRICKY})
    probes = scores.iloc[[1, 4, 7]].assign(partition=["dev", "eval", "eval"])
    return scores, probes, trials


def _written(tmp: Path) -> Path:
    scores, probes, trials = _frames()
    rundir.write_tables(tmp, scores=scores, probes=probes, trials=trials, config={"protocol": {"enrol": 1}, "x": 0.1})
    rundir.write_summary(tmp, json.dumps({"run": {"name": "t"}}))
    return tmp


def test_round_trip_is_exact(tmp_path):
    scores, probes, trials = _frames()
    d = _written(tmp_path)
    for name, df in (("scores", scores), ("probes", probes), ("trials", trials)):
        pd.testing.assert_frame_equal(rundir.read_table(d, name), df, check_exact=True)
    got = rundir.read_table(d, "scores")["pad_score"].to_numpy()
    assert [np.float64(a).tobytes() for a in got] == [np.float64(a).tobytes() for a in TRICKY]  # -0.0, NaN, subnormals
    assert rundir.read_config(d, rundir.read_manifest(d)) == {"protocol": {"enrol": 1}, "x": 0.1}
    man = rundir.verify(d)
    assert man["format_version"] == rundir.FORMAT_VERSION
    assert man["files"]["scores.parquet"]["rows"] == len(scores) and man["files"]["trials.csv"]["rows"] == len(trials)
    assert {"scores.csv", "trials.csv", "probes.parquet", "run_config.json", "summary.json"} <= set(man["files"])
    # the CSV people open by hand reads back exactly too (Python float() of pandas' repr)
    csv = pd.read_csv(d / "scores.csv", dtype=str, keep_default_na=False)
    back = [float(s) if s else np.nan for s in csv["pad_score"]]
    assert np.array_equal(np.array(back), np.array(TRICKY), equal_nan=True)
    assert list(csv.columns) == list(scores.columns)


def test_changed_file_is_named_in_one_line(tmp_path):
    d = _written(tmp_path)
    trials = rundir.read_table(d, "trials")
    trials.loc[0, "match_score"] = 0.5
    trials.to_parquet(d / "trials.parquet")
    with pytest.raises(RunDirError) as e:
        rundir.read_table(d, "trials")
    msg = str(e.value)
    assert "trials.parquet" in msg and "\n" not in msg and "changed" in msg
    with pytest.raises(RunDirError, match="trials.parquet"):
        rundir.verify(d)
    rundir.read_table(d, "scores")  # the unchanged files still read


def test_future_major_format_is_refused(tmp_path):
    d = _written(tmp_path)
    man = json.loads((d / rundir.MANIFEST_FILE).read_text())
    man["format_version"] = "1.9"  # a later minor only adds: still read
    (d / rundir.MANIFEST_FILE).write_text(json.dumps(man))
    assert len(rundir.read_table(d, "trials")) == len(TRICKY)
    man["format_version"] = "2.0"
    (d / rundir.MANIFEST_FILE).write_text(json.dumps(man))
    with pytest.raises(RunDirError) as e:
        rundir.read_table(d, "trials")
    assert "2.0" in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------ a real smoke run


@pytest.fixture(scope="module")
def smoke_run(shared, tmp_path_factory):
    from tests.conftest import run_smoke

    tmp = tmp_path_factory.mktemp("rundir_smoke")
    run_dir, summary, _ = run_smoke(tmp, "tracking=none")
    return tmp, run_dir, summary


def test_smoke_run_directory_is_complete(smoke_run):
    _, run_dir, summary = smoke_run
    man = rundir.verify(run_dir)
    scores = rundir.read_table(run_dir, "scores", man)
    assert set(rundir.LANDMARK_COLUMNS) <= set(scores.columns), (
        "scores carry no landmarks: the scoring engine's ScoreTable has no `detections` ([N, 16] detection arrays)")
    assert list(scores.columns[-len(rundir.LANDMARK_COLUMNS):]) == list(rundir.LANDMARK_COLUMNS)
    scored = scores[scores["status"] == "scored"]
    assert len(scored) == summary["accounting"]["scored"] and np.isfinite(scored[list(rundir.LANDMARK_COLUMNS)]).all().all()
    csv = pd.read_csv(run_dir / "scores.csv", dtype=str, keep_default_na=False)
    assert list(csv.columns) == list(scores.columns)
    assert man["files"]["probes.parquet"]["rows"] == summary["accounting"]["probe_samples"]


def test_load_run_reads_the_written_probes(smoke_run):
    from harness.export.reselect import load_legacy_run, load_run

    _, run_dir, summary = smoke_run
    trials, probes, s, config = load_run(run_dir)
    pd.testing.assert_frame_equal(probes, pd.read_parquet(run_dir / "probes.parquet"), check_exact=True)
    pd.testing.assert_frame_equal(trials, pd.read_parquet(run_dir / "trials.parquet"), check_exact=True)
    assert s == summary and "protocol" in config
    # the old path (protocol rebuilt from the config) finds the same probes in the same partitions
    _, legacy, _, _ = load_legacy_run(run_dir)
    assert list(legacy["sample_id"].astype(str)) == list(probes["sample_id"].astype(str))
    assert list(legacy["partition"]) == list(probes["partition"])


def test_old_run_directory_still_loads(smoke_run, tmp_path):
    from harness.export.reselect import load_run, reselect

    _, run_dir, summary = smoke_run
    old = tmp_path / "old"
    old.mkdir()
    for f in ("scores.csv", "trials.csv", "summary.json", "operating_point.json"):
        shutil.copy(run_dir / f, old / f)
    # today's columns only (no landmarks): an old scores.csv
    csv = pd.read_csv(old / "scores.csv", dtype=str, keep_default_na=False)
    csv.drop(columns=list(rundir.LANDMARK_COLUMNS)).to_csv(old / "scores.csv", index=False)
    assert not rundir.has_manifest(old)
    trials, probes, s, _ = load_run(old)
    new_trials, new_probes, _, _ = load_run(run_dir)
    assert np.array_equal(trials["match_score"].to_numpy(), new_trials["match_score"].to_numpy())
    assert list(probes["sample_id"].astype(str)) == list(new_probes["sample_id"].astype(str))
    assert np.array_equal(probes["pad_score"].to_numpy(float), new_probes["pad_score"].to_numpy(float), equal_nan=True)
    a, b = reselect(old, "eer"), reselect(run_dir, "eer")
    assert (a.op["t_match"], a.op["t_pad"]) == (b.op["t_match"], b.op["t_pad"])


def test_gallery_crops_come_from_the_run_directory(smoke_run, monkeypatch):
    """No score cache and no detector: every gallery crop is warped from the run directory's landmarks."""
    import harness.faces.detect as detect
    from harness.report.__main__ import main

    tmp, run_dir, _ = smoke_run
    shutil.rmtree(tmp / "results" / "cache", ignore_errors=True)

    def no_detector(*a, **k):
        raise AssertionError("the gallery must not re-detect")

    monkeypatch.setattr(detect, "build_detector", no_detector)
    monkeypatch.setenv("HARNESS_RESULTS", str(tmp / "results"))
    before = json.loads((run_dir / "report.json").read_text())["gallery"]
    assert main([str(run_dir)]) == 0
    gallery = json.loads((run_dir / "report.json").read_text())["gallery"]
    assert gallery and all("crop_hw" in g and "not_shown" not in g for g in gallery), gallery
    assert gallery == before  # the same crops as the run itself showed
