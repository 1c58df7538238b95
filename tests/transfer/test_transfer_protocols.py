"""The transfer presets on real runs of generated database trees (real NUAA faces, real MSU bona fide videos):
OCIM leave-one-dataset-out over OULU-NPU, CASIA-FASD, Replay-Attack and MSU-MFSD runs, and leave-one-attack-species-
out on the CASIA-FASD run (cut photo, printed photo, video replay), each one command and one table, with the
transferred rates recounted by hand on the target's tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.transfer import run_transfer
from harness.transfer_eval import HONEST, ORACLE, choose
from harness.transfer_runs import load_run, rows_of

pytestmark = [pytest.mark.shared, pytest.mark.slow]


def _att_bona(run_dir, part: str):
    """(attack probes, bona fide probes) scored, of ``part`` (``all``: every partition), read by hand."""
    p = pd.read_parquet(run_dir / "probes.parquet")
    p = p[p["status"] == "scored"]
    if part != "all":
        p = p[p["partition"] == part]
    return p[p["label"] == "attack"], p[p["label"] == "bona_fide"]


def test_ocim_leave_one_dataset_out_is_one_command_and_one_table(tree_runs, tmp_path):
    """Four folds (OCI -> M, ...): thresholds on three databases pooled, rates on the whole fourth (own thresholds
    labelled "oracle, same data"); APCER per species and BPCER recounted with numpy on the held-out run."""
    runs = ",".join(str(tree_runs[n]) for n in ("msu_mfsd", "oulu_npu", "replay_attack", "casia_fasd"))
    doc = run_transfer(["preset=ocim", f"runs={runs}", "tracking=none", f"out={tmp_path}"])
    assert [f["name"] for f in doc["folds"]] == ["CIM -> O", "OIM -> C", "OCM -> I", "OCI -> M"]
    letters = {"O": "oulu_npu", "C": "casia_fasd", "I": "replay_attack", "M": "msu_mfsd"}
    for fold in doc["folds"]:
        (target,) = fold["targets"]
        assert target["own"]["label"] in (ORACLE, "no own thresholds: the policy can choose neither threshold on "
                                                  "the target")
        assert {r["name"] for r in fold["selection"]["runs"]} == set(letters) - {target["name"]}
        t_pad = fold["operating_point"]["t_pad"]
        att, bona = _att_bona(tree_runs[letters[target["name"]]], "all")
        tr = target["transferred"]["pad"]
        assert (tr["bpcer"]["k"], tr["bpcer"]["n"]) == (int(np.sum(bona["pad_score"] < t_pad)), len(bona))
        for sp, g in att.groupby("species"):
            r = tr["apcer_per_species"][sp]
            assert (r["k"], r["n"], r["n_subjects"]) == (int(np.sum(g["pad_score"] >= t_pad)), len(g),
                                                         g["subject"].nunique())
    table = pd.read_csv(tmp_path / "transfer_table.csv")
    assert set(table["fold"]) == {f["name"] for f in doc["folds"]} and set(table["target"]) == set(letters)
    assert "OCIM" in (tmp_path / "transfer.md").read_text()


def test_leave_one_species_out_chooses_without_the_species_and_reports_it(tree_runs, tmp_path):
    """Per species S of the CASIA run: t_pad is the policy's choice on dev with S's attacks removed by hand;
    APCER on S on eval is recounted with numpy; the comparison chose on the same dev with S (not an oracle)."""
    run_dir = tree_runs["casia_fasd"]
    doc = run_transfer(["preset=leave_one_species_out", f"run={run_dir}", "tracking=none", f"out={tmp_path}"])
    species = sorted(_att_bona(run_dir, "all")[0]["species"].unique())
    assert len(species) >= 2 and [f["selection"]["species_left_out"] for f in doc["folds"]] == [[s] for s in species]
    run = load_run(run_dir)
    trials, probes = rows_of(run, "dev", "dev")
    att_eval, _ = _att_bona(run_dir, "eval")
    for fold, sp in zip(doc["folds"], species):
        keep_t = ~((trials["kind"] == "attack") & (trials["species"] == sp))
        keep_p = ~((probes["label"] == "attack") & (probes["species"] == sp))
        ref = choose(trials[keep_t], probes[keep_p], run.config["policy"], "reference")
        t_pad = fold["operating_point"]["t_pad"]
        assert t_pad == ref["t_pad"]
        (target,) = fold["targets"]
        assert target["own"]["label"] == HONEST and target["focus_species"] == [sp]
        g = att_eval[att_eval["species"] == sp]
        r = target["transferred"]["pad"]["apcer_per_species"][sp]
        assert (r["k"], r["n"]) == (int(np.sum(g["pad_score"] >= t_pad)), len(g))
    assert len(pd.read_csv(tmp_path / "transfer_table.csv")["fold"].unique()) == len(species)
