"""Packaging and the Python API: the built wheel works outside the checkout, and :func:`harness.run` runs the smoke
experiment from Python with the recorded numbers.

The wheel test builds ``face_pad_harness-*.whl`` from this checkout, installs it (``--no-deps``) into a clean venv
that sees the dependencies already installed in the running interpreter's site-packages through a ``.pth`` line
(a plain ``sys.path`` entry: the editable install's ``__editable__*.pth`` finder in there is not run, so the
checkout's ``harness`` cannot be imported), then runs the installed console scripts from a folder outside the
checkout (about 50 s on 2 CPU cores, most of it the smoke run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.golden.golden import compare

pytestmark = pytest.mark.shared
ROOT = Path(__file__).resolve().parents[1]


def _venv_with_deps(where: Path) -> Path:
    """A venv without pip whose ``sys.path`` ends with this interpreter's site-packages; its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    py = where / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(site) / "_harness_test_deps.pth").write_text("".join(f"{d}\n" for d in deps))
    return py


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path, shared):
    wheels, work = tmp_path / "wheels", tmp_path / "work"
    work.mkdir()
    b = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(ROOT),
                        "-w", str(wheels)], capture_output=True, text=True, timeout=600)
    assert b.returncode == 0, b.stderr[-3000:]
    (wheel,) = wheels.glob("face_pad_harness-*.whl")

    py = _venv_with_deps(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(HARNESS_SHARED=str(shared), HARNESS_RESULTS=str(tmp_path / "results"),
               HARNESS_CACHE=str(tmp_path / "wcache"), MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db")

    def venv(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), cwd=work, env=env, capture_output=True, text=True, timeout=timeout)

    # the dependencies are importable, the checkout's editable install is not (its finder .pth is not processed)
    probe = venv(str(py), "-c", "import importlib.util, hydra, torch; print(importlib.util.find_spec('harness'))")
    assert probe.returncode == 0 and probe.stdout.strip() == "None", probe.stdout + probe.stderr[-2000:]

    i = venv(str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel), timeout=300)
    assert i.returncode == 0, i.stderr[-3000:]
    where = venv(str(py), "-c", "import harness; print(harness.__file__)")
    assert where.returncode == 0, where.stderr[-2000:]
    assert Path(where.stdout.strip()).is_relative_to(tmp_path / "venv"), where.stdout

    bin_ = tmp_path / "venv" / "bin"
    r = venv(str(bin_ / "harness"), "experiment=smoke", "tracking=none", "runtime.progress=false")
    assert r.returncode == 0, r.stderr[-3000:]
    (run_dir,) = sorted((tmp_path / "results" / "runs").glob("*/*"))
    assert compare(json.loads((run_dir / "summary.json").read_text()), "smoke") == []
    assert (run_dir / ".hydra" / "config.yaml").is_file()

    d = venv(str(bin_ / "harness-datasets"), "--no-decode", "dataset.list=ci_smoke.csv", timeout=300)
    assert d.returncode == 0, d.stdout[-2000:] + d.stderr[-2000:]
    op = venv(str(bin_ / "harness-op"), "--help", timeout=300)
    assert op.returncode == 0 and "usage" in op.stdout, op.stderr[-2000:]


def test_python_api_runs_the_smoke_experiment(tmp_path, shared, monkeypatch):
    """``harness.run(overrides)`` from Python: the command's run folder and files, the recorded numbers."""
    import harness

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "wcache"))
    monkeypatch.chdir(tmp_path)
    summary = harness.run(["experiment=smoke", "tracking=none", "runtime.progress=false"],
                          results_dir=tmp_path / "results")
    run_dir = Path(summary.pop("run_dir"))
    assert run_dir.parent.parent == tmp_path / "results" / "runs"
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    assert (run_dir / ".hydra" / "overrides.yaml").is_file()
    assert compare(summary, "smoke") == []


def test_python_api_names_a_misspelt_override(tmp_path):
    import harness

    with pytest.raises((KeyError, ValueError), match="runtime.progres"):
        harness.run(["runtime.progres=false"], results_dir=tmp_path)
    assert not (tmp_path / "runs").exists()
