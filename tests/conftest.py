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
