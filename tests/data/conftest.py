"""Fixtures for the dataset tests: ``media`` (one tiny file per extension) and ``tree`` (a fake database root
writer); the database generators are in :mod:`tests.data.fakes`."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests.data.fakes import Tree, encode_video


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, bytes]:
    """Bytes of one tiny file per extension (videos: 10 frames)."""
    from PIL import Image

    d = tmp_path_factory.mktemp("media")
    out = {}
    for ext in (".avi", ".mov", ".mp4"):
        out[ext] = encode_video(d / f"v{ext}").read_bytes()
    for ext, fmt in ((".jpg", "JPEG"), (".png", "PNG")):
        buf = io.BytesIO()
        Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(buf, format=fmt)
        out[ext] = buf.getvalue()
    return out


@pytest.fixture
def tree(tmp_path, media):
    return Tree(tmp_path / "db", media)
