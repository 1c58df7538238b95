"""Fixtures of the third-party score tests: one real smoke run (MTCNN + dlib ResNet + MiniFASNetV2 on 32 NUAA images)
whose probes and trials are written out as a vendor's score files (:mod:`tests.vendor.writers`)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def smoke_run(shared, tmp_path_factory):
    """``(run_dir, summary)`` of ``python -m harness experiment=smoke tracking=none`` (real models, real images)."""
    from tests.conftest import run_smoke

    run_dir, summary, _ = run_smoke(tmp_path_factory.mktemp("vendor_smoke"), "tracking=none")
    return run_dir, summary
