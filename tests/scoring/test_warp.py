"""Batched device warps against the per-image OpenCV / PyTorch calls they replace (synthetic images, no models).

Tolerances: PAD crops (``crop_resize_fixed``) and MTCNN's box pooling (``roi_area_resize``) are exact. The float
warps are close to OpenCV's: ``crop_resize_batch`` within 1 grey level; ``align_batch`` within 4 grey levels at
any pixel, mean < 0.1 and over 1 level at < 1 % of the pixels (OpenCV 4.x quantises ``warpAffine`` coordinates to
1/32 px; measured on NUAA frames: max 3, mean 0.05 with OpenCV 4.14; max 1 with OpenCV 5.0).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.faces.align import estimate_similarity, warp_to_template
from harness.faces.warp import (align_batch, crop_resize_batch, crop_resize_fixed, roi_area_resize, similarity_batch,
                                summed_area, to_uint8)

H, W = 120, 160


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """Four smooth RGB frames (blurred noise + gradients: photo-like local contrast)."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(4):
        noise = rng.uniform(0, 255, (H, W, 3)).astype(np.float32)
        img = cv2.GaussianBlur(noise, (0, 0), 2.0) * 2.5 - 190 + np.linspace(0, 60, W)[None, :, None]
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def _bchw(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()


def test_similarity_batch_equals_per_face():
    rng = np.random.default_rng(1)
    dst = rng.uniform(0, 150, (5, 2))
    src = rng.uniform(0, 400, (20, 5, 2))
    src[0] = dst * np.array([-1.0, 1.0])  # a mirror image: no reflection allowed
    got = similarity_batch(src, dst)
    ref = np.stack([estimate_similarity(s, dst) for s in src])
    np.testing.assert_allclose(got, ref, atol=1e-9)


def test_align_batch_matches_cv2_warp(frames):
    rng = np.random.default_rng(2)
    template = np.array([[30.0, 32.0], [70.0, 32.0], [50.0, 55.0], [35.0, 75.0], [65.0, 75.0]])
    base = np.array([[60.0, 40.0], [100.0, 42.0], [80.0, 65.0], [64.0, 88.0], [96.0, 90.0]])
    lm = base[None] + rng.normal(0, 6, (8, 5, 2))
    lm[-1] -= 55  # partly outside the frame: zero padding like BORDER_CONSTANT
    rows = np.arange(8) % 4
    got = to_uint8(align_batch(_bchw(frames).float(), rows, similarity_batch(lm, template), (100, 100)))
    ref = np.stack([warp_to_template(frames[r], l, template, (100, 100)) for r, l in zip(rows, lm)])
    d = np.abs(got.permute(0, 2, 3, 1).numpy().astype(int) - ref.astype(int))
    assert d.max() <= 4 and d.mean() < 0.1 and (d > 1).mean() < 0.01


def _rects(rng, n, k):
    out = np.zeros((n, k, 4), dtype=np.int64)
    for i in range(n):
        for j in range(k):
            x1, y1 = rng.integers(0, W), rng.integers(0, H)
            out[i, j] = (x1, y1, rng.integers(x1, W), rng.integers(y1, H))
    out[0, 0] = (0, 0, W - 1, H - 1)  # whole frame
    out[1, 0] = (10, 10, 10, 10)  # one pixel
    out[2, 0] = (5, 5, 84, 84)  # 80x80 -> 40x40: exact 2x down (OpenCV switches to its area path)
    return out


def _cv2_crops(frames, rows, rects, hw):
    return np.stack([np.concatenate([cv2.resize(frames[r][y1:y2 + 1, x1:x2 + 1], (hw[1], hw[0]))
                                     for x1, y1, x2, y2 in rr], axis=1) for r, rr in zip(rows, rects)])


def test_crop_resize_fixed_is_cv2_resize_bit_for_bit(frames):
    rng = np.random.default_rng(3)
    rects = _rects(rng, 24, 2)
    rows = np.arange(24) % 4
    got = crop_resize_fixed(_bchw(frames), rows, rects, (40, 40)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(got, _cv2_crops(frames, rows, rects, (40, 40)))


def test_crop_resize_grid_sample_within_one_level(frames):
    rng = np.random.default_rng(4)
    rects = _rects(rng, 12, 1)
    rows = np.arange(12) % 4
    got = to_uint8(crop_resize_batch(_bchw(frames).float(), rows, rects, (40, 40))).permute(0, 2, 3, 1).numpy()
    assert np.abs(got.astype(int) - _cv2_crops(frames, rows, rects, (40, 40)).astype(int)).max() <= 1


def test_roi_area_resize_equals_interpolate_area(frames):
    rng = np.random.default_rng(5)
    k = 40
    idx = rng.integers(0, 4, k)
    y0, x0 = rng.integers(0, H - 1, k), rng.integers(0, W - 1, k)
    y1 = np.minimum(H, y0 + rng.integers(1, 90, k))
    x1 = np.minimum(W, x0 + rng.integers(1, 90, k))
    imgs = _bchw(frames)
    f = imgs.float()
    for size in (24, 48):
        ref = torch.cat([F.interpolate(f[i:i + 1, :, a:b, c:d], size=(size, size), mode="area")
                         for i, a, b, c, d in zip(idx, y0, y1, x0, x1)])
        table = roi_area_resize(None, idx, y0, y1, x0, x1, size, table=summed_area(imgs))
        loop = roi_area_resize(f, idx, y0, y1, x0, x1, size)
        assert torch.equal(table, ref) and torch.equal(loop, ref)
