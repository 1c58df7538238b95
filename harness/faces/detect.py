"""Face detection: the :class:`Detector` interface, its registry and the MTCNN detector (box, probability, 5 landmarks).

A detector maps a batch of RGB uint8 images to one :class:`Detection` (or ``None``: no face) per image and names its
configuration (``config``, hashed into ``detector_id``, the score cache key). Detectors are registered in
:data:`DETECTORS` (``conf/detector/<name>.yaml``, ``detector.name``): ``mtcnn`` here, ``retinaface``
(:mod:`harness.faces.retinaface_caffe`), and any plugin (``plugin: <module>`` in the yaml, or a ``harness.detector``
entry point). The batched engine has a tensor fast path for detectors exposing facenet-pytorch's ``mtcnn`` module and
:meth:`MTCNNDetector.pick`; any other detector is run through its own :meth:`Detector.detect`.

MTCNN needs equal image sizes within a batch, so :meth:`MTCNNDetector.detect` groups images by size. When
several faces are found, the largest box (area) is kept (NUAA frames contain bystanders); no face = failure
to acquire (``None``). ``pad_fraction`` > 0 pads each image with black by that fraction of its longer side
before detection (coordinates are returned in the original image): MTCNN misplaces landmarks by ~12 px
(median) on tight face crops where the face fills the frame, and padding fixes that.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np
import torch

from harness.registry import Registry

#: ``detector.name -> Detector class / factory (**config, batch_size, device)``; MTCNN registers below
DETECTORS = Registry("detector", config_key="detector.name", scan=("harness.faces", "@register_detector("))

#: Columns of a detection row (:meth:`Detection.to_array`, the score store's value and ``ScoreTable.detections``):
#: box x1, y1, x2, y2 (pixels), the detector's probability, the faces found, five (x, y) landmarks.
BOX = slice(0, 4)
PROB = 4
N_FACES = 5
LANDMARKS = slice(6, 16)
ROW_WIDTH = 16

__all__ = ["Detection", "Detector", "BOX", "PROB", "N_FACES", "LANDMARKS", "ROW_WIDTH", "DETECTORS", "MTCNNDetector", "register_detector", "build_detector",
           "config_id"]


@dataclass(frozen=True, eq=False)
class Detection:
    box: np.ndarray  # (4,) x1, y1, x2, y2 in pixels
    prob: float
    landmarks: np.ndarray  # (5, 2), see harness.models.base for the order
    n_faces: int

    def to_array(self) -> np.ndarray:
        return np.concatenate([self.box, [self.prob, self.n_faces], self.landmarks.ravel()]).astype(np.float64)

    @staticmethod
    def from_array(a: np.ndarray) -> "Detection":
        a = np.asarray(a, dtype=np.float64)
        return Detection(box=a[BOX].copy(), prob=float(a[PROB]), n_faces=int(a[N_FACES]),
                         landmarks=a[LANDMARKS].reshape(5, 2).copy())


def register_detector(name: str):
    """Decorator: register a :class:`Detector` class (or factory) as ``detector.name`` ``name``."""
    return DETECTORS.register(name)


def config_id(prefix: str, config: dict) -> str:
    """``<prefix>-<16 hex>``: a detector id from its configuration (the score cache key)."""
    return prefix + "-" + hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


class Detector(ABC):
    """A face detector: ``detect(images) -> [Detection | None]``, its ``config`` (dict) and ``detector_id``.

    It is built as ``cls(**detector_config, batch_size=runtime.detect_batch_size, device=runtime.device)``; the
    config keys it takes are its ``__init__`` parameters (checked by :mod:`harness.config_schema`).
    ``mtcnn``: a facenet-pytorch MTCNN module for the batched engine's tensor path (with :meth:`pick`), else None.
    """

    config: dict[str, Any]
    mtcnn: Any = None

    @property
    def detector_id(self) -> str:
        return config_id(str(self.config.get("kind", type(self).__name__)), self.config)

    @abstractmethod
    def detect(self, images: list[np.ndarray]) -> list[Detection | None]:
        """RGB uint8 HxWx3 images (any mix of sizes) -> one Detection or None (no face) per image, in order."""


@register_detector("mtcnn")
class MTCNNDetector(Detector):
    """facenet-pytorch MTCNN (weights ship in its wheel) run in size-grouped batches."""

    def __init__(self, min_face_size: int = 40, thresholds=(0.6, 0.7, 0.7), factor: float = 0.709,
                 min_prob: float = 0.0, batch_size: int = 16, device: str = "cpu", pad_fraction: float = 0.0, **_):
        from facenet_pytorch import MTCNN

        self.config = dict(kind="mtcnn", min_face_size=int(min_face_size), thresholds=[float(t) for t in thresholds],
                           factor=float(factor), min_prob=float(min_prob), select="largest",
                           pad_fraction=float(pad_fraction),
                           facenet_pytorch=metadata.version("facenet-pytorch"))
        self.batch_size = int(batch_size)
        self.min_prob = float(min_prob)
        self.pad_fraction = float(pad_fraction)
        self.mtcnn = MTCNN(keep_all=True, min_face_size=min_face_size, thresholds=list(thresholds), factor=factor,
                           post_process=False, device=torch.device(device))

    @property
    def detector_id(self) -> str:
        return config_id("mtcnn", self.config)

    def pick(self, boxes, probs, points) -> Detection | None:
        """One image's MTCNN output -> the largest face with ``prob >= min_prob`` (None: none)."""
        if boxes is None or len(boxes) == 0:
            return None
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        probs = np.asarray(probs, dtype=np.float64).reshape(-1)
        points = np.asarray(points, dtype=np.float64).reshape(-1, 5, 2)
        keep = probs >= self.min_prob
        if not keep.any():
            return None
        boxes, probs, points = boxes[keep], probs[keep], points[keep]
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        i = int(np.argmax(area))
        return Detection(box=boxes[i], prob=float(probs[i]), landmarks=points[i], n_faces=int(len(boxes)))

    def detect(self, images: list[np.ndarray]) -> list[Detection | None]:
        """RGB uint8 HxWx3 images (any mix of sizes) -> one Detection or None (no face) per image, in order."""
        out: list[Detection | None] = [None] * len(images)
        groups: dict[tuple, list[int]] = {}
        for i, im in enumerate(images):
            groups.setdefault(im.shape, []).append(i)
        for shape, idx in groups.items():
            pad = int(round(self.pad_fraction * max(shape[:2])))
            for s in range(0, len(idx), self.batch_size):
                chunk = idx[s:s + self.batch_size]
                batch = np.stack([images[i] for i in chunk])  # BHWC, 0..255
                if pad:
                    batch = np.pad(batch, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
                with torch.inference_mode():
                    boxes, probs, points = self.mtcnn.detect(torch.from_numpy(batch), landmarks=True)
                for j, i in enumerate(chunk):
                    d = self.pick(boxes[j], probs[j], points[j])
                    if d is not None and pad:
                        d = Detection(box=d.box - pad, prob=d.prob, landmarks=d.landmarks - pad, n_faces=d.n_faces)
                    out[i] = d
        return out

    _pick = pick  # old name (harness.scoring.batched, harness.faces.mtcnn_batched)


def build_detector(name: str = "mtcnn", **kwargs) -> Detector:
    """The detector registered as ``name``, built with ``kwargs`` (a ``plugin`` keyword is imported first)."""
    return DETECTORS.build(name, **kwargs)
