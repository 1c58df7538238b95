"""Shared fixtures. Tests that need ../shared use the ``shared`` fixture: they skip with a reason when the
material is absent (CI always has it and sets HARNESS_REQUIRE_SHARED=1, which turns the skip into a failure)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from harness.paths import shared_root

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def shared() -> Path:
    root = shared_root()
    if root is None:
        msg = "shared test material not found: set HARNESS_SHARED or place it at ../shared beside the repo"
        if os.environ.get("HARNESS_REQUIRE_SHARED") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return root


def run_smoke(tmp: Path, *overrides: str, **env: str) -> tuple[Path, dict, str]:
    """``python -m harness experiment=smoke`` into a temporary results tree and sqlite store under ``tmp`` (cwd =
    ``tmp``: anything MLflow puts in ./mlruns stays there). Returns ``(run_dir, summary, tracking_uri)``."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    uri = f"sqlite:///{tmp}/mlflow.db"
    full_env = dict(os.environ, HARNESS_RESULTS=str(tmp / "results"), MLFLOW_TRACKING_URI=uri,
                    HARNESS_CACHE=str(tmp / "wcache"), MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
                    PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])), **env)
    r = subprocess.run([sys.executable, "-m", "harness", "experiment=smoke", "runtime.progress=false", *overrides],
                       cwd=tmp, env=full_env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    (run_dir,) = sorted((tmp / "results" / "runs").glob("*/*"))
    return run_dir, json.loads((run_dir / "summary.json").read_text()), uri


@pytest.fixture(scope="session")
def cpu_models():
    """(detector, embedder, pad) as the default config builds them on CPU: MTCNN (batch 8), dlib ResNet,
    MiniFASNet v2; built once for every test that scores real images."""
    from harness.faces.detect import build_detector
    from harness.models.registry import build_embedder, build_pad

    return (build_detector("mtcnn", batch_size=8, device="cpu"), build_embedder("dlib_resnet", device="cpu"),
            build_pad("minifasnet_v2", device="cpu"))


def score_reference(manifest, models, cache_path=None):
    """The reference engine's ScoreTable of ``manifest`` with ``models`` (no score cache unless ``cache_path``)."""
    from harness.scoring.cache import ScoreCache
    from harness.scoring.engine import score_manifest

    detector, embedder, pad = models
    cache = ScoreCache(cache_path)
    try:
        return score_manifest(manifest, detector, embedder, pad, cache, progress=False)
    finally:
        cache.close()
