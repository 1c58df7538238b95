"""The operating point document: its canonical text, its content hash, and its signature.

Standard library only (Ed25519 needs the optional ``cryptography`` package, imported only for Ed25519), so that
:mod:`harness.runtime` and this module can be vendored into a service together. ``content_sha256`` covers everything
but itself and ``signature``; the signature (HMAC-SHA256 with a key held outside the file, or Ed25519) covers the
canonical content including ``content_sha256``. Keys are never stored in the file, the code or the config.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from pathlib import Path

__all__ = ["OperatingPointRefused", "canonical", "content_sha256", "serialize", "signing_key", "key_id",
           "sign_document", "verify_signature", "MIN_KEY_BYTES", "UNSIGNED_REASON"]

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
