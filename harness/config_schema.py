"""Strict configuration: every key of every config group is declared, typed and range-checked before any scoring.

``python -m harness`` composes the Hydra config (every option is declared with its default in ``conf/``, so
``--cfg job`` and ``--help`` show them all), then :func:`check_config` walks it against the tables below before
anything is loaded or scored. A key that the code would silently ignore (a misspelt ``+dataset.lisst=...``), a value
of the wrong type or out of range (``runtime.threads=0``, ``policy.target_fmr=abc``) or a required value left
``???`` (``dataset=csv`` without ``dataset.csv``) is a :class:`ConfigError`: one line naming the key (and, for an
unknown key, the valid ones), exit status 2, no traceback. :func:`check_overrides` does the same for a misspelt
``key.sub=value`` on the command line before Hydra composes (Hydra would print a multi-line error instead).

Which keys a dataset adapter, an embedder, a PAD model or the detector takes is read from its factory's signature
(the registries are the source of truth, as :func:`harness.models.registry.check_options` refuses unknown model
options when a model is built); the tables give each key's type and range. Every other group has one table:
:data:`TOP`, :data:`RUNTIME`, :data:`PROTOCOL` (+ :data:`ENROL`), :data:`POLICY_COMMON` + :data:`POLICY_KEYS`
(per policy), :data:`TRACKING`, :data:`REPORT` and :data:`STANDARD` / :data:`CRITERION` (``conf/standards/``).

After scoring, :func:`check_trials` (after :func:`harness.protocols.trials.build_trials`) and
:func:`check_thresholds` (after :func:`harness.policy.select.choose_thresholds`) stop the run in one line when the
protocol left the policy nothing to choose on (no trials of a kind it needs, no bona fide presentation, an empty
partition) instead of finishing with exit status 0 and no thresholds.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Mapping
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

__all__ = ["ConfigError", "RunRequirementError", "check_config", "check_overrides", "check_policy", "check_standard",
           "check_trials", "check_thresholds", "GROUPS",
           "TOP", "RUNTIME", "DETECTOR", "DATASET", "MODEL", "PROTOCOL", "ENROL", "POLICY_COMMON", "POLICY_KEYS",
           "TRACKING", "REPORT", "STANDARD", "CRITERION"]


class ConfigError(ValueError):
    """A config key is unknown, of the wrong type, out of range or required and unset (one line, exit status 2)."""


class RunRequirementError(ValueError):
    """The configured protocol gave the policy nothing to choose on (one line, exit status 2)."""


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
        msg = str(e)  # FrameSampling's messages name dataset.frames[.mode|.n|.k|.max_frames] already
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


# ---------------------------------------------------------------------------------------------------- the tables

#: the config groups (top-level mappings); ``standards`` is optional (``+standards=<preset>``)
GROUPS = ("dataset", "detector", "embedder", "pad", "protocol", "policy", "tracking", "runtime", "report", "standards")

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
}

#: what each dataset key is for, where a required one is left unset
DATASET_REQUIRED_HINT = {
    "csv": "the path of the CSV manifest, e.g. dataset.csv=/data/kyc/manifest.csv",
    "root": "the folder holding the dataset, e.g. dataset.root=/data/faces",
}

DETECTOR: dict[str, Check] = {
    "name": choice("mtcnn"),
    "min_face_size": integer(1),
    "thresholds": _thresholds,
    "factor": number(0, 1, open_lo=True, open_hi=True),
    "min_prob": number(0, 1),
    "pad_fraction": number(0),
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

RUNTIME: dict[str, Check] = {
    "engine": choice("batched", "simple"),
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
    _check_table(key, v, ENROL, "protocol.enrol")
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


def _standards_names(key: str, v: Any, *, allow_all: bool) -> list[str] | None:
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
            hint = _did_you_mean(n, known)
            raise ConfigError(f"{key}: unknown standards preset {n!r}{hint}; valid: {', '.join(known)}")
    return names


POLICY_COMMON: dict[str, Check] = {
    "name": anything,  # checked against harness.policy.POLICIES first
    "confidence": fraction(),
    "min_subjects": integer(1),
    "select_on": choice("dev", "eval"),
    "standards": lambda k, v: _standards_names(k, v, allow_all=True) and None,
    "required_standards": lambda k, v: _standards_names(k, v, allow_all=False) and None,
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
        _check_table(ck, c, CRITERION, "a standards criterion")
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


# ------------------------------------------------------------------------------------------------------ walking


def _did_you_mean(key: str, valid) -> str:
    m = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.7)
    return f" (did you mean {m[0]!r}?)" if m else ""


def _unknown(prefix: str, key: str, valid, what: str) -> ConfigError:
    full = f"{prefix}.{key}" if prefix else key
    return ConfigError(f"unknown config key {full!r}{_did_you_mean(key, valid)}; valid keys for {what}: "
                       f"{', '.join(sorted(valid))}")


def _check_table(prefix: str, node: Mapping, table: Mapping[str, Check], what: str) -> None:
    for key, v in node.items():
        if key not in table:
            raise _unknown(prefix, str(key), table, what)
        table[key](f"{prefix}.{key}" if prefix else str(key), v)


def _signature_keys(fn: Callable, drop: tuple[str, ...] = ()) -> tuple[set[str], set[str]]:
    """(keys a factory takes, keys it requires) from its signature, without ``**kwargs`` and ``drop``."""
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in ("self",) + drop]
    return {p.name for p in params}, {p.name for p in params if p.default is p.empty}


def _check_dataset(node: Mapping) -> None:
    from harness.data.registry import DATASETS, dataset_names

    known = dataset_names()
    name = node.get("name")
    if name not in DATASETS:
        raise ConfigError(f"dataset.name must be one of {', '.join(known)}, got {name!r}"
                          f"{_did_you_mean(str(name), known)}")
    takes, required = _signature_keys(DATASETS[name])
    valid = {"name"} | takes
    for key in node:
        if key not in valid:
            raise _unknown("dataset", str(key), valid, f"dataset {name}")
    for req in sorted(required):
        if node.get(req) is None:
            raise ConfigError(f"dataset.{req} is required for dataset {name}: "
                              f"{DATASET_REQUIRED_HINT.get(req, f'set dataset.{req}=...')}")
    for key, v in node.items():
        DATASET.get(key, anything)(f"dataset.{key}", v)


def _check_detector(node: Mapping) -> None:
    from harness.faces.detect import MTCNNDetector

    DETECTOR["name"]("detector.name", node.get("name"))
    takes, _ = _signature_keys(MTCNNDetector.__init__, drop=("batch_size", "device"))  # those come from runtime.*
    valid = {"name"} | takes
    for key in node:
        if key in ("batch_size", "device"):  # passed by the experiment from runtime.*: a second value would clash
            raise ConfigError(f"unknown config key 'detector.{key}': the detector's {key} is runtime."
                              f"{'detect_batch_size' if key == 'batch_size' else 'device'}; valid keys for detector "
                              f"{node.get('name')}: {', '.join(sorted(valid))}")
        if key not in valid:
            raise _unknown("detector", str(key), valid, f"detector {node.get('name')}")
    for key, v in node.items():
        DETECTOR.get(key, anything)(f"detector.{key}", v)


def _check_model(group: str, node: Mapping) -> None:
    from harness.models.registry import EMBEDDERS, PAD_MODELS, _load_builtin

    _load_builtin()
    registry = EMBEDDERS if group == "embedder" else PAD_MODELS
    name = node.get("name")
    if name not in registry:
        raise ConfigError(f"{group}.name must be one of {', '.join(sorted(registry))}, got {name!r}"
                          f"{_did_you_mean(str(name), registry)}")
    takes, _ = _signature_keys(registry[name], drop=("device",))  # device comes from runtime.device
    valid = {"name"} | takes
    for key in node:
        if key not in valid:
            raise _unknown(group, str(key), valid, f"{group} {name}")
    for key, v in node.items():
        MODEL.get(key, anything)(f"{group}.{key}", v)


def _check_protocol(node: Mapping) -> None:
    _check_table("protocol", node, PROTOCOL, "protocol")
    for req in PROTOCOL_REQUIRED:
        if node.get(req) is None:
            raise ConfigError(f"protocol.{req} is required (valid keys: {', '.join(sorted(PROTOCOL))})")


def _check_policy(node: Mapping, standards_node: Any) -> None:
    from harness.policy.select import POLICIES

    name = node.get("name", "target_rates")
    if name not in POLICIES:
        raise ConfigError(f"policy.name must be one of {', '.join(sorted(POLICIES))}, got {name!r}"
                          f"{_did_you_mean(str(name), POLICIES)}")
    table = POLICY_COMMON | POLICY_KEYS[name]
    _check_table("policy", node, table, f"policy {name}")
    pa, pi = node.get("attack_prevalence") or 0.0, node.get("impostor_prevalence") or 0.0
    if pa + pi >= 1:
        raise ConfigError(f"policy.attack_prevalence + policy.impostor_prevalence must be < 1, got {pa} + {pi}")
    required = _standards_names("policy.required_standards", node.get("required_standards"), allow_all=False) or []
    if standards_node is not None:  # +standards=<preset>: judged instead of policy.standards
        judged = [p.get("name") for p in _presets_of(standards_node)]
        where = "the standards group (+standards=...)"
    else:
        judged = _standards_names("policy.standards", node.get("standards", "all"), allow_all=True)
        where = f"policy.standards={node.get('standards', 'all')!r}"
    for n in required:
        if judged is not None and n not in judged:
            fix = "add it there" if standards_node is not None else "add it there (or use policy.standards=all)"
            raise ConfigError(f"policy.required_standards: {n!r} is not judged by {where}, so the export could never "
                              f"be deployable; {fix}")
    names = judged if judged is not None else None
    if standards_node is None:  # the presets the run will load: a broken file stops it here, not after scoring
        from harness.policy.standards import available_presets, load_preset

        for n in (available_presets() if names is None else names):
            check_standard(load_preset(n), f"conf/standards/{n}.yaml")


def check_policy(policy: Mapping) -> None:
    """A policy dict on its own (e.g. ``harness.cli export --policy ... --set key=value``): keys, types, ranges."""
    _check_policy(dict(policy), None)


def _presets_of(node: Any) -> list[Mapping]:
    if isinstance(node, Mapping) and "criteria" in node:
        return [node]
    if isinstance(node, Mapping) and all(isinstance(v, Mapping) for v in node.values()):
        return list(node.values())
    raise ConfigError(f"standards must be a preset (conf/standards/<name>.yaml: {', '.join(STANDARD)}), got {node!r}")


def check_standard(preset: Mapping, where: str = "standards") -> None:
    """One standards preset (``conf/standards/*.yaml`` or the ``standards`` group) against :data:`STANDARD`."""
    if not isinstance(preset, Mapping):
        raise ConfigError(f"{where} must be a mapping ({', '.join(STANDARD)}), got {preset!r}")
    _check_table(where, preset, STANDARD, "a standards preset")
    if preset.get("criteria") is None:
        raise ConfigError(f"{where}.criteria is required (a list; [] when not transcribed)")


def _missing_keys(cfg: DictConfig) -> list[str]:
    return sorted(OmegaConf.missing_keys(cfg))


def check_config(cfg: DictConfig | Mapping) -> dict:
    """Refuse an unknown key, a wrong type or range, or a required value left unset, anywhere in the composed
    config, in one :class:`ConfigError` line; returns the resolved config as a plain dict."""
    if isinstance(cfg, DictConfig):
        missing = _missing_keys(cfg)
        if missing:
            key = missing[0]
            group, _, sub = key.partition(".")
            hint = DATASET_REQUIRED_HINT.get(sub) if group == "dataset" else None
            name = OmegaConf.select(cfg, f"{group}.name", default=None) if sub else None
            raise ConfigError(f"{key} is required{f' for {group} {name}' if name else ''} and not set (it is ??? in "
                              f"the config): {hint or f'set {key}=...'}")
        try:
            data = OmegaConf.to_container(cfg, resolve=True)
        except Exception as e:  # an interpolation that does not resolve (${oc.env:...}, a typo in ${...})
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"config does not resolve: {first}") from None
    else:
        data = dict(cfg)
    valid_top = set(TOP) | set(GROUPS)
    for key in data:
        if key not in valid_top:
            raise _unknown("", str(key), valid_top, "the top level (groups and settings)")
    for key, check in TOP.items():
        if key in data:
            check(key, data[key])
    for group in GROUPS:
        if group != "standards" and not isinstance(data.get(group), Mapping):
            raise ConfigError(f"{group} must be a config group mapping (conf/{group}/), got {data.get(group)!r}")
    _check_dataset(data["dataset"])
    _check_detector(data["detector"])
    _check_model("embedder", data["embedder"])
    _check_model("pad", data["pad"])
    _check_protocol(data["protocol"])
    standards_node = data.get("standards")
    if standards_node is not None:
        for i, p in enumerate(_presets_of(standards_node)):
            check_standard(p, "standards" if "criteria" in standards_node else f"standards[{i}]")
    _check_policy(data["policy"], standards_node)
    _check_table("tracking", data["tracking"], TRACKING, "tracking")
    if data["tracking"].get("enabled"):
        for key in ("uri", "experiment"):
            if not data["tracking"].get(key):
                raise ConfigError(f"tracking.{key} must be set when tracking.enabled is true (or use tracking=none)")
    _check_table("runtime", data["runtime"], RUNTIME, "runtime")
    _check_table("report", data["report"], REPORT, "report")
    return data


def check_overrides(argv: list[str], config_dir: str, config_name: str = "config") -> None:
    """A command-line ``key.sub=value`` (no ``+``) for a key the composed config does not declare: one
    :class:`ConfigError` line naming it and the valid keys, before Hydra prints its multi-line error (which suggests
    ``+key.sub=value``, a key the schema then refuses anyway). Whatever this cannot judge - a sweep over the key's
    group, an override or config that does not compose - is left to Hydra and :func:`check_config`."""
    try:
        from hydra import compose, initialize_config_dir
        from hydra._internal.utils import get_args_parser
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from hydra.core.override_parser.types import OverrideType

        args, _ = get_args_parser().parse_known_args(list(argv))
        overrides = OverridesParser.create().parse_overrides(list(args.overrides or []))
    except Exception:  # noqa: BLE001 - Hydra reports a malformed command line itself
        return
    if args.config_name or args.config_path or args.config_dir:  # another primary config: Hydra composes it
        return
    dotted = [o for o in overrides if o.type == OverrideType.CHANGE and o.package is None and "." in o.key_or_group
              and not o.key_or_group.startswith("hydra")]
    if not dotted:
        return
    swept = {o.key_or_group for o in overrides if o.is_sweep_override() and "." not in o.key_or_group}
    base = [o.input_line for o in overrides if o not in dotted and not o.is_sweep_override()
            and not o.key_or_group.startswith("hydra")]
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(config_dir)):
            cfg = compose(config_name, overrides=base)
    except Exception:  # noqa: BLE001 - Hydra will say why when it composes
        return
    for o in dotted:
        parts = o.key_or_group.split(".")
        if parts[0] in swept or parts[0] == "experiment":
            continue
        node: Any = cfg
        for i, part in enumerate(parts):
            if not isinstance(node, DictConfig):
                break
            if part not in node.keys():  # `in node` is False for a declared-but-unset (???) key
                prefix = ".".join(parts[:i])
                what = prefix or "the top level (groups and settings)"
                name = OmegaConf.select(cfg, f"{parts[0]}.name", default=None) if i == 1 else None
                if name is not None:
                    what = f"{parts[0]} {name}"
                raise _unknown(prefix, part, list(node.keys()), what)
            node = node._get_node(part)


# --------------------------------------------------------------------------------- after the trials are built


def _needs(policy: Mapping) -> tuple[str, ...]:
    """The trial kinds a policy cannot choose its match threshold without (on the selection partition)."""
    name = policy.get("name", "target_rates")
    return ("genuine",) if name in ("min_cost", "joint") else ("genuine", "impostor")


def check_trials(tr: Any, policy: Mapping, protocol: Mapping) -> None:
    """Stop in one line when the protocol left nothing to choose thresholds on or to report: no trials at all, an
    empty partition, no scored bona fide presentation, or none of a trial kind the policy needs on the selection
    partition (``policy.select_on``). A dataset without any attack (verification only) is allowed: no PAD
    threshold is chosen then; one whose attacks all fall outside the selection partition is not."""
    trials, probes, counts = tr.trials, tr.probes, tr.counts
    sel = str(policy.get("select_on", "dev"))
    if counts.get("enrolled_subjects", 0) == 0:
        raise RunRequirementError(
            f"the protocol enrolled no subject ({counts.get('enrolment_samples', 0)} enrolment samples, "
            f"{counts.get('failure_to_enrol_subjects', 0)} subjects failed to enrol; protocol.enrol={dict(protocol.get('enrol') or {})}), "
            "so there are no trials to choose thresholds on")
    if len(trials) == 0:
        raise RunRequirementError(f"the protocol produced no trials ({counts.get('probe_samples', 0)} probe samples, "
                                  f"{counts.get('enrolled_subjects', 0)} enrolled subjects): check protocol.enrol and "
                                  "protocol.partition")
    for part in ("dev", "eval"):
        if not tr.partitions.get(part):
            how = (f"protocol.dev_fraction={protocol.get('dev_fraction', 0.5)} of {counts.get('subjects')} subjects"
                   if protocol.get("partition", "subjects") == "subjects" else
                   f"protocol.{part}_splits={protocol.get(part + '_splits', ['dev'] if part == 'dev' else ['test'])} "
                   "matches no sample's split")
            raise RunRequirementError(f"the {part} partition has no subjects ({how}): thresholds are chosen on dev and "
                                      "reported on eval, both need people")
    ok = probes[(probes["status"] == "scored")]
    here = ok[ok["partition"] == sel]
    n_bona = int((here["label"] == "bona_fide").sum())
    if n_bona == 0:
        bona = probes[probes["label"] == "bona_fide"]
        there = int((bona["partition"] == sel).sum())
        raise RunRequirementError(f"no scored bona fide probe in the {sel} partition ({there} bona fide probe samples "
                                  f"there, none scored; {len(bona)} in all partitions; enrolment samples are not "
                                  "probes, see protocol.enrol): no genuine trial and no BPCER to choose thresholds on")
    t_sel = trials[trials["partition"] == sel]
    name = policy.get("name", "target_rates")
    for kind in _needs(policy):
        if not int((t_sel["kind"] == kind).sum()):
            raise RunRequirementError(f"no {kind} trials in the {sel} partition (protocol "
                                      f"{protocol.get('name', '?')}, {len(tr.partitions.get(sel, []))} subjects there): "
                                      f"policy {name} needs them to choose t_match")
    if int((ok["label"] == "attack").sum()) and not int((here["label"] == "attack").sum()):
        raise RunRequirementError(f"no scored attack presentation in the {sel} partition although the dataset has "
                                  f"attacks: policy {name} cannot choose t_pad")


def check_thresholds(op: Mapping, probes: Any) -> None:
    """After the policy: stop in one line when it chose no match threshold, or no PAD threshold although the data
    hold attacks (a dataset without attacks is verification only: t_pad is then legitimately absent)."""
    notes = "; ".join(n for n in op.get("notes", []) if "no " in n and "threshold" in n) or "see the policy's notes"
    has_attacks = bool(((probes["status"] == "scored") & (probes["label"] == "attack")).any())
    missing = [t for t in ("t_match", "t_pad") if op.get(t) is None and (t == "t_match" or has_attacks)]
    if missing:
        raise RunRequirementError(f"policy {op.get('name')} chose no {' and no '.join(missing)} on "
                                  f"{op.get('selected_on', 'dev')}: {notes}")
