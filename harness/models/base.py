"""Model interfaces. Every model declares its own input convention; the pipeline never guesses.

Inputs are always RGB ``uint8`` tensors ``[B, 3, H, W]`` (0..255) on the model's device; a model converts to
its own channel order and scaling inside ``forward``.

* :class:`Embedder`: aligned face crops -> embeddings; ``similarity`` is higher = more likely the same person.
* :class:`PADModel`: face crops cut by the model's own ``crop`` rule from (frame, box) -> bona fide score,
  higher = more likely bona fide.

Landmark order (MTCNN's): image-left eye, image-right eye, nose tip, image-left mouth corner, image-right mouth
corner; pixel coordinates ``(x, y)`` as the detector returns them (OpenCV's warp treats integer coordinates
as pixel centres). Templates are measured in that same convention (e.g. the mean MTCNN landmarks on reference
crops), so any half-pixel offset of the detector cancels.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod

import numpy as np
import torch


class _Model(torch.nn.Module, ABC):
    #: registry name, e.g. ``dlib_resnet``
    name: str = ""
    #: sha256 of the weight file(s) (joined with '+' when several)
    weights_sha256: str = ""
    #: human-readable statement of the input convention; part of the cache key
    preprocessing: str = ""

    @property
    def model_id(self) -> str:
        """Identity used in cache keys and exports: name, weights and preprocessing."""
        h = hashlib.sha256(f"{self.weights_sha256}|{self.preprocessing}".encode()).hexdigest()[:16]
        return f"{self.name}-{h}"

    @property
    def device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")


class Embedder(_Model):
    """Batch of aligned crops ``uint8 [B,3,H,W]`` RGB -> float embeddings ``[B, dim]``."""

    dim: int = 0
    #: "cosine" (similarity = cosine) or "euclidean" (similarity = -L2 distance)
    metric: str = "cosine"
    #: what the similarity score is, in words (exported as ``models.embedder.score_scale``): its unit, its range,
    #: which way is "more similar", and the model's own decision rule if it has one. A score is not a percentage
    #: or a probability unless this says so.
    score_scale: str = ("similarity of two embeddings, higher = more likely the same person; the model states no "
                        "scale (not a probability or a percentage)")
    #: (H, W) of the aligned crop
    crop_size: tuple[int, int] = (112, 112)
    #: 5x2 landmark template in crop pixel coordinates (see module docstring for the order)
    template: np.ndarray = np.zeros((5, 2), dtype=np.float64)

    @abstractmethod
    def forward(self, crops: torch.Tensor) -> torch.Tensor: ...

    @property
    def score_range(self) -> tuple[float | None, float | None]:
        """The range every similarity score lies in (None = unbounded): cosine [-1, 1]; -distance <= 0. The
        production runtime refuses scores outside it."""
        return (-1.0, 1.0) if self.metric == "cosine" else (None, 0.0)

    def similarity(self, a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> np.ndarray:
        """Row-wise similarity of two equally long embedding batches; higher = more likely the same person."""
        return similarity(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), self.metric)


class PADModel(_Model):
    """Face crops ``uint8 [B,3,H,W]`` RGB (cut by :meth:`crop`) -> bona fide score ``[B]`` (higher = bona fide)."""

    crop_size: tuple[int, int] = (80, 80)
    #: the range every bona fide score lies in (None = unbounded; the production runtime refuses scores outside it);
    #: None when unknown
    score_range: tuple[float | None, float | None] | None = None
    #: what the bona fide score is, in words (exported as ``models.pad.score_scale``); see :attr:`Embedder.score_scale`
    score_scale: str = ("bona fide score, higher = more likely bona fide; the model states no scale (not a "
                        "probability or a percentage)")

    @abstractmethod
    def crop(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        """Cut this model's input from an RGB ``uint8`` HxWx3 frame and a face box ``(x1, y1, x2, y2)``."""

    @abstractmethod
    def forward(self, crops: torch.Tensor) -> torch.Tensor: ...

    def crop_regions(self, frame_hw: tuple[int, int], box: np.ndarray) -> list[tuple[int, int, int, int]] | None:
        """The source rectangles :meth:`crop` resizes, for batched crops on the device (optional).

        A list of inclusive integer rectangles ``(x1, y1, x2, y2)`` of a ``frame_hw = (H, W)`` frame, one per
        ``crop_size[0] x (crop_size[1] / len)`` crop placed side by side (ensembles), each resized to it with
        OpenCV's bilinear ``cv2.resize`` sampling; ``None`` (the default) when :meth:`crop` is not of that form,
        in which case batched engines call :meth:`crop`.
        """
        return None

    def context_clamped(self, box_xyxy, image_hw: tuple[int, int]) -> bool:
        """Whether this model's crop for face box ``box_xyxy`` in an ``image_hw = (H, W)`` frame had to be shrunk or
        shifted to fit the frame, so the model sees less context (on at least one side) than its crop rule asks.

        The default is ``False``: a model whose crop adds no context around the box has nothing to clamp. Models
        that expand the box (MiniFASNet's scale, the Faceplugin and expo crops) override it with their own crop
        arithmetic; derived data, never cached."""
        return False


def box_off_image(image_hw: tuple[int, int], x1: float, y1: float, x2: float, y2: float) -> bool:
    """Whether the rectangle with inclusive pixel corners ``(x1, y1)``-``(x2, y2)`` leaves ``[0, W-1] x [0, H-1]``."""
    h, w = int(image_hw[0]), int(image_hw[1])
    return bool(x1 < 0 or y1 < 0 or x2 > w - 1 or y2 > h - 1)


def scaled_box_off_image(image_hw: tuple[int, int], xywh, scale: float) -> bool:
    """Whether the ``[x, y, w, h]`` box scaled by ``scale`` about its centre runs off the frame: exactly when
    Silent-Face's ``CropImage._get_new_box`` (``min((H-1)/h, (W-1)/w, scale)``, then a shift back inside the frame)
    shrinks or shifts the crop, since a scaled box wider than ``W-1`` (or taller than ``H-1``) must cross a border."""
    x, y, w, h = (float(v) for v in xywh)
    cx, cy, nw, nh = x + w / 2, y + h / 2, w * scale, h * scale
    return box_off_image(image_hw, cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2)


def similarity(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """Row-wise score: cosine similarity, or ``-`` Euclidean distance (so higher always = more similar)."""
    a = np.atleast_2d(a)
    b = np.atleast_2d(b)
    if metric == "cosine":
        an = a / np.linalg.norm(a, axis=1, keepdims=True)
        bn = b / np.linalg.norm(b, axis=1, keepdims=True)
        return np.sum(an * bn, axis=1)
    if metric == "euclidean":
        return -np.linalg.norm(a - b, axis=1)
    raise ValueError(f"unknown comparison metric {metric!r} (expected 'cosine' or 'euclidean')")
