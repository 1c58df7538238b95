"""Every key of every ``conf/`` option is read by the code that consumes it: no key nobody reads.

Each option of each config group (every yaml under ``conf/<group>/``, and each experiment) is composed with Hydra
and its keys are bound to their consumer:

* ``dataset``: the registered loader's parameters (``load_dataset(name, **rest)``, :mod:`harness.data.registry`);
* ``embedder`` / ``pad``: the registered model factory's parameters (:mod:`harness.models.registry`);
* ``detector``: the registered detector's parameters (``build_detector``, :mod:`harness.faces.detect`);
* ``policy``: the keys the policy reads (:data:`harness.config_tables.POLICY_COMMON` + ``POLICY_KEYS[name]``);
* ``protocol`` / ``runtime`` / ``tracking`` / ``report``: their tables in :mod:`harness.config_tables`;
* ``presentation`` / ``flow``: their tables in :mod:`harness.config_session`, as far as their readers
  (:mod:`harness.session_metrics`, :func:`harness.flow.validate_flow`) take the keys.

A parameter caught only by ``**kwargs`` does not count as read: a loader declaring ``**_`` would otherwise swallow
a misspelt key silently. ``name`` selects the member and ``plugin`` is imported first (:mod:`harness.registry`).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import harness.resolvers  # noqa: F401  (registers the resolvers conf/config.yaml uses)
from harness import config_tables as T

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ("dataset", "detector", "embedder", "pad", "policy", "protocol", "runtime", "tracking", "report", "presentation",
          "flow")
#: keys the registries consume themselves (selection, plugin import), never passed on
REGISTRY_KEYS = {"name", "plugin"}
#: keys the experiment passes to a consumer beside the group's own (harness.experiment: device, batch size)
PASSED_BY_HARNESS = {"detector": {"batch_size", "device"}, "embedder": {"device"}, "pad": {"device"}}

OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def _compose(*overrides: str) -> dict:
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=False)


def _parameters(fn) -> set[str]:
    """The keyword parameters ``fn`` names (a class: its ``__init__``); ``**kwargs`` and ``*args`` excluded."""
    target = fn.__init__ if inspect.isclass(fn) else fn
    sig = inspect.signature(target)
    return {n for n, p in sig.parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "self"}


def _member(group: str, name: str):
    if group == "dataset":
        from harness.data.registry import DATASETS

        return DATASETS.get(name)
    if group in ("embedder", "pad"):
        from harness.models.registry import EMBEDDERS, PAD_MODELS

        return (EMBEDDERS if group == "embedder" else PAD_MODELS).get(name)
    from harness.faces.detect import DETECTORS

    return DETECTORS.get(name)


def _readers(group: str, node: dict) -> tuple[set[str], str]:
    """The keys the consumer of ``node`` reads, and what that consumer is (for the failure message)."""
    name = node.get("name")
    if group in ("dataset", "embedder", "pad", "detector"):
        fn = _member(group, name)
        return _parameters(fn) | REGISTRY_KEYS, f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', fn)}"
    if group == "policy":
        return set(T.POLICY_COMMON) | set(T.POLICY_KEYS[name]) | set(T.PLUGIN), f"policy {name} (config_tables)"
    if group in ("presentation", "flow"):
        from harness import config_session as S
        from harness.flow import DEFAULTS

        read = set(DEFAULTS) if group == "flow" else {"aggregation", "template"}  # what session_metrics reads
        return set(getattr(S, group.upper())) & read, f"harness.config_session.{group.upper()} (and its reader)"
    table = {"protocol": T.PROTOCOL, "runtime": T.RUNTIME, "tracking": T.TRACKING, "report": T.REPORT}[group]
    return set(table), f"harness.config_tables.{group.upper()}"


def _unread(group: str, node: dict) -> tuple[list[str], str]:
    read, who = _readers(group, node)
    return sorted(set(node) - read), who


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}/{o}" for g, o in OPTIONS])
def test_every_key_of_every_option_is_read(group, option):
    cfg = _compose(f"{group}={option}")
    unread, who = _unread(group, cfg[group])
    assert not unread, f"conf/{group}/{option}.yaml: key(s) {unread} are read by nobody ({who} does not take them)"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_key_of_every_experiment_is_read(experiment):
    cfg = _compose(f"experiment={experiment}")
    bad = {}
    for group in GROUPS:
        unread, who = _unread(group, cfg[group])
        if unread:
            bad[group] = (unread, who)
    assert not bad, f"experiment={experiment}: keys read by nobody: {bad}"


@pytest.mark.parametrize("group", ["embedder", "pad", "detector"])
def test_harness_passes_only_what_the_models_take(group):
    """The keys :mod:`harness.experiment` adds (device, batch size) are parameters of every member."""
    for p in sorted((CONF / group).glob("*.yaml")):
        name = _compose(f"{group}={p.stem}")[group]["name"]
        missing = PASSED_BY_HARNESS[group] - _parameters(_member(group, name))
        assert not missing, f"{group} {name}: the harness passes {sorted(missing)}, which it does not take"


def test_the_binding_catches_an_unread_key():
    cfg = _compose("dataset=nuaa", "+dataset.roots=/typo")
    unread, _ = _unread("dataset", cfg["dataset"])
    assert unread == ["roots"]
    cfg = _compose("+policy.confidense=0.9")
    assert _unread("policy", cfg["policy"])[0] == ["confidense"]


def test_policy_files_compose_the_same_outside_hydra():
    """``harness.conf_files.load_policy_file`` (``harness.cli export``) gives what Hydra composes."""
    from harness.conf_files import load_policy_file

    for p in sorted((CONF / "policy").glob("*.yaml")):
        assert load_policy_file(p.stem) == _compose(f"policy={p.stem}")["policy"], p.stem


def test_cuda_runtime_differs_from_cpu_only_where_it_says():
    cpu, cuda = _compose("runtime=cpu")["runtime"], _compose("runtime=cuda")["runtime"]
    assert list(cpu) == list(cuda)
    assert {k for k in cpu if cpu[k] != cuda[k]} == {"device", "batch_size", "detect_batch_size", "chunk_size",
                                                     "workers", "gpu_decode", "threads"}
