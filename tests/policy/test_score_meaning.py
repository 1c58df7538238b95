"""What a score means: every model states its score scale, the export carries the scores observed per class on eval
(schema 3.1 ``observed_scores``), and the runtime keeps two ranges apart - a score outside the model's POSSIBLE range
is refused, a score outside the range OBSERVED in evaluation is decided but flagged "no evidence at this score" and
its evidence never reads as an observed "0/n = 0%". A schema 3.0 file still loads, flagged "observed score range
unknown"."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from harness.export.lookup import observed_score_ranges
from harness.export.schema import SCHEMA_VERSION
from harness.runtime import (OperatingPointRefused, content_sha256, load, serialize, sign_document, signing_key,
                             verify_document)

from tests.conftest import run_smoke

from ._synth import random_tables

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------- synthetic (no data)


def test_observed_score_ranges_per_class_on_the_partition():
    t, p = random_tables(3)
    obs = observed_score_ranges(t, p, "eval")
    te = t[t["partition"] == "eval"]
    pe = p[(p["partition"] == "eval") & (p["status"] == "scored")]
    want_m = {k: te.loc[te["kind"] == k, "match_score"] for k in ("genuine", "impostor")}
    want_m |= {f"attack:{sp}": g["match_score"] for sp, g in te[te["kind"] == "attack"].groupby("species")}
    want_p = {"bona_fide": pe.loc[pe["label"] == "bona_fide", "pad_score"]}
    want_p |= {f"attack:{sp}": g["pad_score"] for sp, g in pe[pe["label"] == "attack"].groupby("species")}
    assert obs["partition"] == "eval"
    for got, want in ((obs["match"], want_m), (obs["pad"], want_p)):
        assert set(got) == set(want)
        for cls, v in want.items():
            assert got[cls] == {"min": float(v.min()), "max": float(v.max()), "n": int(v.size)}
    # dev is its own range; non-finite scores are not observations
    t2 = t.copy()
    t2.loc[t2.index[(t2["partition"] == "dev") & (t2["kind"] == "genuine")][0], "match_score"] = np.nan
    dev = observed_score_ranges(t2, p, "dev")
    n_dev_gen = int(((t["partition"] == "dev") & (t["kind"] == "genuine")).sum())
    assert dev["partition"] == "dev" and dev["match"]["genuine"]["n"] == n_dev_gen - 1


def test_every_model_class_states_its_score_scale():
    from harness.models import base, dlib_resnet, facenet, minifasnet, onnx_models, tflite_models

    classes = [dlib_resnet.DlibResNet, facenet.FaceNet, onnx_models.FacepluginFeature,
               tflite_models.MobileFaceNetTFLite, onnx_models.FacepluginLiveness, tflite_models.FaceAntiSpoofingTFLite,
               minifasnet.MiniFASNetPAD, minifasnet.MiniFASNetEnsemble]
    for c in classes:
        generic = base.Embedder.score_scale if issubclass(c, base.Embedder) else base.PADModel.score_scale
        assert isinstance(c.score_scale, str) and c.score_scale and c.score_scale != generic, c.__name__
    assert "Euclidean distance" in dlib_resnet.DlibResNet.score_scale and "0.6" in dlib_resnet.DlibResNet.score_scale
    for c in (facenet.FaceNet, onnx_models.FacepluginFeature, tflite_models.MobileFaceNetTFLite):
        assert c.metric == "cosine" and "cosine similarity" in c.score_scale and "[-1, 1]" in c.score_scale
    for c in (minifasnet.MiniFASNetPAD, minifasnet.MiniFASNetEnsemble, onnx_models.FacepluginLiveness):
        assert c.score_range == (0.0, 1.0) and "softmax probabilit" in c.score_scale and "[0, 1]" in c.score_scale


# ------------------------------------------------------------------------------------------------ a real export


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, shared):
    run_dir, summary, _ = run_smoke(tmp_path_factory.mktemp("meaning"))
    doc = json.loads((run_dir / "operating_point.json").read_text())
    return run_dir, summary, doc


def _load(path: Path):
    return load(path, embedder_sha256=None, pad_sha256=None, allow_unverified_models=True, allow_not_deployable=True)


def _decide_cli(op_path: Path, match: float, pad: float, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", "decide", str(op_path), "--unverified-models",
                           "--allow-not-deployable", "--match", repr(match), "--pad", repr(pad), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.shared
def test_observed_scores_match_the_run_tables(smoke_run):
    run_dir, summary, doc = smoke_run
    assert doc["schema_version"] == SCHEMA_VERSION == "3.3"
    obs = doc["observed_scores"]
    assert obs["partition"] == "eval"
    # match scores: trials.csv, eval partition, per kind (attacks per species)
    t = pd.read_csv(run_dir / "trials.csv", dtype=str, keep_default_na=False)
    t = t[t["partition"] == "eval"]
    t["match_score"] = t["match_score"].map(float)
    want = {k: t.loc[t["kind"] == k, "match_score"] for k in ("genuine", "impostor")}
    want |= {f"attack:{sp}": g["match_score"] for sp, g in t[t["kind"] == "attack"].groupby("species")}
    assert set(obs["match"]) == set(want)
    for cls, v in want.items():
        assert obs["match"][cls] == {"min": min(v), "max": max(v), "n": len(v)}, cls
    # PAD scores: scores.csv, scored probe samples of the eval subjects (enrolment = first k bona fide by sample_id)
    k = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())["protocol"]["enrol"]["k"]
    s = pd.read_csv(run_dir / "scores.csv", dtype=str, keep_default_na=False)
    enrol = set(s[s["label"] == "bona_fide"].sort_values("sample_id").groupby("subject").head(k)["sample_id"])
    s = s[s["subject"].isin(summary["dataset"]["partitions"]["eval"]) & (s["status"] == "scored")
          & ~s["sample_id"].isin(enrol)]
    s["pad_score"] = s["pad_score"].map(float)
    want = {"bona_fide": s.loc[s["label"] == "bona_fide", "pad_score"]}
    want |= {f"attack:{sp}": g["pad_score"] for sp, g in s[s["label"] == "attack"].groupby("species")}
    assert set(obs["pad"]) == set(want)
    for cls, v in want.items():
        assert obs["pad"][cls] == {"min": min(v), "max": max(v), "n": len(v)}, cls
    # what the scores are, in words, travels with the export
    from harness.models.dlib_resnet import DlibResNet
    from harness.models.minifasnet import MiniFASNetPAD

    assert doc["models"]["embedder"]["score_scale"] == DlibResNet.score_scale
    assert doc["models"]["pad"]["score_scale"] == MiniFASNetPAD.score_scale


@pytest.mark.shared
def test_cli_flags_a_score_above_every_observed_score_and_never_reports_0_of_n(smoke_run):
    run_dir, _, doc = smoke_run
    obs, n_imp = doc["observed_scores"], doc["lookup"]["match"]["n_impostor"]
    m_max = max(r["max"] for r in obs["match"].values())
    pad_in = obs["pad"]["bona_fide"]["max"]  # inside the observed PAD range
    op_path = run_dir / "operating_point.json"
    # 0.72: the "72% similarity" of the audit (for dlib it is even outside the possible range: refused, still flagged)
    # and a score inside the possible range (<= 0) but above every observed one: decided by the thresholds, flagged
    for m in (0.72, m_max / 2):
        r = _decide_cli(op_path, m, pad_in)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0] in ("accept", "review", "reject")
        assert any("no evidence at this score" in ln for ln in lines), r.stdout
        assert f"0/{n_imp}" not in r.stdout, r.stdout
        assert f"above every score observed in evaluation (max {m_max:.6g} over " in r.stdout
    r = _decide_cli(op_path, m_max / 2, pad_in, "--json")
    d = json.loads(r.stdout)
    assert d["outcome"] == "accept" and len(d["flags"]) == 1 and d["flags"][0].startswith("no evidence at this score")
    assert d["flags"][0] in d["reason"] and d["flags"][0] in d["evidence"]


@pytest.mark.shared
def test_in_range_scores_are_not_flagged_and_possible_range_is_still_refused(smoke_run):
    run_dir, _, doc = smoke_run
    op = _load(run_dir / "operating_point.json")
    obs = doc["observed_scores"]
    gen, bona = obs["match"]["genuine"], obs["pad"]["bona_fide"]
    d = op.decide(gen["max"], bona["min"])  # both ends are observed scores: inside
    assert d.flags == () and d.to_dict()["flags"] == [] and "flagged" not in d.reason
    assert "no evidence" not in d.evidence and "FMR " in d.evidence
    # outside the model's POSSIBLE range: refused (reject), whatever the observed range says
    for m, p, what in ((0.72, bona["min"], "match"), (gen["max"], 1.5, "PAD")):
        d = op.decide(m, p)
        assert d.outcome == "reject" and "refused input" in d.reason
        assert f"{what} score" in d.reason and "outside the model's declared score range" in d.reason
    # below every observed score: decided (rejected by the threshold), flagged, no observed rate quoted
    m_min = min(r["min"] for r in obs["match"].values())
    d = op.decide(m_min - 0.5, bona["max"])
    assert d.outcome == "reject" and "not the enrolled person" in d.reason
    assert d.flags and "below every score observed in evaluation" in d.flags[0]
    assert f"{doc['lookup']['match']['n_impostor']}/{doc['lookup']['match']['n_impostor']}" not in d.evidence


@pytest.mark.shared
def test_schema_3_0_document_still_loads_and_is_flagged_unknown(smoke_run, tmp_path):
    run_dir, _, doc = smoke_run
    old = {k: v for k, v in doc.items() if k not in ("observed_scores", "presentation", "flow", "signature",
                                                     "content_sha256")}
    old["schema_version"] = "3.0"
    old["content_sha256"] = content_sha256(old)
    old = sign_document(old, signing_key())
    (tmp_path / "op30.json").write_text(serialize(old))
    op = _load(tmp_path / "op30.json")
    gen, bona = doc["observed_scores"]["match"]["genuine"], doc["observed_scores"]["pad"]["bona_fide"]
    d = op.decide(gen["max"], bona["max"])
    assert d.flags == ("observed score range unknown (schema 3.0 export)",) and d.flags[0] in d.reason
    assert d.outcome == _load(run_dir / "operating_point.json").decide(gen["max"], bona["max"]).outcome
    # beyond the ends of its lookup table (the extreme genuine / impostor scores): flagged, no "0/n"
    top = doc["lookup"]["match"]["score"][-1]
    d = op.decide(top / 2, bona["max"])
    assert len(d.flags) == 2 and "no evidence at this score" in d.flags[1]
    assert f"0/{doc['lookup']['match']['n_impostor']}" not in d.evidence
    # 3.0 never carried observed_scores; 3.1 always does
    for version, drop in (("3.0", False), ("3.1", True)):
        bad = {k: v for k, v in doc.items() if k not in ("signature", "content_sha256", "presentation", "flow")
               and not (drop and k == "observed_scores")} | {"schema_version": version}
        bad["content_sha256"] = content_sha256(bad)
        with pytest.raises(OperatingPointRefused, match="observed_scores"):
            verify_document(serialize(bad))
