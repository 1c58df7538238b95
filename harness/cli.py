"""``python -m harness.cli``: export an operating point from a finished run, and replay its decisions.

    python -m harness.cli export RUN_DIR [--policy min_cost] [--set review=true --set review_budget=0.05]
                                         [--select-on eval] [--standards fido_biometric_component,...] [-o OUT]
    python -m harness.cli decide OP.json --embedder-sha256 SHA --pad-sha256 SHA --match 0.71 --pad 0.93
    python -m harness.cli decide OP.json --embedder-sha256 SHA --pad-sha256 SHA --csv pairs.csv [-o out.csv]
    python -m harness.cli verify OP.json [--embedder-sha256 SHA --pad-sha256 SHA | --vendor-identity ID] [--trust-content-sha256 SHA]
    python -m harness.cli keygen [-o KEYFILE] [--ed25519 PRIVATE.pem]
    python -m harness.cli sign OP.json [--key-file KEYFILE | --ed25519-key PRIVATE.pem] [--expect-content-sha256 SHA]
    python -m harness.cli register OP.json --name kyc-face --alias candidate [--tracking-uri URI] [--run-id ID]
    python -m harness.cli standards | schema

``export`` re-selects thresholds from the run directory (:mod:`harness.rundir`: its trials and probes, no
rescoring) with any policy of ``conf/policy/``. ``decide`` / ``verify`` use only :mod:`harness.runtime` (no Hydra, MLflow, torch); they trust a
file only when it is signed with the key they are given (``--key-file``, ``$HARNESS_SIGNING_KEY``,
``$HARNESS_SIGNING_KEY_FILE``; ``--public-key`` for Ed25519) or when its content hash is the approved one
(``--trust-content-sha256``). Exit status: 0 ok, 2 usage or input error, 3 the operating point was refused.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

EXIT_USAGE, EXIT_REFUSED = 2, 3


def load_policy(name: str, overrides: list[str] | None = None, select_on: str | None = None) -> dict:
    """:func:`harness.export.reselect.load_policy` (imported lazily: ``decide`` / ``verify`` stay pandas-free)."""
    from harness.export import reselect

    return reselect.load_policy(name, overrides, select_on)


def load_run(run_dir: Path):
    """:func:`harness.export.reselect.load_run`: (trials, probes, summary, config) of a finished run, read from its
    run directory (:mod:`harness.rundir`; a run written before it through the old path)."""
    from harness.export import reselect

    return reselect.load_run(run_dir)


def cmd_export(a) -> int:
    from harness.export.operating_point import write_operating_point
    from harness.export.reselect import reselect
    from harness.runtime import signing_key

    r = reselect(Path(a.run_dir), a.policy, a.set, select_on=a.select_on, standards=a.standards,
                 key=signing_key(key_file=a.key_file))
    out = Path(a.out) if a.out else Path(a.run_dir) / f"operating_point.{a.policy}.json"
    write_operating_point(r.doc, out)
    print(_describe(r.doc))
    print(f"wrote {out}")
    return 0


def _describe(doc: dict) -> str:
    from harness.rate_text import rate_text

    th, pol, ev = doc["thresholds"], doc["policy"], doc["expected_rates_on_eval"]
    lines = [f"operating point {doc['content_sha256'][:16]}  policy={pol['name']}  selected on {th['selected_on']}"
             + ("  (EVALUATION DATA)" if th["selected_on_eval_data"] else "")
             + ("" if pol["supported"] else "  [targets NOT supported by the data]")]
    if th["bands"]:
        b = th["bands"]
        lines.append(f"  accept iff match >= {b['match']['accept_at_or_above']!r} and pad >= {b['pad']['accept_at_or_above']!r}")
        if th["review_band"]:
            lines.append(f"  reject iff match < {b['match']['reject_below']!r} or pad < {b['pad']['reject_below']!r}; "
                         "review otherwise")
    part = ev["partition"]
    v, p, s = ev.get("verif", {}), ev.get("pad", {}), ev.get("system", {})
    lines.append(f"  {part}: FMR {rate_text(v.get('fmr'))}  FNMR {rate_text(v.get('fnmr'))}")
    lines.append(f"  {part}: APCER_max {rate_text(p.get('apcer_max'))} ({p.get('apcer_max_species')})  BPCER "
                 f"{rate_text(p.get('bpcer'))}")
    lines.append(f"  {part}: IAPAR {rate_text(s.get('iapar'))}  genuine rejection {rate_text(s.get('genuine_rejection'))}")
    for kind, d in (ev.get("decisions") or {}).items():
        lines.append(f"  {part} {kind}: " + ", ".join(f"{o} {d[o]['k']}/{d[o]['n']}" for o in ("accept", "review", "reject")))
    for st in doc["standards"]:
        lines.append(f"  standard {st['name']}: {st['verdict']}")
    for n in th["notes"]:
        lines.append(f"  note: {n}")
    return "\n".join(lines)


def _load_op(a):
    from harness.runtime import load

    emb, pad = a.embedder_sha256, a.pad_sha256
    return load(a.op, embedder_sha256=emb, pad_sha256=pad, vendor_identity=a.vendor_identity,
                key_file=a.key_file, public_key=a.public_key,
                trusted_content_sha256=a.trust_content_sha256, allow_not_deployable=a.allow_not_deployable,
                allow_unverified_models=a.unverified_models)


def cmd_decide(a) -> int:
    op = _load_op(a)
    if a.csv:
        rows = _read_pairs(Path(a.csv))
        fields = list(rows[0].keys()) if rows else ["match_score", "pad_score"]
        out_fields = fields + ["decision", "reason", "evidence"]
        decided = []
        for i, r in enumerate(rows, start=2):  # row 1 is the header
            try:
                d = op.decide(r["match_score"], r["pad_score"])
            except Exception as e:  # noqa: BLE001 - any failure names its row; nothing partial is written
                raise ValueError(f"{a.csv}, row {i}: {e}") from None
            decided.append(r | {"decision": d.outcome, "reason": d.reason, "evidence": d.evidence})
        if a.out:
            _write_csv_atomic(Path(a.out), out_fields, decided)
        else:
            w = csv.DictWriter(sys.stdout, fieldnames=out_fields)
            w.writeheader()
            w.writerows(decided)
        return 0
    if a.match is None or a.pad is None:
        raise ValueError("decide needs --match and --pad, or --csv")
    d = op.decide(a.match, a.pad)
    if a.json:
        print(json.dumps(d.to_dict(), ensure_ascii=False))
    else:
        print(d.outcome)
        print(d.reason)
        print(d.evidence)
    return 0


def _read_pairs(path: Path) -> list[dict]:
    """Rows of a (match_score, pad_score) CSV; a UTF-8 BOM is accepted; one-line errors name the row."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not {"match_score", "pad_score"} <= {h.strip() for h in reader.fieldnames}:
                raise ValueError(f"{path}: needs a header with columns match_score and pad_score "
                                 f"(found {reader.fieldnames})")
            rows = []
            for i, r in enumerate(reader, start=2):
                if None in r or any(v is None for v in r.values()):
                    raise ValueError(f"{path}, row {i}: has {'more' if None in r else 'fewer'} fields than the header")
                rows.append({k.strip(): v for k, v in r.items()})
            return rows
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except csv.Error as e:
        raise ValueError(f"{path}: not a valid CSV ({e})") from None
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror or e}") from None


def _write_csv_atomic(path: Path, fields: list[str], rows: list[dict]) -> None:
    """Write the whole file next to ``path`` and rename it into place: never a partial output."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=str(path.parent) or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cmd_verify(a) -> int:
    if a.embedder_sha256 is None and a.pad_sha256 is None and a.vendor_identity is None:
        a.unverified_models = True
    op = _load_op(a)
    print(f"ok: {a.op} verified (schema {op.doc['schema_version']}, content_sha256 {op.content_sha256}; "
          f"{op.trusted_because})" + ("" if not a.unverified_models else "; model weights NOT checked (no sha256 given)"))
    print(_describe(op.doc))
    return 0


def cmd_keygen(a) -> int:
    """A new random key: 32 bytes for HMAC (hex text), or an Ed25519 key pair (PEM)."""
    import os
    import secrets

    if a.ed25519:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        sk = ed25519.Ed25519PrivateKey.generate()
        priv = sk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        pub = sk.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        _write_secret(Path(a.ed25519), priv)
        Path(a.ed25519).with_suffix(".pub.pem").write_bytes(pub)
        print(f"wrote {a.ed25519} (private, mode 600) and {Path(a.ed25519).with_suffix('.pub.pem')} (public)")
        return 0
    key = secrets.token_hex(32).encode()
    if a.out:
        _write_secret(Path(a.out), key + b"\n")
        from harness.runtime import key_id

        print(f"wrote {a.out} (mode 600), key id {key_id(key)}")
    else:
        os.write(1, key + b"\n")
    return 0


def _write_secret(path: Path, data: bytes) -> None:
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def cmd_sign(a) -> int:
    from harness.export.operating_point import sign_file
    from harness.runtime import signing_key

    key = None if a.ed25519_key else signing_key(key_file=a.key_file)
    if key is None and not a.ed25519_key:
        raise ValueError("sign needs a key: --key-file, $HARNESS_SIGNING_KEY or $HARNESS_SIGNING_KEY_FILE "
                         "(or --ed25519-key PRIVATE.pem)")
    doc = sign_file(Path(a.op), key=key, private_key_pem=a.ed25519_key, out=Path(a.out) if a.out else None,
                    expect_content_sha256=a.expect_content_sha256)
    print(f"signed {a.out or a.op}: {doc['signature']['alg']}, key id {doc['signature']['key_id']}, content_sha256 "
          f"{doc['content_sha256']} (the hash the committee approves), deployable {doc['deployable']}"
          + ("" if doc["deployable"] else f" ({'; '.join(doc['not_deployable_because'])})"))
    return 0


def cmd_register(a) -> int:
    import os

    from harness.export.mlflow_model import register_operating_point
    from harness.tracking import check_reachable, quiet_url_printing, tracking_errors

    uri = a.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    with tracking_errors():  # one redacted line for a server that is down or refuses (no token in the message)
        if uri:
            check_reachable(uri, source="--tracking-uri" if a.tracking_uri else None,
                            consequence="Nothing was registered.")
            quiet_url_printing(uri)
        r = register_operating_point(a.op, model_name=a.name, alias=a.alias, run_id=a.run_id,
                                     tracking_uri=a.tracking_uri, allow_not_deployable=a.allow_not_deployable)
    print(json.dumps(r))
    return 0


def cmd_standards(a) -> int:
    from harness.policy.standards import DEFAULT_MIN_SUBJECTS, available_presets, load_preset

    for name in available_presets():
        p = load_preset(name)
        print(f"{name}: {p.get('title', '')}  (confidence {p.get('confidence', 0.95)})")
        print(f"  source: {' '.join(str(p.get('source', '')).split())}")
        pm = p.get("min_subjects", DEFAULT_MIN_SUBJECTS)
        print(f"  people behind each rate: >= {pm} ({' '.join(str(p.get('min_subjects_source', '')).split())})")
        for c in p.get("criteria") or []:
            people = f", >= {c['min_subjects']} people" if c.get("min_subjects") is not None else ""
            print(f"  - {c['id']}: {c['metric']} {c.get('op', '>=' if c.get('rule') == 'coverage' else '<=')} "
                  f"{c['limit']}  [{c.get('rule', 'bound')}{people}]  ({c.get('provenance', '')})")
        if not p.get("criteria"):
            print("  (criteria not transcribed: verdict 'not evaluated')")
    return 0


def cmd_schema(a) -> int:
    from harness.export import schema

    print(json.dumps(schema.SCHEMA, indent=2))
    print(f"# schema {schema.SCHEMA_VERSION}; changes from earlier versions:\n# "
          + "\n# ".join(schema.__doc__.split("\n\n", 2)[-1].strip().splitlines()), file=sys.stderr)
    return 0


def _op_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("op", help="operating_point.json")
    p.add_argument("--embedder-sha256", help="sha256 of the embedder weights the service runs")
    p.add_argument("--pad-sha256", help="sha256 of the PAD weights the service runs")
    p.add_argument("--vendor-identity", help="a vendor model's identity (schema 3.3, imported scores): the approved "
                   "SDK build, else the score files' sha256 joined by +")
    p.add_argument("--unverified-models", action="store_true",
                   help="skip the weights check (offline analysis only; production must pass both sha256)")
    p.add_argument("--key-file", help="file holding the HMAC signing key (default $HARNESS_SIGNING_KEY[_FILE])")
    p.add_argument("--public-key", help="Ed25519 public key (PEM) for files signed with Ed25519")
    p.add_argument("--trust-content-sha256", help="trust an unsigned file whose content_sha256 is this approved hash")
    p.add_argument("--allow-not-deployable", action="store_true",
                   help="load a file marked not deployable (analysis only)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m harness.cli", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="choose thresholds on a finished run with a policy and write operating_point.json")
    e.add_argument("run_dir")
    e.add_argument("--policy", default="target_rates", help="a conf/policy/ name (default target_rates)")
    e.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a policy input")
    e.add_argument("--select-on", choices=["dev", "eval"], help="'eval' selects on the evaluation data (marked)")
    e.add_argument("--standards", help="comma-separated preset names, 'all' or 'none'")
    e.add_argument("-o", "--out", help="output path (default RUN_DIR/operating_point.<policy>.json)")
    e.add_argument("--key-file", help="file holding the HMAC key that signs the export (default "
                                      "$HARNESS_SIGNING_KEY[_FILE]; none: written unsigned and not deployable)")
    e.set_defaults(fn=cmd_export)
    d = sub.add_parser("decide", help="accept / review / reject for scores")
    _op_args(d)
    d.add_argument("--match", type=float)
    d.add_argument("--pad", type=float)
    d.add_argument("--csv", help="CSV with match_score,pad_score columns")
    d.add_argument("-o", "--out", help="output CSV (default stdout)")
    d.add_argument("--json", action="store_true", help="print the decision as JSON")
    d.set_defaults(fn=cmd_decide)
    v = sub.add_parser("verify", help="verify an operating point file (checksum, schema, optional weights)")
    _op_args(v)
    v.set_defaults(fn=cmd_verify)
    r = sub.add_parser("register", help="register the decision as an MLflow pyfunc model with an alias")
    r.add_argument("op")
    r.add_argument("--name", required=True, help="registered model name")
    r.add_argument("--alias", default="candidate")
    r.add_argument("--run-id", help="log the model into this run (default: a new run)")
    r.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI or MLflow's default")
    r.add_argument("--allow-not-deployable", action="store_true", help="register a non-deployable export (analysis)")
    r.set_defaults(fn=cmd_register)
    k = sub.add_parser("keygen", help="make a new signing key (HMAC: 32 random bytes as hex; or an Ed25519 pair)")
    k.add_argument("-o", "--out", help="write the HMAC key to this new file (mode 600) instead of stdout")
    k.add_argument("--ed25519", metavar="PRIVATE.pem", help="make an Ed25519 pair: PRIVATE.pem and PRIVATE.pub.pem")
    k.set_defaults(fn=cmd_keygen)
    sg = sub.add_parser("sign", help="sign an exported operating point (it becomes deployable if nothing else stops it)")
    sg.add_argument("op")
    sg.add_argument("--key-file", help="file holding the HMAC key (default $HARNESS_SIGNING_KEY[_FILE])")
    sg.add_argument("--ed25519-key", metavar="PRIVATE.pem", help="sign with Ed25519 instead")
    sg.add_argument("--expect-content-sha256", help="refuse unless the file's content_sha256 is this reviewed hash")
    sg.add_argument("-o", "--out", help="write the signed file here (default: in place)")
    sg.set_defaults(fn=cmd_sign)
    sub.add_parser("standards", help="list the standards presets and their criteria").set_defaults(fn=cmd_standards)
    sub.add_parser("schema", help="print the operating point JSON schema").set_defaults(fn=cmd_schema)
    return ap


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    from harness.runtime import OperatingPointRefused

    try:
        return a.fn(a)
    except OperatingPointRefused as e:
        print(str(e), file=sys.stderr)
        return EXIT_REFUSED
    except (ValueError, KeyError, FileNotFoundError) as e:
        from harness.redact import redact_uri

        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"error: {redact_uri(str(msg))}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
