"""Every config composes, and every group option resolves to something the registries know."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import harness.__main__  # noqa: F401  (registers the resolvers)
from harness.models.registry import EMBEDDERS, PAD_MODELS, _load_builtin

CONF = Path(__file__).resolve().parent.parent / "conf"


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(*overrides: str):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose("config", overrides=list(overrides))


def test_default_composes_to_the_nuaa_protocol():
    cfg = _compose()
    assert cfg.dataset.name == "nuaa" and cfg.dataset.list == "labels.csv"
    assert cfg.protocol.enrol.enrol_in == ["train"] and cfg.policy.select_on == "dev"
    assert cfg.tracking.uri.startswith("sqlite:///") or cfg.tracking.uri  # env may override
    OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize("exp", _options("experiment"))
def test_every_experiment_composes(exp):
    cfg = _compose(f"experiment={exp}")
    OmegaConf.to_container(cfg, resolve=True)


def test_smoke_experiment_is_the_ci_list_on_cpu():
    cfg = _compose("experiment=smoke")
    assert cfg.dataset.list == "ci_smoke.csv" and cfg.runtime.device == "cpu" and cfg.protocol.enrol.mode == "first_k"
    assert cfg.run_name.startswith("smoke-")


@pytest.mark.parametrize("group", ["dataset", "detector", "embedder", "pad", "protocol", "policy", "tracking", "runtime"])
def test_every_group_option_composes(group):
    _load_builtin()
    for opt in _options(group):
        cfg = _compose(f"{group}={opt}")
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
        if group == "embedder":
            assert cfg.embedder.name in EMBEDDERS
        if group == "pad":
            assert cfg.pad.name in PAD_MODELS


def test_misspelt_model_option_is_a_clear_config_error():
    from harness.models.registry import ModelOptionError, build_pad

    with pytest.raises(ModelOptionError, match=r"pad minifasnet_v2: unknown option\(s\) \['box_maping'\].*pad\.<option>"):
        build_pad("minifasnet_v2", box_maping="none")
    assert issubclass(ModelOptionError, ValueError)  # so the CLI prints one line, not a traceback
