"""Numbers unchanged: the smoke and the default NUAA run reproduce the ``summary.json`` numbers recorded before the
code base was refactored (:mod:`tests.golden.golden`; every numeric leaf but timings, paths, ids and cache
counters)."""

from __future__ import annotations

import pytest

from tests.conftest import run_smoke

from .golden import compare

pytestmark = pytest.mark.shared


def test_smoke_run_numbers_unchanged(tmp_path, shared):
    _, summary, _ = run_smoke(tmp_path, "tracking=none")
    assert compare(summary, "smoke") == []


@pytest.mark.slow
def test_default_run_numbers_unchanged(tmp_path, shared):
    """The default experiment (all of NUAA, 2,563 images: about 3 minutes of scoring on 2 CPU cores)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, HARNESS_RESULTS=str(tmp_path / "results"), HARNESS_CACHE=str(tmp_path / "wcache"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    r = subprocess.run([sys.executable, "-m", "harness", "tracking=none", "runtime.progress=false"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    (run_dir,) = sorted((tmp_path / "results" / "runs").glob("*/*"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert compare(summary, "default") == []
    # the same run also reports per presentation (NUAA's test session: 9 bona fide and 73 attack recordings) and a
    # retry flow with 1, 2 and 3 attempts of 10-frame windows
    counts = summary["presentations"]["counts"]
    assert sum(c["bona_fide"]["presentations"] for c in counts.values()) == 9
    assert sum(c["attack"]["presentations"] for c in counts.values()) == 73
    flow = summary["flow"]
    assert flow["attempt"] == "window" and flow["window_frames"] == 10
    assert set(flow["genuine"]) == set(flow["attack"]) == {"1", "2", "3"}
