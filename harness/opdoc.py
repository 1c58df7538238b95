"""The operating point document: its canonical text, its content hash, its signature, and its verification.

Standard library only (Ed25519 needs the optional ``cryptography`` package, imported only for Ed25519), so that
:mod:`harness.runtime` and this module can be vendored into a service together (with :mod:`harness.aggregation`,
whose ``check_aggregation`` validates a schema 3.2 ``presentation.aggregation``, and
:mod:`harness.runtime_presentation`). ``content_sha256`` covers everything but itself and ``signature``; the signature (HMAC-SHA256 with a key held outside the file, or Ed25519) covers the
canonical content including ``content_sha256``. Keys are never stored in the file, the code or the config.
:func:`verify_document` parses a file's text and refuses anything the exporter did not write (re-exported by
:mod:`harness.runtime`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
from pathlib import Path
from typing import Any

try:  # the harness installed
    from harness.aggregation import AggregationError, check_aggregation
except ImportError:  # vendored beside aggregation.py
    from aggregation import AggregationError, check_aggregation  # type: ignore[no-redef]

__all__ = ["OperatingPointRefused", "canonical", "content_sha256", "serialize", "signing_key", "key_id",
           "sign_document", "verify_signature", "verify_document", "MIN_KEY_BYTES", "UNSIGNED_REASON",
           "MAX_FILE_BYTES", "SUPPORTED_SCHEMA_VERSIONS", "RETIRED_SCHEMA_VERSIONS", "TEMPLATES", "ATTEMPTS",
           "ON_EXHAUSTED", "check_presentation_blocks", "is_number"]

#: shortest HMAC key accepted (NIST SP 800-107: an HMAC key should have at least the security strength wanted)
MIN_KEY_BYTES = 32
UNSIGNED_REASON = ("not signed: sign it with the team's key (python -m harness.cli sign OP.json; key from "
                   "HARNESS_SIGNING_KEY / HARNESS_SIGNING_KEY_FILE), or trust its content_sha256 out of band")


class OperatingPointRefused(ValueError):
    """The operating point file cannot be used: tampered, wrong version, invalid, or for other model weights."""


# ------------------------------------------------------------------------------------------------ serialisation


def canonical(doc: dict) -> bytes:
    """Canonical JSON bytes (sorted keys, no whitespace, ASCII, no NaN/inf): what ``content_sha256`` hashes."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def content_sha256(doc: dict) -> str:
    """sha256 of the canonical JSON of ``doc`` without its ``content_sha256`` and ``signature`` fields: what the
    committee approves, and what the signature signs (with the hash itself)."""
    return hashlib.sha256(canonical({k: v for k, v in doc.items()
                                     if k not in ("content_sha256", "signature")})).hexdigest()


# ------------------------------------------------------------------------------------------------------ signing


def _key_bytes(raw: bytes, where: str) -> bytes:
    key = raw.strip()
    if len(key) < MIN_KEY_BYTES:
        raise OperatingPointRefused(f"refused: the signing key from {where} is {len(key)} bytes; at least "
                                    f"{MIN_KEY_BYTES} are required (python -m harness.cli keygen makes one)")
    return key


def signing_key(key: bytes | str | None = None, key_file: str | Path | None = None) -> bytes | None:
    """The HMAC key: ``key``, else the file ``key_file``, else ``$HARNESS_SIGNING_KEY``, else the file named by
    ``$HARNESS_SIGNING_KEY_FILE``; None when none is given. Never defaulted."""
    if key is not None:
        return _key_bytes(key.encode() if isinstance(key, str) else bytes(key), "key=")
    path = key_file or None
    env = os.environ.get("HARNESS_SIGNING_KEY")
    if path is None and env:
        return _key_bytes(env.encode(), "HARNESS_SIGNING_KEY")
    path = path or os.environ.get("HARNESS_SIGNING_KEY_FILE") or None
    if path is None:
        return None
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise OperatingPointRefused(f"refused: cannot read the signing key file {path}: {e.strerror or e}") from None
    return _key_bytes(raw, str(path))


def key_id(key: bytes) -> str:
    """A public name for a key (a hash of it, never the key): which key signed a file, for rotation."""
    return hashlib.sha256(b"face-pad-harness key id\0" + key).hexdigest()[:16]


def _payload(doc: dict) -> bytes:
    return canonical({k: v for k, v in doc.items() if k != "signature"})


def _ed25519():
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:  # pragma: no cover - cryptography is optional for the runtime
        raise OperatingPointRefused("refused: Ed25519 signatures need the 'cryptography' package "
                                    "(pip install cryptography)") from None
    return serialization, ed25519


def _pem(x: bytes | str | Path) -> bytes:
    if isinstance(x, bytes):
        return x
    if isinstance(x, str) and x.lstrip().startswith("-----BEGIN"):
        return x.encode()
    try:
        return Path(x).read_bytes()
    except OSError as e:
        raise OperatingPointRefused(f"refused: cannot read the key file {x}: {e.strerror or e}") from None


def sign_document(doc: dict, key: bytes | None = None, private_key_pem: bytes | str | Path | None = None) -> dict:
    """A copy of ``doc`` with its ``signature``: HMAC-SHA256 with ``key``, or Ed25519 with ``private_key_pem``.
    The signature covers the canonical content including ``content_sha256`` (which must be current)."""
    if doc.get("content_sha256") != content_sha256(doc):
        raise OperatingPointRefused("refused: content_sha256 does not match the content; nothing is signed")
    out = {k: v for k, v in doc.items() if k != "signature"}
    if private_key_pem is not None:
        serialization, ed25519 = _ed25519()
        sk = serialization.load_pem_private_key(_pem(private_key_pem), password=None)
        if not isinstance(sk, ed25519.Ed25519PrivateKey):
            raise OperatingPointRefused("refused: the private key is not an Ed25519 key")
        pub = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        out["signature"] = {"alg": "Ed25519", "key_id": hashlib.sha256(pub).hexdigest()[:16],
                            "value": base64.b64encode(sk.sign(_payload(out))).decode()}
        return out
    if key is None:
        raise OperatingPointRefused("refused: no signing key given")
    key = _key_bytes(key, "key=")
    out["signature"] = {"alg": "HMAC-SHA256", "key_id": key_id(key),
                        "value": hmac.new(key, _payload(out), hashlib.sha256).hexdigest()}
    return out


def verify_signature(doc: dict, key: bytes | None = None, public_key: bytes | str | Path | None = None,
                     trusted_content_sha256: str | None = None) -> str:
    """How the document is trusted (one line), or :class:`OperatingPointRefused`."""
    if trusted_content_sha256 is not None:
        want = str(trusted_content_sha256).strip().lower()
        if want != doc.get("content_sha256"):
            raise OperatingPointRefused(f"refused: content_sha256 {doc.get('content_sha256')} is not the approved "
                                        f"{want}")
        return f"trusted out of band by its approved content_sha256 {want[:16]}..."
    sig = doc.get("signature")
    if not isinstance(sig, dict):
        raise OperatingPointRefused("refused: the file is " + UNSIGNED_REASON)
    alg = sig.get("alg")
    value = sig.get("value")
    if not isinstance(value, str):
        raise OperatingPointRefused("refused: the signature has no value")
    if alg == "HMAC-SHA256":
        if key is None:
            raise OperatingPointRefused("refused: the file is signed (HMAC-SHA256, key id "
                                        f"{sig.get('key_id')}) but no key was given to check it (key= / "
                                        "HARNESS_SIGNING_KEY / HARNESS_SIGNING_KEY_FILE)")
        good = hmac.new(key, _payload(doc), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(good, value):
            raise OperatingPointRefused(f"refused: bad signature: not signed with this key (file key id "
                                        f"{sig.get('key_id')}, given key id {key_id(key)}), or edited after signing")
        return f"signed HMAC-SHA256, key id {sig.get('key_id')}"
    if alg == "Ed25519":
        if public_key is None:
            raise OperatingPointRefused("refused: the file is signed (Ed25519) but no public key was given to check it")
        serialization, ed25519 = _ed25519()
        try:
            pk = serialization.load_pem_public_key(_pem(public_key))
            pk.verify(base64.b64decode(value, validate=True), _payload(doc))
        except OperatingPointRefused:
            raise
        except Exception:  # InvalidSignature, bad base64, wrong key type
            raise OperatingPointRefused("refused: bad Ed25519 signature (wrong key, or edited after signing)") from None
        return f"signed Ed25519, key id {sig.get('key_id')}"
    raise OperatingPointRefused(f"refused: unknown signature algorithm {alg!r}")


def serialize(doc: dict) -> str:
    """The exact text of an operating point file (indented, sorted keys, ASCII, trailing newline)."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True, allow_nan=False) + "\n"


# ------------------------------------------------------------------------------------------------ verification

#: the largest operating point file read (a real export is well under 1 MiB)
MAX_FILE_BYTES = 64 * 2**20

#: the versions read: 3.1 adds ``observed_scores`` (a 3.0 file is read without them; its decisions say so); 3.2 adds
#: ``presentation`` (how frame PAD scores become one presentation score) and ``flow`` (the capture flow); 3.3 adds
#: vendor models (``models.<role>.vendor``: imported scores identified by name, version and score-file sha256)
SUPPORTED_SCHEMA_VERSIONS: tuple[str, ...] = ("3.0", "3.1", "3.2", "3.3")
#: schema versions without the ``presentation`` / ``flow`` blocks
PRE_PRESENTATION_VERSIONS = ("3.0", "3.1")
#: ``presentation.template``: how the face template of a presentation is pooled from its frames
TEMPLATES = ("mean", "best_quality")
#: ``flow.attempt``: what one attempt is (a whole presentation, or a window of ``flow.window_frames`` frames)
ATTEMPTS = ("presentation", "window")
#: ``flow.on_exhausted``: the outcome once every attempt failed
ON_EXHAUSTED = ("reject", "review")
#: why an older file is refused (not only that it is)
RETIRED_SCHEMA_VERSIONS = {
    "1.0": ("its thresholds were chosen on trial-level confidence bounds (frames of one person counted as independent) "
            "and may be dominated (security given away for no convenience) or not float-safe; re-export it from its "
            "run directory with this harness: python -m harness.cli export <run_dir> -o operating_point.json"),
    "2.0": ("it carries no signature, so anyone could have edited its thresholds and recomputed its content hash; "
            "re-export and sign it: python -m harness.cli export <run_dir> -o OP.json && python -m harness.cli sign OP.json"),
}


def _schema() -> dict | None:
    try:
        from harness.export.schema import SCHEMA  # pure data module; no heavy imports
    except ImportError:  # vendored as a single file: structural checks below still run
        return None
    return SCHEMA


def verify_document(raw: bytes | str) -> dict:
    """Parse and verify the text of an operating point file; return the document or raise
    :class:`OperatingPointRefused` with a one-line reason."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError as e:
            raise OperatingPointRefused(f"refused: the file is not the ASCII text the exporter writes (byte {e.start} "
                                        "was changed or the file is not an operating point)") from None
    else:
        text = raw
    if len(text) > MAX_FILE_BYTES:
        raise OperatingPointRefused(f"refused: the file is {len(text)} bytes, more than an export ever is")

    def _no_constant(c: str):
        raise ValueError(f"{c} is not a JSON number the exporter writes")

    try:
        doc = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise OperatingPointRefused("refused: the file nests JSON deeper than any export; it was not written by the "
                                    "exporter") from None
    except ValueError as e:
        if not isinstance(e, json.JSONDecodeError):
            raise OperatingPointRefused(f"refused: the file holds values JSON export never writes ({e})") from None
        raise OperatingPointRefused(f"refused: the file is not valid JSON ({e.msg} at line {e.lineno}, column "
                                    f"{e.colno}); it was corrupted or edited") from None
    if not isinstance(doc, dict):
        raise OperatingPointRefused("refused: the file does not hold a JSON object")
    version = doc.get("schema_version")
    if version in RETIRED_SCHEMA_VERSIONS:
        raise OperatingPointRefused(f"refused: schema_version {version!r} is retired: {RETIRED_SCHEMA_VERSIONS[version]}")
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise OperatingPointRefused(f"refused: unsupported schema_version {version!r}; this runtime reads "
                                    f"{', '.join(SUPPORTED_SCHEMA_VERSIONS)} (re-export with a matching harness)")
    stored = doc.get("content_sha256")
    try:
        actual = content_sha256(doc)
    except (ValueError, RecursionError) as e:  # e.g. 1e400 parsed as inf
        raise OperatingPointRefused(f"refused: the file holds values JSON export never writes ({e})") from None
    if stored != actual:
        raise OperatingPointRefused(f"refused: checksum mismatch: content_sha256 in the file is {stored!r} but the "
                                    f"content hashes to {actual}; the file was modified after export")
    try:
        expected_text = serialize(doc)
    except ValueError as e:  # NaN / inf smuggled in
        raise OperatingPointRefused(f"refused: the file holds values JSON export never writes ({e})") from None
    if text != expected_text:
        raise OperatingPointRefused("refused: the file is not byte-identical to its canonical export form (its content "
                                    "hash matches, but its text was edited, e.g. whitespace or key order); re-export it")
    check_presentation_blocks(doc)  # before the schema: one line naming the key, with or without jsonschema
    schema = _schema()
    if schema is not None:
        try:
            import jsonschema
        except ImportError:  # pragma: no cover - jsonschema is a dependency of the harness
            jsonschema = None
        if jsonschema is not None:
            errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
            if errors:
                e = errors[0]
                where = "/".join(str(p) for p in e.path) or "(top level)"
                raise OperatingPointRefused(f"refused: schema violation at {where}: {e.message}")
    _structural_checks(doc)
    return doc


def is_number(x: Any) -> bool:
    """A finite real number (not a bool)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _structural_checks(doc: dict) -> None:
    """Checks that hold whether or not jsonschema is available: usable thresholds and bands."""
    th = doc.get("thresholds")
    if not isinstance(th, dict):
        raise OperatingPointRefused("refused: no 'thresholds' object")
    bands = th.get("bands")
    if not isinstance(bands, dict):
        raise OperatingPointRefused("refused: thresholds.bands is missing")
    for score in ("match", "pad"):
        b = bands.get(score)
        if not isinstance(b, dict) or not is_number(b.get("accept_at_or_above")) or not is_number(b.get("reject_below")):
            raise OperatingPointRefused(f"refused: thresholds.bands.{score} lacks finite accept/reject thresholds")
        if b["reject_below"] > b["accept_at_or_above"]:
            raise OperatingPointRefused(f"refused: thresholds.bands.{score}: reject_below > accept_at_or_above")
    if bands["match"]["accept_at_or_above"] != th.get("t_match") or bands["pad"]["accept_at_or_above"] != th.get("t_pad"):
        raise OperatingPointRefused("refused: thresholds.t_match/t_pad disagree with the accept thresholds of the bands")
    obs = doc.get("observed_scores")
    if doc.get("schema_version") != "3.0" and not isinstance(obs, dict):
        raise OperatingPointRefused(f"refused: schema {doc.get('schema_version')} requires observed_scores")
    for score in ("match", "pad") if isinstance(obs, dict) else ():
        classes = obs.get(score)
        if not isinstance(classes, dict):
            raise OperatingPointRefused(f"refused: observed_scores.{score} is not an object")
        for cls, r in classes.items():
            if not (isinstance(r, dict) and is_number(r.get("min")) and is_number(r.get("max")) and r["min"] <= r["max"]
                    and isinstance(r.get("n"), int) and not isinstance(r["n"], bool) and r["n"] >= 1):
                raise OperatingPointRefused(f"refused: observed_scores.{score}.{cls} is not a range min <= max over "
                                            "n >= 1 scores")


def _whole(x: Any, least: int) -> bool:
    """An int (not a bool) >= ``least``."""
    return isinstance(x, int) and not isinstance(x, bool) and x >= least


def _keys(block: Any, name: str, keys: tuple[str, ...]) -> dict:
    """``block`` as an object with exactly ``keys`` (else a refusal naming ``name`` and the key)."""
    if not isinstance(block, dict):
        raise OperatingPointRefused(f"refused: {name} is missing or not an object (schema 3.2 requires it)")
    for k in keys:
        if k not in block:
            raise OperatingPointRefused(f"refused: {name}.{k} is missing")
    extra = sorted(set(block) - set(keys))
    if extra:
        raise OperatingPointRefused(f"refused: {name}.{extra[0]} is not a field of schema 3.2")
    return block


def check_presentation_blocks(doc: dict) -> None:
    """Schema 3.2: refuse (one line naming the key) a ``presentation`` or ``flow`` block the exporter would not have
    written; a 3.0 / 3.1 file must not carry them."""
    if doc.get("schema_version") in PRE_PRESENTATION_VERSIONS:
        for name in ("presentation", "flow"):
            if name in doc:
                raise OperatingPointRefused(f"refused: {name} is not a field of schema {doc['schema_version']}")
        return
    pres = _keys(doc.get("presentation"), "presentation", ("aggregation", "template", "grouping", "unit"))
    agg = _keys(pres["aggregation"], "presentation.aggregation", ("rule", "trim", "q", "n"))
    for k in ("rule", "trim", "q", "n"):  # check_aggregation would fill a null with its default: never guess
        if agg[k] is None:
            raise OperatingPointRefused(f"refused: presentation.aggregation.{k} is null")
    try:
        check_aggregation(agg, "presentation.aggregation")
    except AggregationError as e:
        raise OperatingPointRefused(f"refused: {e}") from None
    checks = (
        ("presentation.template", pres["template"], pres["template"] in TEMPLATES, f"one of {list(TEMPLATES)}"),
        ("presentation.grouping", pres["grouping"], isinstance(pres["grouping"], str), "a string"),
        ("presentation.unit", pres["unit"], pres["unit"] == "presentation", "'presentation'"),
    )
    flow = _keys(doc.get("flow"), "flow", ("max_attempts", "attempt", "window_frames", "review_after_failures",
                                           "review_on_band", "on_exhausted"))
    raf = flow["review_after_failures"]
    checks += (
        ("flow.max_attempts", flow["max_attempts"], _whole(flow["max_attempts"], 1), "a whole number >= 1"),
        ("flow.attempt", flow["attempt"], flow["attempt"] in ATTEMPTS, f"one of {list(ATTEMPTS)}"),
        ("flow.window_frames", flow["window_frames"], _whole(flow["window_frames"], 0), "a whole number >= 0"),
        ("flow.review_after_failures", raf, raf is None or _whole(raf, 1), "null or a whole number >= 1"),
        ("flow.review_on_band", flow["review_on_band"], isinstance(flow["review_on_band"], bool), "true or false"),
        ("flow.on_exhausted", flow["on_exhausted"], flow["on_exhausted"] in ON_EXHAUSTED, f"one of {list(ON_EXHAUSTED)}"),
    )
    for key, value, ok, want in checks:
        if not ok:
            raise OperatingPointRefused(f"refused: {key} must be {want}, got {repr(value)[:60]}")
