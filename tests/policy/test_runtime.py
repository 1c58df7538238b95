"""Runtime: loads and verifies an export, refuses tampered / mismatched files, replays the offline decisions."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.export.operating_point import build_operating_point, write_operating_point
from harness.policy import choose_thresholds
from harness.policy.data import score_sets
from harness.policy.report import decide_arrays
from functools import partial

from harness.runtime import OperatingPointRefused, content_sha256, serialize, signing_key
from harness.runtime import load as _strict_load

# these tests are about verification and decisions; deployability has its own tests (test_signing.py)
load = partial(_strict_load, allow_not_deployable=True)

from ._synth import random_tables

ROOT = Path(__file__).resolve().parents[2]
EMB, PAD = "a" * 64, "b" * 64
MODELS = {"embedder": {"name": "emb", "weights_sha256": EMB, "preprocessing": "150x150 chip"},
          "pad": {"name": "pad", "weights_sha256": PAD, "preprocessing": "80x80 crop"}}
DATASET = {"name": "synthetic", "manifest_sha256": "c" * 64, "samples": 1000, "subjects": 20}


def export(tmp_path: Path, policy: dict, seed: int = 0, name: str = "op.json") -> tuple[Path, dict, tuple]:
    t, p = random_tables(seed)
    op = choose_thresholds(t, p, policy)
    doc = build_operating_point(config={"policy": policy}, models=MODELS, op=op, dataset=DATASET, trials=t, probes=p,
                                key=signing_key())
    path = write_operating_point(doc, tmp_path / name)
    return path, doc, (t, p)


@pytest.fixture(scope="module")
def bands_export(tmp_path_factory):
    return export(tmp_path_factory.mktemp("rt"), {"name": "bands", "review_budget": 0.1})


def test_load_and_decide_reproduces_offline_decisions(bands_export):
    path, doc, (t, _) = bands_export
    op = load(path, embedder_sha256=EMB, pad_sha256=PAD)
    assert op.has_review_band and op.content_sha256 == doc["content_sha256"]
    offline = decide_arrays(t["match_score"], t["pad_score"], doc["thresholds"]["bands"])
    online = [op.decide(m, p).outcome for m, p in zip(t["match_score"], t["pad_score"])]
    assert list(offline) == online
    assert {"accept", "review", "reject"} <= set(online)


def test_decisions_at_the_thresholds_and_reasons(bands_export):
    path, doc, _ = bands_export
    op = load(path, embedder_sha256=EMB, pad_sha256=PAD)
    b = doc["thresholds"]["bands"]
    tm, tp = b["match"]["accept_at_or_above"], b["pad"]["accept_at_or_above"]
    lm, lp = b["match"]["reject_below"], b["pad"]["reject_below"]
    assert op.decide(tm, tp).outcome == "accept"  # ties at the threshold are accepted
    assert op.decide(math.nextafter(tm, -math.inf), tp).outcome == ("review" if lm < tm else "reject")
    d = op.decide(tm, math.nextafter(lp, -math.inf))
    assert d.outcome == "reject" and "presentation attack suspected" in d.reason
    d = op.decide(math.nextafter(lm, -math.inf), tp)
    assert d.outcome == "reject" and "not the enrolled person" in d.reason
    for bad in (None, float("nan"), "x"):
        d = op.decide(bad, tp)
        assert d.outcome == "reject" and "refused input" in d.reason and "match score" in d.reason
    d = op.decide(tm, tp)
    assert d.reason.startswith("accept:") and "FMR" in d.evidence and "synthetic eval" in d.evidence


def test_evidence_line_reads_exact_fmr(tmp_path):
    path, doc, (t, p) = export(tmp_path, {"name": "target_rates"}, seed=4)
    op = load(path, embedder_sha256=EMB, pad_sha256=PAD)
    ev = score_sets(t, p, "eval")
    tab = doc["lookup"]["match"]
    assert tab["exact"] and doc["lookup"]["partition"] == "eval"
    for x in np.quantile(ev.imp_m, [0.0, 0.3, 0.9, 0.999]).tolist():
        k = int(np.count_nonzero(ev.imp_m >= x))
        assert f"FMR {k}/{ev.imp_m.size} " in op.evidence(x, 0.5)
    # above every score observed on eval: no trial there, so no observed "0/360 = 0%" (schema 3.1)
    above = max(ev.gen_m.max(), ev.imp_m.max(), ev.att_m.max()) + 1
    text = op.evidence(above, 0.5)
    assert "no evidence at this score" in text and f"0/{ev.imp_m.size}" not in text
    assert f"no impostor trial of {ev.imp_m.size} scored this high" in text


# ----------------------------------------------------------------------------------------------- tamper tests


def test_changed_byte_is_refused(bands_export, tmp_path):
    path, doc, _ = bands_export
    raw = path.read_bytes()
    # 1) a digit of t_match changed: the content no longer matches its sha256
    key = b'"t_match": '
    i = raw.index(key) + len(key) + 3
    digit = raw[i:i + 1]
    bad = raw[:i] + (b"1" if digit != b"1" else b"2") + raw[i + 1:]
    (tmp_path / "a.json").write_bytes(bad)
    with pytest.raises(OperatingPointRefused, match="checksum mismatch"):
        load(tmp_path / "a.json", embedder_sha256=EMB, pad_sha256=PAD)
    # 2) a whitespace byte changed: same JSON content, different bytes -> still refused
    j = raw.index(b"\n  ")
    (tmp_path / "b.json").write_bytes(raw[:j] + b"\n\t" + raw[j + 2:])
    with pytest.raises(OperatingPointRefused, match="not byte-identical"):
        load(tmp_path / "b.json", embedder_sha256=EMB, pad_sha256=PAD)
    # 3) every single-byte flip in a sample of positions is refused
    rng = np.random.default_rng(0)
    for pos in rng.choice(len(raw), size=25, replace=False):
        flipped = bytearray(raw)
        flipped[pos] ^= 0x01
        (tmp_path / "c.json").write_bytes(bytes(flipped))
        with pytest.raises(OperatingPointRefused):
            load(tmp_path / "c.json", embedder_sha256=EMB, pad_sha256=PAD)
    # 4) truncated / not JSON
    (tmp_path / "d.json").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(OperatingPointRefused, match="not valid JSON"):
        load(tmp_path / "d.json", embedder_sha256=EMB, pad_sha256=PAD)


def test_wrong_schema_version_is_refused(bands_export, tmp_path):
    _, doc, _ = bands_export
    for version in ("0.1", "4.0", None):
        d = dict(doc, schema_version=version)
        d["content_sha256"] = content_sha256(d)  # a consistent file, just another version
        (tmp_path / "v.json").write_text(serialize(d))
        with pytest.raises(OperatingPointRefused, match="unsupported schema_version"):
            load(tmp_path / "v.json", embedder_sha256=EMB, pad_sha256=PAD)


def test_retired_schema_1_0_is_refused_with_the_reason_and_the_fix(bands_export, tmp_path):
    _, doc, _ = bands_export
    d = dict(doc, schema_version="1.0")
    d["content_sha256"] = content_sha256(d)
    (tmp_path / "v.json").write_text(serialize(d))
    with pytest.raises(OperatingPointRefused, match=r"retired.*trial-level.*dominated.*harness.cli export"):
        load(tmp_path / "v.json", embedder_sha256=EMB, pad_sha256=PAD)


def test_schema_violation_is_refused_even_with_a_valid_checksum(bands_export, tmp_path):
    _, doc, _ = bands_export
    d = json.loads(json.dumps(doc))
    d["thresholds"]["selected_on"] = "train"
    d["content_sha256"] = content_sha256(d)
    (tmp_path / "s.json").write_text(serialize(d))
    with pytest.raises(OperatingPointRefused, match="schema violation at thresholds/selected_on"):
        load(tmp_path / "s.json", embedder_sha256=EMB, pad_sha256=PAD)


def test_mismatched_or_missing_model_hash_is_refused(bands_export):
    path, _, _ = bands_export
    with pytest.raises(OperatingPointRefused, match="model mismatch: the embedder weights sha256"):
        load(path, embedder_sha256="d" * 64, pad_sha256=PAD)
    with pytest.raises(OperatingPointRefused, match="model mismatch: the pad weights sha256"):
        load(path, embedder_sha256=EMB, pad_sha256="e" * 64)
    with pytest.raises(OperatingPointRefused, match="no embedder weights sha256 given"):
        load(path, embedder_sha256=None, pad_sha256=PAD)
    assert load(path, embedder_sha256=None, pad_sha256=None, allow_unverified_models=True)
    assert load(path, embedder_sha256=EMB.upper(), pad_sha256=PAD)  # hex case does not matter


def test_not_deployable_export_is_refused(tmp_path):
    from ._synth import tables

    t, p = tables({"dev": {"genuine": [(0.9, 0.9)]}, "eval": {"genuine": [(0.9, 0.9)]}})
    op = choose_thresholds(t, p, {"name": "target_rates"})
    doc = build_operating_point(config={}, models=MODELS, op=op, dataset=DATASET, trials=t, probes=p,
                                key=signing_key())
    assert doc["deployable"] is False and "no match threshold" in doc["not_deployable_because"][0]
    path = write_operating_point(doc, tmp_path / "nd.json")
    with pytest.raises(OperatingPointRefused, match="bands is missing"):
        _strict_load(path, embedder_sha256=EMB, pad_sha256=PAD, allow_not_deployable=True)
    # thresholds exist but the targets are not supported (one person per side): signed, yet not deployable
    path, doc, _ = export(tmp_path, {"name": "target_rates"}, name="unsupported.json")
    assert doc["deployable"] is False and "signature" in doc
    with pytest.raises(OperatingPointRefused, match="not deployable: the policy's targets are not supported"):
        _strict_load(path, embedder_sha256=EMB, pad_sha256=PAD)


# ------------------------------------------------------------------------------------------------- isolation

BLOCKER = """
import sys
BLOCKED = {"hydra", "omegaconf", "mlflow", "torch", "numpy", "pandas", "scipy"}
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked import: {name}")
        return None
sys.meta_path.insert(0, Block())
from harness.runtime import load
op = load(sys.argv[1], embedder_sha256=sys.argv[2], pad_sha256=sys.argv[3], allow_not_deployable=True)
d = op.decide(float(sys.argv[4]), float(sys.argv[5]))
print(d.outcome)
print(sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
"""


def test_runtime_imports_without_hydra_mlflow_torch_numpy(bands_export):
    path, doc, _ = bands_export
    b = doc["thresholds"]["bands"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", BLOCKER, str(path), EMB, PAD, repr(b["match"]["accept_at_or_above"]),
                        repr(b["pad"]["accept_at_or_above"])], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines() == ["accept", "[]"]
