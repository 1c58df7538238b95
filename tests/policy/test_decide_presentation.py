"""Schema 3.2 and ``OperatingPoint.decide_presentation``: a presentation's frame PAD scores aggregated by the export's
own rule (checked against numpy / scipy), failures to acquire, refusals of 3.1 exports and of bad or tampered 3.2
blocks, the runtime vendored alone, and (slow) every offline presentation decision of a real run reproduced."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from harness import aggregation
from harness.decision_rule import decide_arrays
from harness.export.mlflow_model import VENDORED_RUNTIME
from harness.export.operating_point import build_operating_point, flow_block, presentation_block, write_operating_point
from harness.export.schema import AGGREGATION_RULES
from harness.opdoc import check_presentation_blocks
from harness.policy import choose_thresholds
from harness.runtime import (OperatingPoint, OperatingPointRefused, content_sha256, decide_presentation, serialize,
                             sign_document, signing_key)
from harness.runtime import load as strict_load

from ._synth import random_tables

ROOT = Path(__file__).resolve().parents[2]
EMB, PAD = "a" * 64, "b" * 64
MODELS = {"embedder": {"name": "emb", "weights_sha256": EMB, "preprocessing": "150x150 chip"},
          "pad": {"name": "pad", "weights_sha256": PAD, "preprocessing": "80x80 crop"}}
DATASET = {"name": "synthetic", "manifest_sha256": "c" * 64, "samples": 1000, "subjects": 20}
load = partial(strict_load, embedder_sha256=EMB, pad_sha256=PAD, allow_not_deployable=True)

#: every rule with a parameter that makes it differ from its neighbours
SPECS = [{"rule": "mean"}, {"rule": "median"}, {"rule": "min"}, {"rule": "max"}, {"rule": "trimmed_mean", "trim": 0.2},
         {"rule": "trimmed_mean", "trim": 0.0}, {"rule": "quantile", "q": 0.3}, {"rule": "quantile", "q": 1.0},
         {"rule": "first_n_mean", "n": 3}, {"rule": "prob_weighted_mean"}]


def reference(spec: dict, s: np.ndarray, w: np.ndarray) -> float:
    """The presentation score by numpy / scipy (independent of harness.aggregation)."""
    a = aggregation.DEFAULTS | spec
    return float({"mean": lambda: np.mean(s), "median": lambda: np.median(s), "min": lambda: np.min(s),
                  "max": lambda: np.max(s), "trimmed_mean": lambda: stats.trim_mean(s, a["trim"]),
                  "quantile": lambda: np.quantile(s, a["q"]), "first_n_mean": lambda: np.mean(s[:a["n"]]),
                  "prob_weighted_mean": lambda: np.average(s, weights=w)}[a["rule"]]())


def resign(doc: dict, **changes) -> dict:
    """``doc`` with ``changes`` (None: drop the key), content hash recomputed and signed again with the test key."""
    d = {k: v for k, v in doc.items() if k not in ("signature", "content_sha256")}
    for k, v in changes.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    d["content_sha256"] = content_sha256(d)
    return sign_document(d, signing_key())


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    t, p = random_tables(0)
    op = choose_thresholds(t, p, {"name": "bands", "review_budget": 0.1})
    config = {"presentation": {"aggregation": {"rule": "trimmed_mean", "trim": 0.2}, "template": "best_quality",
                               "grouping": "NUAA: subject + label + glasses + pose code + session"},
              "flow": {"max_attempts": [1, 3], "attempt": "window", "window_frames": 8, "review_after_failures": 2,
                       "review_on_band": True, "on_exhausted": "review", "fps": 30, "enabled": True}}
    doc = build_operating_point(config=config, models=MODELS, op=op, dataset=DATASET, trials=t, probes=p,
                                key=signing_key())
    path = write_operating_point(doc, tmp_path_factory.mktemp("pres") / "op.json")
    return path, doc


def test_export_3_2_carries_presentation_and_flow_from_the_config(exported):
    path, doc = exported
    assert doc["schema_version"] == "3.3"
    assert doc["presentation"] == {"aggregation": {"rule": "trimmed_mean", "trim": 0.2, "q": 0.5, "n": 3},
                                   "template": "best_quality", "unit": "presentation",
                                   "grouping": "NUAA: subject + label + glasses + pose code + session"}
    assert doc["flow"] == {"max_attempts": 3, "attempt": "window", "window_frames": 8, "review_after_failures": 2,
                           "review_on_band": True, "on_exhausted": "review"}
    assert load(path).doc["presentation"] == doc["presentation"]
    assert presentation_block(None) == {"aggregation": {"rule": "mean", "trim": 0.1, "q": 0.5, "n": 3},
                                        "template": "mean", "grouping": "one presentation per sample",
                                        "unit": "presentation"}
    assert flow_block(None)["max_attempts"] == 1 and flow_block(None)["on_exhausted"] == "reject"
    assert tuple(AGGREGATION_RULES) == aggregation.RULES


@pytest.mark.parametrize("group, bad, key", [
    ("presentation", {"aggregation": {"rule": "bogus"}}, "presentation.aggregation.rule"),
    ("presentation", {"aggregation": {"trim": 0.7}}, "presentation.aggregation.trim"),
    ("presentation", {"template": "median"}, "presentation.template"),
    ("flow", {"attempt": "burst"}, "flow.attempt"),
    ("flow", {"max_attempts": 0}, "flow.max_attempts"),
    ("flow", {"on_exhausted": "accept"}, "flow.on_exhausted"),
])
def test_exporter_refuses_a_bad_config_value_naming_the_key(group, bad, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        (presentation_block if group == "presentation" else flow_block)(bad)


def test_every_rule_matches_numpy_scipy_and_the_offline_decision(exported):
    _, doc = exported
    bands = doc["thresholds"]["bands"]
    rng = np.random.default_rng(20261206)
    lo, hi = bands["pad"]["reject_below"] - 0.3, bands["pad"]["accept_at_or_above"] + 0.3
    mlo, mhi = bands["match"]["reject_below"] - 0.3, bands["match"]["accept_at_or_above"] + 0.3
    for spec in SPECS:
        op = OperatingPoint(dict(doc, presentation=dict(doc["presentation"],
                                                        aggregation=aggregation.check_aggregation(spec))))
        outcomes = set()
        for _ in range(60):
            n = int(rng.integers(1, 25))
            s = rng.uniform(lo, hi, n)
            w = rng.uniform(0.05, 1.0, n)
            frames = [float(x) for x in s]
            for i in rng.choice(n, size=int(rng.integers(0, n)), replace=False):  # no face / not finite
                frames[i] = None if i % 2 else math.nan
            keep = np.array([f is not None and math.isfinite(f) for f in frames])
            m = float(rng.uniform(mlo, mhi))
            d = op.decide_presentation(frames, qualities=list(w), match_score=m)
            if not keep.any():
                assert d.outcome == "reject" and d.pad_score is None and d.frames_used == 0
                continue
            ref = reference(spec, s[keep], w[keep])
            assert abs(d.pad_score - ref) <= 1e-12, (spec, frames)
            assert d.outcome == decide_arrays([m], [ref], bands)[0] == op.decide(m, d.pad_score).outcome
            assert d.aggregation_rule == spec["rule"] and d.frames_total == n
            assert d.frames_used == (min(3, int(keep.sum())) if spec["rule"] == "first_n_mean" else int(keep.sum()))
            outcomes.add(d.outcome)
        assert outcomes == {"accept", "review", "reject"}, spec


def test_no_scored_frame_is_a_failure_to_acquire_and_qualities_must_pair(exported):
    path, doc = exported
    op = load(path)
    d = op.decide_presentation([None, math.nan, None, float("inf"), None], match_score=doc["thresholds"]["t_match"])
    assert d.outcome == "reject" and d.reason == "failure to acquire: no face in any of the 5 frames"
    assert (d.pad_score, d.frames_used, d.frames_total, d.aggregation_rule) == (None, 0, 5, "trimmed_mean")
    assert d.to_dict()["frames_total"] == 5
    with pytest.raises(ValueError, match="3 frame scores but 2 qualities"):
        op.decide_presentation([0.5, 0.6, 0.7], qualities=[0.9, 0.9], match_score=0.0)
    # a missing match score is decided as decide() decides it: reject, refused input
    t_pad = doc["thresholds"]["t_pad"]
    d = op.decide_presentation([t_pad + 0.1] * 3, match_score=None)
    assert d.outcome == "reject" and "no match score" in d.reason and d.frames_used == 3
    # numpy scalars are scores like floats; a plain decision serialises as before (no presentation keys)
    assert op.decide_presentation(np.float32([0.25, 0.5]), match_score=0.0).frames_used == 2
    assert set(op.decide(0.0, 0.5).to_dict()) == {"outcome", "reason", "match_score", "pad_score", "evidence", "flags"}
    assert decide_presentation(op, [t_pad + 0.1], None, doc["thresholds"]["t_match"]).outcome == "accept"


def test_a_3_1_export_refuses_decide_presentation_in_one_line(exported, tmp_path):
    _, doc = exported
    old = resign(doc, schema_version="3.1", presentation=None, flow=None)
    (tmp_path / "op31.json").write_text(serialize(old))
    op = load(tmp_path / "op31.json")
    assert op.decide(doc["thresholds"]["t_match"], doc["thresholds"]["t_pad"]).outcome == "accept"
    with pytest.raises(OperatingPointRefused, match="no presentation aggregation rule.*re-export.*3.2") as e:
        op.decide_presentation([0.5, 0.6], match_score=0.0)
    assert "\n" not in str(e.value)
    # a 3.1 file carrying the 3.2 blocks is not what any exporter wrote
    with pytest.raises(OperatingPointRefused, match="presentation"):
        (tmp_path / "x.json").write_text(serialize(resign(doc, schema_version="3.1", flow=None)))
        load(tmp_path / "x.json")


def _bad_docs(doc: dict) -> list[tuple[str, dict]]:
    """(key the refusal must name, a resigned 3.2 doc with that key bad)."""
    p = doc["presentation"]
    agg = lambda **kw: dict(p, aggregation=dict(p["aggregation"], **kw))  # noqa: E731
    return [
        ("presentation.aggregation.rule", resign(doc, presentation=agg(rule="bogus"))),
        ("presentation.aggregation.trim", resign(doc, presentation=agg(trim=0.7))),
        ("presentation.aggregation.q", resign(doc, presentation=agg(q=1.5))),
        ("presentation.aggregation.n", resign(doc, presentation=agg(n=0))),
        ("presentation", resign(doc, presentation=None)),
        ("flow", resign(doc, flow=None)),
        ("presentation.unit", resign(doc, presentation=dict(p, unit="frame"))),
        ("flow.on_exhausted", resign(doc, flow=dict(doc["flow"], on_exhausted="accept"))),
        ("flow.review_on_band", resign(doc, flow=dict(doc["flow"], review_on_band=1))),
    ]


def test_bad_3_2_blocks_are_refused_at_load_naming_the_key(exported, tmp_path):
    _, doc = exported
    for key, bad in _bad_docs(doc):
        (tmp_path / "bad.json").write_text(serialize(bad))
        pattern = key.replace(".", "[./]")  # jsonschema names the path with "/", the structural checks with "."
        with pytest.raises(OperatingPointRefused, match=pattern) as e:
            load(tmp_path / "bad.json")
        assert "\n" not in str(e.value), key
        # the standard-library checks alone (a vendored runtime without jsonschema) refuse it too
        with pytest.raises(OperatingPointRefused, match=key.replace(".", r"\.")):
            check_presentation_blocks(bad)
    with pytest.raises(OperatingPointRefused, match=r"presentation\.aggregation\.rule is null"):
        check_presentation_blocks(dict(doc, presentation=dict(doc["presentation"], aggregation=dict(
            doc["presentation"]["aggregation"], rule=None))))
    check_presentation_blocks(doc)


def test_the_signature_covers_the_aggregation_rule(exported, tmp_path):
    path, doc = exported
    forged = json.loads(path.read_text())
    forged["presentation"]["aggregation"]["rule"] = "max"  # the most lenient rule for attacks
    (tmp_path / "f.json").write_text(serialize(forged))
    with pytest.raises(OperatingPointRefused, match="checksum mismatch"):
        load(tmp_path / "f.json")
    forged["content_sha256"] = content_sha256(forged)  # a forger recomputes the hash; the signature still fails
    (tmp_path / "f.json").write_text(serialize(forged))
    with pytest.raises(OperatingPointRefused, match="bad signature"):
        load(tmp_path / "f.json")


VENDORED = ("runtime.py", "opdoc.py", "aggregation.py", "runtime_presentation.py")
assert set(VENDORED) == set(VENDORED_RUNTIME)  # what the MLflow model ships in its code_paths
STANDALONE = """
import json, sys
sys.modules["harness"] = None  # the harness is installed here; the vendored copy must not reach it
sys.path.insert(0, sys.argv[1])
import runtime
op = runtime.load(sys.argv[2], embedder_sha256="a" * 64, pad_sha256="b" * 64, allow_not_deployable=True)
cases = json.loads(sys.argv[3])
print(json.dumps([op.decide_presentation(f, q, m).to_dict() for f, q, m in cases]))
print(runtime.__file__, runtime.decide_presentation.__module__)
"""


def test_runtime_vendored_alone_decides_presentations(exported, tmp_path):
    path, doc = exported
    vend = tmp_path / "vendored"
    vend.mkdir()
    for name in VENDORED:
        shutil.copy(ROOT / "harness" / name, vend / name)
    t_m, t_p = doc["thresholds"]["t_match"], doc["thresholds"]["t_pad"]
    cases = [([t_p + 0.2, None, t_p + 0.1, t_p - 0.05, t_p + 0.3], [0.9, 0.1, 0.8, 0.7, 0.95], t_m + 0.1),
             ([None, None], None, t_m), ([t_p - 1.0] * 4, None, t_m + 1.0)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", STANDALONE, str(vend), str(path), json.dumps(cases)], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    out, where = r.stdout.strip().splitlines()
    assert where.split()[0] == str(vend / "runtime.py") and where.split()[1] == "runtime_presentation"
    here = load(path)
    assert json.loads(out) == [here.decide_presentation(f, q, m).to_dict() for f, q, m in cases]
    assert [d["outcome"] for d in json.loads(out)] == ["accept", "reject", "reject"]


# ------------------------------------------------------------------------------------------------ a real run


@pytest.mark.slow
@pytest.mark.shared
def test_runtime_reproduces_every_offline_presentation_decision(tmp_path, shared):
    from harness.rundir import read_table
    from tests.conftest import run_smoke

    run_dir, _, _ = run_smoke(tmp_path)
    op_path = run_dir / "operating_point.json"
    doc = json.loads(op_path.read_text())
    assert doc["schema_version"] == "3.3"
    op = OperatingPoint(doc)  # verification has its own tests; this one is about the decisions
    scores = read_table(run_dir, "scores")
    pres = read_table(run_dir, "presentations").set_index("sample_id")
    trials = read_table(run_dir, "presentation_trials")
    # a probe presentation is its probe frames (frames of the same group used for enrolment are not in it)
    probe_frames = set(read_table(run_dir, "probes")["sample_id"])
    scores = scores[scores["sample_id"].isin(probe_frames) & scores["presentation"].notna()]
    frames = {}
    for pid, g in scores.groupby("presentation", sort=False):
        g = g.sort_values("capture_order", kind="stable")
        pad = [float(p) if st == "scored" else None for p, st in zip(g["pad_score"], g["status"])]
        frames[pid] = (pad, [float(q) for q in g["det_prob"].fillna(0.0)])
        if "n_frames" in pres.columns and pid in pres.index:
            assert len(pad) == pres.loc[pid, "n_frames"], pid
    assert len(trials) and set(trials["kind"]) >= {"genuine", "impostor", "attack"}
    bands = doc["thresholds"]["bands"]
    for t in trials.itertuples(index=False):
        pad, qual = frames[t.probe_id]
        agg = pres.loc[t.probe_id, "pad_score"]
        offline = decide_arrays([t.match_score], [agg], bands)[0]
        d = op.decide_presentation(pad, qual, match_score=None if math.isnan(t.match_score) else t.match_score)
        assert d.outcome == offline, (t, d.reason)
        if math.isnan(agg):
            assert d.pad_score is None, t
        else:
            assert abs(d.pad_score - agg) <= 1e-12 and abs(t.pad_score - agg) <= 1e-12, t
