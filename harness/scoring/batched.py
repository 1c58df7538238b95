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

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from harness.faces.align import warp_to_template
from harness.faces.decode import DecodeError, decode_sample, read_bytes, reject_code
from harness.faces.detect import Detection
from harness.faces.mtcnn_batched import (_refine_inputs, _triton_nms_kernel, batched_nms_per_image,  # noqa: F401
                                         detections_from, mtcnn_detect)
from harness.faces.warp import align_batch, crop_resize_batch, crop_resize_fixed, similarity_batch, to_uint8
from harness.scoring.cache import ScoreCache, cache_key
from harness.scoring.decode_source import (_check_shape, _ChunkSource, _decode_jpeg_cpu, _gpu_decode,  # noqa: F401
                                           _identity, _plain_jpeg)
from harness.scoring.engine import (ScoreTable, apply_detections, collect_outputs, decode_stage_suffix, finish_table,
                                    manifest_rejections)

log = logging.getLogger("harness.scoring")

_FTA = np.full(16, np.nan)  # cached marker for "no face" (same value as the simple engine's)

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
                          max_pixels=max_pixels, skip=pre, read=read_bytes)
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
