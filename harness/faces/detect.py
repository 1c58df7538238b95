"""Face detection: the :class:`Detector` interface, its registry and the MTCNN detector (box, probability, 5 landmarks).

A detector maps a batch of RGB uint8 images to one :class:`Detection` (or ``None``: no face) per image and names its
configuration (``config``, hashed into ``detector_id``, the score cache key). Detectors are registered in
:data:`DETECTORS` (``conf/detector/<name>.yaml``, ``detector.name``): ``mtcnn`` here, ``retinaface``
(:mod:`harness.faces.retinaface_caffe`), and any plugin (``plugin: <module>`` in the yaml, or a ``harness.detector``
entry point). The batched engine has a tensor fast path for detectors exposing facenet-pytorch's ``mtcnn`` module and
:meth:`MTCNNDetector.pick`; any other detector is run through its own :meth:`Detector.detect`.

MTCNN needs equal image sizes within a batch, so :meth:`MTCNNDetector.detect` groups images by size; images larger
than ``max_side`` are downscaled and letterboxed to a common canvas instead (:mod:`harness.faces.letterbox`). When
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

from harness.faces.letterbox import face_floor, letterbox, map_back, plan
from harness.faces.mtcnn_batched import mtcnn_detect
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
    """facenet-pytorch MTCNN (weights ship in its wheel) run in size-grouped batches.

    ``max_side`` (default None: full resolution, the old behaviour): an image whose longer side exceeds it is
    downscaled (antialiased bilinear) to that longer side before detection, and the downscaled images of a batch
    are letterboxed to a common canvas and detected together; boxes and landmarks are returned in the original
    image (:mod:`harness.faces.letterbox`). Images not larger than ``max_side`` are detected exactly as before.
    ``min_face_size`` is the smallest face in ORIGINAL pixels: a downscaled image is searched with
    ``min_face_size * scale``, divided by whole pyramid steps up to MTCNN's 12 px net size where it is smaller
    (:func:`harness.faces.letterbox.detector_min_face`). The smallest face the default settings
    (``min_face_size=40``, ``max_side=None``) find: 40 px at any size (640x480 and 4032x3024 alike). With
    ``max_side`` 1024: 40 px in a 640x480 frame (not resized) and
    40 / 0.709 = 56 px in a 4032x3024 / 3024x4032 photo; with 1280: 40 px; with 640 or 800: 80 px.
    ``min_face_fraction`` (default None): the smallest face is also at least this share of the image's shorter
    side (:func:`harness.faces.letterbox.smallest_face`): 5% searches a 12 MP photo from 151 px and a 640x480
    frame from 40 px (``min_face_size`` wins there). ``config`` (the detector id) names ``max_side`` and
    ``min_face_fraction`` only when they are set, so the default keeps the old ids.
    ``refine_original`` (with ``max_side``): only P-Net (the image pyramid, the cascade's cost on a large image)
    runs on the bounded input; R-Net and O-Net crop its candidates from the original pixels
    (:func:`harness.faces.mtcnn_batched.mtcnn_detect` ``originals``), so boxes and landmarks are O-Net's at full
    resolution.
    """

    def __init__(self, min_face_size: int = 40, thresholds=(0.6, 0.7, 0.7), factor: float = 0.709,
                 min_prob: float = 0.0, batch_size: int = 16, device: str = "cpu", pad_fraction: float = 0.0,
                 max_side: int | None = None, min_face_fraction: float | None = None,
                 refine_original: bool = False, **_):
        from facenet_pytorch import MTCNN

        if max_side is not None and int(max_side) < 1:
            raise ValueError(f"max_side must be a positive integer or None, got {max_side!r}")
        self.max_side = None if max_side is None else int(max_side)
        self.config = dict(kind="mtcnn", min_face_size=int(min_face_size), thresholds=[float(t) for t in thresholds],
                           factor=float(factor), min_prob=float(min_prob), select="largest",
                           pad_fraction=float(pad_fraction),
                           facenet_pytorch=metadata.version("facenet-pytorch"))
        if self.max_side is not None:  # unset: the old ids (and cached detections) stay valid
            self.config["max_side"] = self.max_side
        if min_face_fraction is not None and not 0 < float(min_face_fraction) < 1:
            raise ValueError(f"min_face_fraction must be in (0, 1) or None, got {min_face_fraction!r}")
        self.min_face_fraction = None if not min_face_fraction else float(min_face_fraction)
        if self.min_face_fraction is not None:
            self.config["min_face_fraction"] = self.min_face_fraction
        self.refine_original = bool(refine_original)
        if self.refine_original and self.max_side is not None:  # without max_side every image is "original"
            self.config["refine_original"] = True
        self.batch_size = int(batch_size)
        self.min_prob = float(min_prob)
        self.pad_fraction = float(pad_fraction)
        self.min_face_size, self.factor = int(min_face_size), float(factor)
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
        """RGB uint8 HxWx3 images (any mix of sizes) -> one Detection or None (no face) per image, in order.

        ``pad_fraction`` pads first; the padded images are then planned (:func:`harness.faces.letterbox.plan`):
        equal sizes that need no resize are stacked as they are, larger images are resized and letterboxed."""
        out: list[Detection | None] = [None] * len(images)
        pads = [int(round(self.pad_fraction * max(im.shape[:2]))) for im in images]
        sizes = [(im.shape[0] + 2 * p, im.shape[1] + 2 * p) for im, p in zip(images, pads)]
        for group in plan(sizes, self.max_side, self.min_face_size, self.factor, self.min_face_fraction):
            for s in range(0, len(group.members), self.batch_size):
                part = group.part(s, s + self.batch_size)
                chunk = list(part.members)
                padded = [padded_image(images[i], pads[i]) for i in chunk]  # HWC, 0..255
                if part.exact:
                    batch = torch.from_numpy(np.stack(padded))
                    with torch.inference_mode(), face_floor(self.mtcnn, part.min_face):
                        boxes, probs, points = self.mtcnn.detect(batch, landmarks=True)
                else:
                    boxes, probs, points = self.detect_letterboxed(padded, part)
                for j, i in enumerate(chunk):
                    b, pr, pt = boxes[j], probs[j], points[j]
                    d = self.pick(b, pr, pt)
                    if d is not None and pads[i]:
                        p = pads[i]
                        d = Detection(box=d.box - p, prob=d.prob, landmarks=d.landmarks - p, n_faces=d.n_faces)
                    out[i] = d
        return out

    def detect_letterboxed(self, images: list[np.ndarray], part) -> tuple[list, list, list]:
        """Per image boxes, probabilities and landmarks (original coordinates) of ``images`` (HWC uint8), the
        members of a letterboxed batch ``part`` (:class:`harness.faces.letterbox.Group`): the batched engine's
        cascade, which detects each image of the batch as if alone."""
        dev = next(self.mtcnn.parameters()).device
        x = letterbox([torch.from_numpy(np.ascontiguousarray(p)).permute(2, 0, 1).to(dev) for p in images], part)
        originals = None
        if self.refine_original:
            originals = [torch.from_numpy(np.ascontiguousarray(p)).permute(2, 0, 1).to(dev) for p in images]
        with torch.inference_mode(), face_floor(self.mtcnn, part.min_face):
            boxes, points = mtcnn_detect(self.mtcnn, x, sizes=list(part.inputs), originals=originals)
        out: tuple[list, list, list] = ([], [], [])
        for bb, pp, size, hw in zip(boxes, points, part.sizes, part.inputs):
            if originals is None:
                bb, pp = map_back(bb, pp, size, hw)
            for lst, v in zip(out, (bb[:, :4], bb[:, 4], pp)):
                lst.append(v)
        return out

    _pick = pick  # old name (harness.scoring.batched, harness.faces.mtcnn_batched)


def padded_image(img: np.ndarray, pad: int) -> np.ndarray:
    """``img`` (HxWx3) with ``pad`` black pixels on every side (itself when ``pad`` is 0)."""
    return np.pad(img, ((pad, pad), (pad, pad), (0, 0))) if pad else img


def build_detector(name: str = "mtcnn", **kwargs) -> Detector:
    """The detector registered as ``name``, built with ``kwargs`` (a ``plugin`` keyword is imported first)."""
    return DETECTORS.build(name, **kwargs)
