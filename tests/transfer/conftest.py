"""Real runs the transfer tests compose: the smoke experiment (32 NUAA images, tracked in a real MLflow sqlite
store) and the four database trees of :mod:`tests.protocols.real_trees` (OULU-NPU, CASIA-FASD, Replay-Attack,
MSU-MFSD built from real NUAA faces and the real MSU bona fide videos), each run through the real experiment with
the smallest settings (one frame per video, two for MSU; enrolment from one bona fide sample; CPU; no report).
Each is run once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_smoke

TREES = ("oulu_npu", "casia_fasd", "replay_attack", "msu_mfsd")


@pytest.fixture(scope="session")
def smoke_run(shared, tmp_path_factory) -> tuple[Path, dict, str]:
    """(run_dir, summary, tracking uri) of ``python -m harness experiment=smoke``."""
    return run_smoke(tmp_path_factory.mktemp("transfer_smoke"))


def run_tree(name: str, root: Path, results: Path) -> Path:
    """The run directory of the real experiment on one tree; a run that stops after scoring (MSU: one person per
    partition, no impostor trials to choose on) still leaves its scored tables, which a transfer can read."""
    import harness

    frames = 2 if name == "msu_mfsd" else 1
    ov = ["runtime=cpu", "runtime.progress=false", "tracking=none", "report.enabled=false", "protocol=first_k",
          "protocol.enrol.k=1", f"dataset={name}", f"dataset.root={root}",
          f"dataset.frames={{mode:uniform,n:{frames}}}", f"run_name=tree-{name}"]
    try:
        return Path(harness.run(ov, results_dir=results)["run_dir"])
    except Exception:  # noqa: BLE001 - the run stopped after scoring; its directory is checked below
        (run_dir,) = [d for d in sorted((results / "runs").glob(f"*/*tree-{name}-*"))]
        assert (run_dir / "trials.parquet").is_file() and (run_dir / "probes.parquet").is_file()
        return run_dir


@pytest.fixture(scope="session")
def tree_runs(shared, tmp_path_factory) -> dict[str, Path]:
    """dataset name -> run directory, for the four OCIM databases (one score cache for all four)."""
    from tests.protocols import real_trees as rt

    base = tmp_path_factory.mktemp("transfer_trees")
    builders = {"oulu_npu": rt.make_oulu_real, "casia_fasd": rt.make_casia_real,
                "replay_attack": rt.make_replay_attack_real, "msu_mfsd": rt.make_msu_real}
    return {name: run_tree(name, builders[name](base / name, shared), base / "results") for name in TREES}
