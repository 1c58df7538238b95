"""Similarity alignment of 5 facial landmarks onto a model's template.

``estimate_similarity(src, dst)`` is the least-squares similarity (rotation, uniform scale, translation;
Umeyama 1991, no reflection) mapping ``src`` points onto ``dst``; ``warp_to_template`` applies it with
bilinear sampling (pixel centres at integer coordinates, as OpenCV does).
"""

from __future__ import annotations

import cv2
import numpy as np

#: ArcFace / InsightFace 5-point template for 112x112 crops (eyes, nose tip, mouth corners), as in InsightFace's
#: ``face_align.py`` ``arcface_dst`` and faceplugin's fr_feature.js REFERENCE_FACIAL_POINTS
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 matrix M with ``dst ≈ M @ [x, y, 1]`` for each src point (least squares, no reflection)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"landmarks must be matching (N>=2, 2) arrays, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1
    r = u @ e @ vt
    var_s = (s**2).sum() / len(src)
    scale = (sig * np.diag(e)).sum() / var_s
    t = mu_d - scale * r @ mu_s
    return np.hstack([scale * r, t[:, None]])


def warp_to_template(image: np.ndarray, landmarks: np.ndarray, template: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Aligned crop (H, W, 3) uint8 of ``image`` with ``landmarks`` (5x2) moved onto ``template``; size = (H, W)."""
    m = estimate_similarity(landmarks, template)
    h, w = size
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
