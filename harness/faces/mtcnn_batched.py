"""facenet-pytorch's MTCNN cascade run on whole batches, for the batched scoring engine
(:mod:`harness.scoring.batched`): a per-image greedy NMS for all images of a batch in one Triton kernel
(:func:`batched_nms_per_image`), the R/O-Net stages with every candidate box cropped and area-resized at once
(:func:`mtcnn_detect`, one function per cascade stage), and the detector's own
selection of one face per image (:func:`detections_from`)."""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from harness.faces.warp import roi_area_resize, summed_area

log = logging.getLogger("harness.scoring")

_TRITON_NMS = None


def triton_nms_kernel():
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

    kernel = triton_nms_kernel() if impl == "triton" and boxes.is_cuda else None
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


def clip_boxes(boxes: torch.Tensor, w, h):
    """facenet-pytorch's ``pad``: boxes truncated to int and clipped to ``[1, w] x [1, h]`` (``w``, ``h``: ints,
    or NumPy arrays of one limit per box: each box's own image in a letterboxed batch); ``(y, ey, x, ex)``."""
    b = boxes.trunc().int().cpu().numpy()
    x, y = np.maximum(b[:, 0], 1), np.maximum(b[:, 1], 1)
    ex = np.minimum(b[:, 2], w).astype(b.dtype)
    ey = np.minimum(b[:, 3], h).astype(b.dtype)
    return y, ey, x, ex


def _refine_inputs(imgs, table: torch.Tensor | None, boxes: torch.Tensor, image_inds: torch.Tensor,
                   w, h, size: int):
    """The clipped box crops of facenet-pytorch's R/O-Net stages, area-resized to ``size`` and normalised, for
    all boxes at once (``w``, ``h``: see :func:`clip_boxes`). Boxes whose clipped crop is empty are dropped
    (facenet-pytorch fails on them)."""
    y, ey, x, ex = clip_boxes(boxes, w, h)
    ok = (ey > y - 1) & (ex > x - 1)
    keep = None
    if not ok.all():
        keep = torch.as_tensor(np.flatnonzero(ok), device=boxes.device)
        y, ey, x, ex = y[ok], ey[ok], x[ok], ex[ok]
        boxes, image_inds = boxes[keep], image_inds[keep]
    # facenet-pytorch's per-box crops (img[k, :, y0:y1, x0:x1].unsqueeze(0)) are not channels-last to PyTorch, so
    # they are pooled by the contiguous-layout kernel and concatenated into a contiguous batch: so are these
    im = roi_area_resize(imgs, image_inds, y - 1, ey, x - 1, ex, size, table=table)  # imgs: a list of originals too
    return (im.contiguous() - 127.5) * 0.0078125, boxes, image_inds


class _Lap:
    """Adds synchronised seconds since the previous lap to ``timings[name]`` (no-op without ``timings``)."""

    def __init__(self, timings: dict | None, dev: torch.device):
        self.timings, self.dev, self.t = timings, dev, time.perf_counter()

    def __call__(self, name: str) -> None:
        if self.timings is not None:
            if self.dev.type == "cuda":
                torch.cuda.synchronize(self.dev)
            now = time.perf_counter()
            self.timings[name] = self.timings.get(name, 0.0) + now - self.t
            self.t = now


def _pyramid_scales(h: int, w: int, minsize: float, factor: float) -> list[float]:
    m = 12.0 / minsize
    minl = min(h, w) * m
    scales, s = [], m
    while minl >= 12:
        scales.append(s)
        s *= factor
        minl *= factor
    return scales


def _level(imgs: torch.Tensor, scale: float, sizes) -> torch.Tensor:
    """One pyramid level: the batch area-resized by ``scale``, or (``sizes``: each image's (h, w) at the top left
    of a letterboxed batch) each image resized on its own, as if alone, and zero-padded to the level's canvas."""
    from facenet_pytorch.models.utils.detect_face import imresample

    _, _, h, w = imgs.shape
    shape = (int(h * scale + 1), int(w * scale + 1))
    if sizes is None:
        return imresample(imgs, shape)
    out = torch.zeros((imgs.shape[0], imgs.shape[1], *shape), dtype=imgs.dtype, device=imgs.device)
    out = out.contiguous(memory_format=torch.channels_last)
    by_size: dict[tuple[int, int], list[int]] = {}
    for k, hw in enumerate(sizes):
        by_size.setdefault(tuple(hw), []).append(k)
    for (ih, iw), ks in by_size.items():
        idx = torch.as_tensor(ks, device=imgs.device)
        lh, lw = int(ih * scale + 1), int(iw * scale + 1)
        out[idx, :, :lh, :lw] = imresample(imgs.index_select(0, idx)[:, :, :ih, :iw], (lh, lw))
    return out


def _pnet_alone(probs: torch.Tensor, sizes, scale: float, level: int, mtcnn) -> torch.Tensor:
    """P-Net face probabilities ``[B, h, w]`` with each letterboxed image's windows that it would not have alone
    (past its own level's edge, or a level below its own pyramid) zeroed."""
    probs = probs.clone()
    for k, (ih, iw) in enumerate(sizes):
        if level >= len(_pyramid_scales(ih, iw, mtcnn.min_face_size, mtcnn.factor)):
            probs[k] = 0
            continue
        lh, lw = int(ih * scale + 1), int(iw * scale + 1)
        oh, ow = -(-(lh - 2) // 2) - 4, -(-(lw - 2) // 2) - 4  # conv 3x3, max-pool 2 (ceil), conv 3x3, conv 3x3
        probs[k, max(oh, 0):, :] = 0
        probs[k, :, max(ow, 0):] = 0
    return probs


def _pnet_stage(mtcnn, imgs: torch.Tensor, nms_, lap: _Lap, sizes=None):
    """P-Net over the image pyramid, NMS per scale and image, then per image; regressed, squared boxes.
    ``sizes``: each image's (h, w) in a letterboxed batch (see :func:`mtcnn_detect`)."""
    from facenet_pytorch.models.utils.detect_face import generateBoundingBox, rerec

    _, _, h, w = imgs.shape
    thr = mtcnn.thresholds
    boxes, inds, picks, offset = [], [], [], 0
    lap("convert")
    for level, scale in enumerate(_pyramid_scales(h, w, mtcnn.min_face_size, mtcnn.factor)):
        im = _level(imgs, scale, sizes)
        lap("pyramid")
        reg, probs = mtcnn.pnet((im - 127.5) * 0.0078125)
        lap("pnet")
        face = probs[:, 1] if sizes is None else _pnet_alone(probs[:, 1], sizes, scale, level, mtcnn)
        bs, ii = generateBoundingBox(reg, face, scale, thr[0])
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
    return boxes, image_inds


def to_originals(boxes: torch.Tensor, image_inds: torch.Tensor, inputs, sizes) -> torch.Tensor:
    """P-Net's squared candidates on a letterboxed input (image ``k`` at ``inputs[k]`` (h, w) in the canvas)
    -> the coordinates of each box's original image (``sizes[k]``), squared again (facenet-pytorch's ``rerec``)."""
    from facenet_pytorch.models.utils.detect_face import rerec

    if not len(boxes):
        return boxes
    ratio = np.asarray([[iw / float(w), ih / float(h)] for (ih, iw), (h, w) in zip(inputs, sizes)])
    r = torch.as_tensor(ratio, dtype=boxes.dtype, device=boxes.device)[image_inds]
    out = boxes.clone()
    out[:, [0, 2]] /= r[:, 0:1]
    out[:, [1, 3]] /= r[:, 1:2]
    return rerec(out)


def _limits(imgs, sizes, image_inds: torch.Tensor):
    """The crop limits (w, h) of :func:`clip_boxes`: the batch's image size, or each box's image size."""
    if sizes is None:
        return imgs.shape[3], imgs.shape[2]
    hw = np.asarray(sizes, dtype=np.int64)[image_inds.cpu().numpy()]
    return hw[:, 1], hw[:, 0]


def _rnet_stage(mtcnn, imgs, table, boxes, image_inds, nms_, lap: _Lap, sizes=None):
    """R-Net on 24x24 crops of the candidates: threshold, NMS per image, regression, squared boxes."""
    from facenet_pytorch.models.utils.detect_face import bbreg, fixed_batch_process, rerec

    w, h = _limits(imgs, sizes, image_inds)
    im, boxes, image_inds = _refine_inputs(imgs, table, boxes, image_inds, w, h, 24)
    lap("crops")
    reg, prob = fixed_batch_process(im, mtcnn.rnet)
    lap("rnet_onet")
    score = prob[:, 1]
    ipass = score > mtcnn.thresholds[1]
    boxes = torch.cat([boxes[ipass, :4], score[ipass, None]], dim=1)
    image_inds, mv = image_inds[ipass], reg[ipass]
    pick = nms_(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
    boxes, image_inds, mv = boxes[pick], image_inds[pick], mv[pick]
    boxes = rerec(bbreg(boxes, mv))
    lap("rnet_nms")
    return boxes, image_inds


def _onet_stage(mtcnn, imgs, table, boxes, image_inds, lap: _Lap, sizes=None):
    """O-Net on 48x48 crops: threshold, landmarks, regression, NMS ("Min") per image."""
    from facenet_pytorch.models.utils.detect_face import batched_nms_numpy, bbreg, fixed_batch_process

    w, h = _limits(imgs, sizes, image_inds)
    im, boxes, image_inds = _refine_inputs(imgs, table, boxes, image_inds, w, h, 48)
    lap("crops")
    reg, lms, prob = fixed_batch_process(im, mtcnn.onet)
    lap("rnet_onet")
    score = prob[:, 1]
    ipass = score > mtcnn.thresholds[2]
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
    return boxes, image_inds, points


def mtcnn_detect(mtcnn, x_u8: torch.Tensor, use_table: bool | None = None, nms: str = "torchvision",
                 timings: dict | None = None, sizes=None,
                 originals: list[torch.Tensor] | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """facenet-pytorch's MTCNN cascade on ``uint8 [B, 3, H, W]`` images (on the nets' device), with every
    candidate box of the batch cropped and resized in one step. Returns, per image, the boxes ``[n, 5]``
    (x1, y1, x2, y2, prob) and landmarks ``[n, 5, 2]`` that ``detect_face`` returns for the same batch.

    The tensors keep facenet-pytorch's memory layouts (channels-last frames: it permutes a BHWC batch; contiguous
    R/O-Net crops), so that the convolutions run the same kernels and give the same numbers on the GPU too.
    ``use_table``: pool the R/O-Net crops from a summed-area table (default: off the CPU; see
    :func:`harness.faces.warp.roi_area_resize`). ``nms``: ``"torchvision"`` (what facenet-pytorch calls) or
    ``"triton"`` (:func:`batched_nms_per_image`, CUDA) for the P- and R-Net stages; the O-Net stage keeps
    facenet-pytorch's own NumPy "Min" NMS. ``timings``: a dict to add synchronised seconds per step to.
    ``sizes``: a letterboxed batch (:mod:`harness.faces.letterbox`), image ``k`` in ``x_u8[k, :, :h, :w]`` for
    ``(h, w) = sizes[k]``: each image's pyramid levels are resized on their own, P-Net windows it would not have
    alone are ignored and R/O-Net crops are clipped to its own size, so that its detections are those of the
    image alone up to float rounding and P-Net windows at its right/bottom edge.

    On CUDA, cuDNN runs these convolutions in TF32 by default, so a last-bit difference in a crop can move an
    output by ~1e-3 and, for a box near a threshold, change which box survives: that is why the crops and
    layouts here follow facenet-pytorch's exactly."""
    dev = x_u8.device
    dtype = next(mtcnn.pnet.parameters()).dtype
    lap = _Lap(timings, dev)

    def nms_(bx, sc, ii, t):
        return batched_nms_per_image(bx, sc, ii, t, impl=nms)

    imgs = x_u8.to(dtype, memory_format=torch.channels_last)
    b = imgs.shape[0]
    boxes, image_inds = _pnet_stage(mtcnn, imgs, nms_, lap, sizes)
    if use_table is None:
        use_table = dev.type != "cpu"
    table = summed_area(x_u8) if len(boxes) and use_table and originals is None else None
    if originals is not None:
        full = [tuple(int(v) for v in o.shape[-2:]) for o in originals]
        boxes = torch.cat([to_originals(boxes[:, :4], image_inds, sizes, full), boxes[:, 4:5]], dim=1) \
            if len(boxes) else boxes
        imgs, sizes = list(originals), full
    if len(boxes):
        boxes, image_inds = _rnet_stage(mtcnn, imgs, table, boxes, image_inds, nms_, lap, sizes)
    points = torch.zeros(0, 5, 2, device=dev)
    if len(boxes):
        boxes, image_inds, points = _onet_stage(mtcnn, imgs, table, boxes, image_inds, lap, sizes)
    boxes_np, points_np, inds_np = boxes.cpu().numpy(), points.cpu().numpy(), image_inds.cpu().numpy()
    out = ([boxes_np[inds_np == i] for i in range(b)], [points_np[inds_np == i] for i in range(b)])
    lap("split")
    return out


def detections_from(detector, boxes: list[np.ndarray], points: list[np.ndarray]) -> list:
    """``MTCNN.detect``'s per-image post-processing (largest box first) and the detector's own selection
    (``detector.pick``: a :class:`harness.faces.detect.Detection` or None per image)."""
    out = []
    for box, pts in zip(boxes, points):
        if len(box) == 0:
            out.append(None)
            continue
        order = np.argsort((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]))[::-1]
        box, pts = box[order], pts[order]
        out.append(detector.pick(box[:, :4], box[:, 4], pts))
    return out
