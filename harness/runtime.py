"""Production runtime: replay an exported ``operating_point.json`` decision for a (match score, PAD score) pair.

Standard library only (``jsonschema`` is used when installed): importing this module never imports Hydra,
MLflow, torch, numpy or pandas, so it can be vendored into a service with :mod:`harness.opdoc` (the document's
canonical form, content hash, signatures and verification), :mod:`harness.aggregation` and
:mod:`harness.runtime_presentation` (one presentation's frame scores -> one decision) beside it.

    from harness.runtime import load
    op = load("operating_point.json", embedder_sha256=EMB_SHA, pad_sha256=PAD_SHA)
    d = op.decide(match_score=0.72, pad_score=0.91)
    d.outcome   # "accept" | "review" | "reject"
    d.reason    # why, in words
    d.evidence  # "match score 0.72: FMR 3/4000 = 0.075% [0.015%, 0.22%] on nuaa eval ..."
    d.flags     # () when both scores lie inside the range observed in evaluation
    # a video / burst: its frames' PAD scores (None: no face), aggregated by the export's rule (schema 3.2)
    d = op.decide_presentation([0.91, None, 0.88], qualities=[0.99, 0.1, 0.97], match_score=0.72)

:func:`load` refuses (raises :class:`OperatingPointRefused`) a file that is

* not exactly the canonical text the exporter wrote (any changed byte, including whitespace),
* of a schema version this runtime does not read (:data:`RETIRED_SCHEMA_VERSIONS` says why older ones are refused),
* whose ``content_sha256`` does not match its content,
* unsigned, or not signed with the caller's key, unless the caller trusts its ``content_sha256`` out of band
  (``trusted_content_sha256``: the hash the risk committee approved). A content hash alone proves nothing: anyone
  can recompute it after editing the thresholds; the signature (HMAC-SHA256 with a key held outside the file, or
  Ed25519 with the exporter's private key) is what binds the thresholds to whoever approved them,
* invalid against the schema, or without usable thresholds,
* not deployable (targets not supported, a required standard not met, selected on evaluation data, unsigned),
  unless ``allow_not_deployable=True``,
* exported for model weights other than the ones the caller says it runs (``weights_sha256``), or, for a vendor's
  model whose scores were imported (schema 3.3, ``models.<role>.vendor``), for another vendor identity than the
  caller's ``vendor_identity`` (the SDK build the committee approved, else the score files' sha256 joined by ``+``).

Signing keys are never stored in the file, the code or the config: HMAC keys come from ``key=`` /
``HARNESS_SIGNING_KEY`` (the key text) / ``HARNESS_SIGNING_KEY_FILE`` (a file holding it), at least
:data:`MIN_KEY_BYTES` bytes; Ed25519 public keys from ``public_key=`` (PEM bytes or a path; needs the optional
``cryptography`` package).

Decision rule (scores: higher = more likely the same person / more likely bona fide):

* reject  iff ``match < match.reject_below`` or ``pad < pad.reject_below`` (or a score is missing / not finite);
* accept  iff ``match >= match.accept_at_or_above`` and ``pad >= pad.accept_at_or_above``;
* review  otherwise (only possible when the export has a review band: ``reject_below < accept_at_or_above``).

Two ranges are kept apart. A score outside the model's POSSIBLE range (``models.<role>.score_range``, e.g. above 0
for minus a distance) is refused: reject, "refused input". A score inside it but outside the range OBSERVED in
evaluation (``observed_scores``, schema 3.1: below the smallest or above the largest score of any class) is decided
by the thresholds as usual but flagged (``Decision.flags``, repeated in ``reason`` and ``evidence``): "no evidence
at this score: match score 0.72 is above every score observed in evaluation (max -0.21 over 951 trials)"; its
evidence never reads as an observed "0/n = 0%" (no trial scored there; it gives the one-sided upper bound instead).
A schema 3.0 file records no observed range: its decisions carry the flag "observed score range unknown (schema 3.0
export)", and a score beyond the ends of its lookup table is flagged the same way. What a score means is in
``models.<role>.score_scale`` (e.g. dlib: minus a Euclidean distance; a similarity of 0.72 is not "72%").
"""

from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

try:  # the harness installed
    from harness.opdoc import (MAX_FILE_BYTES, MIN_KEY_BYTES, RETIRED_SCHEMA_VERSIONS, SUPPORTED_SCHEMA_VERSIONS,
                               UNSIGNED_REASON, OperatingPointRefused, is_number, canonical, content_sha256, key_id,
                               serialize, sign_document, signing_key, verify_document, verify_signature)
except ImportError:  # vendored beside opdoc.py (e.g. an MLflow model's code_paths)
    from opdoc import (MAX_FILE_BYTES, MIN_KEY_BYTES, RETIRED_SCHEMA_VERSIONS,  # type: ignore[no-redef]
                       SUPPORTED_SCHEMA_VERSIONS, UNSIGNED_REASON, OperatingPointRefused, is_number, canonical,
                       content_sha256, key_id, serialize, sign_document, signing_key, verify_document,
                       verify_signature)
try:
    from harness.runtime_presentation import decide_presentation
except ImportError:  # vendored beside runtime_presentation.py and aggregation.py
    from runtime_presentation import decide_presentation  # type: ignore[no-redef]

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
    "sign_document",
    "signing_key",
    "key_id",
    "MIN_KEY_BYTES",
    "UNSIGNED_REASON",
    "verify_signature",
    "decide_presentation",
]

OUTCOMES = ("accept", "review", "reject")


# --------------------------------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Decision:
    """One decision: ``outcome`` (accept / review / reject), the ``reason`` in words, the ``evidence`` line, and
    ``flags``: what the decision is not backed by (empty when both scores lie where evaluation observed scores), e.g.
    "no evidence at this score: ..." for a score beyond every score observed in evaluation, or "observed score range
    unknown (schema 3.0 export)". Every flag is also in ``reason``. A decision on a presentation
    (:meth:`OperatingPoint.decide_presentation`) also says how its ``pad_score`` was aggregated from its frames:
    ``aggregation_rule``, ``frames_used`` (scored frames the rule used), ``frames_total``; None otherwise."""

    outcome: str
    reason: str
    match_score: float | None
    pad_score: float | None
    evidence: str
    flags: tuple[str, ...] = ()
    aggregation_rule: str | None = None
    frames_used: int | None = None
    frames_total: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; the presentation fields only on a presentation's decision."""
        d = asdict(self) | {"flags": list(self.flags)}
        if self.aggregation_rule is None:
            for k in ("aggregation_rule", "frames_used", "frames_total"):
                d.pop(k)
        return d


def _pct(x: float) -> str:
    p = 100.0 * x
    if p == 0:
        return "0%"
    if abs(p) >= 0.01:
        return f"{p:.2f}%"
    return f"{p:.2g}%"


def _score(x: Any) -> float | None:
    """A finite real number, or None (bools, non-numbers, NaN, inf and overflowing values are not scores)."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x.strip() if isinstance(x, str) else x)
    except (TypeError, ValueError, OverflowError):
        return None
    return v if math.isfinite(v) else None


def _score_problem(x: Any, v: float | None, what: str, rng: Any) -> str | None:
    """Why ``x`` is not a usable ``what`` score (None when it is)."""
    if x is None:
        return f"no {what} score (failure to acquire or process)"
    if v is None:
        kind = "a boolean" if isinstance(x, bool) else f"{str(x)[:40]!r}"
        return f"{what} score {kind} is not a finite real number"
    if isinstance(rng, (list, tuple)) and len(rng) == 2:
        lo, hi = rng
        tol = 1e-6
        if (is_number(lo) and v < lo - tol) or (is_number(hi) and v > hi + tol):
            return (f"{what} score {v:.6g} is outside the model's declared score range "
                    f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]")
    return None


class OperatingPoint:
    """A verified operating point. Build it with :func:`load` / :func:`loads` (which verify), not directly."""

    def __init__(self, doc: dict, source: str = "<memory>"):
        self.doc = doc
        self.source = source
        self.trusted_because = "not verified (built directly)"
        b = doc["thresholds"]["bands"]
        self.match_accept = float(b["match"]["accept_at_or_above"])
        self.match_reject = float(b["match"]["reject_below"])
        self.pad_accept = float(b["pad"]["accept_at_or_above"])
        self.pad_reject = float(b["pad"]["reject_below"])
        ds = doc.get("dataset", {})
        self._lookup = doc.get("lookup", {})
        self._where = f"{ds.get('name', '?')} {self._lookup.get('partition', 'eval')}"
        self._observed = {score: self._observed_range(score) for score in ("match", "pad")}

    def _observed_range(self, score: str) -> tuple[float, float, int, str] | None:
        """(min, max, n, what) of the ``score`` ("match" / "pad") values observed in evaluation, over every class;
        for a 3.0 export (no ``observed_scores``) the ends of its lookup table (they are the extreme scores of the
        two classes it covers); None when the export records neither."""
        obs, t = self.doc.get("observed_scores"), self._lookup.get(score)
        if isinstance(obs, dict):
            rs = list((obs.get(score) or {}).values())
            where = "evaluation" if obs.get("partition", "eval") == "eval" else f"the {obs['partition']} partition"
            return (min(r["min"] for r in rs), max(r["max"] for r in rs), sum(int(r["n"]) for r in rs),
                    f"every score observed in {where}") if rs else (math.inf, -math.inf, 0, f"observed in {where}")
        if not t or not t.get("score"):
            return None
        if score == "match":
            n, what = int(t["n_impostor"]) + int(t.get("n_genuine") or 0), "genuine and impostor"
        else:
            n = int(t.get("n_bona_fide") or 0) + sum(int(d["n"]) for d in t.get("species", {}).values())
            what = "bona fide and attack"
        return float(t["score"][0]), float(t["score"][-1]), n, f"every {what} score in the export's lookup table"

    def no_evidence(self, score: str, v: float | None) -> str | None:
        """The flag for a ``score`` ("match" / "pad") value ``v`` beyond every score observed in evaluation (None
        when ``v`` lies inside the observed range, or no range is known)."""
        r = self._observed[score]
        if v is None or r is None or r[0] <= v <= r[1]:
            return None
        lo, hi, n, what = r
        name, unit = ("match", "trials") if score == "match" else ("PAD", "presentations")
        if n == 0:
            return f"no evidence at this score: no {name} score was {what}"
        side, end = ("above", f"max {hi:.6g}") if v > hi else ("below", f"min {lo:.6g}")
        return f"no evidence at this score: {name} score {v:.6g} is {side} {what} ({end} over {n} {unit})"

    def flags(self, m: float | None, p: float | None) -> list[str]:
        """What a decision on the finite scores ``m`` / ``p`` is not backed by (see :class:`Decision`)."""
        out = []
        if not isinstance(self.doc.get("observed_scores"), dict):
            out.append("observed score range unknown (schema 3.0 export)" if self.doc.get("schema_version") == "3.0"
                       else "observed score range unknown (not exported)")
        return out + [f for f in (self.no_evidence("match", m), self.no_evidence("pad", p)) if f]

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
        """accept / review / reject. Input that is not a finite real number inside the model's declared score range
        (``models.<role>.score_range``) is refused: the outcome is ``reject`` and the reason says why."""
        m, p = _score(match_score), _score(pad_score)
        models = self.doc.get("models", {})
        problems = [x for x in (_score_problem(match_score, m, "match", (models.get("embedder") or {}).get("score_range")),
                                _score_problem(pad_score, p, "PAD", (models.get("pad") or {}).get("score_range")))
                    if x]
        flags = self.flags(m, p)

        def decision(outcome: str, reason: str) -> Decision:
            flagged = f"; flagged: {'; '.join(flags)}" if flags else ""
            return Decision(outcome, reason + flagged, m, p, self.evidence(m, p), tuple(flags))

        if problems:
            return decision("reject", "reject: refused input: " + "; ".join(problems))
        rejects = []
        if p < self.pad_reject:
            rejects.append(f"PAD score {p:.6g} < {self.pad_reject:.6g} (presentation attack suspected)")
        if m < self.match_reject:
            rejects.append(f"match score {m:.6g} < {self.match_reject:.6g} (not the enrolled person)")
        if rejects:
            return decision("reject", "reject: " + "; ".join(rejects))
        if m >= self.match_accept and p >= self.pad_accept:
            return decision("accept", f"accept: match score {m:.6g} >= {self.match_accept:.6g} and PAD score {p:.6g} "
                                      f">= {self.pad_accept:.6g}")
        band = []
        if m < self.match_accept:
            band.append(f"match score {m:.6g} in the review band [{self.match_reject:.6g}, {self.match_accept:.6g})")
        if p < self.pad_accept:
            band.append(f"PAD score {p:.6g} in the review band [{self.pad_reject:.6g}, {self.pad_accept:.6g})")
        return decision("review", "review: " + "; ".join(band) + "; send to manual review")

    def decide_presentation(self, frame_scores: Any, qualities: Any = None, match_score: Any = None) -> Decision:
        """The decision on one presentation from its frames' PAD scores (capture order, None where no face), by the
        export's ``presentation.aggregation`` rule (schema 3.2; a 3.0 / 3.1 export is refused): see
        :func:`harness.runtime_presentation.decide_presentation`."""
        return decide_presentation(self, frame_scores, qualities, match_score)

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
        flag = self.no_evidence("match", m)
        if flag:  # no trial there: never an observed "0/n = 0%"
            n = int(t["n_impostor"]) if t else 0
            if not n:
                return flag + self._scale("embedder")
            if self._observed["match"][2] > 0 and m < self._observed["match"][0]:
                return flag + f"; all {n} impostor trials scored above it" + self._scale("embedder")
            return (flag + f"; no impostor trial of {n} scored this high: 0 observed is not evidence of 0% (trial-level "
                    f"one-sided 95% upper bound on FMR {_pct(1 - 0.05 ** (1 / n))}; wider when trials share people)"
                    + self._scale("embedder"))
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
        flag = self.no_evidence("pad", p)
        if flag:  # no presentation there: never an observed "0/n = 0%"
            sp = sorted((t or {}).get("species", {}).items())
            if self._observed["pad"][2] > 0 and p < self._observed["pad"][0]:
                return flag + "; every presentation scored above it" + self._scale("pad")
            ub = ", ".join(f"{s} {_pct(1 - 0.05 ** (1 / int(d['n'])))} (0 of {int(d['n'])})" for s, d in sp)
            return (flag + "; no attack presentation scored this high: 0 observed is not evidence of 0%"
                    + (f" (trial-level one-sided 95% upper bound on APCER {ub}; wider when presentations share people)"
                       if ub else "") + self._scale("pad"))
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

    def _scale(self, role: str) -> str:
        scale = (self.doc.get("models", {}).get(role) or {}).get("score_scale")
        return f" (score scale: {scale})" if scale else ""

    def evidence(self, match_score: Any = None, pad_score: Any = None) -> str:
        return f"{self.match_evidence(_score(match_score))}; {self.pad_evidence(_score(pad_score))}"


def _check_vendor(role: str, vendor: dict, given: str | None, allow_unverified: bool) -> None:
    """A vendor model (schema 3.3): the caller's ``vendor_identity`` must equal the export's ``identity``."""
    want, who = vendor.get("identity"), f"{vendor.get('name')} {vendor.get('version')}"
    if given is None:
        if allow_unverified:
            return
        raise OperatingPointRefused(f"refused: no vendor identity given for the {role} model ({who}); pass "
                                    f"vendor_identity= the SDK build / score file sha256 the committee approved "
                                    f"(the export was made for {want})")
    if str(given).strip() != str(want):
        raise OperatingPointRefused(f"refused: vendor mismatch: the {role} model identity given ({given}) differs from "
                                    f"the one this operating point was exported for ({who}: {want}); its thresholds "
                                    "do not apply to another SDK build or other scores")


def _check_weights(doc: dict, embedder_sha256: str | None, pad_sha256: str | None, allow_unverified: bool,
                   vendor_identity: str | None = None) -> None:
    models = doc.get("models", {})
    for role, given in (("embedder", embedder_sha256), ("pad", pad_sha256)):
        vendor = (models.get(role) or {}).get("vendor")
        if isinstance(vendor, dict):  # a third-party model: its identity, not weights
            _check_vendor(role, vendor, vendor_identity, allow_unverified)
            continue
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
          key: bytes | str | None = None, key_file: str | Path | None = None,
          public_key: bytes | str | Path | None = None, trusted_content_sha256: str | None = None,
          allow_not_deployable: bool = False, allow_unverified_models: bool = False,
          source: str = "<memory>", vendor_identity: str | None = None) -> OperatingPoint:
    """Verify the text of an operating point file, its signature, its deployability and the model weights it applies
    to; see :func:`load`."""
    doc = verify_document(text)
    how = verify_signature(doc, None if trusted_content_sha256 is not None or public_key is not None
                           else signing_key(key, key_file), public_key, trusted_content_sha256)
    if not doc.get("deployable", False) and not allow_not_deployable:
        why = "; ".join(doc.get("not_deployable_because", [])) or "the export is marked not deployable"
        raise OperatingPointRefused(f"refused: this operating point is not deployable: {why} (pass "
                                    "allow_not_deployable=True / --allow-not-deployable for analysis only)")
    _check_weights(doc, embedder_sha256, pad_sha256, allow_unverified_models, vendor_identity)
    op = OperatingPoint(doc, source)
    op.trusted_because = how
    return op


def load(path: str | Path, *, embedder_sha256: str | None, pad_sha256: str | None,
         key: bytes | str | None = None, key_file: str | Path | None = None,
         public_key: bytes | str | Path | None = None, trusted_content_sha256: str | None = None,
         allow_not_deployable: bool = False, allow_unverified_models: bool = False,
         vendor_identity: str | None = None) -> OperatingPoint:
    """Load and verify ``operating_point.json``.

    ``embedder_sha256`` / ``pad_sha256``: sha256 of the model weights the caller runs; they must equal the ones the
    export records. Passing ``None`` is refused unless ``allow_unverified_models=True`` (tests, offline analysis).
    ``vendor_identity``: for a vendor's model (schema 3.3, scores imported), the SDK build or score file sha256 the
    service uses; it must equal the export's ``models.<role>.vendor.identity`` (the weights arguments are not used
    for that role; ``None`` is refused the same way).
    Trust: an HMAC key (``key`` / ``key_file`` / ``$HARNESS_SIGNING_KEY`` / ``$HARNESS_SIGNING_KEY_FILE``), an
    Ed25519 ``public_key``, or the approved ``trusted_content_sha256``; an unsigned or wrongly signed file is refused.
    A file marked not deployable is refused unless ``allow_not_deployable=True``.
    Raises :class:`OperatingPointRefused` with a one-line reason when anything does not check out.
    """
    p = Path(path)
    try:
        if p.stat().st_size > MAX_FILE_BYTES:
            raise OperatingPointRefused(f"refused: {p} is larger than any export ({p.stat().st_size} bytes)")
        raw = p.read_bytes()
    except OSError as e:
        raise OperatingPointRefused(f"refused: cannot read {p}: {e.strerror or e}") from None
    return loads(raw, embedder_sha256=embedder_sha256, pad_sha256=pad_sha256, key=key, key_file=key_file,
                 public_key=public_key, trusted_content_sha256=trusted_content_sha256,
                 allow_not_deployable=allow_not_deployable, allow_unverified_models=allow_unverified_models,
                 source=str(p), vendor_identity=vendor_identity)
