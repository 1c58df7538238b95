"""The RetinaFace (caffe) face detector that the MiniFASNet PAD weights were used with (``detector=retinaface``).

:class:`RetinaFaceCaffe` is the reference detector (one box + confidence per image); :class:`RetinaFaceDetector`
registers it as the harness detector ``retinaface`` (:class:`harness.faces.detect.Detector`).

Reference: minivision-ai/Silent-Face-Anti-Spoofing ``src/anti_spoof_predict.py`` ``Detection.get_bbox`` (Apache-2.0),
behaviour as stated in ``shared/weights/minifasnet/PREPROCESSING.md``:

* if ``H*W >= 192*192`` the BGR image is resized to ``(int(192*sqrt(W/H)), int(192/sqrt(W/H)))`` (w, h),
  ``INTER_LINEAR``;
* ``blob = cv2.dnn.blobFromImage(img, 1, mean=(104, 117, 123))`` (BGR, no scaling, no channel swap);
* output ``detection_out`` rows ``[_, label, conf, l, t, r, b]`` (normalised); the row with the **maximum
  confidence** is taken, whatever its value (the stored 0.6 threshold is not applied);
* corners are scaled back to the ORIGINAL image size: ``l*W, t*H, r*W, b*H``.

:meth:`RetinaFaceCaffe.detect` returns those corners as ``(x1, y1, x2, y2)`` float64 (not truncated) and the
confidence; :func:`harness.models.minifasnet.xyxy_to_xywh` then applies the reference's
``[int(l), int(t), int(r-l+1), int(b-t+1)]`` conversion, so the MiniFASNet crop matches the reference's.

Backends. OpenCV 5 removed the Caffe importer (``cv2.dnn.readNetFromCaffe``), so the default backend is a
PyTorch re-implementation of the network in ``deploy.prototxt`` (MobileNet-0.25-style backbone, 3-level FPN with
2x deconvolution + crop, SSH context modules, 2 anchors per cell at steps 8/16/32) whose weights are read
straight from the ``.caffemodel`` protobuf (a minimal wire-format reader below; no caffe/protobuf dependency).
The max-confidence row of caffe's ``DetectionOutput`` is the highest-scoring prior above its 0.1 confidence
threshold (NMS never removes the top box), so only that prior is decoded (SSD ``CENTER_SIZE``, variances
0.1/0.1/0.2/0.2). ``backend="opencv"`` uses ``cv2.dnn.readNetFromCaffe`` where the installed OpenCV still has it
(4.x); the two agree to float rounding (checked on 2,566 images when this was written: see tests).
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.faces.detect import Detection as FaceDetection
from harness.faces.detect import Detector, register_detector
from harness.models.weights import WeightFile, fetch

SOURCE = "minivision-ai/Silent-Face-Anti-Spoofing @ b6d5f04ad78778917853b25c778acef6d5626d15"

PROTOTXT = WeightFile(
    name="retinaface_caffe_prototxt",
    sha256="9fe2f141b4baee039ed9442da2833e216af40a6ff3e639e7b39258812bcda808",
    source="local",
    member="${shared}/weights/retinaface_caffe/deploy.prototxt",
    license="Apache-2.0",
    provenance=f"{SOURCE}, resources/detection_model/deploy.prototxt",
)
CAFFEMODEL = WeightFile(
    name="retinaface_caffe_model",
    sha256="d08338a2c207df16a9c566f767fea67fb43ba6fff76ce11e938fe3fabefb9402",
    source="local",
    member="${shared}/weights/retinaface_caffe/Widerface-RetinaFace.caffemodel",
    license="Apache-2.0",
    provenance=f"{SOURCE}, resources/detection_model/Widerface-RetinaFace.caffemodel",
)

MEAN_BGR = (104, 117, 123)
TARGET_SIDE = 192  # images with H*W >= 192*192 are resized to about 192*192 pixels, aspect ratio kept
STORED_THRESHOLD = 0.6  # present in the reference, never applied there
DETECTION_OUTPUT_THRESHOLD = 0.1  # confidence_threshold of the prototxt's DetectionOutput layer
VARIANCES = (0.1, 0.1, 0.2, 0.2)
#: (anchor min_sizes, step) per pyramid level, from the prototxt's PriorBox layers (offset 0.5, no clipping)
PRIORS = (((16.0, 32.0), 8.0), ((64.0, 128.0), 16.0), ((256.0, 512.0), 32.0))


@dataclass(frozen=True)
class Detection:
    box: np.ndarray  # (x1, y1, x2, y2) float64, original pixel units
    confidence: float


# --------------------------------------------------------------------------------------------------------------
# .caffemodel reader (protobuf wire format, only the fields needed: NetParameter.layer -> name, blobs)
# --------------------------------------------------------------------------------------------------------------
def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        b = buf[i]
        i += 1
        out |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return out, i


def _fields(buf: memoryview):
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, i = _varint(buf, i)
        elif wire == 1:
            val, i = buf[i:i + 8], i + 8
        elif wire == 2:
            size, i = _varint(buf, i)
            val, i = buf[i:i + size], i + size
        elif wire == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield num, wire, val


def _blob(buf: memoryview) -> np.ndarray:
    data: list[np.ndarray] = []
    shape: list[int] = []
    legacy: dict[int, int] = {}
    for num, wire, val in _fields(buf):
        if num == 5:  # repeated float data (packed, or one value at a time)
            data.append(np.frombuffer(bytes(val), dtype="<f4"))
        elif num == 7:  # BlobShape
            for n2, w2, v2 in _fields(val):
                if n2 == 1 and w2 == 2:
                    j = 0
                    while j < len(v2):
                        d, j = _varint(v2, j)
                        shape.append(d)
                elif n2 == 1:
                    shape.append(v2)
        elif num in (1, 2, 3, 4) and wire == 0:  # legacy num/channels/height/width
            legacy[num] = val
    arr = np.concatenate(data) if data else np.zeros(0, np.float32)
    if not shape and legacy:
        shape = [legacy.get(k, 1) for k in (1, 2, 3, 4)]
    return arr.reshape(shape) if shape else arr


def read_caffemodel(path: str | Path) -> dict[str, list[np.ndarray]]:
    """Layer name -> its weight blobs (float32 arrays), for layers that have any."""
    buf = memoryview(Path(path).read_bytes())
    layers: dict[str, list[np.ndarray]] = {}
    for num, wire, val in _fields(buf):
        if num != 100 or wire != 2:  # NetParameter.layer
            continue
        name, blobs = "", []
        for n2, _w2, v2 in _fields(val):
            if n2 == 1:
                name = bytes(v2).decode()
            elif n2 == 7:
                blobs.append(_blob(v2))
        if blobs:
            layers[name] = blobs
    return layers


# --------------------------------------------------------------------------------------------------------------
# Network (layer names / numbering as in deploy.prototxt)
# --------------------------------------------------------------------------------------------------------------
#: backbone conv1..conv27: (out channels, kernel, stride, depthwise); each is conv -> BN -> scale -> ReLU
_BACKBONE = [
    (8, 3, 2, False), (8, 3, 1, True), (16, 1, 1, False), (16, 3, 2, True), (32, 1, 1, False), (32, 3, 1, True),
    (32, 1, 1, False), (32, 3, 2, True), (64, 1, 1, False), (64, 3, 1, True), (64, 1, 1, False),  # 11: stride 8
    (64, 3, 2, True), (128, 1, 1, False), (128, 3, 1, True), (128, 1, 1, False), (128, 3, 1, True),
    (128, 1, 1, False), (128, 3, 1, True), (128, 1, 1, False), (128, 3, 1, True), (128, 1, 1, False),
    (128, 3, 1, True), (128, 1, 1, False),  # 23: stride 16
    (128, 3, 2, True), (256, 1, 1, False), (256, 3, 1, True), (256, 1, 1, False),  # 27: stride 32
]


class _ConvBN(nn.Module):
    """Caffe Convolution (no bias) + BatchNorm(use_global_stats) + Scale(bias), folded to conv + per-channel affine."""

    def __init__(self, weight: np.ndarray, bn: list[np.ndarray], scale: list[np.ndarray], stride: int, groups: int,
                 eps: float = 9.9999997e-06):
        super().__init__()
        mean, var, factor = bn[0], bn[1], float(bn[2].reshape(-1)[0])
        f = 0.0 if factor == 0 else 1.0 / factor
        mul = scale[0].astype(np.float64) / np.sqrt(var.astype(np.float64) * f + eps)
        add = scale[1].astype(np.float64) - mean.astype(np.float64) * f * mul
        self.register_buffer("weight", torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32)))
        self.register_buffer("mul", torch.from_numpy(mul.astype(np.float32)).view(1, -1, 1, 1))
        self.register_buffer("add", torch.from_numpy(add.astype(np.float32)).view(1, -1, 1, 1))
        self.stride, self.groups, self.pad = stride, groups, weight.shape[-1] // 2

    def forward(self, x):
        return F.conv2d(x, self.weight, None, self.stride, self.pad, 1, self.groups) * self.mul + self.add


class RetinaFaceNet(nn.Module):
    """BGR float blob (mean-subtracted) ``[B,3,H,W]`` -> (loc ``[B,N,4]``, face score ``[B,N]``), N = all priors."""

    def __init__(self, blobs: dict[str, list[np.ndarray]]):
        super().__init__()

        def cbn(i: int, stride: int = 1, groups: int = 1) -> _ConvBN:
            return _ConvBN(blobs[f"conv{i}"][0], blobs[f"batch_norm{i}"], blobs[f"bn_scale{i}"], stride, groups)

        self.backbone = nn.ModuleList(
            cbn(i + 1, s, (c if dw else 1)) for i, (c, _k, s, dw) in enumerate(_BACKBONE)
        )
        self.lateral = nn.ModuleList([cbn(28), cbn(29), cbn(30)])  # strides 8, 16, 32
        self.up = nn.ModuleList()
        for name in ("conv_transpose1", "conv_transpose2"):
            w, b = blobs[name]
            up = nn.ConvTranspose2d(w.shape[0], w.shape[1], w.shape[2], stride=2, bias=True)
            up.weight.data.copy_(torch.from_numpy(w))
            up.bias.data.copy_(torch.from_numpy(b.reshape(-1)))
            self.up.append(up)
        self.merge = nn.ModuleList([cbn(31), cbn(32)])  # after the stride-16 and stride-8 merges
        # SSH modules for strides 8, 16, 32: conv numbers (a, t1, b, t2, c)
        self.ssh = nn.ModuleList(nn.ModuleList(cbn(i) for i in range(s, s + 5)) for s in (33, 38, 43))
        heads = []
        for loc, conf in ((48, 49), (50, 51), (52, 53)):
            pair = nn.ModuleList()
            for i in (loc, conf):
                w, b = blobs[f"conv{i}"]
                c = nn.Conv2d(w.shape[1], w.shape[0], 1, bias=True)
                c.weight.data.copy_(torch.from_numpy(w))
                c.bias.data.copy_(torch.from_numpy(b.reshape(-1)))
                pair.append(c)
            heads.append(pair)
        self.heads = nn.ModuleList(heads)

    @staticmethod
    def _ssh(m: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        a = m[0](x)
        t = F.relu(m[1](x))
        b = m[2](t)
        c = m[4](F.relu(m[3](t)))
        return F.relu(torch.cat([a, b, c], 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = {}
        for i, layer in enumerate(self.backbone, start=1):
            x = F.relu(layer(x))
            if i in (11, 23, 27):
                feats[i] = x
        l8, l16, l32 = (F.relu(m(feats[i])) for m, i in zip(self.lateral, (11, 23, 27)))
        u = self.up[0](l32)[:, :, : l16.shape[2], : l16.shape[3]]  # caffe Crop to the lateral's size, offset 0
        p16 = F.relu(self.merge[0](l16 + u))
        u = self.up[1](p16)[:, :, : l8.shape[2], : l8.shape[3]]
        p8 = F.relu(self.merge[1](l8 + u))
        locs, confs = [], []
        for feat, ssh, (hl, hc) in zip((p8, p16, l32), self.ssh, self.heads):
            f = self._ssh(ssh, feat)
            locs.append(hl(f).permute(0, 2, 3, 1).reshape(f.shape[0], -1, 4))
            confs.append(hc(f).permute(0, 2, 3, 1).reshape(f.shape[0], -1, 2))
        loc = torch.cat(locs, 1)
        score = torch.softmax(torch.cat(confs, 1), dim=2)[..., 1]
        return loc, score


def prior_boxes(img_h: int, img_w: int) -> np.ndarray:
    """SSD PriorBox corners ``[N, 4]`` normalised by the network input size, in the heads' output order."""
    out = []
    for sizes, step in PRIORS:
        fh, fw = _feature_size(img_h, int(math.log2(step))), _feature_size(img_w, int(math.log2(step)))
        ys, xs = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        cx = (xs.reshape(-1, 1) + 0.5) * step
        cy = (ys.reshape(-1, 1) + 0.5) * step
        s = np.asarray(sizes, dtype=np.float64).reshape(1, -1)
        box = np.stack([(cx - s / 2) / img_w, (cy - s / 2) / img_h, (cx + s / 2) / img_w, (cy + s / 2) / img_h], -1)
        out.append(box.reshape(-1, 4))
    return np.concatenate(out).astype(np.float32)


def _feature_size(n: int, halvings: int) -> int:
    for _ in range(halvings):  # 3x3 stride-2 pad-1 convolutions
        n = (n - 1) // 2 + 1
    return n


def decode(loc: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """SSD CENTER_SIZE decoding of one ``loc`` (4,) against one prior (x1,y1,x2,y2), normalised coordinates."""
    loc = loc.astype(np.float32)
    pw, ph = prior[2] - prior[0], prior[3] - prior[1]
    pcx, pcy = (prior[0] + prior[2]) / 2, (prior[1] + prior[3]) / 2
    cx = np.float32(VARIANCES[0]) * loc[0] * pw + pcx
    cy = np.float32(VARIANCES[1]) * loc[1] * ph + pcy
    w = np.exp(np.float32(VARIANCES[2]) * loc[2]) * pw
    h = np.exp(np.float32(VARIANCES[3]) * loc[3]) * ph
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dtype=np.float32)


class RetinaFaceCaffe:
    """``detect(rgb_uint8_hwc) -> Detection | None``: the single most confident face, as the reference takes it."""

    def __init__(self, prototxt: str | Path | None = None, caffemodel: str | Path | None = None,
                 backend: str = "torch"):
        model = Path(caffemodel) if caffemodel is not None else fetch(CAFFEMODEL)
        self.backend = backend
        self._lock = threading.Lock()
        if backend == "torch":
            self.net = RetinaFaceNet(read_caffemodel(model)).eval()
        elif backend == "opencv":
            if not hasattr(cv2.dnn, "readNetFromCaffe"):
                raise RuntimeError(f"OpenCV {cv2.__version__} has no Caffe importer; use backend='torch'")
            proto = Path(prototxt) if prototxt is not None else fetch(PROTOTXT)
            self.net = cv2.dnn.readNetFromCaffe(str(proto), str(model))
        else:
            raise ValueError(f"unknown backend {backend!r} (expected 'torch' or 'opencv')")

    @staticmethod
    def resize_for_detection(bgr: np.ndarray) -> np.ndarray:
        h, w = bgr.shape[:2]
        if w * h >= TARGET_SIDE * TARGET_SIDE:
            ar = w / h
            size = (int(TARGET_SIDE * math.sqrt(ar)), int(TARGET_SIDE / math.sqrt(ar)))
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR)
        return bgr

    def blob(self, frame_rgb: np.ndarray) -> np.ndarray:
        if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB frame, got {frame_rgb.dtype} {frame_rgb.shape}")
        bgr = self.resize_for_detection(np.ascontiguousarray(frame_rgb[:, :, ::-1]))
        return (bgr.astype(np.float32) - np.asarray(MEAN_BGR, np.float32)).transpose(2, 0, 1)[None].copy()

    def _best_normalised(self, frame_rgb: np.ndarray) -> tuple[np.ndarray, float] | None:
        blob = self.blob(frame_rgb)
        if self.backend == "opencv":
            with self._lock:
                self.net.setInput(blob, "data")
                out = np.asarray(self.net.forward("detection_out")).reshape(-1, 7)
            if len(out) == 0:
                return None
            i = int(np.argmax(out[:, 2]))
            if out[i, 2] <= 0:
                return None
            return out[i, 3:7].astype(np.float32), float(out[i, 2])
        with torch.inference_mode():
            loc, score = self.net(torch.from_numpy(blob))
        loc, score = loc[0].numpy(), score[0].numpy()
        i = int(np.argmax(score))
        if score[i] <= DETECTION_OUTPUT_THRESHOLD:
            return None
        return decode(loc[i], prior_boxes(blob.shape[2], blob.shape[3])[i]), float(score[i])

    def detect(self, frame_rgb: np.ndarray) -> Detection | None:
        """Max-confidence box in original pixels, or ``None`` when no prior clears the 0.1 output threshold."""
        best = self._best_normalised(frame_rgb)
        if best is None:
            return None
        (l, t, r, b), conf = best
        h, w = frame_rgb.shape[:2]
        box = np.array([float(l) * w, float(t) * h, float(r) * w, float(b) * h], dtype=np.float64)
        return Detection(box=box, confidence=conf)


# ---------------------------------------------------------------------------------------------- as a Detector
#: landmarks placed in the box by fixed fractions of its width / height (this network predicts no landmarks): the
#: ArcFace 112x112 5-point template, (x, y) / 112, in MTCNN's order (harness.models.base). Alignment from these is
#: approximate; use MTCNN where an embedder's accuracy matters.
BOX_LANDMARKS = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                          [70.7299, 92.2041]], dtype=np.float64) / 112.0


@register_detector("retinaface")
class RetinaFaceDetector(Detector):
    """:class:`RetinaFaceCaffe` as a harness :class:`~harness.faces.detect.Detector`: the most confident face per
    image (``n_faces`` 1), ``min_prob`` on its confidence, 5 landmarks from the box (:data:`BOX_LANDMARKS`).
    Runs on the CPU one image at a time (``batch_size`` / ``device`` are accepted and not used)."""

    def __init__(self, backend: str = "torch", min_prob: float = 0.0, caffemodel: str | None = None,
                 prototxt: str | None = None, batch_size: int = 1, device: str = "cpu"):
        self.net = RetinaFaceCaffe(prototxt=prototxt, caffemodel=caffemodel, backend=backend)
        self.min_prob = float(min_prob)
        self.config = dict(kind="retinaface", backend=backend, min_prob=self.min_prob, select="max_confidence",
                           landmarks="box_template", caffemodel_sha256=CAFFEMODEL.sha256 if caffemodel is None
                           else hashlib.sha256(Path(caffemodel).read_bytes()).hexdigest())

    def detect(self, images: list[np.ndarray]) -> list[FaceDetection | None]:
        out: list[FaceDetection | None] = []
        for im in images:
            d = self.net.detect(np.ascontiguousarray(im))
            if d is None or d.confidence < self.min_prob:
                out.append(None)
                continue
            x1, y1, x2, y2 = d.box
            lm = np.c_[x1 + BOX_LANDMARKS[:, 0] * (x2 - x1), y1 + BOX_LANDMARKS[:, 1] * (y2 - y1)]
            out.append(FaceDetection(box=d.box.astype(np.float64), prob=float(d.confidence), landmarks=lm, n_faces=1))
        return out
