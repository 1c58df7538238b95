"""Strict configuration: every key of every config group is declared, typed and range-checked before any scoring.

``python -m harness`` composes the Hydra config (every option is declared with its default in ``conf/``, so ``--cfg
job`` and ``--help`` show them all), then :func:`check_config` walks it against the tables of
:mod:`harness.config_tables` before anything is loaded or scored. A key that the code would silently ignore (a
misspelt ``+dataset.lisst=...``), a value of the wrong type or out of range (``runtime.threads=0``,
``policy.target_fmr=abc``) or a required value left ``???`` (``dataset=csv`` without ``dataset.csv``) is a
:class:`ConfigError`: one line naming the key (and, for an unknown key, the valid ones), exit status 2, no traceback.
:func:`check_overrides` does the same for a misspelt ``key.sub=value`` on the command line before Hydra composes
(Hydra would print a multi-line error instead).

Which keys a dataset adapter, an embedder, a PAD model or the detector takes is read from its factory's signature (the
registries of :mod:`harness.registry` are the source of truth; a ``plugin: <module>`` key in any of these groups or
in ``policy`` imports a module that registers a member first, and a plugin policy declares its keys with
``register_policy(name, keys=...)``; as :func:`harness.models.registry.check_options` refuses unknown model options
when a model is built); the tables (:mod:`harness.config_tables`) give each key's type and range. Every other group
has one table: :data:`TOP`, :data:`RUNTIME`, :data:`PROTOCOL` (+ :data:`ENROL`), :data:`POLICY_COMMON` +
:data:`POLICY_KEYS` (per policy), :data:`TRACKING`, :data:`REPORT` and :data:`STANDARD` / :data:`CRITERION`
(``conf/standards/``).

After scoring, :func:`check_trials` (after :func:`harness.protocols.trials.build_trials`) and
:func:`check_thresholds` (after :func:`harness.policy.select.choose_thresholds`) stop the run in one line when the
protocol left the policy nothing to choose on (no trials of a kind it needs, no bona fide presentation, an empty
partition) instead of finishing with exit status 0 and no thresholds.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from harness.config_session import FLOW, PRESENTATION
from harness.config_tables import (PLUGIN, Check, ConfigError, did_you_mean, GROUPS, TOP,
                                   RUNTIME, DETECTOR,
                                   DATASET, DATASET_REQUIRED_HINT, MODEL, PROTOCOL, PROTOCOL_REQUIRED, ENROL,
                                   POLICY_COMMON, POLICY_KEYS, TRACKING, REPORT, STANDARD, CRITERION, check_table,
                                   declared_keys, standards_names, unknown_key, anything)
from harness.registry import PLUGIN_KEY, Registry, import_plugin

__all__ = ["ConfigError", "RunRequirementError", "check_config", "check_overrides", "check_policy", "check_standard",
           "check_trials", "check_thresholds", "GROUPS",
           "TOP", "RUNTIME", "DETECTOR", "DATASET", "MODEL", "PROTOCOL", "ENROL", "POLICY_COMMON", "POLICY_KEYS",
           "TRACKING", "REPORT", "STANDARD", "CRITERION"]


class RunRequirementError(ValueError):
    """The configured protocol gave the policy nothing to choose on (one line, exit status 2)."""


def _signature_keys(fn: Callable, drop: tuple[str, ...] = ()) -> tuple[set[str], set[str]]:
    """(keys a factory takes, keys it requires) from its signature, without ``**kwargs`` and ``drop``."""
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in ("self",) + drop]
    return {p.name for p in params}, {p.name for p in params if p.default is p.empty}


def _member(group: str, registry: Registry, node: Mapping) -> Any:
    """The registered member ``node.name`` names (its ``plugin`` module imported first), or a one-line error."""
    try:
        import_plugin(node.get(PLUGIN_KEY))
    except ImportError as e:
        raise ConfigError(f"{group}.{PLUGIN_KEY}: cannot import plugin module {node.get(PLUGIN_KEY)!r}: {e}") from None
    known = registry.names()
    name = node.get("name")
    if name not in known:
        raise ConfigError(f"{group}.name must be one of {', '.join(known)}, got {name!r}{did_you_mean(str(name), known)}")
    return registry.get(name)


def _check_member(group: str, registry: Registry, node: Mapping, table: Mapping[str, Check],
                  drop: tuple[str, ...] = ()) -> set[str]:
    """A registered group's keys: those its factory's signature takes (less ``drop``), checked with ``table``
    (a key the table does not know: any value); returns the keys the factory requires."""
    factory = _member(group, registry, node)
    takes, required = _signature_keys(factory.__init__ if isinstance(factory, type) else factory, drop)
    valid = {"name"} | takes  # and ``plugin`` (accepted everywhere, not listed)
    for key in node:
        if key not in valid and key not in PLUGIN:
            raise unknown_key(group, str(key), valid, f"{group} {node.get('name')}")
    for key, v in node.items():
        (PLUGIN | table).get(key, anything)(f"{group}.{key}", v)
    return required


def _check_dataset(node: Mapping) -> None:
    from harness.data.registry import DATASETS

    required = _check_member("dataset", DATASETS, node, {})
    for req in sorted(required):
        if node.get(req) is None:
            raise ConfigError(f"dataset.{req} is required for dataset {node.get('name')}: "
                              f"{DATASET_REQUIRED_HINT.get(req, f'set dataset.{req}=...')}")
    for key, v in node.items():
        DATASET.get(key, anything)(f"dataset.{key}", v)


def _check_detector(node: Mapping) -> None:
    from harness.faces.detect import DETECTORS

    for key in ("batch_size", "device"):  # passed by the experiment from runtime.*: a second value would clash
        if key in node:
            raise ConfigError(f"unknown config key 'detector.{key}': the detector's {key} is runtime."
                              f"{'detect_batch_size' if key == 'batch_size' else 'device'}; set that instead")
    _check_member("detector", DETECTORS, node, DETECTOR, drop=("batch_size", "device"))


def _check_model(group: str, node: Mapping) -> None:
    from harness.models.registry import EMBEDDERS, PAD_MODELS

    _check_member(group, EMBEDDERS if group == "embedder" else PAD_MODELS, node, MODEL, drop=("device",))


def _check_protocol(node: Mapping) -> None:
    check_table("protocol", node, PROTOCOL, "protocol")
    for req in PROTOCOL_REQUIRED:
        if node.get(req) is None:
            raise ConfigError(f"protocol.{req} is required (valid keys: {', '.join(sorted(PROTOCOL))})")


def _check_policy(node: Mapping, standards_node: Any) -> None:
    from harness.policy.select import POLICIES

    name = node.get("name", "target_rates")
    _member("policy", POLICIES, {"name": name, **node})
    own = POLICY_KEYS[name] if name in POLICY_KEYS else declared_keys(POLICIES.meta(name).get("keys"))
    table = POLICY_COMMON | own
    check_table("policy", {k: v for k, v in node.items() if k not in PLUGIN}, table, f"policy {name}")
    check_table("policy", {k: v for k, v in node.items() if k in PLUGIN}, PLUGIN, "a plugin")
    pa, pi = node.get("attack_prevalence") or 0.0, node.get("impostor_prevalence") or 0.0
    if pa + pi >= 1:
        raise ConfigError(f"policy.attack_prevalence + policy.impostor_prevalence must be < 1, got {pa} + {pi}")
    required = standards_names("policy.required_standards", node.get("required_standards"), allow_all=False) or []
    if standards_node is not None:  # +standards=<preset>: judged instead of policy.standards
        judged = [p.get("name") for p in _presets_of(standards_node)]
        where = "the standards group (+standards=...)"
    else:
        judged = standards_names("policy.standards", node.get("standards", "all"), allow_all=True)
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
    check_table(where, preset, STANDARD, "a standards preset")
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
            raise unknown_key("", str(key), valid_top, "the top level (groups and settings)")
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
    check_table("tracking", data["tracking"], TRACKING, "tracking")
    if data["tracking"].get("enabled"):
        for key in ("uri", "experiment"):
            if not data["tracking"].get(key):
                raise ConfigError(f"tracking.{key} must be set when tracking.enabled is true (or use tracking=none)")
    check_table("runtime", data["runtime"], RUNTIME, "runtime")
    if data["runtime"].get("devices") is not None and data["runtime"].get("engine") != "ray":
        raise ConfigError(f"runtime.devices={data['runtime']['devices']} runs one Ray actor per GPU: use runtime=ray "
                          "runtime.device=cuda (pip install -e '.[ray]')")
    check_table("report", data["report"], REPORT, "report")
    check_table("presentation", data["presentation"], PRESENTATION, "presentation")
    check_table("flow", data["flow"], FLOW, "flow")
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
                raise unknown_key(prefix, part, list(node.keys()), what)
            node = node._get_node(part)


# --------------------------------------------------------------------------------- after the trials are built


def _needs(policy: Mapping) -> tuple[str, ...]:
    """The trial kinds a policy cannot choose its match threshold without (on the selection partition)."""
    from harness.policy.select import POLICIES

    name = policy.get("name", "target_rates")
    try:
        import_plugin(policy.get(PLUGIN_KEY))
        return tuple(POLICIES.meta(name).get("needs", ("genuine", "impostor")))
    except KeyError:
        return ("genuine", "impostor")


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
