"""The batched engine against the per-image pipeline and against the simple engine, on real NUAA frames with the
real models (dlib ResNet, MiniFASNet ensemble).

Stated tolerances (CPU; measured values in brackets):

* detections: boxes and landmarks within 0.01 px, probabilities within 1e-5 (engine vs simple engine: 0.0, the
  vectorised cascade runs facenet-pytorch's exact crops and layouts; one image at a time vs batched: ~1e-4 px,
  batched convolution summation order)
* PAD scores: within 1e-4 (0.0: the crops are OpenCV's fixed-point resize, bit for bit)
* embeddings: within 2e-3 per component and 5e-3 Euclidean (0.0 on the CPU, which aligns with OpenCV as the
  simple engine does; the GPU's grid_sample alignment is covered in ``test_cuda.py``)
* statuses, reasons, columns, stats and cache keys: identical
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest
import torch

from harness.data.registry import load_dataset
from harness.faces.align import warp_to_template
from harness.faces.decode import decode_image, read_bytes
from harness.faces.detect import MTCNNDetector
from harness.scoring.batched import detections_from, mtcnn_detect, score_manifest_batched
from harness.scoring.cache import ScoreCache
from harness.scoring.engine import score_manifest

pytestmark = pytest.mark.shared

TOL_BOX, TOL_PROB, TOL_PAD, TOL_EMB, TOL_EMB_L2 = 0.01, 1e-5, 1e-4, 2e-3, 5e-3
BOX_COLS = ["box_x1", "box_y1", "box_x2", "box_y2"]


@pytest.fixture(scope="module")
def models(shared):
    from harness.models.registry import build_embedder, build_pad

    return MTCNNDetector(batch_size=8), build_embedder("dlib_resnet"), build_pad("minifasnet_ensemble")


@pytest.fixture(scope="module")
def manifest(shared, tmp_path_factory) -> pd.DataFrame:
    """16 ci_smoke frames + a PNG copy of one (Pillow path) + a missing file + a broken JPEG."""
    from PIL import Image

    tmp = tmp_path_factory.mktemp("parity")
    m = load_dataset("nuaa", root=str(shared / "datasets" / "nuaa"), list="ci_smoke.csv")
    m = m.iloc[::2].head(16).reset_index(drop=True)
    png = tmp / "copy.png"
    Image.open(m.at[0, "path"]).save(png)
    (tmp / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    extra = m.iloc[[0, 0, 0]].copy()
    extra["path"] = [str(png), str(tmp / "missing.jpg"), str(tmp / "broken.jpg")]
    extra["sample_id"] = ["copy.png", "missing.jpg", "broken.jpg"]
    return pd.concat([m, extra], ignore_index=True)


@pytest.fixture(scope="module")
def runs(models, manifest, tmp_path_factory):
    det, emb, pad = models
    tmp = tmp_path_factory.mktemp("caches")
    simple_cache, batched_cache = ScoreCache(tmp / "simple.sqlite"), ScoreCache(tmp / "batched.sqlite")
    simple = score_manifest(manifest, det, emb, pad, simple_cache, batch_size=8, chunk_size=10, progress=False)
    batched = score_manifest_batched(manifest, det, emb, pad, batched_cache, batch_size=8, chunk_size=10,
                                     progress=False)
    # batched engine reading the simple engine's cache, decoding in a worker process
    reread = score_manifest_batched(manifest, det, emb, pad, simple_cache, batch_size=8, chunk_size=10,
                                    progress=False, workers=1)
    keys = [sorted(k for (k,) in sqlite3.connect(c.path).execute("SELECT key FROM entries"))
            for c in (simple_cache, batched_cache)]
    simple_cache.close()
    batched_cache.close()
    return simple, batched, reread, keys


def test_same_contract_as_simple_engine(runs, manifest):
    simple, batched, _, keys = runs
    a, b = simple.samples, batched.samples
    assert list(a.columns) == list(b.columns) and a.index.equals(b.index)
    assert list(a["status"]) == list(b["status"]) and list(a["reason"]) == list(b["reason"])
    assert simple.counts() == batched.counts() == {"scored": 17, "fta": 0, "rejected": 2, "total": 19}
    assert "missing file" in b.at[17, "reason"] and "broken.jpg" in b.at[18, "reason"]
    assert simple.stats == batched.stats
    assert keys[0] == keys[1] and len(keys[0]) == 3 * 17
    assert batched.embeddings.dtype == np.float32 and batched.embeddings.shape == simple.embeddings.shape


def test_scores_within_tolerance_of_simple_engine(runs):
    simple, batched, _, _ = runs
    a, b = simple.samples, batched.samples
    ok = (a["status"] == "scored").to_numpy()
    np.testing.assert_allclose(b.loc[ok, BOX_COLS].to_numpy(), a.loc[ok, BOX_COLS].to_numpy(), atol=TOL_BOX, rtol=0)
    np.testing.assert_allclose(b.loc[ok, "det_prob"], a.loc[ok, "det_prob"], atol=TOL_PROB, rtol=0)
    assert (a.loc[ok, "n_faces"] == b.loc[ok, "n_faces"]).all()
    np.testing.assert_allclose(b.loc[ok, "pad_score"], a.loc[ok, "pad_score"], atol=TOL_PAD, rtol=0)
    ea, eb = simple.embeddings[ok], batched.embeddings[ok]
    assert np.abs(ea - eb).max() <= TOL_EMB and np.linalg.norm(ea - eb, axis=1).max() <= TOL_EMB_L2
    assert np.isnan(batched.embeddings[~ok]).all() and b.loc[~ok, "pad_score"].isna().all()


def test_batched_engine_reads_the_simple_engines_cache(runs):
    simple, _, reread, _ = runs
    assert reread.stats == {"detect_computed": 0, "detect_cached": 17, "embed_computed": 0, "embed_cached": 17,
                            "pad_computed": 0, "pad_cached": 17}
    pd.testing.assert_frame_equal(reread.samples, simple.samples)
    np.testing.assert_array_equal(reread.embeddings, simple.embeddings)


def test_batched_equals_per_image(models, manifest, runs):
    """A handful of frames scored one at a time (decode, detect, warp, embed, crop, PAD per image) against the
    batched engine's rows for them."""
    det, emb, pad = models
    _, batched, _, _ = runs
    b = batched.samples
    for i in range(5):
        img = decode_image(read_bytes(manifest.at[i, "path"]))
        d = det.detect([img])[0]
        assert d is not None and b.at[i, "status"] == "scored"
        np.testing.assert_allclose(b.loc[i, BOX_COLS].to_numpy(float), d.box, atol=TOL_BOX, rtol=0)
        assert abs(b.at[i, "det_prob"] - d.prob) <= TOL_PROB
        with torch.inference_mode():
            chip = warp_to_template(img, d.landmarks, emb.template, emb.crop_size)
            e = emb(torch.from_numpy(chip).permute(2, 0, 1)[None]).numpy()[0]
            p = float(pad(torch.from_numpy(pad.crop(img, d.box)).permute(2, 0, 1)[None])[0])
        assert np.abs(batched.embeddings[i] - e).max() <= TOL_EMB
        assert abs(b.at[i, "pad_score"] - p) <= TOL_PAD


def test_vectorised_mtcnn_equals_facenet_detect(models, manifest):
    """mtcnn_detect (both R/O-Net crop paths: per-box pooling and summed-area table) vs MTCNN.detect on one batch."""
    det = models[0]
    imgs = [decode_image(read_bytes(p)) for p in manifest["path"][:4]]
    ref = det.detect(imgs)
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()
    with torch.inference_mode():
        for use_table in (False, True):
            got = detections_from(det, *mtcnn_detect(det.mtcnn, x, use_table=use_table))
            for r, g in zip(ref, got):
                assert (r is None) == (g is None)
                np.testing.assert_allclose(g.box, r.box, atol=TOL_BOX, rtol=0)
                np.testing.assert_allclose(g.landmarks, r.landmarks, atol=TOL_BOX, rtol=0)
                assert abs(g.prob - r.prob) <= TOL_PROB and g.n_faces == r.n_faces


def test_worker_decode_equals_pillow(manifest):
    """The loader's torchvision JPEG decode gives the simple engine's Pillow pixels, and the PNG goes via Pillow."""
    from harness.scoring.loader import ChunkSource

    m = manifest.iloc[[0, 1, 2, 16]]  # three JPEGs + the PNG copy
    src = ChunkSource(list(m["path"]), list(m["frame"]), 4, ("d", "e", "p"), None, gpu_jpeg=False)
    chunk = src[0]
    (rows, stack), = chunk["groups"].values()
    assert rows == [0, 1, 2, 3] and not chunk["dec_err"] and not chunk["read_err"]
    for r, p in zip(rows, m["path"]):
        np.testing.assert_array_equal(stack[r].permute(1, 2, 0).numpy(), decode_image(read_bytes(p)))
