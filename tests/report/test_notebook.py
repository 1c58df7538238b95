"""notebooks/compare_operating_points.ipynb executes against the sweep's MLflow store and compares its 4 runs, reading
the whole-system rates under their ``system_level/...`` names (MLflow reserves ``system/...`` for system metrics)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.shared
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "compare_operating_points.ipynb"


def test_notebook_executes(sweep, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sweep.uri)
    monkeypatch.setenv("HARNESS_EXPERIMENT", "face-pad-harness")
    monkeypatch.delenv("HARNESS_PARENT_RUN_ID", raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert 'f"system_level/{PARTITION}/iapar"' in code and 'f"system_level/{PARTITION}/expected_cost/value"' in code
    assert 'f"system/{' not in code  # the old names are only a fallback for runs logged before the rename
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=sweep.uri)
    children = client.search_runs([client.get_run(sweep.parent["run_id"]).info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{sweep.parent['run_id']}'")
    assert len(children) == 4
    for c in children:
        assert not [k for k in c.data.metrics if k.startswith("system/")]
        assert "system_level/eval/iapar/value" in c.data.metrics
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                     if o.get("output_type") == "stream")
    assert f"sweep parent run {sweep.parent['run_id']}: 4 child runs" in text
    assert "operating points of 4 runs" in text and "compared 4 runs" in text
    assert "lowest expected cost per transaction" in text
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
