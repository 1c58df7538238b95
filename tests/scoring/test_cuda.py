"""The batched engine on CUDA (skipped without a GPU): device paths against the CPU/reference paths.

Stated tolerances on CUDA (cuDNN runs convolutions in TF32 by default, so MTCNN reproduces facenet-pytorch only
when every crop and memory layout is the same; nvjpeg's decoder is not libjpeg-turbo's). Measured on an H100
(torch 2.11, torchvision 0.26), 16 NUAA ci_smoke frames:

* vectorised MTCNN vs ``MTCNN.detect`` on CUDA, either NMS: within 0.05 px (measured 0.0)
* engine (Pillow-equivalent decode) vs simple engine, both on CUDA: same statuses; boxes within 0.05 px
  (measured 0.0), PAD within 2e-3 (0.0), embeddings within 5e-3 Euclidean (3.4e-4: grid_sample alignment)
* engine with nvjpeg decode vs simple engine: boxes within 8 px (measured 4.5), PAD within 0.1 (0.038),
  embeddings within 0.2 Euclidean (0.077); nvjpeg vs Pillow pixels: max 42, mean 0.25 grey levels
* summed-area pooling, fixed-point PAD crops, Triton per-image NMS: exact
Measured values are written to ``$HARNESS_PARITY_OUT`` (JSON) when set.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytestmark = [pytest.mark.shared,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

MEASURED: dict = {}


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    out = os.environ.get("HARNESS_PARITY_OUT")
    if out:
        with open(out, "w") as f:
            json.dump(MEASURED, f, indent=2)


@pytest.fixture(scope="module")
def smoke(shared):
    from harness.data.registry import load_dataset

    return load_dataset("nuaa", root=str(shared / "datasets" / "nuaa"), list="ci_smoke.csv").head(16)


def test_device_kernels_exact():
    from harness.faces.warp import crop_resize_fixed, roi_area_resize, summed_area

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (3, 3, 240, 320), dtype=torch.uint8, generator=g)
    rng = np.random.default_rng(0)
    k = 200
    idx = rng.integers(0, 3, k)
    y0, x0 = rng.integers(0, 239, k), rng.integers(0, 319, k)
    y1, x1 = np.minimum(240, y0 + rng.integers(1, 200, k)), np.minimum(320, x0 + rng.integers(1, 200, k))
    xc = x.cuda()
    fc = xc.float()
    fl = fc.contiguous(memory_format=torch.channels_last)  # facenet-pytorch's frames; its crops are contiguous
    for size in (24, 48):
        ref = torch.cat([F.interpolate(fl[i, :, a:b, c:d].unsqueeze(0), size=(size, size), mode="area")
                         for i, a, b, c, d in zip(idx, y0, y1, x0, x1)])
        got = roi_area_resize(None, idx, y0, y1, x0, x1, size, table=summed_area(xc))
        MEASURED[f"roi_area_{size}_max_abs_diff"] = float((got - ref).abs().max())
        assert torch.equal(got, ref) and ref.is_contiguous()
    rects = np.stack([np.stack([x0, y0, np.minimum(319, x0 + 50), np.minimum(239, y0 + 70)], 1)[:50]] * 2, 1)
    cpu = crop_resize_fixed(x, idx[:50], rects, (80, 80))
    gpu = crop_resize_fixed(xc, idx[:50], rects, (80, 80)).cpu()
    assert torch.equal(cpu, gpu)


def test_nvjpeg_decode_close_to_pillow(smoke):
    from torchvision.io import ImageReadMode, decode_jpeg

    from harness.faces.decode import decode_image, read_bytes

    blobs = [read_bytes(p) for p in smoke["path"]]
    got = decode_jpeg([torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs], mode=ImageReadMode.RGB,
                      device="cuda")
    d = [np.abs(g.permute(1, 2, 0).cpu().numpy().astype(int) - decode_image(b).astype(int)) for g, b in zip(got, blobs)]
    MEASURED["nvjpeg_vs_pillow"] = {"max": int(max(x.max() for x in d)), "mean": float(np.mean([x.mean() for x in d]))}
    assert MEASURED["nvjpeg_vs_pillow"]["mean"] < 1.0


def test_engine_on_cuda_matches_simple_engine(smoke):
    from harness.faces.detect import MTCNNDetector
    from harness.models.registry import build_embedder, build_pad
    from harness.scoring.batched import score_manifest_batched
    from harness.scoring.cache import ScoreCache
    from harness.scoring.engine import score_manifest

    det = MTCNNDetector(batch_size=16, device="cuda")
    emb, pad = build_embedder("dlib_resnet", device="cuda"), build_pad("minifasnet_ensemble", device="cuda")
    a = score_manifest(smoke, det, emb, pad, ScoreCache(None), batch_size=16, progress=False)
    res, stats_equal = {}, {}
    cols = ["box_x1", "box_y1", "box_x2", "box_y2"]
    for gpu_decode in (False, True):
        b = score_manifest_batched(smoke, det, emb, pad, ScoreCache(None), batch_size=16, progress=False,
                                   gpu_decode=gpu_decode)
        sa, sb = a.samples, b.samples
        ok = ((sa["status"] == "scored") & (sb["status"] == "scored")).to_numpy()
        res[f"gpu_decode={gpu_decode}"] = {
            "same_status": bool((sa["status"] == sb["status"]).all()),
            "box_max_abs": float(np.abs(sa.loc[ok, cols].to_numpy() - sb.loc[ok, cols].to_numpy()).max()),
            "pad_max_abs": float(np.abs(sa.loc[ok, "pad_score"] - sb.loc[ok, "pad_score"]).max()),
            "emb_max_l2": float(np.linalg.norm(a.embeddings[ok] - b.embeddings[ok], axis=1).max()),
        }
        stats_equal[gpu_decode] = a.stats == b.stats
    MEASURED["engine_vs_simple_cuda"] = res
    exact, nvjpeg = res["gpu_decode=False"], res["gpu_decode=True"]
    assert exact["same_status"] and stats_equal[False]
    assert exact["box_max_abs"] <= 0.05 and exact["pad_max_abs"] <= 2e-3 and exact["emb_max_l2"] <= 5e-3
    # nvjpeg decodes differently from Pillow (see test_nvjpeg_decode_close_to_pillow): looser
    assert nvjpeg["same_status"] and nvjpeg["box_max_abs"] <= 8.0 and nvjpeg["pad_max_abs"] <= 0.1
    assert nvjpeg["emb_max_l2"] <= 0.2

def test_triton_nms_equals_per_image_nms():
    """Against torchvision's per-group loop (``batched_nms`` itself offsets boxes per group in float32 above a
    few thousand boxes, which can flip near-tie decisions; recorded, not asserted)."""
    from torchvision.ops import batched_nms
    from torchvision.ops.boxes import _batched_nms_vanilla

    from harness.faces.mtcnn_batched import batched_nms_per_image, triton_nms_kernel

    if triton_nms_kernel() is None:
        pytest.skip("no Triton")
    g = torch.Generator().manual_seed(0)
    for n, groups in ((50, 1), (3000, 40), (20000, 128)):
        xy = torch.rand(n, 2, generator=g) * 600
        wh = 12 + torch.rand(n, 2, generator=g) * 60
        boxes = torch.cat([xy, xy + wh], 1).floor().cuda()  # integer corners, like P-Net's: many exact ties in IoU
        scores = (torch.randperm(n, generator=g).float() / n).cuda()  # no ties: tie order is sort-dependent
        idxs = torch.randint(0, groups, (n,), generator=g).cuda()
        for thr in (0.5, 0.7):
            ref = _batched_nms_vanilla(boxes, scores, idxs, thr)
            got = batched_nms_per_image(boxes, scores, idxs, thr, impl="triton")
            lib = batched_nms(boxes, scores, idxs, thr)
            MEASURED.setdefault("triton_nms_equal_per_image", []).append(bool(torch.equal(ref, got)))
            MEASURED.setdefault("torchvision_batched_nms_equal_per_image", []).append(bool(torch.equal(ref, lib)))
            assert torch.equal(ref, got)


def test_vectorised_mtcnn_on_cuda_equals_facenet_detect(smoke):
    from harness.faces.decode import decode_image, read_bytes
    from harness.faces.detect import MTCNNDetector
    from harness.scoring.batched import detections_from, mtcnn_detect

    det = MTCNNDetector(batch_size=16, device="cuda")
    imgs = [decode_image(read_bytes(p)) for p in smoke["path"]]
    ref = det.detect(imgs)
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous().cuda()
    res = {}
    with torch.inference_mode():
        for nms in ("torchvision", "triton"):
            got = detections_from(det, *mtcnn_detect(det.mtcnn, x, nms=nms))
            same = [(r is None) == (g is None) for r, g in zip(ref, got)]
            pairs = [(r, g) for r, g in zip(ref, got) if r is not None and g is not None]
            dbox = max(float(np.abs(r.box - g.box).max()) for r, g in pairs)
            dlm = max(float(np.abs(r.landmarks - g.landmarks).max()) for r, g in pairs)
            res[nms] = {"same_found": all(same), "box_max_abs": dbox, "landmarks_max_abs": dlm}
        # context: facenet-pytorch itself, one image at a time vs the batch of 16 (TF32 convolutions)
        single = [det.detect([im])[0] for im in imgs[:6]]
        res["facenet_single_vs_batch"] = {"box_max_abs": max(float(np.abs(s.box - r.box).max())
                                                             for s, r in zip(single, ref) if s is not None)}
        tf32 = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        try:
            ref32 = det.detect(imgs)
            got32 = detections_from(det, *mtcnn_detect(det.mtcnn, x))
            res["no_tf32"] = {"box_max_abs": max(float(np.abs(r.box - g.box).max()) for r, g in zip(ref32, got32)
                                                 if r is not None and g is not None)}
        finally:
            torch.backends.cudnn.allow_tf32 = tf32
    MEASURED["mtcnn_detect_vs_facenet_cuda"] = res
    for r in (res["torchvision"], res["triton"]):
        assert r["same_found"] and r["box_max_abs"] <= 0.05 and r["landmarks_max_abs"] <= 0.05
