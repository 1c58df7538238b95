"""Every conf/policy option composes under Hydra and runs on synthetic data; standards presets compose too."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import harness.__main__  # noqa: F401  (registers the resolvers)
from harness.policy import POLICIES, choose_thresholds
from harness.policy.standards import resolve_standards

from ._synth import random_tables

CONF = Path(__file__).resolve().parents[2] / "conf"
POLICY_FILES = sorted(p.stem for p in (CONF / "policy").glob("*.yaml"))


def _compose(*overrides: str):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose("config", overrides=list(overrides))


def test_every_policy_has_a_config_and_vice_versa():
    assert set(POLICY_FILES) == set(POLICIES)


@pytest.mark.parametrize("name", POLICY_FILES)
def test_policy_config_composes_and_runs(name):
    cfg = _compose(f"policy={name}")
    pol = OmegaConf.to_container(cfg.policy, resolve=True)
    assert pol["name"] == name and pol["select_on"] == "dev"
    t, p = random_tables(5, n_gen=60, n_att=40)
    op = choose_thresholds(t, p, pol)
    assert op["t_match"] is not None and op["t_pad"] is not None and op["selected_on"] == "dev"
    assert len(op["report"]["standards"]) == len(list((CONF / "standards").glob("*.yaml")))


def test_standards_preset_composes_as_a_hydra_group():
    cfg = _compose("+standards=nist_sp800_63a_4")
    presets = resolve_standards(OmegaConf.to_container(cfg.standards, resolve=True))
    assert [p["name"] for p in presets] == ["nist_sp800_63a_4"]
