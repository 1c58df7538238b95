"""An operating point nobody can forge: signatures, deployability, and hostile runtime / CLI input (audit findings 1,
2 and 6 of the unforgeable-operating-point issue; each repro is a test)."""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness.export.operating_point import build_operating_point, sign_file, write_operating_point
from harness.policy import choose_thresholds
from harness.runtime import OperatingPointRefused, content_sha256, load, serialize, sign_document, signing_key

from ._synth import people_tables

ROOT = Path(__file__).resolve().parents[2]
EMB, PAD = "a" * 64, "b" * 64
MODELS = {"embedder": {"name": "emb", "weights_sha256": EMB, "preprocessing": "x", "score_range": [-1.0, 1.0]},
          "pad": {"name": "pad", "weights_sha256": PAD, "preprocessing": "y", "score_range": [0.0, 1.0]}}
DATASET = {"name": "synthetic", "manifest_sha256": "c" * 64, "samples": 1}
SUPPORTED = {"name": "target_rates", "target_fmr": 0.1, "target_apcer": 0.3, "standards": "all"}


@pytest.fixture(scope="module")
def tables():
    return people_tables(seed=11, people=40, frames=2, attacks=4)


def _export(tmp_path: Path, tables, policy=SUPPORTED, name="op.json", key="env", **kw) -> tuple[Path, dict]:
    t, p = tables
    op = choose_thresholds(t, p, policy)
    doc = build_operating_point(config={"policy": policy}, models=MODELS, op=op, dataset=DATASET, trials=t, probes=p,
                                key=key, **kw)
    return write_operating_point(doc, tmp_path / name), doc


def _forge(doc: dict, **changes) -> str:
    d = json.loads(json.dumps(doc))
    for path, value in changes.items():
        node = d
        *head, last = path.split("__")
        for k in head:
            node = node[k]
        node[last] = value
    d["content_sha256"] = content_sha256(d)  # what anyone can recompute
    return serialize(d)


def _cli(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env or dict(os.environ))


# ------------------------------------------------------------------------- finding 1: the export can be forged


def test_untouched_signed_export_loads_and_is_deployable(tmp_path, tables):
    path, doc = _export(tmp_path, tables)
    assert doc["deployable"] is True, doc["not_deployable_because"]
    assert doc["signature"]["alg"] == "HMAC-SHA256" and doc["signature"]["key_id"]
    op = load(path, embedder_sha256=EMB, pad_sha256=PAD)
    assert op.content_sha256 == doc["content_sha256"] and "signed HMAC-SHA256" in op.trusted_because
    r = _cli("verify", str(path), "--embedder-sha256", EMB, "--pad-sha256", PAD)
    assert r.returncode == 0 and "signed HMAC-SHA256" in r.stdout


def test_forged_thresholds_with_recomputed_hash_are_refused(tmp_path, tables):
    path, doc = _export(tmp_path, tables)
    low = {"match": {"accept_at_or_above": -1e9, "reject_below": -1e9},
           "pad": {"accept_at_or_above": -1e9, "reject_below": -1e9}}
    forged = tmp_path / "forged.json"
    forged.write_text(_forge(doc, thresholds__t_match=-1e9, thresholds__t_pad=-1e9, thresholds__bands=low))
    with pytest.raises(OperatingPointRefused, match="bad signature"):
        load(forged, embedder_sha256=EMB, pad_sha256=PAD)
    r = _cli("verify", str(forged), "--embedder-sha256", EMB, "--pad-sha256", PAD)
    assert r.returncode == 3 and "bad signature" in r.stderr


def test_export_retargeted_to_other_weights_is_refused(tmp_path, tables):
    _, doc = _export(tmp_path, tables)
    other = tmp_path / "other.json"
    other.write_text(_forge(doc, models__embedder__weights_sha256="d" * 64))
    with pytest.raises(OperatingPointRefused, match="bad signature"):
        load(other, embedder_sha256="d" * 64, pad_sha256=PAD)
    r = _cli("verify", str(other), "--embedder-sha256", "d" * 64, "--pad-sha256", PAD)
    assert r.returncode == 3


def test_unsigned_and_wrong_key_files_are_refused_unless_the_hash_is_trusted(tmp_path, tables):
    path, doc = _export(tmp_path, tables, key=None, name="unsigned.json")
    assert "signature" not in doc and doc["deployable"] is False
    assert any(r.startswith("not signed") for r in doc["not_deployable_because"])
    with pytest.raises(OperatingPointRefused, match="not signed"):
        load(path, embedder_sha256=EMB, pad_sha256=PAD, allow_not_deployable=True)
    # out of band: the committee's approved hash
    assert load(path, embedder_sha256=EMB, pad_sha256=PAD, trusted_content_sha256=doc["content_sha256"],
                allow_not_deployable=True)
    with pytest.raises(OperatingPointRefused, match="is not the approved"):
        load(path, embedder_sha256=EMB, pad_sha256=PAD, trusted_content_sha256="f" * 64, allow_not_deployable=True)
    r = _cli("verify", str(path), "--trust-content-sha256", doc["content_sha256"], "--allow-not-deployable")
    assert r.returncode == 0 and "trusted out of band" in r.stdout
    # signed with another key
    other, _ = _export(tmp_path, tables, key=secrets.token_hex(32).encode(), name="otherkey.json")
    with pytest.raises(OperatingPointRefused, match="not signed with this key"):
        load(other, embedder_sha256=EMB, pad_sha256=PAD)
    env = dict(os.environ, HARNESS_SIGNING_KEY=secrets.token_hex(32))
    assert _cli("verify", str(other), "--embedder-sha256", EMB, "--pad-sha256", PAD, env=env).returncode == 3


def test_short_or_missing_keys_are_refused_and_never_defaulted(tmp_path, monkeypatch):
    with pytest.raises(OperatingPointRefused, match="at least 32"):
        signing_key("short")
    monkeypatch.delenv("HARNESS_SIGNING_KEY")
    assert signing_key() is None  # no key anywhere: nothing is invented
    kf = tmp_path / "key"
    kf.write_text(secrets.token_hex(32) + "\n")
    monkeypatch.setenv("HARNESS_SIGNING_KEY_FILE", str(kf))
    assert signing_key() == kf.read_text().strip().encode()


def test_ed25519_signature_verifies_with_the_public_key_only(tmp_path, tables):
    pytest.importorskip("cryptography")
    priv = tmp_path / "team.pem"
    r = _cli("keygen", "--ed25519", str(priv))
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(priv).st_mode) == 0o600
    pub = priv.with_suffix(".pub.pem")
    path, doc = _export(tmp_path, tables, key=None, private_key_pem=priv, name="ed.json")
    assert doc["signature"]["alg"] == "Ed25519"
    assert load(path, embedder_sha256=EMB, pad_sha256=PAD, public_key=pub)
    forged = tmp_path / "ed-forged.json"
    forged.write_text(_forge(doc, thresholds__t_pad=0.0, thresholds__bands__pad__accept_at_or_above=0.0,
                             thresholds__bands__pad__reject_below=0.0))
    with pytest.raises(OperatingPointRefused, match="bad Ed25519 signature"):
        load(forged, embedder_sha256=EMB, pad_sha256=PAD, public_key=pub)
    with pytest.raises(OperatingPointRefused, match="no public key"):
        load(path, embedder_sha256=EMB, pad_sha256=PAD)


def test_cli_keygen_and_sign_later(tmp_path, tables, monkeypatch):
    kf = tmp_path / "team.key"
    r = _cli("keygen", "-o", str(kf))
    assert r.returncode == 0 and stat.S_IMODE(os.stat(kf).st_mode) == 0o600 and len(kf.read_text().strip()) == 64
    path, doc = _export(tmp_path, tables, key=None, name="later.json")
    assert doc["deployable"] is False
    r = _cli("sign", str(path), "--key-file", str(kf), "--expect-content-sha256", "0" * 64)
    assert r.returncode == 2 and "not the reviewed" in r.stderr
    r = _cli("sign", str(path), "--key-file", str(kf), "--expect-content-sha256", doc["content_sha256"])
    assert r.returncode == 0, r.stderr
    signed = json.loads(path.read_text())
    assert signed["deployable"] is True and signed["not_deployable_because"] == []
    assert load(path, embedder_sha256=EMB, pad_sha256=PAD, key_file=kf)
    monkeypatch.delenv("HARNESS_SIGNING_KEY")
    with pytest.raises(OperatingPointRefused, match="no key was given"):
        load(path, embedder_sha256=EMB, pad_sha256=PAD)


# ----------------------------------------------------------------------- finding 2: weak exports look deployable


def test_weak_export_is_not_deployable_and_says_why(tmp_path, tables):
    t, p = people_tables(seed=1, people=4, frames=2, attacks=4)  # like the smoke run: 4 people, 2 per partition
    path, doc = _export(tmp_path, (t, p), policy={"name": "target_rates"}, name="weak.json")
    assert doc["deployable"] is False
    assert any("targets are not supported" in r for r in doc["not_deployable_because"])
    with pytest.raises(OperatingPointRefused, match="not deployable: the policy's targets are not supported"):
        load(path, embedder_sha256=EMB, pad_sha256=PAD)
    assert load(path, embedder_sha256=EMB, pad_sha256=PAD, allow_not_deployable=True)
    r = _cli("decide", str(path), "--embedder-sha256", EMB, "--pad-sha256", PAD, "--match", "0.9", "--pad", "0.9")
    assert r.returncode == 3 and "--allow-not-deployable" in r.stderr


def test_required_standard_and_eval_selection_block_deployment(tmp_path, tables):
    _, doc = _export(tmp_path, tables, policy=SUPPORTED | {"required_standards": ["ibeta_pad_level1"]}, name="r.json")
    assert doc["deployable"] is False
    assert any(r.startswith("required standard ibeta_pad_level1: ") for r in doc["not_deployable_because"])
    _, doc = _export(tmp_path, tables, policy=SUPPORTED | {"select_on": "eval"}, name="e.json")
    assert "the thresholds were chosen on the evaluation data" in doc["not_deployable_because"]


# ------------------------------------------------------------------------------ finding 6: runtime and CLI input


@pytest.fixture
def op(tmp_path, tables):
    path, _ = _export(tmp_path, tables)
    return load(path, embedder_sha256=EMB, pad_sha256=PAD)


@pytest.mark.parametrize("m, p, why", [
    (True, True, "a boolean is not a finite real number"),
    (0.9, 7.5, "outside the model's declared score range"),
    (0.9, 1e308, "outside the model's declared score range"),
    (10**400, 0.9, "not a finite real number"),
    (0.9, float("nan"), "not a finite real number"),
    ("1e999", 0.9, "not a finite real number"),
    (2.5, 0.9, "outside the model's declared score range"),
])
def test_invalid_scores_are_refused_with_a_reason(op, m, p, why):
    d = op.decide(m, p)
    assert d.outcome == "reject" and "refused input" in d.reason and why in d.reason


def test_valid_scores_still_decide(op):
    tm, tp = op.match_accept, op.pad_accept
    assert op.decide(tm, tp).outcome == "accept"
    assert op.decide(str(tm), str(tp)).outcome == "accept"  # CSV text


def _signed_text(doc: dict) -> str:
    return serialize(sign_document(doc, signing_key()))


@pytest.mark.parametrize("text_of", [
    lambda d: serialize(d).replace(json.dumps(d["thresholds"]["t_match"]), "NaN", 1),
    lambda d: serialize(d).replace(json.dumps(d["thresholds"]["t_match"]), "1e400", 1),
    lambda d: "[" * 100000 + "]" * 100000,
    lambda d: '{"a":' * 50000 + "1" + "}" * 50000,
], ids=["nan-threshold", "overflowing-threshold", "deep-list", "deep-object"])
def test_hostile_files_are_clean_refusals(tmp_path, tables, text_of):
    _, doc = _export(tmp_path, tables)
    bad = tmp_path / "bad.json"
    bad.write_text(text_of(doc))
    with pytest.raises(OperatingPointRefused, match="^refused: "):
        load(bad, embedder_sha256=EMB, pad_sha256=PAD)
    r = _cli("verify", str(bad))
    assert r.returncode == 3 and "Traceback" not in r.stderr and r.stderr.startswith("refused: ")


def test_cli_decide_csv_accepts_a_bom_and_names_a_bad_row_without_partial_output(tmp_path, tables):
    path, _ = _export(tmp_path, tables)
    good = tmp_path / "pairs.csv"
    good.write_bytes("\ufeffmatch_score,pad_score\n0.9,0.9\n0.1,0.2\n".encode("utf-8"))
    out = tmp_path / "out.csv"
    args = ["decide", str(path), "--embedder-sha256", EMB, "--pad-sha256", PAD, "--csv"]
    r = _cli(*args, str(good), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_text().splitlines()[0].startswith("match_score,pad_score,decision")
    bad = tmp_path / "bad.csv"
    bad.write_text("match_score,pad_score\n0.9,0.9\n0.5\n0.2,0.3\n")
    out.write_text("previous decisions\n")
    r = _cli(*args, str(bad), "-o", str(out))
    assert r.returncode == 2 and "row 3" in r.stderr and "Traceback" not in r.stderr
    assert out.read_text() == "previous decisions\n"  # untouched: nothing partial
    assert not list(tmp_path.glob(".out.csv.*"))
    r = _cli(*args, str(tmp_path / "missing.csv"))
    assert r.returncode == 2 and "cannot read" in r.stderr


def test_cli_export_refuses_a_misspelt_or_bad_policy_key_before_reading_the_run(tmp_path):
    r = _cli("export", str(tmp_path / "no-run"), "--policy", "min_cost", "--set", "revew=true")
    assert r.returncode == 2 and "unknown config key 'policy.revew' (did you mean 'review'?)" in r.stderr
    r = _cli("export", str(tmp_path / "no-run"), "--policy", "target_rates", "--set", "target_fmr=abc")
    assert r.returncode == 2 and "policy.target_fmr must be a number in (0, 1)" in r.stderr
