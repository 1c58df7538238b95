"""Production runtime: replay an exported ``operating_point.json`` decision for a (match score, PAD score) pair.

Standard library only (``jsonschema`` is used when installed): importing this module never imports Hydra,
MLflow, torch, numpy or pandas, so it can be vendored into a service as one file.

    from harness.runtime import load
    op = load("operating_point.json", embedder_sha256=EMB_SHA, pad_sha256=PAD_SHA)
    d = op.decide(match_score=0.72, pad_score=0.91)
    d.outcome   # "accept" | "review" | "reject"
    d.reason    # why, in words
    d.evidence  # "match score 0.72: FMR 3/4000 = 0.075% [0.015%, 0.22%] on nuaa eval ..."

:func:`load` refuses (raises :class:`OperatingPointRefused`) a file that is

* not exactly the canonical text the exporter wrote (any changed byte, including whitespace),
* of a schema version this runtime does not read,
* whose ``content_sha256`` does not match its content,
* invalid against the schema, or without usable thresholds,
* exported for model weights other than the ones the caller says it runs (``weights_sha256``).

Decision rule (scores: higher = more likely the same person / more likely bona fide):

* reject  iff ``match < match.reject_below`` or ``pad < pad.reject_below`` (or a score is missing / not finite);
* accept  iff ``match >= match.accept_at_or_above`` and ``pad >= pad.accept_at_or_above``;
* review  otherwise (only possible when the export has a review band: ``reject_below < accept_at_or_above``).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "SUPPORTED_SCHEMA_VERSIONS",
    "OperatingPointRefused",
    "Decision",
    "OperatingPoint",
    "canonical",
    "content_sha256",
    "serialize",
    "verify_document",
    "load",
    "loads",
]

SUPPORTED_SCHEMA_VERSIONS: tuple[str, ...] = ("2.0",)
#: why an older file is refused (not only that it is)
RETIRED_SCHEMA_VERSIONS = {
    "1.0": ("its thresholds were chosen on trial-level confidence bounds (frames of one person counted as independent) "
            "and may be dominated (security given away for no convenience) or not float-safe; re-export it from its "
            "run directory with this harness: python -m harness.cli export <run_dir> -o operating_point.json"),
}
OUTCOMES = ("accept", "review", "reject")


class OperatingPointRefused(ValueError):
    """The operating point file cannot be used: tampered, wrong version, invalid, or for other model weights."""


# ------------------------------------------------------------------------------------------------ serialisation


def canonical(doc: dict) -> bytes:
    """Canonical JSON bytes (sorted keys, no whitespace, ASCII, no NaN/inf): what ``content_sha256`` hashes."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def content_sha256(doc: dict) -> str:
    """sha256 of the canonical JSON of ``doc`` without its ``content_sha256`` field."""
    return hashlib.sha256(canonical({k: v for k, v in doc.items() if k != "content_sha256"})).hexdigest()


def serialize(doc: dict) -> str:
    """The exact text of an operating point file (indented, sorted keys, ASCII, trailing newline)."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True, allow_nan=False) + "\n"


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
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
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
    actual = content_sha256(doc)
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


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _structural_checks(doc: dict) -> None:
    """Checks that hold whether or not jsonschema is available: usable thresholds and bands."""
    th = doc.get("thresholds")
    if not isinstance(th, dict):
        raise OperatingPointRefused("refused: no 'thresholds' object")
    if not doc.get("deployable", False):
        why = "; ".join(doc.get("not_deployable_because", [])) or "the export is marked not deployable"
        raise OperatingPointRefused(f"refused: this operating point is not deployable: {why}")
    bands = th.get("bands")
    if not isinstance(bands, dict):
        raise OperatingPointRefused("refused: thresholds.bands is missing")
    for score in ("match", "pad"):
        b = bands.get(score)
        if not isinstance(b, dict) or not _num(b.get("accept_at_or_above")) or not _num(b.get("reject_below")):
            raise OperatingPointRefused(f"refused: thresholds.bands.{score} lacks finite accept/reject thresholds")
        if b["reject_below"] > b["accept_at_or_above"]:
            raise OperatingPointRefused(f"refused: thresholds.bands.{score}: reject_below > accept_at_or_above")
    if bands["match"]["accept_at_or_above"] != th.get("t_match") or bands["pad"]["accept_at_or_above"] != th.get("t_pad"):
        raise OperatingPointRefused("refused: thresholds.t_match/t_pad disagree with the accept thresholds of the bands")


# --------------------------------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Decision:
    """One decision: ``outcome`` (accept / review / reject), the ``reason`` in words, and the ``evidence`` line."""

    outcome: str
    reason: str
    match_score: float | None
    pad_score: float | None
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pct(x: float) -> str:
    p = 100.0 * x
    if p == 0:
        return "0%"
    if abs(p) >= 0.01:
        return f"{p:.2f}%"
    return f"{p:.2g}%"


def _score(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


class OperatingPoint:
    """A verified operating point. Build it with :func:`load` / :func:`loads` (which verify), not directly."""

    def __init__(self, doc: dict, source: str = "<memory>"):
        self.doc = doc
        self.source = source
        b = doc["thresholds"]["bands"]
        self.match_accept = float(b["match"]["accept_at_or_above"])
        self.match_reject = float(b["match"]["reject_below"])
        self.pad_accept = float(b["pad"]["accept_at_or_above"])
        self.pad_reject = float(b["pad"]["reject_below"])
        ds = doc.get("dataset", {})
        self._lookup = doc.get("lookup", {})
        self._where = f"{ds.get('name', '?')} {self._lookup.get('partition', 'eval')}"

    # -- identity
    @property
    def content_sha256(self) -> str:
        return self.doc["content_sha256"]

    @property
    def has_review_band(self) -> bool:
        return self.match_reject < self.match_accept or self.pad_reject < self.pad_accept

    def __repr__(self) -> str:
        return (f"OperatingPoint(t_match={self.match_accept!r}, t_pad={self.pad_accept!r}, review_band="
                f"{self.has_review_band}, policy={self.doc.get('policy', {}).get('name')!r}, sha={self.content_sha256[:12]})")

    # -- the decision
    def decide(self, match_score: Any, pad_score: Any) -> Decision:
        m, p = _score(match_score), _score(pad_score)
        ev = self.evidence(m, p)
        problems = []
        if m is None:
            problems.append(f"no usable match score ({match_score!r}: failure to acquire or process)")
        if p is None:
            problems.append(f"no usable PAD score ({pad_score!r}: failure to acquire or process)")
        if problems:
            return Decision("reject", "reject: " + "; ".join(problems), m, p, ev)
        rejects = []
        if p < self.pad_reject:
            rejects.append(f"PAD score {p:.6g} < {self.pad_reject:.6g} (presentation attack suspected)")
        if m < self.match_reject:
            rejects.append(f"match score {m:.6g} < {self.match_reject:.6g} (not the enrolled person)")
        if rejects:
            return Decision("reject", "reject: " + "; ".join(rejects), m, p, ev)
        if m >= self.match_accept and p >= self.pad_accept:
            return Decision("accept", f"accept: match score {m:.6g} >= {self.match_accept:.6g} and PAD score {p:.6g} "
                                      f">= {self.pad_accept:.6g}", m, p, ev)
        band = []
        if m < self.match_accept:
            band.append(f"match score {m:.6g} in the review band [{self.match_reject:.6g}, {self.match_accept:.6g})")
        if p < self.pad_accept:
            band.append(f"PAD score {p:.6g} in the review band [{self.pad_reject:.6g}, {self.pad_accept:.6g})")
        return Decision("review", "review: " + "; ".join(band) + "; send to manual review", m, p, ev)

    def decide_many(self, pairs) -> list[Decision]:
        return [self.decide(m, p) for m, p in pairs]

    # -- evidence from the lookup tables
    def _rate_text(self, k_lo: int, k_hi: int, n: int, exact: bool) -> str:
        if exact or k_lo == k_hi:
            return f"{k_lo}/{n} = {_pct(k_lo / n)}"
        return f"between {k_lo}/{n} and {k_hi}/{n} ({_pct(k_lo / n)} to {_pct(k_hi / n)}; table is thinned)"

    def match_evidence(self, m: float | None) -> str:
        t = self._lookup.get("match")
        if m is None:
            return "match score missing"
        if not t or not t.get("score"):
            return f"match score {m:.4g}: no lookup table in the export"
        exact = bool(t.get("exact"))
        pts, n = t["score"], int(t["n_impostor"])
        j = bisect.bisect_left(pts, m)
        k_lo = t["fmr_k"][j] if j < len(pts) else 0
        k_hi = t["fmr_k"][j - 1] if j > 0 else n
        if exact:
            k_hi = k_lo
        txt = f"match score {m:.4g} ≈ FMR {self._rate_text(k_lo, k_hi, n, exact)}"
        ci = t.get("fmr_ci")
        if exact and ci and j < len(pts):
            txt += f" [95% CI {_pct(ci[j][0])}, {_pct(ci[j][1])}]"
        return txt + f" on {self._where} (zero-effort impostor trials scoring >= it)"

    def pad_evidence(self, p: float | None) -> str:
        t = self._lookup.get("pad")
        if p is None:
            return "PAD score missing"
        if not t or not t.get("score"):
            return f"PAD score {p:.4g}: no lookup table in the export"
        exact = bool(t.get("exact"))
        pts = t["score"]
        j = bisect.bisect_left(pts, p)
        parts = []
        for sp, d in sorted(t.get("species", {}).items()):
            n = int(d["n"])
            k_lo = d["apcer_k"][j] if j < len(pts) else 0
            k_hi = d["apcer_k"][j - 1] if j > 0 else n
            if exact:
                k_hi = k_lo
            parts.append(f"{sp} {self._rate_text(k_lo, k_hi, n, exact)}")
        nb = t.get("n_bona_fide")
        bp = ""
        if nb:
            kb = t["bpcer_k"][j] if j < len(pts) else int(nb)
            kb_lo = t["bpcer_k"][j - 1] if j > 0 else 0
            bp = f"; bona fide presentations scoring below it: {self._rate_text(kb if exact else kb_lo, kb, int(nb), exact)}"
        return f"PAD score {p:.4g} ≈ APCER {', '.join(parts) or 'n/a'} on {self._where} (attacks scoring >= it){bp}"

    def evidence(self, match_score: Any = None, pad_score: Any = None) -> str:
        return f"{self.match_evidence(_score(match_score))}; {self.pad_evidence(_score(pad_score))}"


def _check_weights(doc: dict, embedder_sha256: str | None, pad_sha256: str | None, allow_unverified: bool) -> None:
    models = doc.get("models", {})
    for role, given in (("embedder", embedder_sha256), ("pad", pad_sha256)):
        want = (models.get(role) or {}).get("weights_sha256")
        if given is None:
            if allow_unverified:
                continue
            raise OperatingPointRefused(f"refused: no {role} weights sha256 given; pass the sha256 of the {role} weights "
                                        f"the service runs (the export was made with {want})")
        if str(given).strip().lower() != str(want).lower():
            raise OperatingPointRefused(f"refused: model mismatch: the {role} weights sha256 given ({given}) differs from "
                                        f"the one this operating point was exported for ({want}); its thresholds do not "
                                        "apply to other weights")


def loads(text: bytes | str, *, embedder_sha256: str | None, pad_sha256: str | None,
          allow_unverified_models: bool = False, source: str = "<memory>") -> OperatingPoint:
    """Verify the text of an operating point file and the model weights it applies to; see :func:`load`."""
    doc = verify_document(text)
    _check_weights(doc, embedder_sha256, pad_sha256, allow_unverified_models)
    return OperatingPoint(doc, source)


def load(path: str | Path, *, embedder_sha256: str | None, pad_sha256: str | None,
         allow_unverified_models: bool = False) -> OperatingPoint:
    """Load and verify ``operating_point.json``.

    ``embedder_sha256`` / ``pad_sha256``: sha256 of the model weights the caller runs; they must equal the ones the
    export records. Passing ``None`` is refused unless ``allow_unverified_models=True`` (tests, offline analysis).
    Raises :class:`OperatingPointRefused` with a one-line reason when anything does not check out.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise OperatingPointRefused(f"refused: cannot read {p}: {e.strerror or e}") from None
    return loads(raw, embedder_sha256=embedder_sha256, pad_sha256=pad_sha256,
                 allow_unverified_models=allow_unverified_models, source=str(p))
