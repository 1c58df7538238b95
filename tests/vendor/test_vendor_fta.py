"""Failures to acquire in imported score files: a real run's scores written as a vendor's CSV with some probes
turned into ``status=fta`` rows (empty score; "no face found") give the accounting, thresholds and every metric of
that run's own tables with the same probes failed (status ``fta``, no PAD score, no comparison), computed by the
harness's own threshold and metrics functions: the vendor's failures are counted exactly as the harness counts a
sample in which its detector found no face (ISO/IEC 19795-1 FTA, ISO/IEC 30107-3 non-response)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness import rundir
from harness.partition_metrics import partition_metrics
from harness.policy.select import choose_thresholds
from tests.vendor.writers import numbers, run_scores, run_tables, write_csv

pytestmark = pytest.mark.slow


def _failed_ids(probes) -> list[str]:
    """One bona fide probe per partition and one attack of eval (first by id): each person keeps other probes."""
    p = probes[probes["status"] == "scored"].sort_values("sample_id")
    ids = [p[(p["partition"] == part) & (p["label"] == "bona_fide")]["sample_id"].iloc[0] for part in ("dev", "eval")]
    ids.append(p[(p["partition"] == "eval") & (p["label"] == "attack")]["sample_id"].iloc[0])
    return [str(i) for i in ids]


def _with_failures(run_dir, failed: list[str]):
    """(trials, probes, op) of the run's own tables with ``failed`` probes failed to acquire, thresholds chosen by
    the run's policy (:func:`harness.policy.select.choose_thresholds`)."""
    probes, trials = run_tables(run_dir)
    hit = probes["sample_id"].isin(failed)
    probes = probes.copy()
    probes.loc[hit, "status"], probes.loc[hit, "pad_score"] = "fta", np.nan
    trials = trials[~trials["probe_id"].isin(failed)].reset_index(drop=True)
    cfg = rundir.read_config(run_dir)
    op = choose_thresholds(trials, probes, cfg["policy"], standards=cfg.get("standards"))
    return trials, probes, op


def test_vendor_failures_to_acquire_equal_the_run_with_those_probes_failed(smoke_run, tmp_path):
    run_dir, ref = smoke_run
    probes, trials = run_tables(run_dir)
    failed = _failed_ids(probes)
    path = write_csv(run_dir, tmp_path / "acme_fta.csv", fta={sid: "no face found" for sid in failed})
    got = run_scores(tmp_path, path, "experiment=vendor_scores", "dataset.vendor.name=acme")
    # conf/experiment/vendor_scores.yaml: the run is named after the vendor (its folder and summary)
    assert got["run"]["name"] == "scores-acme" and "-scores-acme-" in Path(got["run_dir"]).name

    acc, ref_acc = got["accounting"], ref["accounting"]
    assert acc["fta"] == ref_acc["fta"] + len(failed) == acc["imported_fta_samples"]
    assert acc["scored"] == ref_acc["probe_samples"] - ref_acc["fta"] - len(failed)
    assert acc["input_samples"] == acc["scored"] + acc["fta"] and acc["probe_samples"] == ref_acc["probe_samples"]
    n_comp = int(trials["probe_id"].isin(failed).sum())
    assert acc["imported_fta_comparison_rows"] == n_comp > 0
    scores = rundir.read_table(got["run_dir"], "scores").set_index("sample_id")
    assert (scores.loc[failed, "status"] == "fta").all() and (scores.loc[failed, "reason"] == "no face found").all()

    e_trials, e_probes, op = _with_failures(run_dir, failed)
    expected = partition_metrics(e_trials, e_probes, op)
    assert (got["operating_point"]["t_match"], got["operating_point"]["t_pad"]) == (op["t_match"], op["t_pad"])
    for part in ("dev", "eval"):
        for block in ("verif", "pad", "system"):
            assert numbers(got["metrics"][part][block]) == numbers(expected[part][block]), (part, block)
        # the failures are where the harness's own FTA accounting puts them: 1 bona fide probe per partition
        fta = got["metrics"][part]["verif"]["fta"]
        assert (fta["k"], fta["n"]) == (1, int(((e_probes["partition"] == part) & (e_probes["label"] == "bona_fide")).sum()))
    at = got["metrics"]["eval"]["pad"]["non_response"]  # ISO/IEC 30107-3 non-response, per class
    assert at["attack"]["k"] == 1 and at["bona_fide"]["k"] == 1
