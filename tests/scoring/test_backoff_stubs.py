"""Batch-size back-off on (simulated) CUDA out-of-memory, the CPU crop fallback, and video rows, with stub models
(no weights, no shared material: runs anywhere, CPU included)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from harness.faces.detect import MTCNNDetector
from harness.models.base import Embedder, PADModel
from harness.scoring import batched as batched_mod
from harness.scoring.batched import BackOff, score_manifest_batched
from harness.scoring.cache import ScoreCache
from harness.scoring.engine import score_manifest

OOM = torch.cuda.OutOfMemoryError


class StubEmbedder(Embedder):
    name, weights_sha256, preprocessing, dim, metric = "stub_emb", "0", "stub", 3, "euclidean"
    crop_size = (24, 24)
    template = np.array([[8.0, 9.0], [16.0, 9.0], [12.0, 13.0], [9.0, 18.0], [15.0, 18.0]])

    def __init__(self, max_batch: int | None = None):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(3), requires_grad=False)
        self.max_batch, self.batches = max_batch, []

    def forward(self, x):
        self.batches.append(len(x))
        if self.max_batch is not None and len(x) > self.max_batch:
            raise OOM(f"simulated: batch {len(x)} > {self.max_batch}")
        return x.float().mean(dim=(2, 3)) * self.scale


class StubPAD(PADModel):
    name, weights_sha256, preprocessing = "stub_pad", "0", "stub"
    crop_size = (16, 32)

    def __init__(self, max_batch: int | None = None, regions: bool = True):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1), requires_grad=False)
        self.max_batch, self.regions, self.batches = max_batch, regions, []

    def _rects(self, hw, box):
        x1, y1, x2, y2 = (int(v) for v in box)
        return [(x1, y1, x2, y2), (max(0, x1 - 5), max(0, y1 - 5), min(hw[1] - 1, x2 + 5), min(hw[0] - 1, y2 + 5))]

    def crop(self, frame, box):
        import cv2

        return np.concatenate([cv2.resize(frame[b:d + 1, a:c + 1], (16, 16)) for a, b, c, d in
                               self._rects(frame.shape[:2], box)], axis=1)

    def crop_regions(self, frame_hw, box):
        return self._rects(frame_hw, box) if self.regions else None

    def forward(self, x):
        self.batches.append(len(x))
        if self.max_batch is not None and len(x) > self.max_batch:
            raise OOM(f"simulated: batch {len(x)} > {self.max_batch}")
        return x.float().mean(dim=(1, 2, 3)) / 255 * self.scale


def _fake_mtcnn(max_batch: int):
    """Stands in for the vectorised MTCNN: one face per image, OOM above ``max_batch`` images."""
    calls = []

    def detect(mtcnn, x, **_):
        calls.append(len(x))
        if len(x) > max_batch:
            raise OOM(f"simulated: detect batch {len(x)}")
        box = np.array([[10.0, 12.0, 40.0, 44.0, 0.99]], dtype=np.float32)
        pts = np.array([[[18, 22], [32, 22], [25, 30], [19, 37], [31, 37]]], dtype=np.float32)
        return [box + float(x[j, 0, 0, 0]) / 255 for j in range(len(x))], [pts] * len(x)

    return detect, calls


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> pd.DataFrame:
    tmp = tmp_path_factory.mktemp("stub_imgs")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(10):
        p = tmp / f"img{i}.jpg"
        Image.fromarray(rng.integers(0, 256, (60, 64, 3), dtype=np.uint8)).save(p, quality=95)
        rows.append({"sample_id": p.name, "path": str(p), "frame": -1})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def detector():
    return MTCNNDetector(batch_size=8)


def _run(manifest, detector, monkeypatch, det_max, emb_max, pad_max, regions=True, profile=None):
    fake, calls = _fake_mtcnn(det_max)
    monkeypatch.setattr(batched_mod, "mtcnn_detect", fake)
    emb, pad = StubEmbedder(emb_max), StubPAD(pad_max, regions)
    t = score_manifest_batched(manifest, detector, emb, pad, ScoreCache(None), batch_size=8, chunk_size=10,
                               progress=False, profile=profile)
    return t, calls, emb, pad


def test_out_of_memory_halves_the_batch_and_gives_the_same_results(manifest, detector, monkeypatch, caplog):
    ref, _, _, _ = _run(manifest, detector, monkeypatch, 100, None, None)
    prof: dict = {}
    with caplog.at_level(logging.WARNING, logger="harness.scoring"):
        got, det_calls, emb, pad = _run(manifest, detector, monkeypatch, 2, 3, 1, profile=prof)
    pd.testing.assert_frame_equal(got.samples, ref.samples)
    np.testing.assert_array_equal(got.embeddings, ref.embeddings)
    assert got.counts()["scored"] == 10 and got.stats == ref.stats
    assert det_calls[:2] == [8, 4] and max(det_calls[2:]) <= 2  # 8 -> 4 -> 2, then it sticks
    assert emb.batches[:2] == [8, 4] and set(emb.batches[2:]) <= {2}
    assert pad.batches[:4] == [8, 4, 2, 1] and set(pad.batches[4:]) == {1}
    assert prof["batch_sizes"] == {"detect": 2, "embed": 2, "pad": 1}
    assert [(e["stage"], e["from"], e["to"]) for e in prof["backoff"]] == [
        ("detect", 8, 4), ("detect", 4, 2), ("embed", 8, 4), ("embed", 4, 2), ("pad", 8, 4), ("pad", 4, 2),
        ("pad", 2, 1)]
    assert sum("CUDA out of memory" in r.getMessage() for r in caplog.records) == 7


def test_cpu_crop_fallback_equals_device_crops(manifest, detector, monkeypatch):
    dev, _, _, _ = _run(manifest, detector, monkeypatch, 100, None, None, regions=True)
    cpu, _, _, _ = _run(manifest, detector, monkeypatch, 100, None, None, regions=False)
    np.testing.assert_array_equal(dev.samples["pad_score"], cpu.samples["pad_score"])


def test_backoff_gives_up_at_batch_size_one():
    def always(a, b):
        raise OOM("simulated")

    bo = BackOff("embed", 4)
    with pytest.raises(OOM):
        bo.run(always, 3)
    assert bo.events == [{"stage": "embed", "from": 3, "to": 1}]
    assert BackOff("x", 3).run(lambda a, b: (a, b), 7) == [(0, 3), (3, 6), (6, 7)]


class _NoFaceDetector:
    detector_id = "stub-detector"

    def __init__(self):
        self.seen = []

    def detect(self, images):
        self.seen.extend(images)
        return [None] * len(images)


def test_video_rows_like_the_simple_engine(tmp_path):
    from types import SimpleNamespace

    pytest.importorskip("av")

    from tests.data.fakes import encode_video

    clip = encode_video(tmp_path / "clip.mp4")
    (tmp_path / "broken.mov").write_bytes(b"\x00" * 1000)
    rows = [{"sample_id": f"clip#{f}", "path": str(clip), "frame": f} for f in (0, 3, 6, 9)]
    rows += [{"sample_id": "broken#0", "path": str(tmp_path / "broken.mov"), "frame": 0},
             {"sample_id": "gone", "path": str(tmp_path / "gone.jpg"), "frame": -1}]
    m = pd.DataFrame(rows)
    stub_e, stub_p = SimpleNamespace(dim=4, model_id="e"), SimpleNamespace(model_id="p")
    d1, d2 = _NoFaceDetector(), _NoFaceDetector()
    a = score_manifest(m, d1, stub_e, stub_p, ScoreCache(None), chunk_size=4, progress=False)
    b = score_manifest_batched(m, d2, stub_e, stub_p, ScoreCache(None), chunk_size=4, progress=False)
    pd.testing.assert_frame_equal(a.samples, b.samples)
    assert b.counts() == {"scored": 0, "fta": 4, "rejected": 2, "total": 6}
    assert len(d1.seen) == len(d2.seen) == 4
    for x, y in zip(d1.seen, d2.seen):
        np.testing.assert_array_equal(x, y)
