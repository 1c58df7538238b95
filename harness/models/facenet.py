"""facenet-pytorch's InceptionResnetV1 (512-d, cosine) with its VGGFace2 or CASIA-WebFace weights.

Weights: facenet-pytorch 2.5.3 downloads them from its GitHub release v2.2.9 (``load_weights`` in
``facenet_pytorch/models/inception_resnet_v1.py``); they are Tim Esler's conversions of David Sandberg's TensorFlow
facenet models 20180402-114759 (VGGFace2) and 20180408-102900 (CASIA-WebFace), MIT licence (both repositories).
The files are plain state_dicts (tensors only), loaded with ``torch.load(weights_only=True)``; the classifier
``logits.*`` is dropped and the rest must match :class:`facenet_pytorch.InceptionResnetV1` exactly.

* ``facenet_vggface2``: sha256 ``281cebca...``, 111,898,327 bytes (the value recorded by several independent public
  projects that pin this release asset; GitHub is not reachable from this project's machines, so it was not
  re-measured here).
* ``facenet_casia_webface``: **no sha256 is pinned** (none could be confirmed); the URL route refuses it and only
  ``weights_path=`` works, identified by the file's own sha256 in ``model_id``.

``weights_path=`` (either model) loads a local state_dict instead, with the same strict checks; the file's own
sha256 becomes the model's ``weights_sha256``.

Input convention. facenet-pytorch's own pipeline is ``MTCNN(image_size=160, margin=0)``: crop the detector box
(``int()`` corners), resize to 160x160 (anisotropic: the box is ~1.28x taller than wide), then
``fixed_image_standardization`` ``(x - 127.5) / 128``, RGB. The harness aligns 5 landmarks onto a template
instead, so :data:`TEMPLATE` is where MTCNN's landmarks land in such 160x160 crops, measured
(:func:`landmarks_in_crop`) on 168 faces - 128 NUAA frames (8 per subject, faces well inside the frame) and the 40
faceapi_bbt crops (detected on a 25 px black border: MTCNN's landmarks on the unpadded tight crops are off by
~13 px) - averaged, then mirror-symmetrised (left/right swapped and x reflected; the sample mean leans 2 px to
one side from head pose). Per-coordinate standard deviation is up to 9 px on NUAA and 19 px on the BBT stills
(MTCNN's box/landmark relation varies with pose; the two sets' means differ by ~6 px in y), so this is a
convention, not an exact reproduction of the box crop. ``margin=m`` (facenet-pytorch's margin in output pixels)
maps to ``80 + (TEMPLATE - 80) * (160 - m) / 160``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from harness.models.base import Embedder
from harness.models.registry import check_options, register_embedder
from harness.models.weights import WeightFile, WeightsError, weights_file

RELEASE = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/"
_PROV = (
    "facenet-pytorch (Tim Esler, MIT) release v2.2.9 asset, the URL facenet-pytorch 2.5.3's load_weights uses; "
    "converted from David Sandberg's TensorFlow facenet (MIT) model "
)

WEIGHTS = {
    "vggface2": WeightFile(
        name="facenet_vggface2",
        sha256="281cebca8662831adb987a874bdcb36e73f5b1c6dc5ee5878f305e985625d99b",
        source="url",
        member=RELEASE + "20180402-114759-vggface2.pt",
        license="MIT",
        provenance=_PROV + "20180402-114759, trained on VGGFace2 (LFW 0.9965 per the facenet README).",
    ),
    "casia-webface": WeightFile(
        name="facenet_casia_webface",
        sha256="",  # not pinned: see the module docstring
        source="url",
        member=RELEASE + "20180408-102900-casia-webface.pt",
        license="MIT",
        provenance=_PROV + "20180408-102900, trained on CASIA-WebFace (LFW 0.9905 per the facenet README).",
    ),
}

CROP = 160
#: MTCNN landmarks in facenet-pytorch's 160x160 margin-0 crops (see the module docstring)
TEMPLATE = np.array(
    [
        [43.20, 59.94],
        [116.80, 59.94],
        [80.00, 92.69],
        [49.92, 122.49],
        [110.08, 122.49],
    ],
    dtype=np.float64,
)


def template_for_margin(margin: float) -> np.ndarray:
    """:data:`TEMPLATE` for ``MTCNN(image_size=160, margin=margin)`` crops (margin in output pixels)."""
    return CROP / 2 + (TEMPLATE - CROP / 2) * (CROP - margin) / CROP


def landmarks_in_crop(box: np.ndarray, landmarks: np.ndarray, margin: float = 0.0, image_size: int = CROP,
                      frame_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Where ``landmarks`` land in facenet-pytorch's ``extract_face(img, box, image_size, margin)`` crop.

    Follows ``extract_face``: margin scaled to the box (``margin * w / (image_size - margin)``), corners ``int()``-ed
    and clamped to the frame when ``frame_hw`` is given, then the crop is resized to ``image_size`` square.
    """
    b = np.asarray(box, dtype=np.float64).reshape(-1)[:4]
    m = (margin * (b[2] - b[0]) / (image_size - margin), margin * (b[3] - b[1]) / (image_size - margin))
    raw = [b[0] - m[0] / 2, b[1] - m[1] / 2, b[2] + m[0] / 2, b[3] + m[1] / 2]
    if frame_hw is not None:
        h, w = frame_hw
        raw = [max(raw[0], 0), max(raw[1], 0), min(raw[2], w), min(raw[3], h)]
    x1, y1, x2, y2 = (int(v) for v in raw)
    lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    return np.stack([(lm[:, 0] - x1) * image_size / (x2 - x1), (lm[:, 1] - y1) * image_size / (y2 - y1)], axis=1)


def symmetrise(points: np.ndarray, width: float = CROP) -> np.ndarray:
    """Average a 5-point template with its mirror image (x -> width - x, left/right points swapped)."""
    p = np.asarray(points, dtype=np.float64)
    mirror = p[[1, 0, 2, 4, 3]].copy()
    mirror[:, 0] = width - mirror[:, 0]
    return (p + mirror) / 2


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The file's tensors without the classifier (``logits.*``); refuses anything that is not a tensor dict."""
    sd = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WeightsError(f"{path}: not a state_dict of tensors")
    return {k: v for k, v in sd.items() if not k.startswith("logits.")}


class FaceNet(Embedder):
    """``forward(uint8 [B,3,160,160] RGB) -> float32 [B,512]`` (L2-normalised by the network)."""

    dim = 512
    metric = "cosine"
    crop_size = (CROP, CROP)
    score_scale = ("cosine similarity of two 512-d InceptionResnetV1 (FaceNet) embeddings, in [-1, 1]: 1 = same "
                   "direction, higher = more similar; not a probability or a percentage")

    def __init__(self, name: str, state_dict: dict[str, torch.Tensor], weights_sha256: str, margin: float = 0.0):
        super().__init__()
        from facenet_pytorch import InceptionResnetV1

        self.name = name
        self.net = InceptionResnetV1(pretrained=None, classify=False)
        missing, unexpected = self.net.load_state_dict(state_dict, strict=False)
        if missing or unexpected:
            raise WeightsError(
                f"{name}: weights do not match InceptionResnetV1 (missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]})"
            )
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.weights_sha256 = weights_sha256
        self.margin = float(margin)
        self.template = template_for_margin(self.margin)
        self.preprocessing = (
            f"RGB uint8 160x160 crop aligned by a 5-point similarity onto facenet-pytorch's MTCNN(image_size=160, "
            f"margin={self.margin:g}) landmark template {np.round(self.template, 2).tolist()}; in forward: "
            "(pixel - 127.5) / 128 (fixed_image_standardization), RGB; output L2-normalised 512-d, cosine"
        )
        self.eval()

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        if crops.ndim != 4 or tuple(crops.shape[1:]) != (3, CROP, CROP):
            raise ValueError(f"{self.name} expects uint8 [B,3,{CROP},{CROP}] RGB crops, got {tuple(crops.shape)}")
        x = (crops.to(self.device, torch.float32) - 127.5) / 128.0
        return self.net(x)


def _weights(which: str, weights_path: str | os.PathLike | None, offline: bool | None) -> tuple[Path, str]:
    return weights_file(WEIGHTS[which], weights_path, offline)


def _build(which: str, device, weights_path, margin: float, offline: bool | None, kw: dict) -> FaceNet:
    check_options("embedder", which, kw)
    path, sha = _weights(which, weights_path, offline)
    return FaceNet(WEIGHTS[which].name, load_state_dict(path), sha, margin).to(device).eval()


@register_embedder("facenet_vggface2")
def build_vggface2(device: str | torch.device = "cpu", weights_path=None, margin: float = 0.0,
                   offline: bool | None = None, **kw) -> FaceNet:
    return _build("vggface2", device, weights_path, margin, offline, kw)


@register_embedder("facenet_casia_webface")
def build_casia_webface(device: str | torch.device = "cpu", weights_path=None, margin: float = 0.0,
                        offline: bool | None = None, **kw) -> FaceNet:
    return _build("casia-webface", device, weights_path, margin, offline, kw)
