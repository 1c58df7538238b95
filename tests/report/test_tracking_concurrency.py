"""Several jobs creating and logging to a fresh sqlite tracking database at the same moment all succeed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

WORKER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import mlflow
    from harness.tracking import ensure_experiment
    uri, go, i = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    while not go.exists():  # start together: every process has imported MLflow before any touches the database
        time.sleep(0.01)
    mlflow.set_tracking_uri(uri)
    ensure_experiment("race", uri, Path(sys.argv[4]))
    with mlflow.start_run(run_name=f"job{i}"):
        mlflow.log_params({f"p{k}": k for k in range(40)})
        mlflow.log_metrics({f"verif/eval/m{k}": float(k) for k in range(40)})
        mlflow.log_text("x", "a.txt")
    print("ok", i)
""")


def test_four_jobs_create_one_fresh_sqlite_store_at_once(tmp_path):
    import mlflow

    db = tmp_path / "fresh" / "mlflow.db"
    uri = f"sqlite:///{db}"
    go = tmp_path / "go"
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    root = Path(__file__).resolve().parents[2]
    procs = [subprocess.Popen([sys.executable, str(script), uri, str(go), str(i), str(tmp_path / "art")], cwd=root,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    time.sleep(4.0)  # let them import
    go.touch()
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0 and out.startswith("ok"), err[-3000:]
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("race")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.info.run_name for r in runs) == [f"job{i}" for i in range(4)]
    assert all(len(r.data.metrics) == 40 and len(r.data.params) == 40 for r in runs)
    assert Path(exp.artifact_location.replace("file://", "")).parent == tmp_path  # artifacts under the given root
