"""notebooks/compare_operating_points.ipynb executes against the sweep's MLflow store and compares its 4 runs."""

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
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                     if o.get("output_type") == "stream")
    assert f"sweep parent run {sweep.parent['run_id']}: 4 child runs" in text
    assert "operating points of 4 runs" in text and "compared 4 runs" in text
    assert "lowest expected cost per transaction" in text
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
