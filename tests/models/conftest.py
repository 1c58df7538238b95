"""Shared material for the model-zoo tests: faceapi_bbt crops with MTCNN landmarks, silentface samples + boxes."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from harness.faces.align import warp_to_template
from harness.faces.decode import decode_image, read_bytes

#: faceapi_bbt crops are tight 150x150 faces: MTCNN puts its eye points on the eyebrows unless given a border
BBT_PAD = 25
SILENTFACE = ("image_T1.jpg", "image_F1.jpg", "image_F2.jpg")
#: facenet_pytorch MTCNN (harness MTCNNDetector defaults) boxes (x1, y1, x2, y2) on the EXIF-rotated 480x640 frames
SILENTFACE_BOXES = {
    "image_T1.jpg": (115.80236053466797, 111.97077941894531, 290.09033203125, 357.55816650390625),
    "image_F1.jpg": (192.24351501464844, 106.94800567626953, 372.1517639160156, 357.4338073730469),
    "image_F2.jpg": (139.3641815185547, 208.99435424804688, 359.7801818847656, 505.8758544921875),
}


@pytest.fixture(scope="session")
def bbt(shared):
    """(labels DataFrame, RGB images, MTCNN detections [40, 16] in original coordinates)."""
    from harness.faces.detect import MTCNNDetector

    root = shared / "datasets" / "faceapi_bbt"
    df = pd.read_csv(root / "labels.csv")
    imgs = [decode_image(read_bytes(root / p)) for p in df.path]
    padded = [cv2.copyMakeBorder(im, BBT_PAD, BBT_PAD, BBT_PAD, BBT_PAD, cv2.BORDER_CONSTANT, value=0) for im in imgs]
    dets = MTCNNDetector().detect(padded)
    assert all(d is not None for d in dets), "MTCNN missed a padded faceapi_bbt crop"
    arr = np.stack([d.to_array() for d in dets])
    arr[:, [0, 2, 6, 8, 10, 12, 14]] -= BBT_PAD
    arr[:, [1, 3, 7, 9, 11, 13, 15]] -= BBT_PAD
    return df, imgs, arr


def aligned(model, bbt, idx=None) -> torch.Tensor:
    """uint8 [B,3,H,W] crops of faceapi_bbt aligned to ``model``'s template."""
    _, imgs, det = bbt
    idx = range(len(imgs)) if idx is None else idx
    crops = [warp_to_template(imgs[i], det[i, 6:16].reshape(5, 2), model.template, model.crop_size) for i in idx]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


def pair_scores(model, emb: np.ndarray, subjects) -> tuple[np.ndarray, np.ndarray]:
    """(same-subject similarities, different-subject similarities) over all pairs."""
    subjects = np.asarray(subjects)
    i, j = np.triu_indices(len(emb), 1)
    sim = model.similarity(emb[i], emb[j])
    same = subjects[i] == subjects[j]
    return sim[same], sim[~same]


@pytest.fixture(scope="session")
def silentface(shared):
    root = shared / "datasets" / "silentface_samples" / "images"
    return {n: decode_image(read_bytes(root / n)) for n in SILENTFACE}


def pad_batch(model, frames: dict, names=SILENTFACE) -> torch.Tensor:
    crops = [model.crop(frames[n], np.asarray(SILENTFACE_BOXES[n])) for n in names]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
