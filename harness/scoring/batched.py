"""The batched scoring engine: same contract as :func:`harness.scoring.engine.score_manifest`, built for throughput.

Data path, per chunk of ``chunk_size`` manifest rows:

1. **Read, hash, probe, decode** in DataLoader worker processes (``workers``; 0 = in the calling process): each
   file is read once, hashed (sha256, the cache key), looked up in the score cache (read-only), and decoded
   only when a stage still needs the pixels. Plain JPEGs (RGB or grey, no EXIF rotation) decode with
   ``torchvision.io.decode_jpeg`` (bit-identical to the Pillow decode of the simple engine on NUAA; measured in
   ``tests/scoring``); on CUDA their bytes are sent instead and decoded as one batch on the GPU (nvjpeg). Every
   other file (PNG, CMYK, EXIF-rotated JPEG, video frames) goes through :func:`harness.faces.decode.decode_sample`,
   exactly as the simple engine does, so reasons for rejection are the same. Images of one size are stacked in
   the worker (one tensor per size, pinned on CUDA, copied with ``non_blocking``); ``prefetch_factor`` chunks
   per worker are decoded ahead of the models.
2. **Detect**: MTCNN on batches of equal-size images, on the device. :func:`mtcnn_detect` runs
   facenet-pytorch's P/R/O-Net cascade with the refinement stages vectorised (all candidate boxes of a batch are
   cut and area-resized at once, :func:`harness.faces.warp.roi_area_resize`, instead of one ``interpolate`` per
   box; on CUDA, the per-image NMS of all images of a batch in one Triton kernel, :func:`batched_nms_per_image`);
   its boxes and landmarks equal facenet-pytorch's ``MTCNN.detect`` on the same batch (``tests/scoring``). ``fast_detect=False`` calls ``MTCNN.detect`` itself on the device tensor.
3. **Align + embed** and **crop + PAD** from the same decoded batch: similarity matrices
   (:func:`harness.faces.warp.similarity_batch`) applied as one ``affine_grid``/``grid_sample`` warp on a GPU
   (on the CPU, OpenCV's ``warpAffine`` per face is faster than a float warp of whole frames); PAD crops
   from :meth:`PADModel.crop_regions` as axis-aligned warps in OpenCV's fixed-point arithmetic (bit-exact), or
   :meth:`PADModel.crop` on the CPU when a model cannot express its crop that way. Warps and model forwards run
   in ``batch_size`` slices, optionally under AMP and in channels-last layout (both off by default: measured
   no faster on an H100 for these small models, see ``benchmarks/bench_throughput.py --amp-check``).
4. **Out of memory**: a ``torch.cuda.OutOfMemoryError`` in a detector batch or a warp + model slice halves that
   stage's batch size and retries (logged; the smaller size sticks); it gives up only at batch size 1. The
   decoded chunk itself (``chunk_size`` images) must fit.

Statuses, reasons, cache keys, cached values and ``stats`` keys are those of the simple engine; the numbers
agree within the tolerances ``tests/scoring`` states (float32 bilinear warps vs OpenCV's fixed point).
"""

from __future__ import annotations

import io
import logging
import os
import sqlite3
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from harness.faces.align import warp_to_template
from harness.faces.decode import (DEFAULT_MAX_PIXELS, DecodeError, content_hash, decode_image, decode_note,
                                  decode_sample, read_bytes, reject_code)
from harness.faces.detect import Detection
from harness.faces.warp import (align_batch, crop_resize_batch, crop_resize_fixed, roi_area_resize, similarity_batch,
                                summed_area, to_uint8)
from harness.scoring.cache import ScoreCache, cache_key
from harness.scoring.engine import (ScoreTable, apply_detections, collect_outputs, decode_stage_suffix, finish_table,
                                    manifest_rejections)

log = logging.getLogger("harness.scoring")

_FTA = np.full(16, np.nan)  # cached marker for "no face" (same value as the simple engine's)
_JPEG_MAGIC = b"\xff\xd8\xff"


# ----------------------------------------------------------------------------------------------------------------
# Read / hash / probe / decode (runs in DataLoader workers)
# ----------------------------------------------------------------------------------------------------------------
def _plain_jpeg(data: bytes, max_pixels: int | None = None) -> bool:
    """A JPEG that torchvision decodes exactly like the Pillow path: YCbCr/grey, no EXIF rotation, within the pixel
    cap (a larger one goes to Pillow, which refuses or reduces it)."""
    if not data.startswith(_JPEG_MAGIC):
        return False
    try:
        from PIL import Image

        cap = DEFAULT_MAX_PIXELS if max_pixels is None else int(max_pixels)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))  # header only
        with im:
            if im.format != "JPEG" or im.mode not in ("RGB", "L"):
                return False
            if cap > 0 and im.size[0] * im.size[1] > cap:
                return False
            return int(im.getexif().get(0x0112, 1) or 1) == 1
    except Exception:  # noqa: BLE001 - let the full decode report the problem
        return False


def _decode_jpeg_cpu(data: bytes) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision >= 0.29 flags its image codecs as deprecated
        return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)


def _check_shape(img: torch.Tensor) -> bool:
    return img.ndim == 3 and img.shape[0] == 3 and min(img.shape[1:]) >= 8


class _ChunkSource(torch.utils.data.Dataset):
    """Item ``c`` = chunk ``c`` of the manifest, read, hashed, probed against the cache and decoded."""

    def __init__(self, paths, frames, chunk_size: int, stage_ids: tuple[str, str, str], cache_path, gpu_jpeg: bool,
                 max_pixels: int | None = None, skip=()):
        self.paths, self.frames = list(paths), [int(f) for f in frames]
        self.max_pixels = max_pixels
        self.skip = frozenset(int(i) for i in skip)  # rows the manifest set aside: never opened
        self.chunk_size = int(chunk_size)
        self.stage_ids = stage_ids
        self.cache_path = str(cache_path) if cache_path else None
        self.gpu_jpeg = gpu_jpeg
        self._db = None
        self._pid = None

    def __len__(self) -> int:
        return (len(self.paths) + self.chunk_size - 1) // self.chunk_size

    def _probe(self, keys: list[str]) -> dict[str, np.ndarray]:
        if not self.cache_path or not keys or not os.path.exists(self.cache_path):
            return {}
        if self._db is None or self._pid != os.getpid():
            self._db = sqlite3.connect(f"file:{self.cache_path}?mode=ro", uri=True, timeout=60)
            self._pid = os.getpid()
        out = {}
        try:
            for s in range(0, len(keys), 500):
                chunk = keys[s:s + 500]
                q = f"SELECT key, value FROM entries WHERE key IN ({','.join('?' * len(chunk))})"
                for k, v in self._db.execute(q, chunk):
                    out[k] = np.load(io.BytesIO(v), allow_pickle=False)
        except sqlite3.Error:  # no table yet, locked, ...: decode everything; the main process decides
            return {}
        return out

    def __getitem__(self, c: int) -> dict:
        idx = list(range(c * self.chunk_size, min(len(self.paths), (c + 1) * self.chunk_size)))
        det_id, emb_id, pad_id = self.stage_ids
        hashes: dict[int, str] = {}
        read_err: dict[int, tuple[str, str]] = {}  # row -> (code, reason)
        blobs: dict[int, bytes] = {}
        notes: dict[int, str] = {}
        by_path: dict[str, tuple[bytes, str] | tuple[str, str]] = {}  # video frames share one read + hash
        for i in idx:
            if i in self.skip:
                continue
            p = self.paths[i]
            if p not in by_path:
                try:
                    data = read_bytes(p)
                    by_path[p] = (data, content_hash(data))
                except DecodeError as e:
                    by_path[p] = (reject_code(e), str(e))
            got = by_path[p]
            if isinstance(got[0], str):
                read_err[i] = got
            else:
                blobs[i], hashes[i] = got
        keys = {i: (cache_key(h, self.frames[i], det_id), cache_key(h, self.frames[i], det_id, emb_id),
                    cache_key(h, self.frames[i], det_id, pad_id)) for i, h in hashes.items()}
        hit = self._probe([k for ks in keys.values() for k in ks])
        groups: dict[tuple[int, int], tuple[list[int], list[torch.Tensor]]] = {}
        jpeg_idx, jpeg_blobs = [], []
        dec_err: dict[int, tuple[str, str]] = {}  # row -> (code, reason)
        for i in hashes:
            kd, ke, kp = keys[i]
            data = blobs[i]
            if kd in hit and (np.isnan(hit[kd][0]) or (ke in hit and kp in hit)):
                if self.frames[i] < 0 and (note := decode_note(data, self.paths[i], self.max_pixels)):
                    notes[i] = note
                continue  # nothing left to compute for this sample
            try:
                img = None
                if self.frames[i] < 0 and _plain_jpeg(data, self.max_pixels):
                    if self.gpu_jpeg:
                        jpeg_idx.append(i)
                        jpeg_blobs.append(data)
                        continue
                    try:
                        img = _decode_jpeg_cpu(data)
                    except RuntimeError:
                        img = None  # fall back to Pillow, which names the problem
                    if img is not None and not _check_shape(img):
                        img = None
                if img is None:
                    note: list[str] = []
                    arr = decode_sample(data, self.paths[i], self.frames[i], max_pixels=self.max_pixels, notes=note)
                    img = torch.from_numpy(arr if arr.flags.writeable else arr.copy()).permute(2, 0, 1)
                    if note:
                        notes[i] = "; ".join(note)
            except DecodeError as e:
                dec_err[i] = (reject_code(e), str(e))
                continue
            g = groups.setdefault((int(img.shape[1]), int(img.shape[2])), ([], []))
            g[0].append(i)
            g[1].append(img)
        out = {
            "idx": idx, "hash": hashes, "read_err": read_err, "dec_err": dec_err, "notes": notes,
            "groups": {hw: (rows, torch.stack(ims).contiguous()) for hw, (rows, ims) in groups.items()},
            "jpeg_idx": jpeg_idx,
        }
        if jpeg_blobs:
            lens = [len(b) for b in jpeg_blobs]
            out["jpeg"] = torch.frombuffer(bytearray(b"".join(jpeg_blobs)), dtype=torch.uint8)
            out["jpeg_len"] = lens
        return out


def _identity(x):
    return x


# ----------------------------------------------------------------------------------------------------------------
# MTCNN with vectorised refinement stages
# ----------------------------------------------------------------------------------------------------------------
_TRITON_NMS = None


def _triton_nms_kernel():
    """A per-image greedy NMS kernel (one program per image, all images at once), or None without Triton."""
    global _TRITON_NMS
    if _TRITON_NMS is None:
        try:
            import triton
            import triton.language as tl
        except ImportError:
            _TRITON_NMS = False
            return None

        @triton.jit
        def _nms(boxes_ptr, starts_ptr, counts_ptr, keep_ptr, thr, BLOCK: tl.constexpr):
            pid = tl.program_id(0)
            start = tl.load(starts_ptr + pid)
            n = tl.load(counts_ptr + pid)
            offs = tl.arange(0, BLOCK)
            inside = offs < n
            row = boxes_ptr + (start + offs) * 4
            x1 = tl.load(row + 0, mask=inside, other=0.0)
            y1 = tl.load(row + 1, mask=inside, other=0.0)
            x2 = tl.load(row + 2, mask=inside, other=0.0)
            y2 = tl.load(row + 3, mask=inside, other=0.0)
            area = (x2 - x1) * (y2 - y1)
            removed = (offs >= n).to(tl.int32)
            for i in range(0, n):
                gone = tl.sum(tl.where(offs == i, removed, 0))
                if gone == 0:  # box i is kept: it removes the lower-scored boxes it overlaps
                    bi = boxes_ptr + (start + i) * 4
                    ax1 = tl.load(bi + 0)
                    ay1 = tl.load(bi + 1)
                    ax2 = tl.load(bi + 2)
                    ay2 = tl.load(bi + 3)
                    w = tl.maximum(tl.minimum(ax2, x2) - tl.maximum(ax1, x1), 0.0)
                    h = tl.maximum(tl.minimum(ay2, y2) - tl.maximum(ay1, y1), 0.0)
                    inter = w * h
                    sa = (ax2 - ax1) * (ay2 - ay1)
                    iou = tl.math.div_rn(inter, sa + area - inter)
                    removed = removed | ((offs > i) & (iou > thr)).to(tl.int32)
            tl.store(keep_ptr + start + offs, (removed == 0).to(tl.int8), mask=inside)

        _TRITON_NMS = _nms
    return _TRITON_NMS or None


def batched_nms_per_image(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float,
                          impl: str = "torchvision") -> torch.Tensor:
    """``torchvision.ops.batched_nms`` (NMS within each ``idxs`` group; kept indices by decreasing score).

    ``impl="triton"`` (CUDA): every group's greedy suppression in parallel, one Triton program per group, with
    torchvision's IoU arithmetic (float32, IEEE division, suppress when IoU > threshold) on the same score order
    (stable sort); falls back to torchvision for groups of more than 8192 boxes or without Triton."""
    from torchvision.ops import batched_nms

    kernel = _triton_nms_kernel() if impl == "triton" and boxes.is_cuda else None
    if kernel is None or boxes.numel() == 0:
        return batched_nms(boxes, scores, idxs, iou_threshold)
    order = torch.argsort(scores, descending=True, stable=True)
    order = order[torch.argsort(idxs[order], stable=True)]
    b = boxes[order].to(torch.float32).contiguous()
    groups = idxs[order]
    counts = torch.bincount(groups, minlength=int(groups.max()) + 1)
    top = int(counts.max())
    if top > 8192:
        return batched_nms(boxes, scores, idxs, iou_threshold)
    starts = (torch.cumsum(counts, 0) - counts).to(torch.int64)
    keep = torch.empty(len(order), dtype=torch.int8, device=boxes.device)
    block = next(v for v in (256, 1024, 4096, 8192) if top <= v)  # few sizes: few Triton compilations
    warps = 4 if block <= 1024 else (8 if block <= 4096 else 16)
    try:
        kernel[(len(counts),)](b, starts, counts.to(torch.int64), keep, float(iou_threshold), BLOCK=block,
                               num_warps=warps, enable_fp_fusion=False)
    except Exception as e:  # noqa: BLE001 - a Triton/driver problem must not stop scoring
        global _TRITON_NMS
        _TRITON_NMS = False
        log.warning("Triton NMS unavailable (%s: %s); using torchvision's batched_nms", type(e).__name__, e)
        return batched_nms(boxes, scores, idxs, iou_threshold)
    kept = order[keep.bool()]
    return kept[torch.argsort(scores[kept], descending=True, stable=True)]


def _refine_inputs(imgs: torch.Tensor, table: torch.Tensor | None, boxes: torch.Tensor, image_inds: torch.Tensor,
                   w: int, h: int, size: int):
    """The clipped box crops of facenet-pytorch's R/O-Net stages, area-resized to ``size`` and normalised, for
    all boxes at once. Boxes whose clipped crop is empty are dropped (facenet-pytorch fails on them)."""
    from facenet_pytorch.models.utils.detect_face import pad

    y, ey, x, ex = pad(boxes, w, h)
    ok = (ey > y - 1) & (ex > x - 1)
    keep = None
    if not ok.all():
        keep = torch.as_tensor(np.flatnonzero(ok), device=boxes.device)
        y, ey, x, ex = y[ok], ey[ok], x[ok], ex[ok]
        boxes, image_inds = boxes[keep], image_inds[keep]
    # facenet-pytorch's per-box crops (img[k, :, y0:y1, x0:x1].unsqueeze(0)) are not channels-last to PyTorch, so
    # they are pooled by the contiguous-layout kernel and concatenated into a contiguous batch: so are these
    im = roi_area_resize(imgs, image_inds, y - 1, ey, x - 1, ex, size, table=table)
    return (im.contiguous() - 127.5) * 0.0078125, boxes, image_inds


def mtcnn_detect(mtcnn, x_u8: torch.Tensor, use_table: bool | None = None, nms: str = "torchvision",
                 timings: dict | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """facenet-pytorch's MTCNN cascade on ``uint8 [B, 3, H, W]`` images (on the nets' device), with every
    candidate box of the batch cropped and resized in one step. Returns, per image, the boxes ``[n, 5]``
    (x1, y1, x2, y2, prob) and landmarks ``[n, 5, 2]`` that ``detect_face`` returns for the same batch.

    The tensors keep facenet-pytorch's memory layouts (channels-last frames: it permutes a BHWC batch; contiguous
    R/O-Net crops), so that the convolutions run the same kernels and give the same numbers on the GPU too.
    ``use_table``: pool the R/O-Net crops from a summed-area table (default: off the CPU; see
    :func:`harness.faces.warp.roi_area_resize`). ``nms``: ``"torchvision"`` (what facenet-pytorch calls) or
    ``"triton"`` (:func:`batched_nms_per_image`, CUDA) for the P- and R-Net stages; the O-Net stage keeps
    facenet-pytorch's own NumPy "Min" NMS. ``timings``: a dict to add synchronised seconds per step to.

    On CUDA, cuDNN runs these convolutions in TF32 by default, so a last-bit difference in a crop can move an
    output by ~1e-3 and, for a box near a threshold, change which box survives: that is why the crops and
    layouts here follow facenet-pytorch's exactly."""
    from facenet_pytorch.models.utils.detect_face import (batched_nms_numpy, bbreg, fixed_batch_process,
                                                          generateBoundingBox, imresample, rerec)

    pnet, rnet, onet = mtcnn.pnet, mtcnn.rnet, mtcnn.onet
    thr, factor, minsize = mtcnn.thresholds, mtcnn.factor, mtcnn.min_face_size
    dev = x_u8.device
    dtype = next(pnet.parameters()).dtype
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        if timings is not None:
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            now = time.perf_counter()
            timings[name] = timings.get(name, 0.0) + now - clock[0]
            clock[0] = now

    def nms_(bx, sc, ii, t):
        return batched_nms_per_image(bx, sc, ii, t, impl=nms)

    imgs = x_u8.to(dtype, memory_format=torch.channels_last)
    b, _, h, w = imgs.shape
    m = 12.0 / minsize
    minl = min(h, w) * m
    scales, s = [], m
    while minl >= 12:
        scales.append(s)
        s *= factor
        minl *= factor

    # stage 1: P-Net over the pyramid, NMS per scale and image, then per image
    boxes, inds, picks, offset = [], [], [], 0
    lap("convert")
    for scale in scales:
        im = imresample(imgs, (int(h * scale + 1), int(w * scale + 1)))
        lap("pyramid")
        reg, probs = pnet((im - 127.5) * 0.0078125)
        lap("pnet")
        bs, ii = generateBoundingBox(reg, probs[:, 1], scale, thr[0])
        boxes.append(bs)
        inds.append(ii)
        picks.append(nms_(bs[:, :4], bs[:, 4], ii, 0.5) + offset)
        offset += bs.shape[0]
        lap("pnet_nms")
    boxes, image_inds = torch.cat(boxes), torch.cat(inds)
    pick = torch.cat(picks)
    boxes, image_inds = boxes[pick], image_inds[pick]
    pick = nms_(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
    boxes, image_inds = boxes[pick], image_inds[pick]
    regw, regh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    boxes = torch.stack([boxes[:, 0] + boxes[:, 5] * regw, boxes[:, 1] + boxes[:, 6] * regh,
                         boxes[:, 2] + boxes[:, 7] * regw, boxes[:, 3] + boxes[:, 8] * regh, boxes[:, 4]], dim=1)
    boxes = rerec(boxes)
    lap("pnet_nms")

    if use_table is None:
        use_table = dev.type != "cpu"
    table = summed_area(x_u8) if len(boxes) and use_table else None
    # stage 2: R-Net on 24x24 crops
    if len(boxes):
        im, boxes, image_inds = _refine_inputs(imgs, table, boxes, image_inds, w, h, 24)
        lap("crops")
        reg, prob = fixed_batch_process(im, rnet)
        lap("rnet_onet")
        score = prob[:, 1]
        ipass = score > thr[1]
        boxes = torch.cat([boxes[ipass, :4], score[ipass, None]], dim=1)
        image_inds, mv = image_inds[ipass], reg[ipass]
        pick = nms_(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes, image_inds, mv = boxes[pick], image_inds[pick], mv[pick]
        boxes = rerec(bbreg(boxes, mv))
        lap("rnet_nms")

    # stage 3: O-Net on 48x48 crops, landmarks, NMS ("Min") per image
    points = torch.zeros(0, 5, 2, device=dev)
    if len(boxes):
        im, boxes, image_inds = _refine_inputs(imgs, table, boxes, image_inds, w, h, 48)
        lap("crops")
        reg, lms, prob = fixed_batch_process(im, onet)
        lap("rnet_onet")
        score = prob[:, 1]
        ipass = score > thr[2]
        lms = lms[ipass]
        boxes = torch.cat([boxes[ipass, :4], score[ipass, None]], dim=1)
        image_inds, mv = image_inds[ipass], reg[ipass]
        wi = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        hi = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        points = torch.stack([wi * lms[:, :5] + boxes[:, 0:1] - 1, hi * lms[:, 5:10] + boxes[:, 1:2] - 1], dim=2)
        boxes = bbreg(boxes, mv)
        pick = batched_nms_numpy(boxes[:, :4], boxes[:, 4], image_inds, 0.7, "Min")
        boxes, image_inds, points = boxes[pick], image_inds[pick], points[pick]
        lap("onet_nms")

    boxes_np, points_np, inds_np = boxes.cpu().numpy(), points.cpu().numpy(), image_inds.cpu().numpy()
    out = ([boxes_np[inds_np == i] for i in range(b)], [points_np[inds_np == i] for i in range(b)])
    lap("split")
    return out


def detections_from(detector, boxes: list[np.ndarray], points: list[np.ndarray]) -> list[Detection | None]:
    """``MTCNN.detect``'s per-image post-processing (largest box first) and the detector's own selection."""
    out = []
    for box, pts in zip(boxes, points):
        if len(box) == 0:
            out.append(None)
            continue
        order = np.argsort((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]))[::-1]
        box, pts = box[order], pts[order]
        out.append(detector._pick(box[:, :4], box[:, 4], pts))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Batch-size back-off
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class BackOff:
    """Runs ``fn(start, stop)`` over ``[0, n)`` in slices of ``size``; on CUDA out-of-memory halves ``size`` and
    retries the slice (the smaller size sticks for the rest of the run). Gives up at size 1."""

    stage: str
    size: int
    events: list = field(default_factory=list)

    def run(self, fn, n: int) -> list:
        out, s = [], 0
        while s < n:
            bs = min(self.size, n - s)
            oom = False
            try:
                out.append(fn(s, s + bs))
                s += bs
            except torch.cuda.OutOfMemoryError:
                if bs <= 1:
                    raise
                oom = True
            if oom:  # outside the except block, so the failed batch's tensors can be freed
                self.size = max(1, bs // 2)
                self.events.append({"stage": self.stage, "from": bs, "to": self.size})
                log.warning("%s: CUDA out of memory at batch size %d; retrying at %d", self.stage, bs, self.size)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
        return out


# ----------------------------------------------------------------------------------------------------------------
# The engine
# ----------------------------------------------------------------------------------------------------------------
def _model_device(*models) -> torch.device:
    for m in models:
        d = getattr(m, "device", None)
        if isinstance(d, torch.device):
            return d
    return torch.device("cpu")


class _Timer:
    def __init__(self, profile: dict | None, device: torch.device):
        self.profile, self.cuda = profile, device.type == "cuda"

    def __call__(self, stage: str):
        return _Span(self, stage)


class _Span:
    def __init__(self, timer: _Timer, stage: str):
        self.t, self.stage = timer, stage

    def __enter__(self):
        if self.t.profile is not None:
            if self.t.cuda:
                torch.cuda.synchronize()
            self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        if self.t.profile is not None:
            if self.t.cuda:
                torch.cuda.synchronize()
            key = f"{self.stage}_s"
            self.t.profile[key] = self.t.profile.get(key, 0.0) + time.perf_counter() - self.t0


def score_manifest_batched(
    manifest: pd.DataFrame,
    detector,
    embedder,
    pad,
    cache: ScoreCache,
    batch_size: int = 32,
    chunk_size: int = 128,
    amp: bool = False,
    progress: bool = True,
    *,
    detect_batch_size: int | None = None,
    workers: int = 0,
    prefetch_factor: int = 2,
    device: str | torch.device | None = None,
    gpu_decode: bool | None = None,
    fast_detect: bool = True,
    channels_last: bool = False,
    pad_crop: str = "fixed",
    nms: str = "auto",
    profile: dict | None = None,
    max_pixels: int | None = None,
) -> ScoreTable:
    """Score every manifest row: the contract of :func:`harness.scoring.engine.score_manifest`.

    ``detect_batch_size``: MTCNN batch (default: ``detector.batch_size``); ``workers``: decoding processes (0 = in
    this process); ``gpu_decode``: decode plain JPEGs with nvjpeg (default: on when the models are on CUDA);
    ``fast_detect``: vectorised MTCNN refinement (:func:`mtcnn_detect`) instead of ``MTCNN.detect``;
    ``channels_last``: run the model forwards in channels-last layout (converts the models' parameters);
    ``pad_crop``: ``"fixed"`` (OpenCV's fixed-point bilinear, equal to the simple engine's crops) or
    ``"grid_sample"`` (float warp, within one grey level); ``nms``: MTCNN's P/R-Net NMS, ``"torchvision"``
    (facenet-pytorch's) or ``"triton"`` (:func:`batched_nms_per_image`, CUDA; ``"auto"``: Triton on CUDA when
    importable; on an H100 at detect batch 256: MTCNN 3,560 vs 2,530 img/s, end to end within run-to-run noise);
    ``profile``: a dict to fill with seconds per stage, counts and batch-size back-off events; ``max_pixels``: the
    decode pixel cap (None: the default; applied in the workers, before any pixel is decoded). Rows the manifest
    set aside (``reject_code``) are rejected without being opened.
    """
    t_start = time.perf_counter()
    if pad_crop not in ("fixed", "grid_sample"):
        raise ValueError(f"pad_crop must be 'fixed' or 'grid_sample', got {pad_crop!r}")
    if nms not in ("auto", "torchvision", "triton"):
        raise ValueError(f"nms must be 'auto', 'torchvision' or 'triton', got {nms!r}")
    n = len(manifest)
    dev = torch.device(device) if device is not None else _model_device(embedder, pad)
    if gpu_decode is None:
        gpu_decode = dev.type == "cuda"
    gpu_decode = bool(gpu_decode) and dev.type == "cuda"
    if nms == "auto":
        nms = "triton" if dev.type == "cuda" and _triton_nms_kernel() is not None else "torchvision"
    timer = _Timer(profile, dev)
    status = np.array(["scored"] * n, dtype=object)
    reason = np.array([""] * n, dtype=object)
    code = np.array([""] * n, dtype=object)
    notes: dict[int, str] = {}
    pre = manifest_rejections(manifest)
    for i, (c, why) in pre.items():
        status[i], code[i], reason[i] = "rejected", c, why
    det_arr = np.full((n, 16), np.nan)
    pad_score = np.full(n, np.nan)
    emb = np.full((n, embedder.dim), np.nan, dtype=np.float32)
    stats = {f"{stage}_{k}": 0 for stage in ("detect", "embed", "pad") for k in ("computed", "cached")}
    det_id, emb_id, pad_id = detector.detector_id + decode_stage_suffix(max_pixels), embedder.model_id, pad.model_id
    if gpu_decode:  # nvjpeg pixels differ from Pillow's (up to ~40 grey levels): never share cache entries
        det_id += "+nvjpeg"
    mtcnn = getattr(detector, "mtcnn", None)
    det_backoff = BackOff("detect", int(detect_batch_size or getattr(detector, "batch_size", 16)))
    emb_backoff = BackOff("embed", int(batch_size))
    pad_backoff = BackOff("pad", int(batch_size))
    if channels_last:
        for m in (embedder, pad):
            if isinstance(m, torch.nn.Module):
                m.to(memory_format=torch.channels_last)

    paths = [str(p) for p in manifest["path"]]
    frames = [int(f) for f in manifest["frame"]]
    source = _ChunkSource(paths, frames, chunk_size, (det_id, emb_id, pad_id), cache.path, gpu_decode,
                          max_pixels=max_pixels, skip=pre)
    loader = torch.utils.data.DataLoader(
        source, batch_size=None, shuffle=False, num_workers=int(workers), collate_fn=_identity,
        pin_memory=dev.type == "cuda", prefetch_factor=int(prefetch_factor) if workers else None,
        persistent_workers=False)

    def forward(model, crops: torch.Tensor) -> np.ndarray:
        x = crops.to(dev, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(dev.type, enabled=amp and dev.type == "cuda"):
            y = model(x)
        return y.float().cpu().numpy()

    bar = tqdm(total=n, desc="scoring (batched)", unit="img", disable=not progress, smoothing=0.1)
    it = iter(loader)
    while True:
        with timer("wait_decode"):
            try:
                chunk = next(it)
            except StopIteration:
                break
        idx = chunk["idx"]
        hashes = chunk["hash"]
        for i, (c, e) in chunk["read_err"].items():
            status[i], code[i], reason[i] = "rejected", c, e
        notes.update(chunk.get("notes", {}))
        live = [i for i in idx if i in hashes]
        k_det = {i: cache_key(hashes[i], frames[i], det_id) for i in live}
        k_emb = {i: cache_key(hashes[i], frames[i], det_id, emb_id) for i in live}
        k_pad = {i: cache_key(hashes[i], frames[i], det_id, pad_id) for i in live}
        with timer("cache"):
            hit = cache.get_many([*k_det.values(), *k_emb.values(), *k_pad.values()])
        need_image = [i for i in live if not (k_det[i] in hit and (np.isnan(hit[k_det[i]][0])
                                                                   or (k_emb[i] in hit and k_pad[i] in hit)))]

        # images on the device, stacked by size: where[i] = (size, row)
        stacks: dict[tuple[int, int], list[torch.Tensor]] = {}
        counts: dict[tuple[int, int], int] = {}
        where: dict[int, tuple[tuple[int, int], int]] = {}

        def add(i: int, hw: tuple[int, int], t: torch.Tensor) -> None:
            where[i] = (hw, counts.get(hw, 0))
            counts[hw] = counts.get(hw, 0) + 1
            stacks.setdefault(hw, []).append(t)

        with timer("upload"):
            for hw, (rows, t) in chunk["groups"].items():
                base = counts.get(hw, 0)
                for r, i in enumerate(rows):
                    where[i] = (hw, base + r)
                counts[hw] = base + len(rows)
                stacks.setdefault(hw, []).append(t.to(dev, non_blocking=True))
        if chunk.get("jpeg_idx"):
            with timer("gpu_decode"):
                _gpu_decode(chunk, paths, dev, add, chunk["dec_err"], max_pixels)
        for i in need_image:  # the worker skipped it (cache race) or could not say: decode here
            if i not in where and i not in chunk["dec_err"]:
                note: list[str] = []
                try:
                    img = decode_sample(read_bytes(paths[i]), paths[i], frames[i], max_pixels=max_pixels, notes=note)
                    t = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].to(dev)
                    add(i, (img.shape[0], img.shape[1]), t)
                except DecodeError as e:
                    chunk["dec_err"][i] = (reject_code(e), str(e))
                if note:
                    notes[i] = "; ".join(note)
        for i in need_image:
            if i in chunk["dec_err"]:
                status[i], (code[i], reason[i]) = "rejected", chunk["dec_err"][i]
        imgs = {hw: (lst[0] if len(lst) == 1 else torch.cat(lst)) for hw, lst in stacks.items()}
        images = [i for i in need_image if i in where and status[i] != "rejected"]

        # detection: equal sizes batched, in the simple engine's order
        to_detect = [i for i in images if k_det[i] not in hit]
        new: dict[str, np.ndarray] = {}
        if to_detect:
            with timer("detect"):
                found = _detect(to_detect, where, imgs, detector, mtcnn, fast_detect, det_backoff, nms)
            for i in to_detect:
                d = found[i]
                new[k_det[i]] = _FTA if d is None else d.to_array()
            stats["detect_computed"] += len(to_detect)
        stats["detect_cached"] += sum(1 for i in live if k_det[i] in hit)
        hit.update(new)
        faced = apply_detections(live, k_det, hit, status, reason, det_arr)

        # embeddings: one warp per size group and slice, then the forward
        todo = [i for i in faced if k_emb[i] not in hit]
        if todo:
            with timer("align_embed"):  # warp + forward per slice, so that an OOM in either backs off
                def embed_slice(a: int, b: int) -> np.ndarray:
                    return forward(embedder, _aligned_crops(todo[a:b], where, imgs, det_arr, embedder))

                out = np.concatenate(emb_backoff.run(embed_slice, len(todo)))
            for i, v in zip(todo, out):
                new[k_emb[i]] = hit[k_emb[i]] = v.astype(np.float32)
            stats["embed_computed"] += len(todo)
        stats["embed_cached"] += len(faced) - len(todo)
        # PAD
        todo = [i for i in faced if k_pad[i] not in hit]
        if todo:
            with timer("crop_pad"):
                def pad_slice(a: int, b: int) -> np.ndarray:
                    return forward(pad, _pad_crops(todo[a:b], where, imgs, det_arr, pad, exact=pad_crop == "fixed"))

                out = np.concatenate(pad_backoff.run(pad_slice, len(todo))).reshape(-1)
            for i, v in zip(todo, out):
                new[k_pad[i]] = hit[k_pad[i]] = np.asarray([v], dtype=np.float64)
            stats["pad_computed"] += len(todo)
        stats["pad_cached"] += len(faced) - len(todo)
        with timer("cache"):
            cache.put_many(new)
        del imgs, stacks

        collect_outputs(faced, [hit[k_emb[i]] for i in faced], [hit[k_pad[i]] for i in faced],
                        paths, status, reason, emb, pad_score, code=code)
        bar.update(len(idx))
    bar.close()
    table = finish_table(manifest, status, reason, det_arr, pad_score, emb, stats, code=code, notes=notes)
    wall = time.perf_counter() - t_start
    log.info("scored %d samples in %.1f s (%.1f img/s, batched engine on %s)", n, wall, n / max(wall, 1e-9), dev)
    if profile is not None:
        profile.update({"total_s": wall, "samples": n, "device": str(dev), "gpu_decode": gpu_decode,
                        "backoff": det_backoff.events + emb_backoff.events + pad_backoff.events,
                        "batch_sizes": {"detect": det_backoff.size, "embed": emb_backoff.size,
                                        "pad": pad_backoff.size}})
    return table


def _gpu_decode(chunk: dict, paths: list[str], dev: torch.device, add, dec_err: dict, max_pixels=None) -> None:
    """nvjpeg batch decode of the chunk's plain JPEGs; a batch failure falls back to one-by-one, then to Pillow."""
    from torchvision.io import ImageReadMode, decode_jpeg

    flat, lens, idx = chunk["jpeg"], chunk["jpeg_len"], chunk["jpeg_idx"]
    offs = np.concatenate([[0], np.cumsum(lens)])
    blobs = [flat[offs[k]:offs[k + 1]] for k in range(len(idx))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            decoded = decode_jpeg(blobs, mode=ImageReadMode.RGB, device=dev)
        except RuntimeError:
            decoded = []
            for b in blobs:
                try:
                    decoded.append(decode_jpeg(b, mode=ImageReadMode.RGB, device=dev))
                except RuntimeError:
                    decoded.append(None)
    for i, b, img in zip(idx, blobs, decoded):
        if img is None or not _check_shape(img):
            try:  # what the simple engine does, error message included
                arr = decode_image(b.numpy().tobytes(), paths[i], max_pixels=max_pixels)
                img = torch.from_numpy(arr.copy()).permute(2, 0, 1).to(dev)
            except DecodeError as e:
                dec_err[i] = (reject_code(e), str(e))
                continue
        add(i, (int(img.shape[1]), int(img.shape[2])), img[None])


def _detect(to_detect, where, imgs, detector, mtcnn, fast: bool, backoff: BackOff,
            nms: str = "torchvision") -> dict[int, Detection | None]:
    found: dict[int, Detection | None] = {}
    if mtcnn is None:  # a detector without facenet-pytorch internals: its own detect() on numpy images
        arrs = [imgs[where[i][0]][where[i][1]].permute(1, 2, 0).cpu().numpy() for i in to_detect]
        return dict(zip(to_detect, detector.detect(arrs)))
    groups: dict[tuple[int, int], list[int]] = {}
    for i in to_detect:
        groups.setdefault(where[i][0], []).append(i)
    for hw, members in groups.items():
        rows = torch.as_tensor([where[i][1] for i in members], device=imgs[hw].device)

        def run(a: int, b: int, hw=hw, members=members, rows=rows) -> None:
            x = imgs[hw].index_select(0, rows[a:b])
            with torch.inference_mode():
                if fast:
                    boxes, points = mtcnn_detect(mtcnn, x, nms=nms)
                    dets = detections_from(detector, boxes, points)
                else:
                    bx, pr, pt = mtcnn.detect(x.permute(0, 2, 3, 1), landmarks=True)
                    dets = [detector._pick(bx[j], pr[j], pt[j]) for j in range(b - a)]
            for i, d in zip(members[a:b], dets):
                found[i] = d

        backoff.run(run, len(members))
    return found


def _aligned_crops(todo, where, imgs, det_arr, embedder) -> torch.Tensor:
    """uint8 ``[N, 3, h, w]`` aligned crops in ``todo`` order: on a GPU one ``grid_sample`` warp per image size;
    on the CPU OpenCV's ``warpAffine`` per face (the simple engine's call: faster there than a float warp of
    whole frames, and bit-exact)."""
    h, w = embedder.crop_size
    lm = det_arr[todo, 6:16].reshape(-1, 5, 2)
    dev = next(iter(imgs.values())).device
    if dev.type == "cpu":
        chips = [warp_to_template(np.ascontiguousarray(imgs[where[i][0]][where[i][1]].permute(1, 2, 0).numpy()),
                                  lm[k], embedder.template, (h, w)) for k, i in enumerate(todo)]
        return torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).contiguous()
    mats = similarity_batch(lm, embedder.template)
    out = torch.empty((len(todo), 3, h, w), dtype=torch.uint8, device=dev)
    by_size: dict[tuple[int, int], list[int]] = {}
    for k, i in enumerate(todo):
        by_size.setdefault(where[i][0], []).append(k)
    for hw, part in by_size.items():
        rows = torch.as_tensor([where[todo[k]][1] for k in part], device=dev)
        src = imgs[hw].index_select(0, rows).float()
        out[torch.as_tensor(part, device=dev)] = to_uint8(align_batch(src, np.arange(len(part)), mats[part], (h, w)))
        del src
    return out


def _pad_crops(todo, where, imgs, det_arr, pad, exact: bool = True) -> torch.Tensor:
    """uint8 ``[N, 3, h, w]`` PAD crops in ``todo`` order: device warps from ``crop_regions``, else ``crop``."""
    h, w = pad.crop_size
    dev = next(iter(imgs.values())).device
    out = torch.empty((len(todo), 3, h, w), dtype=torch.uint8, device=dev)
    by_size: dict[tuple[int, int], list[tuple[int, list]]] = {}
    cpu_side: list[int] = []
    for k, i in enumerate(todo):
        hw = where[i][0]
        regions = pad.crop_regions(hw, det_arr[i, :4])
        ok = regions is not None and len(regions) > 0 and w % len(regions) == 0 and all(
            0 <= x1 <= x2 <= hw[1] - 1 and 0 <= y1 <= y2 <= hw[0] - 1 for x1, y1, x2, y2 in regions)
        if ok:
            by_size.setdefault(hw, []).append((k, regions))
        else:
            cpu_side.append(k)
    for hw, part in by_size.items():
        ks = [k for k, _ in part]
        rects = np.asarray([r for _, r in part], dtype=np.int64)
        rows = [where[todo[k]][1] for k in ks]
        size = (h, w // rects.shape[1])
        if exact:  # OpenCV's fixed-point bilinear: the simple engine's crops bit for bit
            crops = crop_resize_fixed(imgs[hw], rows, rects, size)
        else:
            src = imgs[hw].index_select(0, torch.as_tensor(rows, device=dev)).float()
            crops = to_uint8(crop_resize_batch(src, np.arange(len(ks)), rects, size))
        out[torch.as_tensor(ks, device=dev)] = crops
    for k in cpu_side:
        hw, r = where[todo[k]]
        frame = imgs[hw][r].permute(1, 2, 0).cpu().numpy()
        out[k] = torch.from_numpy(np.ascontiguousarray(pad.crop(frame, det_arr[todo[k], :4]))).permute(2, 0, 1).to(dev)
    return out
