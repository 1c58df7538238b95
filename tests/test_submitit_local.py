"""The SLURM launcher path (hydra-submitit-launcher, ``conf/hydra/launcher/slurm*.yaml``) run for real through
submitit's local executor (``hydra/launcher=slurm_local``; submitit's executors:
https://facebookincubator.github.io/submitit/api.html, the Hydra plugin:
https://hydra.cc/docs/plugins/submitit_launcher/): a tracked multirun of the smoke
experiment, two jobs (one per PAD model), each a submitit job in its own process. What a SLURM cluster adds on top
(sbatch, the queue, other nodes) is not exercised here.

Asserts: both jobs finished through submitit (its per-job folder holds the pickled result and the job's log), each
wrote its run's ``summary.json`` under the sweep directory with the PAD model it was given, and the sweep's MLflow
record is one parent run with the two jobs as FINISHED nested children (``harness.sweep``: the jobs find
``mlflow_sweep.json`` above their output folder, as on a shared filesystem)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("hydra_plugins.hydra_submitit_launcher",
                    reason="hydra-submitit-launcher is not installed (pip install -e '.[test]')")

pytestmark = [pytest.mark.shared, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
PADS = ("minifasnet_v2", "minifasnet_v1se")


@pytest.fixture(scope="module")
def sweep(shared, tmp_path_factory):
    """``python -m harness -m hydra/launcher=slurm_local experiment=smoke pad=...`` into a temporary results tree."""
    tmp = tmp_path_factory.mktemp("submitit")
    uri = f"sqlite:///{tmp}/mlflow.db"
    env = dict(os.environ, HARNESS_RESULTS=str(tmp / "results"), MLFLOW_TRACKING_URI=uri,
               HARNESS_CACHE=str(tmp / "wcache"), MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "harness", "-m", "hydra/launcher=slurm_local", "experiment=smoke",
                        "runtime.progress=false", "runtime.threads=1", f"pad={','.join(PADS)}"],
                       cwd=tmp, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-4000:])
    (sweep_dir,) = sorted((tmp / "results" / "multirun").glob("*/*"))
    return {"dir": sweep_dir, "uri": uri, "wall_s": time.time() - t0, "stdout": r.stdout}


def test_jobs_ran_through_submitit_and_wrote_their_runs(sweep):
    from hydra.core.utils import JobStatus

    sweep_dir = sweep["dir"]
    jobs = sorted(p for p in (sweep_dir / ".submitit").iterdir() if p.is_dir() and p.name.isdigit())
    assert len(jobs) == 2, jobs  # one submitit folder per job (%j: the local job id)
    for job in jobs:
        (result,) = job.glob("*_result.pkl")  # submitit's record of a job that returned
        status, ret = pickle.loads(result.read_bytes())
        assert status == "success" and ret.status == JobStatus.COMPLETED  # Hydra's JobReturn, sent back by submitit
        assert any(job.glob("*_log.out")) and any(job.glob("*_submitted.pkl"))
    summaries = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/summary.json"))]
    assert sorted(s["models"]["pad"]["name"] for s in summaries) == sorted(PADS)  # each job its own PAD model
    for s in summaries:
        acc = s["accounting"]
        assert acc["input_samples"] == acc["scored"] == 32 and acc["detect_computed"] + acc["detect_cached"] == 32
        assert s["operating_point"] and s["run"]["mlflow_run_id"]
    print(f"submitit local sweep wall time {sweep['wall_s']:.1f} s")


def test_one_tracked_parent_with_both_jobs_as_children(sweep):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=sweep["uri"])
    exp = client.get_experiment_by_name("face-pad-harness")
    runs = client.search_runs([exp.experiment_id], max_results=20)
    parents = [r for r in runs if r.data.tags.get("harness.sweep") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(runs) == 3 and len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.metrics["sweep/children"] == 2
    assert json.loads((sweep["dir"] / "mlflow_sweep.json").read_text())["run_id"] == parent.info.run_id
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert all(c.info.status == "FINISHED" for c in children)
    assert sorted(c.data.tags["pad"] for c in children) == sorted(PADS)
    jobs = {json.loads(p.read_text())["run"]["mlflow_run_id"] for p in sweep["dir"].glob("*/summary.json")}
    assert {c.info.run_id for c in children} == jobs  # the runs the submitit jobs recorded
