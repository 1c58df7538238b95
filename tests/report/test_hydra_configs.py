"""The sweep and launcher configs compose (no job is run)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _cfg_hydra(*overrides: str) -> str:
    r = subprocess.run([sys.executable, "-m", "harness", *overrides, "--cfg", "hydra"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_sweep_smoke_is_a_tracked_joblib_multirun():
    out = _cfg_hydra("experiment=sweep_smoke")
    assert "harness.sweep.MLflowSweepCallback" in out and "JoblibLauncher" in out and "mode: MULTIRUN" in out
    assert "pad: minifasnet_v2,minifasnet_v1se" in out


def test_slurm_launcher_example_composes():
    if importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None:
        pytest.skip("hydra-submitit-launcher not installed (optional: pip install hydra-submitit-launcher)")
    out = _cfg_hydra("hydra/launcher=slurm", "hydra/callbacks=mlflow_sweep")
    assert "SlurmLauncher" in out and "array_parallelism: 16" in out and "gpus_per_node: 1" in out
