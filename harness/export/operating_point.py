"""``operating_point.json``: the thresholds handed to production, with the evidence behind them.

Versioned (:data:`SCHEMA_VERSION`, JSON Schema in :mod:`harness.export.schema`, validated with ``jsonschema``
before writing). It holds: schema version, creation time, harness version and git sha, the resolved config, the
models (name, weights sha256 - or, for imported scores, the vendor identity - and preprocessing), the thresholds and review bands, the policy and its inputs, the
expected rates on eval (k/n with intervals), the standards verdicts, the dataset fingerprint (manifest hash,
counts), score -> FMR and PAD score -> APCER lookup tables, the scores observed per class on the reported partition
(``observed_scores``: outside them the runtime flags "no evidence at this score"), and ``content_sha256``. Each
model may state what its score is in words (``models.<role>.score_scale``).

Schema 3.2 adds the unit decided (from the config's ``presentation`` and ``flow`` groups, or the
``presentation=`` / ``flow=`` arguments):

* ``presentation``: ``{"aggregation": {"rule", "trim", "q", "n"}`` (:func:`harness.aggregation.check_aggregation`'s
  output: how the PAD scores of one presentation's frames become its one PAD score), ``"template": "mean" |
  "best_quality"`` (how the face template is pooled from its frames), ``"grouping": str`` (which frames form one
  presentation, in words), ``"unit": "presentation"}``. Default: mean / mean / "one presentation per sample".
* ``flow``: ``{"max_attempts": int`` (the largest when a list was configured), ``"attempt": "presentation" |
  "window", "window_frames": int, "review_after_failures": int | null, "review_on_band": bool, "on_exhausted":
  "reject" | "review"}``. Default: one attempt of one presentation, rejected when it fails.

Both are inside ``content_sha256`` and the signature (everything but ``signature`` is signed).

Schema 3.3 names a third-party model instead of weights: for a run on imported score files (``dataset=scores``)
``models.embedder`` / ``models.pad`` carry ``vendor`` ``{"name", "version", "sdk_build", "score_files": [{"file",
"sha256"}], "identity"}`` (:func:`harness.vendor_scores.vendor_identity`) and no ``weights_sha256``; the runtime checks
``identity`` (the approved SDK build, else the score files' sha256) instead of weight hashes.

``content_sha256`` = sha256 of the canonical JSON (sorted keys, no whitespace, ASCII) of the document without
that field; the file itself is written in one canonical indented form, so :mod:`harness.runtime` refuses a file
in which any byte changed.
"""

from __future__ import annotations

import math
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.aggregation import check_aggregation
from harness.opdoc import ATTEMPTS, ON_EXHAUSTED, TEMPLATES
from harness.version import __version__
from harness.paths import REPO_ROOT
from harness.redact import redact_config
from harness.runtime import (UNSIGNED_REASON, canonical, content_sha256, serialize, sign_document, signing_key,
                             verify_document)

from .schema import SCHEMA, SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "git_sha", "canonical", "content_sha256", "build_operating_point", "validate",
           "write_operating_point", "read_operating_point", "plain", "sign_file", "evidence_reasons", "signing_key",
           "presentation_block", "flow_block", "DEFAULT_GROUPING"]

KIND = "face-pad-harness/operating-point"
COMPARISON = ("accept a score iff score >= threshold, compared as float64 (a float32 score widened to float64, or "
              "both as float32, decides the same: every exported threshold is a float32 number unless "
              "plateau.<score>.float32_safe is false)")


def git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def plain(x: Any) -> Any:
    """JSON-ready copy: numpy scalars/arrays -> Python, tuples -> lists, non-finite floats -> None."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return [plain(v) for v in x.tolist()]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return v if math.isfinite(v) else None
    if hasattr(x, "to_dict"):
        return plain(x.to_dict())
    return x


def _decision_rule(bands: dict | None) -> str:
    if not bands:
        return "no thresholds: not deployable"
    m, p = bands["match"], bands["pad"]
    if m["reject_below"] == m["accept_at_or_above"] and p["reject_below"] == p["accept_at_or_above"]:
        return ("accept iff match_score >= thresholds.t_match and pad_score >= thresholds.t_pad; otherwise reject "
                "(no review band)")
    return ("reject iff match_score < bands.match.reject_below or pad_score < bands.pad.reject_below; accept iff "
            "match_score >= bands.match.accept_at_or_above (= t_match) and pad_score >= bands.pad.accept_at_or_above "
            "(= t_pad); review otherwise")


def _not_deployable_because(op: dict, signed: bool) -> list[str]:
    """Why the export is not deployable: a threshold missing, the evidence (:func:`evidence_reasons`), unsigned."""
    out = []
    if op.get("t_match") is None:
        out.append("no match threshold could be chosen (see notes)")
    if op.get("t_pad") is None:
        out.append("no PAD threshold could be chosen (see notes)")
    out.extend(evidence_reasons(op))
    if not signed:
        out.append(UNSIGNED_REASON)
    return out


def _data_sections(trials: pd.DataFrame | None, probes: pd.DataFrame | None, part: str,
                   max_lookup_points: int) -> tuple[dict, dict, dict]:
    """``(counts per partition, lookup tables, observed score ranges)`` of the run's tables on ``part``; empty
    without the tables."""
    from harness.export.lookup import lookup_tables, observed_score_ranges
    from harness.policy.data import score_sets

    counts: dict[str, Any] = {}
    lookup: dict[str, Any] = {"partition": part, "match": None, "pad": None}
    observed: dict[str, Any] = {"partition": part, "match": {}, "pad": {}}
    if trials is not None and probes is not None:
        for p in ("dev", "eval"):
            counts[p] = score_sets(trials, probes, p).counts()
        lookup = lookup_tables(score_sets(trials, probes, part), max_lookup_points)
        observed = observed_score_ranges(trials, probes, part)
    return counts, lookup, observed


def _policy_name(op: dict) -> str:
    return op.get("name") or (op.get("policy") or {}).get("name", "target_rates")


def _thresholds_section(op: dict, bands: dict | None) -> dict:
    return {
        "t_match": op.get("t_match"),
        "t_pad": op.get("t_pad"),
        "bands": bands,
        "review_band": bool(op.get("review_band", False)),
        "selected_on": op["selected_on"],
        "selected_on_eval_data": bool(op["selected_on_eval_data"]),
        "policy": _policy_name(op),
        "notes": list(op.get("notes", [])),
        "plateau": op.get("plateau"),
        "comparison": COMPARISON,
    }


def _policy_section(op: dict) -> dict:
    return {
        "name": _policy_name(op),
        "inputs": {k: v for k, v in (op.get("policy") or {}).items() if k not in ("name",)},
        "selected_on": op["selected_on"],
        "selected_on_eval_data": bool(op["selected_on_eval_data"]),
        "supported": bool(op.get("supported", False)),
        "selection": op.get("selection", {}),
        "on_selection_data": op.get("on_selection_data"),
        "evidence": op.get("evidence") or {},
        "notes": list(op.get("notes", [])),
    }


DEFAULT_GROUPING = "one presentation per sample"
_FLOW_DEFAULTS = {"max_attempts": 1, "attempt": "presentation", "window_frames": 0, "review_after_failures": None,
                  "review_on_band": False, "on_exhausted": "reject"}


def _group(x: Any) -> dict:
    """A config group (dict, OmegaConf container or None) as a plain dict."""
    if x is None:
        return {}
    if hasattr(x, "items"):
        return {str(k): v for k, v in x.items()}
    raise ValueError(f"expected a mapping, got {type(x).__name__}")


def presentation_block(presentation: Any = None) -> dict:
    """The export's ``presentation`` block from the config's ``presentation`` group (None: the defaults); a bad
    value raises ``ValueError`` naming the key."""
    g = _group(presentation)
    agg = check_aggregation(_group(g.get("aggregation")), "presentation.aggregation")
    template = g.get("template") or "mean"
    if template not in TEMPLATES:
        raise ValueError(f"presentation.template must be one of {list(TEMPLATES)}, got {template!r}")
    grouping = g.get("grouping") or DEFAULT_GROUPING
    if not isinstance(grouping, str):
        raise ValueError(f"presentation.grouping must be text, got {grouping!r}")
    return {"aggregation": agg, "template": template, "grouping": grouping, "unit": "presentation"}


def flow_block(flow: Any = None) -> dict:
    """The export's ``flow`` block from the config's ``flow`` group (None: the defaults; ``max_attempts`` given as a
    list exports its largest value); a bad value raises ``ValueError`` naming the key."""
    g = _group(flow)
    out = dict(_FLOW_DEFAULTS) | {k: g[k] for k in _FLOW_DEFAULTS if g.get(k) is not None}
    if "review_after_failures" in g:
        out["review_after_failures"] = g["review_after_failures"]
    ma = out["max_attempts"]
    if isinstance(ma, (list, tuple)) and ma:
        ma = max(ma) if all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in ma) else ma
    out["max_attempts"] = ma

    def whole(x: Any, least: int) -> bool:
        """An int (not a bool) >= least."""
        return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)) and x >= least

    raf = out["review_after_failures"]
    bad = [("max_attempts", whole(ma, 1), "a whole number >= 1 (or a list of them)"),
           ("attempt", out["attempt"] in ATTEMPTS, f"one of {list(ATTEMPTS)}"),
           ("window_frames", whole(out["window_frames"], 0), "a whole number >= 0"),
           ("review_after_failures", raf is None or whole(raf, 1), "null or a whole number >= 1"),
           ("review_on_band", isinstance(out["review_on_band"], (bool, np.bool_)), "true or false"),
           ("on_exhausted", out["on_exhausted"] in ON_EXHAUSTED, f"one of {list(ON_EXHAUSTED)}")]
    for key, ok, want in bad:
        if not ok:
            raise ValueError(f"flow.{key} must be {want}, got {out[key]!r}")
    return plain(out)


def build_operating_point(*, config: dict, models: dict, op: dict, dataset: dict, trials: pd.DataFrame | None = None,
                          probes: pd.DataFrame | None = None, created_at: str | None = None,
                          max_lookup_points: int = 512, unmeasurable: list | None = None,
                          key: bytes | str | None = "env", private_key_pem: Any = None,
                          presentation: dict | None = None, flow: dict | None = None) -> dict:
    """Assemble the export from the chosen operating point ``op`` (:func:`harness.policy.choose_thresholds`).

    ``trials`` / ``probes`` (the run's tables) give the dataset counts and the lookup tables on the reported
    partition; without them those parts are empty. ``key``: the HMAC key that signs it ("env" =
    ``$HARNESS_SIGNING_KEY`` / ``$HARNESS_SIGNING_KEY_FILE``; None = unsigned, hence not deployable);
    ``private_key_pem`` signs with Ed25519 instead. ``presentation`` / ``flow``: the config groups of the same
    names (None: those of ``config`` when it has them, else the defaults; see the module docstring).
    """
    report = op.get("report") or {}
    part = report.get("partition", "eval")
    bands = op.get("bands")
    if key == "env":  # the team's key from the environment, if any (never a default in code)
        key = signing_key()
    not_deployable = _not_deployable_because(op, signed=key is not None or private_key_pem is not None)
    counts, lookup, observed = _data_sections(trials, probes, part, max_lookup_points)
    # score_scale: exported when given (a model without one states nothing rather than an empty string)
    models = {role: ({k: v for k, v in m.items() if k != "score_scale" or v} if isinstance(m, dict) else m)
              for role, m in (models or {}).items()}
    doc = {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "created_at": created_at or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "harness_version": __version__,
        "git_sha": git_sha(),
        "deployable": not not_deployable,
        "not_deployable_because": not_deployable,
        "decision_rule": _decision_rule(bands),
        "models": models,
        "thresholds": _thresholds_section(op, bands),
        "policy": _policy_section(op),
        "unmeasurable": list(unmeasurable if unmeasurable is not None else []),
        "expected_rates_on_eval": {"partition": part, "selected_on_same_data": op["selected_on"] == part,
                                   **{k: v for k, v in (report.get("rates") or {}).items()
                                      if k in ("verif", "pad", "system", "decisions", "counts", "t_match", "t_pad")}},
        "standards": report.get("standards", []),
        "dataset": dict(dataset) | {"counts": counts},
        "lookup": lookup,
        "observed_scores": observed,
        "presentation": presentation_block(presentation if presentation is not None else config.get("presentation")),
        "flow": flow_block(flow if flow is not None else config.get("flow")),
        "config": redact_config(config),  # credentials in URIs (a tracking token) never reach the export
    }
    doc = plain(doc)
    doc["content_sha256"] = content_sha256(doc)
    if key is not None or private_key_pem is not None:
        doc = sign_document(doc, key, private_key_pem)
    return doc


def evidence_reasons(op: dict) -> list[str]:
    """Why the evidence behind ``op`` does not make it deployable: targets not supported, selected on evaluation
    data, a required standard (``policy.required_standards``) not passing."""
    out = []
    if not op.get("supported", False):
        out.append("the policy's targets are not supported by the data (see thresholds.notes)")
    if op.get("selected_on_eval_data"):
        out.append("the thresholds were chosen on the evaluation data")
    required = (op.get("policy") or {}).get("required_standards") or []
    if isinstance(required, str):
        required = [r.strip() for r in required.split(",") if r.strip()]
    verdicts = {s.get("name"): s.get("verdict") for s in (op.get("report") or {}).get("standards") or []}
    for name in required:
        v = verdicts.get(name, "not evaluated")
        if v != "pass":
            out.append(f"required standard {name}: {v}")
    return out


def sign_file(path: Path, key: bytes | None = None, private_key_pem: Any = None, out: Path | None = None,
              expect_content_sha256: str | None = None) -> dict:
    """Sign an exported file: drop the "not signed" reason, recompute ``deployable`` and ``content_sha256``, add the
    signature, write it (to ``out`` or in place). ``expect_content_sha256`` (the hash reviewed before signing)
    refuses a file that changed since."""
    doc = verify_document(Path(path).read_bytes())
    if expect_content_sha256 is not None and doc["content_sha256"] != expect_content_sha256.strip().lower():
        raise ValueError(f"{path}: content_sha256 {doc['content_sha256']} is not the reviewed "
                         f"{expect_content_sha256}; not signed")
    doc = {k: v for k, v in doc.items() if k not in ("signature", "content_sha256")}
    reasons = [r for r in doc.get("not_deployable_because", []) if r != UNSIGNED_REASON]
    doc["not_deployable_because"] = reasons
    doc["deployable"] = not reasons
    doc["content_sha256"] = content_sha256(doc)
    doc = sign_document(doc, key, private_key_pem)
    write_operating_point(doc, Path(out) if out else Path(path))
    return doc


def validate(doc: dict) -> None:
    """Raise ``ValueError`` naming the first schema violation."""
    import jsonschema

    errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.path) or "(top level)"
        raise ValueError(f"operating point does not match schema {SCHEMA_VERSION} at {where}: {e.message}")


def write_operating_point(doc: dict, path: Path) -> Path:
    """Validate ``doc`` against the schema and write it in its canonical form."""
    validate(doc)
    if doc.get("content_sha256") != content_sha256(doc):
        raise ValueError("content_sha256 does not match the document; rebuild it with build_operating_point")
    path = Path(path)
    path.write_bytes(serialize(doc).encode("ascii"))
    return path


def read_operating_point(path: Path) -> dict:
    """Read and verify (checksum, canonical form, schema) without model checks; raises on any problem."""
    return verify_document(Path(path).read_bytes())
