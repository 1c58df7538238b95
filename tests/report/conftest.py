"""Fixtures for the report / sweep tests: one tracked sweep of the NUAA smoke set (2 PAD models x 2 detector
settings, joblib launcher, 4 child runs under one MLflow parent run) shared by every test that needs real runs,
and the headless-Chromium locator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@dataclass
class Sweep:
    tmp: Path
    uri: str
    sweep_dir: Path
    parent: dict
    job_dirs: list[Path]
    stdout: str
    wall_s: float


@pytest.fixture(scope="session")
def sweep(tmp_path_factory, shared) -> Sweep:
    """``python -m harness experiment=sweep_smoke`` (a multirun by config) into a temporary results tree."""
    import time

    tmp = tmp_path_factory.mktemp("sweep")
    uri = f"sqlite:///{tmp}/mlflow.db"
    env = dict(os.environ, HARNESS_RESULTS=str(tmp / "results"), MLFLOW_TRACKING_URI=uri, HARNESS_CACHE=str(tmp / "wcache"))
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "harness", "experiment=sweep_smoke", "runtime.progress=false"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=900)
    wall = time.time() - t0
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-4000:])
    dirs = sorted((tmp / "results" / "multirun").glob("*/*"))
    assert len(dirs) == 1, dirs
    sweep_dir = dirs[0]
    parent = json.loads((sweep_dir / "mlflow_sweep.json").read_text())
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and (p / "summary.json").is_file())
    return Sweep(tmp, uri, sweep_dir, parent, jobs, r.stdout, wall)


def find_chromium() -> str | None:
    for name in (os.environ.get("HARNESS_CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a headless-capable Chromium; skips when absent unless HARNESS_REQUIRE_CHROMIUM=1 (then fails)."""
    exe = find_chromium()
    if exe is None:
        msg = ("headless Chromium not found (apt-get install -y chromium, or set HARNESS_CHROMIUM); "
               "set HARNESS_REQUIRE_CHROMIUM=1 to make this a failure")
        if os.environ.get("HARNESS_REQUIRE_CHROMIUM") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return exe


def chromium_args(exe: str, profile: Path) -> list[str]:
    return [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}"]
