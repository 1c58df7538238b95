"""MiniFASNet presentation-attack detectors (Silent-Face-Anti-Spoofing, minivision-ai, Apache-2.0).

Two released 80x80 models and their ensemble:

* ``minifasnet_v2``    - MiniFASNetV2,   crop scale 2.7 (``2.7_80x80_MiniFASNetV2.pth``)
* ``minifasnet_v1se``  - MiniFASNetV1SE, crop scale 4.0 (``4_0_0_80x80_MiniFASNetV1SE.pth``)
* ``minifasnet_ensemble`` - mean of the two models' live probabilities

The network is written here from the released state_dicts' key names and shapes (plus the published design:
a MobileFaceNet-style stack of inverted-residual "Depth_Wise" blocks with PReLU, squeeze-and-excitation on the
last block of each residual stage for the SE variant, a 5x5 global depthwise conv, a 128-d embedding and a
bias-free 3-way classifier). Parameter names match the checkpoints after stripping their ``module.`` prefix, so
``load_state_dict(strict=True)`` succeeds.

Preprocessing follows ``shared/weights/minifasnet/PREPROCESSING.md`` (the reference inference code):

* **Box convention.** The reference crop works on a ``[x, y, w, h]`` box that its RetinaFace (caffe) detector
  produces from the detection corners ``(l, t, r, b)`` as ``[int(l), int(t), int(r - l + 1), int(b - t + 1)]``.
  The harness passes ``(x1, y1, x2, y2)``; :func:`xyxy_to_xywh` converts it *exactly that way* (including the
  ``int()`` truncation toward zero), so a box from :mod:`harness.faces.retinaface_caffe` reproduces the
  reference crop bit for bit. The ``+1`` treats ``x2``/``y2`` as inclusive pixel indices, as the reference does.
* **Crop** (:func:`get_new_box`, the reference ``CropImage._get_new_box``): ``s = min((H-1)/h, (W-1)/w, scale)``;
  a ``s*w x s*h`` box centred on the box centre, shifted back inside the image if it crosses a border, corners
  truncated with ``int()``; slice ``[y1:y2+1, x1:x2+1]``; ``cv2.resize`` to 80x80 (default bilinear).
* **Tensor.** RGB uint8 -> BGR float32 in 0..255 (no /255, no mean/std); softmax over 3 logits; index 1 = live.

The score (higher = bona fide) is ``p(live)`` in [0, 1]; for the ensemble it is the mean of the two models'
``p(live)`` (the reference ``test.py`` sums the softmax vectors and takes the argmax; ``(p1_V2 + p1_V1SE) / 2``
is that sum's live component / 2).

**Ensemble crop layout.** ``PADModel.crop`` returns one array, so the ensemble returns the two crops side by
side: an ``80 x 160 x 3`` RGB image whose left half is the V2 crop (scale 2.7) and right half the V1SE crop
(scale 4.0); ``crop_size == (80, 160)`` and ``forward`` takes ``[B, 3, 80, 160]`` and splits it at column 80.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.models.base import PADModel, scaled_box_off_image
from harness.models.registry import check_options, register_pad
from harness.models.weights import WeightFile, weights_file

SOURCE = "minivision-ai/Silent-Face-Anti-Spoofing @ b6d5f04ad78778917853b25c778acef6d5626d15"

WEIGHTS = {
    "MiniFASNetV2": WeightFile(
        name="minifasnet_v2",
        sha256="a5eb02e1843f19b5386b953cc4c9f011c3f985d0ee2bb9819eea9a142099bec0",
        source="local",
        member="${shared}/weights/minifasnet/2.7_80x80_MiniFASNetV2.pth",
        license="Apache-2.0",
        provenance=f"{SOURCE}, resources/anti_spoof_models/2.7_80x80_MiniFASNetV2.pth",
    ),
    "MiniFASNetV1SE": WeightFile(
        name="minifasnet_v1se",
        sha256="84ee1d37d96894d5e82de5a57df044ef80a58be2b218b5ed7cdfd875ec2f5990",
        source="local",
        member="${shared}/weights/minifasnet/4_0_0_80x80_MiniFASNetV1SE.pth",
        license="Apache-2.0",
        provenance=f"{SOURCE}, resources/anti_spoof_models/4_0_0_80x80_MiniFASNetV1SE.pth",
    ),
}

#: crop scale relative to the RetinaFace-caffe box, per model type (from the weight file names)
CROP_SCALE = {"MiniFASNetV2": 2.7, "MiniFASNetV1SE": 4.0}
LIVE_INDEX = 1
INPUT_HW = (80, 80)


# --------------------------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------------------------
class ConvBNPReLU(nn.Module):
    """conv (no bias) -> BN -> PReLU; keys ``conv``, ``bn``, ``prelu``."""

    def __init__(self, cin: int, cout: int, k: int = 1, s: int = 1, p: int = 0, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, p, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.prelu = nn.PReLU(cout)

    def forward(self, x):
        return self.prelu(self.bn(self.conv(x)))


class ConvBN(nn.Module):
    """conv (no bias) -> BN, no activation; keys ``conv``, ``bn``."""

    def __init__(self, cin: int, cout: int, k: int = 1, s: int = 1, p: int = 0, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, p, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


class SqueezeExcite(nn.Module):
    """Channel gate: global average -> 1x1 conv -> BN -> ReLU -> 1x1 conv -> BN -> sigmoid, times the input."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        mid = channels // reduction
        self.fc1 = nn.Conv2d(channels, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.fc2 = nn.Conv2d(mid, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        g = F.adaptive_avg_pool2d(x, 1)
        g = F.relu(self.bn1(self.fc1(g)))
        g = torch.sigmoid(self.bn2(self.fc2(g)))
        return x * g


class InvertedBlock(nn.Module):
    """1x1 expand (PReLU) -> 3x3 depthwise (PReLU, stride s) -> 1x1 linear projection [-> SE] [+ identity].

    Keys ``conv``, ``conv_dw``, ``project`` (and ``se_module``), matching the checkpoints.
    """

    def __init__(self, cin: int, mid: int, cout: int, stride: int = 1, residual: bool = False, se: bool = False):
        super().__init__()
        self.conv = ConvBNPReLU(cin, mid, 1)
        self.conv_dw = ConvBNPReLU(mid, mid, 3, stride, 1, groups=mid)
        self.project = ConvBN(mid, cout, 1)
        if se:
            self.se_module = SqueezeExcite(cout)
        self.residual = residual
        self.se = se

    def forward(self, x):
        y = self.project(self.conv_dw(self.conv(x)))
        if self.se:
            y = self.se_module(y)
        return x + y if self.residual else y


class ResidualStage(nn.Module):
    """A run of stride-1 residual inverted blocks (key ``model.<i>``); with ``se`` the last one carries SE."""

    def __init__(self, channels: int, mids: list[int], se: bool = False):
        super().__init__()
        n = len(mids)
        self.model = nn.Sequential(
            *[InvertedBlock(channels, m, channels, 1, residual=True, se=se and i == n - 1) for i, m in enumerate(mids)]
        )

    def forward(self, x):
        return self.model(x)


#: expansion widths of each block, read from the checkpoints (pruned MobileFaceNet widths)
ARCH = {
    "MiniFASNetV2": {
        "conv_23": 103, "conv_3": [13, 13, 13, 13], "conv_34": 231,
        "conv_4": [231, 52, 26, 77, 26, 26], "conv_45": 308, "conv_5": [26, 26], "se": False,
    },
    "MiniFASNetV1SE": {
        "conv_23": 103, "conv_3": [13, 26, 13, 52], "conv_34": 231,
        "conv_4": [154, 52, 26, 52, 26, 26], "conv_45": 308, "conv_5": [26, 26], "se": True,
    },
}


class MiniFASNet(nn.Module):
    """MiniFASNet backbone + head: BGR float 0..255 ``[B,3,80,80]`` -> 3 logits.

    80 -> 40 (conv1, s2) -> 40 (conv2_dw) -> 20 (conv_23) -> 10 (conv_34) -> 5 (conv_45) -> 1 (5x5 conv_6_dw).
    """

    def __init__(self, arch: str = "MiniFASNetV2", num_classes: int = 3, input_hw: tuple[int, int] = INPUT_HW):
        super().__init__()
        a = ARCH[arch]
        se = a["se"]
        k6 = ((input_hw[0] + 15) // 16, (input_hw[1] + 15) // 16)
        self.conv1 = ConvBNPReLU(3, 32, 3, 2, 1)
        self.conv2_dw = ConvBNPReLU(32, 32, 3, 1, 1, groups=32)
        self.conv_23 = InvertedBlock(32, a["conv_23"], 64, stride=2)
        self.conv_3 = ResidualStage(64, a["conv_3"], se=se)
        self.conv_34 = InvertedBlock(64, a["conv_34"], 128, stride=2)
        self.conv_4 = ResidualStage(128, a["conv_4"], se=se)
        self.conv_45 = InvertedBlock(128, a["conv_45"], 128, stride=2)
        self.conv_5 = ResidualStage(128, a["conv_5"], se=se)
        self.conv_6_sep = ConvBNPReLU(128, 512, 1)
        self.conv_6_dw = ConvBN(512, 512, k6, 1, 0, groups=512)
        self.linear = nn.Linear(512, 128, bias=False)
        self.bn = nn.BatchNorm1d(128)
        self.prob = nn.Linear(128, num_classes, bias=False)  # dropout before it in training; identity at eval

    def forward(self, x):
        x = self.conv2_dw(self.conv1(x))
        x = self.conv_3(self.conv_23(x))
        x = self.conv_4(self.conv_34(x))
        x = self.conv_5(self.conv_45(x))
        x = self.conv_6_dw(self.conv_6_sep(x))
        x = self.bn(self.linear(torch.flatten(x, 1)))
        return self.prob(x)


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors with the DataParallel ``module.`` prefix stripped (tensors only, no pickle code)."""
    sd = torch.load(str(path), map_location="cpu", weights_only=True)
    return {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()}


# --------------------------------------------------------------------------------------------------------------
# Crop rule
# --------------------------------------------------------------------------------------------------------------
def xyxy_to_xywh(box) -> tuple[int, int, int, int]:
    """``(x1, y1, x2, y2)`` -> reference ``[x, y, w, h]`` = ``int(x1), int(y1), int(x2-x1+1), int(y2-y1+1)``.

    Exactly the reference detector's conversion of ``(l, t, r, b)`` (``int`` truncates toward zero).
    """
    b = np.asarray(box).reshape(-1)
    x1, y1, x2, y2 = b[0], b[1], b[2], b[3]
    return int(x1), int(y1), int(x2 - x1 + 1), int(y2 - y1 + 1)


def enlarge_within(src_w: int, src_h: int, x, y, box_w, box_h, scale: float) -> tuple[float, float, float, float]:
    """Silent-Face's enlargement rule as floats ``(lx, ly, rx, ry)``: scale clamped to
    ``min((H-1)/h, (W-1)/w, scale)``, centred on the box, shifted back inside the frame at the borders."""
    scale = min((src_h - 1) / box_h, min((src_w - 1) / box_w, scale))
    new_w = box_w * scale
    new_h = box_h * scale
    cx = box_w / 2 + x
    cy = box_h / 2 + y
    lx, ly = cx - new_w / 2, cy - new_h / 2
    rx, ry = cx + new_w / 2, cy + new_h / 2
    if lx < 0:
        rx -= lx
        lx = 0
    if ly < 0:
        ry -= ly
        ly = 0
    if rx > src_w - 1:
        lx -= rx - src_w + 1
        rx = src_w - 1
    if ry > src_h - 1:
        ly -= ry - src_h + 1
        ry = src_h - 1
    return lx, ly, rx, ry


def get_new_box(src_w: int, src_h: int, bbox_xywh, scale: float) -> tuple[int, int, int, int]:
    """Reference ``CropImage._get_new_box``: the enlarged crop's inclusive corners ``(x1, y1, x2, y2)``."""
    x, y, box_w, box_h = bbox_xywh
    lx, ly, rx, ry = enlarge_within(src_w, src_h, x, y, box_w, box_h, scale)
    return int(lx), int(ly), int(rx), int(ry)


def crop_scaled(frame: np.ndarray, box_xyxy, scale: float, out_hw: tuple[int, int] = INPUT_HW) -> np.ndarray:
    """Reference crop: enlarge the box by ``scale`` (clamped, shifted inside), slice, bilinear resize to ``out_hw``."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 frame, got shape {frame.shape}")
    h, w = frame.shape[:2]
    xywh = xyxy_to_xywh(box_xyxy)
    if xywh[2] <= 0 or xywh[3] <= 0:
        raise ValueError(f"degenerate face box {np.asarray(box_xyxy).tolist()} -> [x, y, w, h] {xywh}")
    x1, y1, x2, y2 = get_new_box(w, h, xywh, scale)
    patch = frame[y1:y2 + 1, x1:x2 + 1]
    return cv2.resize(patch, (out_hw[1], out_hw[0]))


def crop_region(frame_hw: tuple[int, int], box_xyxy, scale: float) -> tuple[int, int, int, int]:
    """The inclusive rectangle ``(x1, y1, x2, y2)`` that :func:`crop_scaled` slices from an ``(H, W)`` frame."""
    h, w = int(frame_hw[0]), int(frame_hw[1])
    xywh = xyxy_to_xywh(box_xyxy)
    if xywh[2] <= 0 or xywh[3] <= 0:
        raise ValueError(f"degenerate face box {np.asarray(box_xyxy).tolist()} -> [x, y, w, h] {xywh}")
    return get_new_box(w, h, xywh, scale)


# --------------------------------------------------------------------------------------------------------------
# MTCNN -> RetinaFace box mapping (measured)
# --------------------------------------------------------------------------------------------------------------
#: Medians of RetinaFace-caffe box / facenet-pytorch MTCNN box (largest face, ``MTCNN(keep_all=True)`` defaults) over
#: the 707 NUAA *train*-split frames (2026-11, boxes from the reference OpenCV-4 detector): width ratio, height
#: ratio, centre offset in units of the MTCNN width / height. RetinaFace boxes are ~13% wider, ~10% shorter and
#: centred ~6% of the height lower (MTCNN boxes include the forehead; RetinaFace's reach the chin and ears).
#: Held-out NUAA test split (1,855 frames): median IoU with the RetinaFace box 0.783 raw -> 0.909 mapped (p10
#: 0.733 -> 0.843); ensemble-score decision flips at 0.5 vs. RetinaFace boxes 1.6% raw -> 0.12% mapped (all NUAA).
#: The 3 silentface phone portraits (not used for fitting): IoU 0.71 raw -> 0.89 mapped.
MTCNN_TO_RETINA = {"scale_w": 1.135, "scale_h": 0.898, "dx": 0.0065, "dy": 0.058}


def mtcnn_to_retinaface_box(box) -> np.ndarray:
    """Map a facenet-pytorch MTCNN box ``(x1,y1,x2,y2)`` to an approximate RetinaFace-caffe box (see constants).

    ``w' = scale_w * w``, ``h' = scale_h * h``, centre ``(cx + dx * w, cy + dy * h)``; widths are ``x2 - x1``.
    Use it when the PAD crop must be cut from an MTCNN box: the MiniFASNet crop scale is relative to the
    RetinaFace box the models were trained with.
    """
    b = np.asarray(box, dtype=np.float64).reshape(-1)[:4]
    c = MTCNN_TO_RETINA
    w, h = b[2] - b[0], b[3] - b[1]
    cx, cy = (b[0] + b[2]) / 2 + c["dx"] * w, (b[1] + b[3]) / 2 + c["dy"] * h
    w2, h2 = c["scale_w"] * w, c["scale_h"] * h
    return np.array([cx - w2 / 2, cy - h2 / 2, cx + w2 / 2, cy + h2 / 2])


#: How the pipeline's face box is adapted before the crop rule. The weights were trained on crops scaled from
#: the RetinaFace-caffe box; the harness detects with MTCNN, whose box is narrower and taller
#: (mtcnn_to_retinaface_box: NUAA test IoU with the RetinaFace box 0.78 -> 0.91; train-split ensemble BPCER at
#: 0.5 10.7% -> 0.6%). "none" uses the given box as is (e.g. when it already comes from RetinaFace).
BOX_MAPPINGS = {"mtcnn_to_retinaface": lambda b: mtcnn_to_retinaface_box(b), "none": lambda b: np.asarray(b, dtype=np.float64)}


# --------------------------------------------------------------------------------------------------------------
# PADModel wrappers
# --------------------------------------------------------------------------------------------------------------
def _to_bgr_float(crops: torch.Tensor, device: torch.device) -> torch.Tensor:
    if crops.ndim != 4 or crops.shape[1] != 3:
        raise ValueError(f"expected crops [B,3,H,W], got {tuple(crops.shape)}")
    return crops.to(device).flip(1).float()  # RGB -> BGR, 0..255 kept


class MiniFASNetPAD(PADModel):
    """One MiniFASNet model: ``crop`` cuts its own scaled 80x80 patch; ``forward`` returns p(live) ``[B]``."""

    score_range = (0.0, 1.0)  # softmax probability of the live class
    score_scale = ("softmax probability of the live class (index 1 of 3 outputs) of one MiniFASNet, in [0, 1], higher "
                   "= more likely bona fide; an uncalibrated network output, not a measured probability of a live "
                   "presentation")

    crop_size = INPUT_HW

    def __init__(self, arch: str, weights_path: str | Path | None = None, box_mapping: str = "mtcnn_to_retinaface"):
        super().__init__()
        if box_mapping not in BOX_MAPPINGS:
            raise ValueError(f"pad.box_mapping must be one of {sorted(BOX_MAPPINGS)}, got {box_mapping!r}")
        self.box_mapping = box_mapping
        spec = WEIGHTS[arch]
        path, sha = weights_file(spec, weights_path)
        self.arch = arch
        self.name = spec.name
        self.scale = CROP_SCALE[arch]
        self.net = MiniFASNet(arch)
        self.net.load_state_dict(load_state_dict(path), strict=True)
        self.weights_sha256 = sha
        self.preprocessing = (
            f"{arch}: box (x1,y1,x2,y2) -> [int(x1), int(y1), int(x2-x1+1), int(y2-y1+1)] (reference RetinaFace "
            f"l,t,r,b convention); CropImage._get_new_box scale=min((H-1)/h,(W-1)/w,{self.scale}), centred, "
            "shifted inside the frame, int() corners, slice [y1:y2+1,x1:x2+1]; cv2.resize to 80x80 INTER_LINEAR; "
            "RGB->BGR float32 0..255 (no /255, no mean/std); softmax(3), score = p[1] (live); "
            f"box mapping before the crop: {box_mapping}"
        )
        self.eval()

    def crop(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        return crop_scaled(frame, BOX_MAPPINGS[self.box_mapping](box), self.scale)

    def crop_regions(self, frame_hw: tuple[int, int], box: np.ndarray) -> list[tuple[int, int, int, int]]:
        """The inclusive source rectangle :meth:`crop` slices and resizes to 80x80 (see :func:`crop_scaled`)."""
        return [crop_region(frame_hw, BOX_MAPPINGS[self.box_mapping](box), self.scale)]

    def context_clamped(self, box_xyxy, image_hw: tuple[int, int]) -> bool:
        """True when :func:`get_new_box` shrinks or shifts the mapped box's ``scale`` crop to fit the frame."""
        return scaled_box_off_image(image_hw, xyxy_to_xywh(BOX_MAPPINGS[self.box_mapping](box_xyxy)), self.scale)

    def probabilities(self, crops: torch.Tensor) -> torch.Tensor:
        """All three softmax outputs ``[B, 3]`` (index 1 = live; 0 and 2 are undocumented spoof classes)."""
        return F.softmax(self.net(_to_bgr_float(crops, self.device)), dim=1)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.probabilities(crops)[:, LIVE_INDEX].float()


class MiniFASNetEnsemble(PADModel):
    """Mean p(live) of MiniFASNetV2 (scale 2.7) and MiniFASNetV1SE (scale 4.0).

    ``crop`` returns ``80 x 160 x 3``: V2 crop in columns 0..79, V1SE crop in columns 80..159.
    """

    score_range = (0.0, 1.0)  # mean of softmax probabilities
    score_scale = ("mean of the live-class softmax probabilities of MiniFASNetV2 and MiniFASNetV1SE, in [0, 1], higher "
                   "= more likely bona fide; an uncalibrated network output, not a measured probability of a live "
                   "presentation")

    name = "minifasnet_ensemble"
    crop_size = (80, 160)

    def __init__(self, weights_paths: dict[str, str | Path] | None = None, box_mapping: str = "mtcnn_to_retinaface"):
        super().__init__()
        wp = weights_paths or {}
        self.v2 = MiniFASNetPAD("MiniFASNetV2", wp.get("MiniFASNetV2"), box_mapping)
        self.v1se = MiniFASNetPAD("MiniFASNetV1SE", wp.get("MiniFASNetV1SE"), box_mapping)
        self.weights_sha256 = f"{self.v2.weights_sha256}+{self.v1se.weights_sha256}"
        self.preprocessing = (
            "ensemble crop = [V2 crop | V1SE crop] side by side (80x160x3 RGB); score = (p_live_V2 + p_live_V1SE)/2; "
            f"left: {self.v2.preprocessing}; right: {self.v1se.preprocessing}"
        )
        self.eval()

    def crop(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        return np.concatenate([self.v2.crop(frame, box), self.v1se.crop(frame, box)], axis=1)

    def crop_regions(self, frame_hw: tuple[int, int], box: np.ndarray) -> list[tuple[int, int, int, int]]:
        """V2 rectangle then V1SE rectangle (the left and right halves of :meth:`crop`)."""
        return self.v2.crop_regions(frame_hw, box) + self.v1se.crop_regions(frame_hw, box)

    def context_clamped(self, box_xyxy, image_hw: tuple[int, int]) -> bool:
        """True when either member's crop is clamped (in practice the V1SE one, scale 4.0, first)."""
        return self.v2.context_clamped(box_xyxy, image_hw) or self.v1se.context_clamped(box_xyxy, image_hw)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        if crops.ndim != 4 or tuple(crops.shape[2:]) != self.crop_size:
            raise ValueError(f"expected ensemble crops [B,3,80,160], got {tuple(crops.shape)}")
        w = INPUT_HW[1]
        return (self.v2(crops[..., :w]) + self.v1se(crops[..., w:])) / 2


# --------------------------------------------------------------------------------------------------------------
# Factories
# --------------------------------------------------------------------------------------------------------------
def _finish(model: PADModel, device: str | torch.device) -> PADModel:
    return model.to(device).eval()


@register_pad("minifasnet_v2")
def build_v2(device: str | torch.device = "cpu", weights_path: str | Path | None = None,
             box_mapping: str = "mtcnn_to_retinaface", **kw) -> PADModel:
    check_options("pad", "minifasnet_v2", kw)
    return _finish(MiniFASNetPAD("MiniFASNetV2", weights_path, box_mapping), device)


@register_pad("minifasnet_v1se")
def build_v1se(device: str | torch.device = "cpu", weights_path: str | Path | None = None,
               box_mapping: str = "mtcnn_to_retinaface", **kw) -> PADModel:
    check_options("pad", "minifasnet_v1se", kw)
    return _finish(MiniFASNetPAD("MiniFASNetV1SE", weights_path, box_mapping), device)


@register_pad("minifasnet_ensemble")
def build_ensemble(device: str | torch.device = "cpu", weights_path=None, box_mapping: str = "mtcnn_to_retinaface",
                   **kw) -> PADModel:
    """``weights_path``: ``None``, or a dict ``{"MiniFASNetV2": path, "MiniFASNetV1SE": path}`` (either optional)."""
    if weights_path is not None and not isinstance(weights_path, dict):
        raise TypeError("minifasnet_ensemble weights_path must be a dict {'MiniFASNetV2': ..., 'MiniFASNetV1SE': ...}")
    check_options("pad", "minifasnet_ensemble", kw)
    return _finish(MiniFASNetEnsemble(weights_path, box_mapping), device)
