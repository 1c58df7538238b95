"""JSON Schema (draft 2020-12) of ``operating_point.json``, schema version 3.3. Pure data: no imports beyond stdlib.

Version policy: a change that an older runtime could misread (a renamed or re-interpreted field, a new decision
rule) bumps the major version, and :data:`harness.runtime.SUPPORTED_SCHEMA_VERSIONS` refuses other versions. A
change an older file can be read under (only fields added) bumps the minor version, and the schema still validates
files of the earlier minor version (``schema_version`` is one of :data:`SCHEMA_VERSIONS`).

3.3 (from 3.2): third-party models. Added: a model (``models.embedder`` / ``models.pad``) may be a vendor's whose
scores were imported (``dataset=scores``, :mod:`harness.data.score_files`) instead of weights the harness ran: then it
has no ``weights_sha256`` and carries ``vendor`` ``{"name", "version", "sdk_build": str | null, "score_files":
[{"file", "sha256"}], "identity": str}`` (``identity`` = the approved ``sdk_build``, else the score files' sha256
joined by ``+``); the runtime checks that identity (``vendor_identity=``) instead of a weights sha256. A 3.0 - 3.2
file has weights-only models and is read as before.

3.2 (from 3.1): presentations, not frames. Added (required in 3.2, absent in 3.0 / 3.1): ``presentation``
``{"aggregation": {"rule", "trim", "q", "n"}, "template": "mean" | "best_quality", "grouping": str, "unit":
"presentation"}``: the rule (:mod:`harness.aggregation`) that turns the PAD scores of one presentation's frames (a video
or a burst of stills) into the one PAD score the thresholds apply to, how the face template is pooled from its frames,
and how frames were grouped into presentations; ``flow`` ``{"max_attempts": int, "attempt": "presentation" | "window",
"window_frames": int, "review_after_failures": int | null, "review_on_band": bool, "on_exhausted": "reject" |
"review"}``: the capture flow the rates were measured under. The runtime's ``decide_presentation`` aggregates with
exactly this rule; a 3.0 / 3.1 file has none and is refused there (never guessed).

3.1 (from 3.0): what a score means. Added: ``observed_scores`` (required in 3.1, absent in 3.0): the scores
observed on the reported partition, ``{"partition", "match": {"genuine" | "impostor" | "attack:<species>": {"min",
"max", "n"}}, "pad": {"bona_fide" | "attack:<species>": {"min", "max", "n"}}}`` (match scores over trials, PAD
scores over scored presentations, ``n`` = finite scores in the class). The runtime still decides a score outside
that range by the thresholds but flags it ("no evidence at this score") and never reports an error rate observed
there; a score outside the model's possible range (``models.<role>.score_range``) is still refused. A 3.0 file is
read with the flag "observed score range unknown (schema 3.0 export)" (and a score beyond the ends of its lookup
table is flagged as without evidence). ``models.<role>.score_scale`` (optional
string): what the model's score is, in words (e.g. minus a Euclidean distance, a cosine similarity, a softmax
probability) - a score is not a percentage unless its scale says so. Changed: ``thresholds.policy`` may be any
registered policy name (plugins included), no longer one of the five built-ins.

3.0 (from 2.0): signed exports. Added: ``signature`` (``alg`` HMAC-SHA256 or Ed25519, ``key_id`` - a hash naming
the key, never the key - and ``value``) over the canonical content including ``content_sha256``; ``content_sha256``
no longer covers ``signature``. ``models.<role>.score_range`` (the range the runtime accepts scores in).
Changed: ``deployable`` is true only for signed exports whose targets are supported, chosen on dev, with every
``policy.required_standards`` preset passing; ``not_deployable_because`` lists every reason.

2.0 (from 1.0): thresholds chosen on people-aware bounds, never dominated on dev, placed mid-gap and float-safe.
Added: ``thresholds.plateau`` (per score: the equal-decision gap on dev, its ``lower_end`` / ``upper_end``, the
placement ``rule``, ``float32_safe``, ``disagreements`` and the rates at the ends on dev and eval),
``thresholds.comparison`` (how a score is compared), ``policy.evidence`` (interval method, confidence, the side
the threshold rule uses, ``min_subjects``), ``unmeasurable`` (numbers not to be read as measured, with reasons).
Changed: every rate (``expected_rates_on_eval``, ``policy.on_selection_data``, selection details) is a people rate:
``k, n, value, lo, hi`` with ``lo``/``hi`` the people-aware interval, plus ``n_subjects``, ``cp_lo``/``cp_hi``
(trial-level Clopper-Pearson), ``design_effect``, ``estimable``; the system rates fold in failures to acquire
(ISO/IEC 19795-1); standards criteria carry ``min_subjects`` and say "insufficient evidence: N subjects".
"""

from __future__ import annotations

SCHEMA_VERSION = "3.3"
#: the versions this schema validates (the runtime reads the same): 3.0 files have no ``observed_scores``, 3.0 and
#: 3.1 files no ``presentation`` / ``flow``; vendor models (``models.<role>.vendor``) from 3.3
SCHEMA_VERSIONS = ("3.0", "3.1", "3.2", "3.3")
#: presentation.aggregation.rule (the same as :data:`harness.aggregation.RULES`; a test keeps them equal)
AGGREGATION_RULES = ("mean", "median", "min", "max", "trimmed_mean", "quantile", "first_n_mean", "prob_weighted_mean")

_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_RATE = {
    "type": "object",
    "required": ["k", "n", "value", "lo", "hi", "n_subjects"],
    "properties": {
        "n_subjects": {"type": "integer", "minimum": 0},
        "cp_lo": {"type": "number", "minimum": 0, "maximum": 1},
        "cp_hi": {"type": "number", "minimum": 0, "maximum": 1},
        "estimable": {"type": "boolean"},
        "k": {"type": "integer", "minimum": 0},
        "n": {"type": "integer", "minimum": 1},
        "value": {"type": "number", "minimum": 0, "maximum": 1},
        "lo": {"type": "number", "minimum": 0, "maximum": 1},
        "hi": {"type": "number", "minimum": 0, "maximum": 1},
        "method": {"type": "string"},
        "alpha": {"type": "number"},
        "confidence": {"type": "number"},
    },
}
_BAND = {
    "type": "object",
    "required": ["accept_at_or_above", "reject_below"],
    "properties": {"accept_at_or_above": {"type": "number"}, "reject_below": {"type": "number"}},
    "additionalProperties": False,
}
#: one sha256, or several joined by "+" (an ensemble's members, in order)
_WEIGHTS_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}(\\+[0-9a-f]{64})*$"}
_MODEL = {
    "type": "object",
    "required": ["name", "weights_sha256", "preprocessing"],
    "properties": {"name": {"type": "string"}, "weights_sha256": _WEIGHTS_SHA256, "preprocessing": {},
                   "score_range": {"type": ["array", "null"], "minItems": 2, "maxItems": 2,
                                   "items": {"type": ["number", "null"]}},
                   "score_scale": {"type": "string"}},
}
#: a third-party model whose scores were imported (3.3): named by its vendor identity, never by weights
_VENDOR = {
    "type": "object",
    "required": ["name", "version", "sdk_build", "score_files", "identity"],
    "additionalProperties": False,
    "properties": {"name": {"type": "string", "minLength": 1}, "version": {"type": "string"},
                   "sdk_build": {"type": ["string", "null"]},
                   "score_files": {"type": "array", "minItems": 1, "items": {
                       "type": "object", "required": ["file", "sha256"], "additionalProperties": False,
                       "properties": {"file": {"type": "string"}, "sha256": _SHA256}}},
                   "identity": {"type": "string", "minLength": 1}},
}

_VENDOR_MODEL = {
    "type": "object",
    "required": ["name", "vendor", "preprocessing"],
    "not": {"required": ["weights_sha256"]},
    "properties": {"name": {"type": "string"}, "vendor": _VENDOR, "preprocessing": {},
                   "score_range": _MODEL["properties"]["score_range"], "score_scale": {"type": "string"}},
}
#: a role's model: a vendor's where it names one (``vendor``), else one with weights; if/then/else (not anyOf) so a
#: bad field is reported at its own path (``models/embedder/weights_sha256``)
_ROLE_MODEL = {"if": {"type": "object", "required": ["vendor"]}, "then": _VENDOR_MODEL, "else": _MODEL}
_INT_LIST = {"type": "array", "items": {"type": "integer", "minimum": 0}}
_OBSERVED_RANGE = {"type": "object", "required": ["min", "max", "n"], "additionalProperties": False,
                   "properties": {"min": {"type": "number"}, "max": {"type": "number"},
                                  "n": {"type": "integer", "minimum": 1}}}
_OBSERVED = {
    "type": "object",
    "required": ["partition", "match", "pad"],
    "additionalProperties": False,
    "properties": {
        "partition": {"enum": ["dev", "eval"]},
        "match": {"type": "object", "propertyNames": {"pattern": "^(genuine|impostor|attack:.+)$"},
                  "additionalProperties": _OBSERVED_RANGE},
        "pad": {"type": "object", "propertyNames": {"pattern": "^(bona_fide|attack:.+)$"},
                "additionalProperties": _OBSERVED_RANGE},
    },
}
_NUM_LIST = {"type": "array", "items": {"type": "number"}}
_PRESENTATION = {
    "type": "object",
    "required": ["aggregation", "template", "grouping", "unit"],
    "additionalProperties": False,
    "properties": {
        "aggregation": {"type": "object", "required": ["rule", "trim", "q", "n"], "additionalProperties": False,
                        "properties": {"rule": {"enum": list(AGGREGATION_RULES)},
                                       "trim": {"type": "number", "minimum": 0, "exclusiveMaximum": 0.5},
                                       "q": {"type": "number", "minimum": 0, "maximum": 1},
                                       "n": {"type": "integer", "minimum": 1}}},
        "template": {"enum": ["mean", "best_quality"]},
        "grouping": {"type": "string"},
        "unit": {"const": "presentation"},
    },
}
_FLOW = {
    "type": "object",
    "required": ["max_attempts", "attempt", "window_frames", "review_after_failures", "review_on_band", "on_exhausted"],
    "additionalProperties": False,
    "properties": {
        "max_attempts": {"type": "integer", "minimum": 1},
        "attempt": {"enum": ["presentation", "window"]},
        "window_frames": {"type": "integer", "minimum": 0},
        "review_after_failures": {"type": ["integer", "null"], "minimum": 1},
        "review_on_band": {"type": "boolean"},
        "on_exhausted": {"enum": ["reject", "review"]},
    },
}

SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:face-pad-harness:operating-point:3.3",
    "title": "face-pad-harness operating point",
    "type": "object",
    "required": [
        "schema_version", "kind", "created_at", "harness_version", "git_sha", "deployable", "decision_rule", "models",
        "thresholds", "policy", "expected_rates_on_eval", "standards", "dataset", "lookup", "config", "content_sha256",
        "unmeasurable",
    ],
    "additionalProperties": False,
    "allOf": [
        # observed_scores: required from 3.1, absent in 3.0
        {"if": {"properties": {"schema_version": {"const": "3.0"}}},
         "then": {"not": {"required": ["observed_scores"]}},
         "else": {"required": ["observed_scores"]}},
        # presentation / flow: required from 3.2, absent in 3.0 / 3.1
        {"if": {"properties": {"schema_version": {"enum": ["3.0", "3.1"]}}},
         "then": {"properties": {"presentation": False, "flow": False}},
         "else": {"required": ["presentation", "flow"]}},
    ],
    "properties": {
        "schema_version": {"enum": list(SCHEMA_VERSIONS)},
        "kind": {"const": "face-pad-harness/operating-point"},
        "created_at": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}"},
        "harness_version": {"type": "string"},
        "git_sha": {"type": "string"},
        "deployable": {"type": "boolean"},
        "not_deployable_because": {"type": "array", "items": {"type": "string"}},
        "decision_rule": {"type": "string"},
        "models": {
            "type": "object",
            "required": ["embedder", "pad"],
            "properties": {"embedder": _ROLE_MODEL, "pad": _ROLE_MODEL,
                           "detector": {"type": "object"}},
        },
        "thresholds": {
            "type": "object",
            "required": ["t_match", "t_pad", "bands", "review_band", "selected_on", "selected_on_eval_data", "policy",
                         "notes", "plateau", "comparison"],
            "properties": {
                "comparison": {"type": "string"},
                "plateau": {"oneOf": [{"type": "null"}, {
                    "type": "object", "required": ["match", "pad"],
                    "properties": {s: {"type": "object",
                                       "required": ["threshold", "lower_end", "upper_end", "gap", "float32_safe",
                                                    "disagreements", "rule", "rates"],
                                       "properties": {"threshold": {"type": "number"},
                                                      "lower_end": _NUM_OR_NULL, "upper_end": _NUM_OR_NULL,
                                                      "gap": {"type": "array", "minItems": 2, "maxItems": 2},
                                                      "float32_safe": {"type": "boolean"},
                                                      "disagreements": {"type": "integer", "minimum": 0},
                                                      "rule": {"type": "string"}, "rates": {"type": "object"}}}
                                   for s in ("match", "pad")}}]},
                "t_match": _NUM_OR_NULL,
                "t_pad": _NUM_OR_NULL,
                "bands": {
                    "oneOf": [
                        {"type": "null"},
                        {"type": "object", "required": ["match", "pad"], "additionalProperties": False,
                         "properties": {"match": _BAND, "pad": _BAND}},
                    ]
                },
                "review_band": {"type": "boolean"},
                "selected_on": {"enum": ["dev", "eval"]},
                "selected_on_eval_data": {"type": "boolean"},
                "policy": {"type": "string"},
                "notes": {"type": "array", "items": {"type": "string"}},
            },
        },
        "signature": {"type": "object", "required": ["alg", "key_id", "value"], "additionalProperties": False,
                      "properties": {"alg": {"enum": ["HMAC-SHA256", "Ed25519"]}, "key_id": {"type": "string"},
                                     "value": {"type": "string"}}},
        "unmeasurable": {"type": "array", "items": {"type": "object", "required": ["metric", "reason"],
                                                    "properties": {"metric": {"type": "string"},
                                                                   "reason": {"type": "string"}}}},
        "policy": {
            "type": "object",
            "required": ["name", "inputs", "selected_on", "selected_on_eval_data", "supported", "selection", "evidence"],
            "properties": {
                "evidence": {"type": "object", "required": ["interval", "confidence", "threshold_rule_side",
                                                            "min_subjects"],
                             "properties": {"interval": {"type": "string"}, "confidence": {"type": "number"},
                                            "threshold_rule_side": {"type": "string"},
                                            "min_subjects": {"type": "integer", "minimum": 1}}},
                "name": {"type": "string", "minLength": 1},  # any registered policy, plugins included
                "inputs": {"type": "object"},
                "selected_on": {"enum": ["dev", "eval"]},
                "selected_on_eval_data": {"type": "boolean"},
                "supported": {"type": "boolean"},
                "selection": {"type": "object"},
                "notes": {"type": "array", "items": {"type": "string"}},
            },
        },
        "expected_rates_on_eval": {
            "type": "object",
            "required": ["partition", "selected_on_same_data"],
            "properties": {
                "partition": {"enum": ["dev", "eval"]},
                "selected_on_same_data": {"type": "boolean"},
                "verif": {"type": "object"},
                "pad": {"type": "object"},
                "system": {"type": "object"},
                "decisions": {"type": "object"},
            },
        },
        "standards": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "title", "source", "verdict", "criteria"],
                "properties": {
                    "name": {"type": "string"},
                    "title": {"type": "string"},
                    "source": {"type": "string"},
                    "verdict": {"enum": ["pass", "fail", "insufficient evidence", "not evaluated"]},
                    "criteria": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["id", "verdict", "reason"],
                            "properties": {
                                "id": {"type": "string"},
                                "verdict": {"enum": ["pass", "fail", "insufficient evidence", "not evaluable"]},
                                "reason": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
        "dataset": {
            "type": "object",
            "required": ["name", "manifest_sha256", "samples"],
            "properties": {
                "name": {"type": "string"},
                "manifest_sha256": _SHA256,
                "samples": {"type": "integer", "minimum": 0},
                "subjects": {"type": "integer", "minimum": 0},
                "partitions": {"type": "object"},
                "counts": {"type": "object"},
            },
        },
        "lookup": {
            "type": "object",
            "required": ["partition"],
            "properties": {
                "partition": {"enum": ["dev", "eval"]},
                "match": {
                    "type": ["object", "null"],
                    "required": ["score", "fmr_k", "n_impostor", "exact"],
                    "properties": {
                        "score": _NUM_LIST, "fmr_k": _INT_LIST, "fnmr_k": _INT_LIST, "fmr_ci": {"type": "array"},
                        "n_impostor": {"type": "integer", "minimum": 1}, "n_genuine": {"type": ["integer", "null"]},
                        "exact": {"type": "boolean"},
                    },
                },
                "pad": {
                    "type": ["object", "null"],
                    "required": ["score", "species", "exact"],
                    "properties": {
                        "score": _NUM_LIST,
                        "species": {"type": "object", "additionalProperties": {
                            "type": "object", "required": ["n", "apcer_k"],
                            "properties": {"n": {"type": "integer", "minimum": 1}, "apcer_k": _INT_LIST}}},
                        "bpcer_k": _INT_LIST,
                        "n_bona_fide": {"type": ["integer", "null"]},
                        "exact": {"type": "boolean"},
                    },
                },
            },
        },
        "observed_scores": _OBSERVED,
        "presentation": _PRESENTATION,
        "flow": _FLOW,
        "config": {"type": "object"},
        "content_sha256": _SHA256,
    },
}
