"""The tables of the strict configuration (:mod:`harness.config_schema`): value-type checks and each group's keys.

A check is ``check(key, value)`` raising :class:`ConfigError` (one line naming the key) when ``value`` is of the
wrong type, out of range or unset; :func:`integer`, :func:`number`, :func:`fraction`, :func:`boolean`, :func:`text`,
:func:`choice`, :func:`scalars` build them, :func:`flag` and :func:`anything` are ones. The group tables map each
declared key to its check: :data:`TOP`, :data:`DATASET`, :data:`DETECTOR`, :data:`MODEL`, :data:`RUNTIME`,
:data:`PROTOCOL` (+ :data:`ENROL`), :data:`POLICY_COMMON` + :data:`POLICY_KEYS` (per policy), :data:`TRACKING`,
:data:`REPORT` and :data:`STANDARD` / :data:`CRITERION` (``conf/standards/``); the structured values (frames, device,
enrolment, standards names, metrics, criteria) have their own checks here.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any, Callable

class ConfigError(ValueError):
    """A config key is unknown, of the wrong type, out of range or required and unset (one line, exit status 2)."""



Check = Callable[[str, Any], None]


# --------------------------------------------------------------------------------------------------- value checks


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _range_text(lo, hi, open_lo: bool, open_hi: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if open_lo else '['}{lo:g}, {hi:g}{')' if open_hi else ']'}"
    if lo is not None:
        return f"{'>' if open_lo else '>='} {lo:g}"
    if hi is not None:
        return f"{'<' if open_hi else '<='} {hi:g}"
    return ""


def _or_null(null: bool) -> str:
    return " or null" if null else ""


def integer(lo: int | None = None, hi: int | None = None, *, null: bool = False) -> Check:
    def check(key: str, v: Any) -> None:
        if v is None and null:
            return
        ok = _num(v) and float(v).is_integer()
        if ok and (lo is None or v >= lo) and (hi is None or v <= hi):
            return
        rng = _range_text(lo, hi, False, False)
        raise ConfigError(f"{key} must be an integer{' ' + rng if rng else ''}{_or_null(null)}, got {v!r}")
    return check


def number(lo: float | None = None, hi: float | None = None, *, open_lo: bool = False, open_hi: bool = False,
           null: bool = False) -> Check:
    def check(key: str, v: Any) -> None:
        if v is None and null:
            return
        if _num(v) and (lo is None or (v > lo if open_lo else v >= lo)) and (hi is None or (v < hi if open_hi else v <= hi)):
            return
        rng = _range_text(lo, hi, open_lo, open_hi)
        raise ConfigError(f"{key} must be a number{' ' + rng if rng else ''}{_or_null(null)}, got {v!r}")
    return check


def fraction(*, null: bool = False) -> Check:
    """A number strictly between 0 and 1 (targets, confidence levels, dev_fraction)."""
    return number(0, 1, open_lo=True, open_hi=True, null=null)


def boolean(*, null: bool = False) -> Check:
    def check(key: str, v: Any) -> None:
        if isinstance(v, bool) or (v is None and null):
            return
        raise ConfigError(f"{key} must be true or false{_or_null(null)}, got {v!r}")
    return check


def flag(key: str, v: Any) -> None:
    """A yes/no switch read with :func:`harness.data.common.config_flag` (true/false, yes/no, 1/0)."""
    from harness.data.common import config_flag

    try:
        config_flag(v, key)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def text(*, null: bool = False) -> Check:
    def check(key: str, v: Any) -> None:
        if (isinstance(v, str) and v.strip()) or (v is None and null):
            return
        raise ConfigError(f"{key} must be a non-empty string{_or_null(null)}, got {v!r}")
    return check


def choice(*values: Any, null: bool = False) -> Check:
    def check(key: str, v: Any) -> None:
        if (v is None and null) or (not isinstance(v, bool) and v in values):
            return
        raise ConfigError(f"{key} must be one of {', '.join(map(str, values))}{_or_null(null)}, got {v!r}")
    return check


def scalars(*, null: bool = False) -> Check:
    """A value or a list of values compared as strings (split names, enrolment sessions)."""
    def check(key: str, v: Any) -> None:
        if v is None and null:
            return
        items = v if isinstance(v, list) else [v]
        if items and all(isinstance(x, (str, int)) and not isinstance(x, bool) and str(x).strip() for x in items):
            return
        raise ConfigError(f"{key} must be a name or a non-empty list of names{_or_null(null)}, got {v!r}")
    return check


def anything(key: str, v: Any) -> None:
    return None


def _frames(key: str, v: Any) -> None:
    from harness.data.video import FrameSampling

    try:
        FrameSampling.parse(v)
    except (ValueError, TypeError) as e:
        msg = str(e)  # FrameSampling's messages name dataset.frames[.mode|.n|.k|.t|.max_frames] already
        raise ConfigError(msg if msg.startswith("dataset.frames") else f"{key}: {msg}") from None


def _device(key: str, v: Any) -> None:
    import torch

    if isinstance(v, str):
        try:
            torch.device(v)
            return
        except (RuntimeError, ValueError):
            pass
    raise ConfigError(f"{key} must be a torch device such as cpu, cuda or cuda:0, got {v!r}")


def _thresholds(key: str, v: Any) -> None:
    if isinstance(v, list) and len(v) == 3 and all(_num(x) and 0 < x <= 1 for x in v):
        return
    raise ConfigError(f"{key} must be a list of 3 numbers in (0, 1] (P-, R- and O-net), got {v!r}")


def _weights_path(key: str, v: Any) -> None:
    if v is None or (isinstance(v, str) and v.strip()):
        return
    if isinstance(v, Mapping) and all(isinstance(x, str) and x.strip() for x in v.values()):
        return  # minifasnet_ensemble: {MiniFASNetV2: path, MiniFASNetV1SE: path}
    raise ConfigError(f"{key} must be a file path or null, got {v!r}")



def did_you_mean(key: str, valid) -> str:
    """`` (did you mean 'x'?)`` for the closest valid name, else empty."""
    m = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.7)
    return f" (did you mean {m[0]!r}?)" if m else ""


def unknown_key(prefix: str, key: str, valid, what: str) -> ConfigError:
    """The one-line error for an unknown key ``prefix.key``, naming the valid keys of ``what``."""
    full = f"{prefix}.{key}" if prefix else key
    return ConfigError(f"unknown config key {full!r}{did_you_mean(key, valid)}; valid keys for {what}: "
                       f"{', '.join(sorted(valid))}")


def check_table(prefix: str, node: Mapping, table: Mapping[str, Check], what: str) -> None:
    """Every key of ``node`` (a mapping) declared in ``table`` and passing its check."""
    if not isinstance(node, Mapping):
        raise ConfigError(f"{prefix} must be a mapping ({', '.join(table)}), got {node!r}")
    for key, v in node.items():
        if key not in table:
            raise unknown_key(prefix, str(key), table, what)
        table[key](f"{prefix}.{key}" if prefix else str(key), v)


def declared_keys(keys: Any) -> dict[str, Check]:
    """A plugin's declared config keys: ``{key: check}`` as is, or a list of names (any value)."""
    if isinstance(keys, Mapping):
        return {str(k): (v if callable(v) else anything) for k, v in keys.items()}
    return {str(k): anything for k in (keys or ())}


_did_you_mean, _unknown, _check_table = did_you_mean, unknown_key, check_table  # old names


# ---------------------------------------------------------------------------------------------------- the tables

#: the config groups (top-level mappings); ``standards`` is optional (``+standards=<preset>``)
GROUPS = ("dataset", "detector", "embedder", "pad", "protocol", "policy", "tracking", "runtime", "report", "presentation",
          "flow", "standards")

TOP: dict[str, Check] = {
    "shared_root": text(),
    "results_dir": text(),
    "run_name": text(),
    "signing_key_file": text(null=True),
    "seed": integer(),
}

#: dataset keys by name; which of them an adapter takes is its loader's signature (harness/data/<adapter>.py)
DATASET: dict[str, Check] = {
    "name": text(),
    "root": text(null=True),  # required (not null) where the loader has no default: see _check_dataset
    "csv": text(),
    "list": text(null=True),
    "default_split": text(),
    "on_problem": choice("error", "warn"),
    "allow_outside_root": flag,
    "protocol": lambda k, v: (integer(1)(k, v) if _num(v) else text()(k, v)),
    "fold": integer(1, null=True),
    "frames": _frames,
    "split": text(),
    "dev_fraction": fraction(),
    "seed": integer(),
    "pairs": text(),
    "images": text(null=True),
    "file_lists": boolean(),
    "support": choice("all", "fixed", "hand"),
    "capture_device": choice("all", "mobile", "tablet"),
    "enrol": boolean(),
    "protocol1_train_frames": integer(1),
    "format": choice("auto", "csv", "bob4", "bob5"),  # dataset=scores (harness/data/score_files.py)
    "bob_kind": choice("auto", "verification", "pad"),
    "species_map": text(null=True),
    "attack_species": text(),
}

#: what each dataset key is for, where a required one is left unset
DATASET_REQUIRED_HINT = {
    "csv": "the path of the CSV manifest, e.g. dataset.csv=/data/kyc/manifest.csv",
    "root": "the folder holding the dataset, e.g. dataset.root=/data/faces",
    "files": "the score file(s), e.g. dataset.files=/data/vendor/scores.csv",
}

#: the config key naming a plugin module (harness.registry.PLUGIN_KEY), valid in every registered group
PLUGIN: dict[str, Check] = {"plugin": text(null=True)}

#: detector keys by name; which of them a detector takes is its class's ``__init__`` (harness.faces.detect.DETECTORS)
DETECTOR: dict[str, Check] = {
    "name": text(),  # checked against harness.faces.detect.DETECTORS first
    "min_face_size": integer(1),
    "thresholds": _thresholds,
    "factor": number(0, 1, open_lo=True, open_hi=True),
    "min_prob": number(0, 1),
    "pad_fraction": number(0),
    "max_side": integer(1, null=True),
    "min_face_fraction": number(0, 1, open_lo=True, open_hi=True, null=True),
    "refine_original": boolean(),
    "backend": choice("torch", "opencv"),
    "caffemodel": text(null=True),
    "prototxt": text(null=True),
}

#: embedder / PAD model options by name; which of them a model takes is its factory's signature
MODEL: dict[str, Check] = {
    "name": text(),
    "weights_path": _weights_path,
    "backend": choice("auto", "onnxruntime", "torch", "litert"),
    "threads": integer(1, null=True),
    "margin": number(0),
    "offline": boolean(null=True),
    "channels": choice("BGR", "RGB"),
    "box_mapping": choice("mtcnn_to_retinaface", "none"),
}

RAY: dict[str, Check] = {  # runtime.ray (conf/runtime/ray.yaml, harness.scoring.ray_engine)
    "address": text(null=True), "actors": integer(1), "actor_cpus": number(0, open_lo=True),
    "actor_gpus": number(0), "decode_cpus": number(0, open_lo=True), "threads": integer(1),
    "max_in_flight": integer(1, null=True), "wait_for_actors_s": number(0, open_lo=True, null=True)}
_ray = lambda key, v: check_table(key, v, RAY, "runtime.ray")  # noqa: E731

RUNTIME: dict[str, Check] = {
    "engine": choice("batched", "simple", "ray"),
    "ray": _ray,
    "devices": scalars(null=True),  # runtime=ray: one actor per listed GPU (checked by harness.scoring.ray_engine)
    "device": _device,
    "batch_size": integer(1),
    "detect_batch_size": integer(1),
    "chunk_size": integer(1),
    "workers": integer(0),
    "gpu_decode": boolean(null=True),
    "amp": boolean(),
    "threads": integer(1),
    "cache": boolean(),
    "max_pixels": integer(0),  # decode pixel cap (harness.faces.decode); 0 = none beyond Pillow's bomb limit
    "decode_long_side": integer(64, null=True),  # reduced JPEG decode bound (harness.faces.files.DecodeLimits)
    "progress": boolean(),
}

ENROL: dict[str, Check] = {
    "mode": choice("field", "first_k"),
    "field": text(),
    "enrol_in": scalars(),
    "probe_in": scalars(null=True),
    "k": integer(1),
}
ENROL_REQUIRED = {"field": ("field", "enrol_in"), "first_k": ("k",)}


def _enrol(key: str, v: Any) -> None:
    if not isinstance(v, Mapping):
        raise ConfigError(f"{key} must be a mapping (mode: field | first_k, ...), got {v!r}")
    check_table(key, v, ENROL, "protocol.enrol")
    mode = v.get("mode", "field")
    for req in ENROL_REQUIRED[mode]:
        if v.get(req) is None:
            raise ConfigError(f"{key}.{req} is required with {key}.mode={mode} (valid keys: "
                              f"{', '.join(sorted(ENROL))})")


PROTOCOL: dict[str, Check] = {
    "name": text(),
    "enrol": _enrol,
    "partition": choice("subjects", "split"),
    "dev_fraction": fraction(),
    "dev_splits": scalars(),
    "eval_splits": scalars(),
    "seed": integer(),
    "trials": choice("templates", "pairs"),
    "max_impostor_pairs": integer(1, null=True),
}
PROTOCOL_REQUIRED = ("enrol",)

TRACKING: dict[str, Check] = {
    "enabled": boolean(),
    "uri": text(null=True),
    "experiment": text(null=True),
}

REPORT: dict[str, Check] = {
    "enabled": boolean(),
    "gallery_k": integer(0),
    "gallery_blur": number(0),
}


def standards_names(key: str, v: Any, *, allow_all: bool) -> list[str] | None:
    """The preset names of a ``policy.standards`` / ``policy.required_standards`` value (None = all presets)."""
    from harness.policy.standards import available_presets

    known = available_presets()
    if v is None or (allow_all and v == "all"):
        return None
    if v in ("none", False) or v == []:
        return []
    names = [s.strip() for s in v.split(",") if s.strip()] if isinstance(v, str) else v
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{key} must be {'all, none, ' if allow_all else ''}a preset name or a list of names "
                          f"(conf/standards/: {', '.join(known)}), got {v!r}")
    for n in names:
        if n not in known:
            hint = did_you_mean(n, known)
            raise ConfigError(f"{key}: unknown standards preset {n!r}{hint}; valid: {', '.join(known)}")
    return names


POLICY_COMMON: dict[str, Check] = {
    "name": anything,  # checked against harness.policy.POLICIES first
    "confidence": fraction(),
    "min_subjects": integer(1),
    "select_on": choice("dev", "eval"),
    "standards": lambda k, v: standards_names(k, v, allow_all=True) and None,
    "required_standards": lambda k, v: standards_names(k, v, allow_all=False) and None,
    "register_as": text(null=True),
    "register_alias": text(null=True),
    "register_not_deployable": boolean(),
}
_TARGET_RULES: dict[str, Check] = {
    "target_fmr": fraction(),
    "fmr_rule": choice("upper_bound", "point"),
    "target_apcer": fraction(),
    "apcer_rule": choice("upper_bound", "point"),
}
_PREVALENCE: dict[str, Check] = {"attack_prevalence": number(0, 1, open_hi=True),
                                 "impostor_prevalence": number(0, 1, open_hi=True)}
_GRID: dict[str, Check] = {"max_grid": integer(2, null=True)}

#: the keys each policy reads (harness/policy/*.py), on top of :data:`POLICY_COMMON`
POLICY_KEYS: dict[str, dict[str, Check]] = {
    "target_rates": _TARGET_RULES,
    "eer": {},
    "min_cost": {**_PREVALENCE, "loss_per_accepted_fraud": number(0), "cost_per_rejected_customer": number(0),
                 "cost_per_review": number(0), "review": boolean(), "review_budget": number(0, 1, null=True),
                 **_GRID},
    "bands": {**_TARGET_RULES, "review_budget": number(0, 1, open_hi=True), **_PREVALENCE, **_GRID},
    "joint": {"target_iapar": fraction(), "target_iapar_per_species": fraction(null=True), "target_fmr": fraction(),
              "rule": choice("upper_bound", "point"), **_GRID},
}


def _metric(key: str, v: Any) -> None:
    from harness.policy.standards import COVERAGE, METRICS

    choice(*sorted(METRICS), *sorted(COVERAGE))(key, v)


CRITERION: dict[str, Check] = {
    "id": text(),
    "description": text(),
    "metric": _metric,
    "op": choice("<=", "<"),
    "limit": number(0),
    "rule": choice("bound", "zero_count", "coverage"),
    "min_n": integer(0),
    "confidence": fraction(),
    "provenance": text(),
    "min_subjects": integer(1),
    "min_subjects_source": text(),
}
CRITERION_REQUIRED = ("id", "metric", "limit")


def _criteria(key: str, v: Any) -> None:
    if not isinstance(v, list):
        raise ConfigError(f"{key} must be a list of criteria, got {v!r}")
    for i, c in enumerate(v):
        ck = f"{key}[{i}]"
        if not isinstance(c, Mapping):
            raise ConfigError(f"{ck} must be a mapping ({', '.join(CRITERION)}), got {c!r}")
        check_table(ck, c, CRITERION, "a standards criterion")
        for req in CRITERION_REQUIRED:
            if c.get(req) is None:
                raise ConfigError(f"{ck}.{req} is required (valid keys: {', '.join(CRITERION)})")


STANDARD: dict[str, Check] = {
    "name": text(),
    "title": text(),
    "source": text(),
    "what_we_know": text(),
    "transcribed": boolean(),
    "min_subjects": integer(1),
    "min_subjects_source": text(),
    "confidence": fraction(),
    "criteria": _criteria,
}


_standards_names = standards_names  # old name
