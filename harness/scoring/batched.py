"""The batched scoring engine: the contract of the reference engine (:mod:`harness.scoring.reference`), built for
throughput. :func:`run_batched` is a short pipeline over chunks of ``chunk_size`` manifest rows:

1. **Load** (:mod:`harness.scoring.loader`): DataLoader workers read, hash, probe the score store (read-only) and
   decode only what a stage still needs; plain JPEGs with torchvision (bit-identical to Pillow), or their bytes
   for one nvjpeg batch decode on CUDA; everything else through :func:`harness.faces.decode.decode_sample`.
   Images of one size are stacked, uploaded here (:class:`DeviceImages`).
2. **Detect** (:mod:`harness.scoring.detection`): MTCNN on batches of equal-size images on the device, with the
   vectorised cascade :func:`harness.faces.mtcnn_batched.mtcnn_detect` (its boxes equal facenet-pytorch's).
3. **Embed** and **PAD** (:mod:`harness.scoring.stages`): aligned and PAD crops as device warps (OpenCV on the
   CPU, bit-exact), model forwards in ``batch_size`` slices, optionally AMP / channels-last.
4. **Back-off** (:mod:`harness.scoring.backoff`): a CUDA out-of-memory in a stage halves its batch size.

Statuses, reasons, cache keys, cached values and ``stats`` are counted by :mod:`harness.scoring.table`, as in the
reference engine; the numbers agree within the tolerances ``tests/scoring`` states.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import pandas as pd
import torch
from tqdm.auto import tqdm

from harness.faces.decode import DecodeError, decode_sample, read_bytes, reject_code
from harness.faces.mtcnn_batched import batched_nms_per_image, detections_from, mtcnn_detect, triton_nms_kernel
from harness.scoring.backoff import BackOff
from harness.scoring.blocks import BlockWriter
from harness.scoring.detection import detect_stage
from harness.scoring.loader import ChunkSource, collate_identity, gpu_decode
from harness.scoring.stages import Forward, embed_stage, pad_stage
from harness.scoring.store import ScoreStore
from harness.scoring.table import Chunk, Ledger, ScoreTable, stage_ids
from harness.scoring.timing import StageTimer

log = logging.getLogger("harness.scoring")

__all__ = ["BackOff", "BatchedOptions", "DeviceImages", "batched_nms_per_image", "detections_from", "mtcnn_detect",
           "run_batched", "score_manifest_batched"]

# names the benchmarks used before the split (benchmarks/bench_throughput.py)
_ChunkSource, _identity, _gpu_decode = ChunkSource, collate_identity, gpu_decode
_triton_nms_kernel = triton_nms_kernel


@dataclass
class BatchedOptions:
    """Settings of :func:`run_batched` (see :func:`score_manifest_batched` for each)."""

    batch_size: int = 32
    chunk_size: int = 128
    amp: bool = False
    progress: bool = True
    detect_batch_size: int | None = None
    workers: int = 0
    prefetch_factor: int = 2
    device: str | torch.device | None = None
    gpu_decode: bool | None = None
    fast_detect: bool = True
    channels_last: bool = False
    pad_crop: str = "fixed"
    nms: str = "auto"
    profile: dict | None = None
    max_pixels: int | None = None

    def check(self) -> None:
        if self.pad_crop not in ("fixed", "grid_sample"):
            raise ValueError(f"pad_crop must be 'fixed' or 'grid_sample', got {self.pad_crop!r}")
        if self.nms not in ("auto", "torchvision", "triton"):
            raise ValueError(f"nms must be 'auto', 'torchvision' or 'triton', got {self.nms!r}")


def score_manifest_batched(manifest: pd.DataFrame, detector, embedder, pad, cache: ScoreStore, batch_size: int = 32,
                           chunk_size: int = 128, amp: bool = False, progress: bool = True, **options) -> ScoreTable:
    """Score every manifest row: the contract of :func:`harness.scoring.reference.score_manifest`.

    Keyword ``options`` (:class:`BatchedOptions`): ``detect_batch_size``: MTCNN batch (default:
    ``detector.batch_size``); ``workers``: decoding processes (0 = in this process); ``prefetch_factor``: chunks
    decoded ahead per worker; ``device``; ``gpu_decode``: decode plain JPEGs with nvjpeg (default: on when the
    models are on CUDA); ``fast_detect``: vectorised MTCNN refinement instead of ``MTCNN.detect``;
    ``channels_last``: model forwards in channels-last layout (converts the models' parameters); ``pad_crop``:
    ``"fixed"`` (OpenCV's fixed-point bilinear, equal to the reference crops) or ``"grid_sample"`` (float warp,
    within one grey level); ``nms``: MTCNN's P/R-Net NMS, ``"torchvision"`` or ``"triton"`` (``"auto"``: Triton on
    CUDA when importable); ``profile``: a dict to fill with seconds per stage, counts and back-off events;
    ``max_pixels``: the decode pixel cap (None: the default; applied in the workers). Rows the manifest set aside
    (``reject_code``) are rejected without being opened."""
    opts = BatchedOptions(batch_size=batch_size, chunk_size=chunk_size, amp=amp, progress=progress, **options)
    return run_batched(manifest, detector, embedder, pad, cache, opts)


def run_batched(manifest: pd.DataFrame, detector, embedder, pad, store: ScoreStore,
                opts: BatchedOptions | None = None) -> ScoreTable:
    """The pipeline: load chunks, then detect, embed and PAD each (module docstring)."""
    t_start = time.perf_counter()
    opts = opts or BatchedOptions()
    opts.check()
    run = BatchedRun(manifest, detector, embedder, pad, store, opts)
    bar = tqdm(total=len(manifest), desc="scoring (batched)", unit="img", disable=not opts.progress, smoothing=0.1)
    blocks = BlockWriter(store, run.ledger, manifest, opts.chunk_size, "batched", f"local:{os.getpid()}:{run.dev}")
    for loaded in run.chunks():
        blocks.start()
        run.score(loaded)
        blocks.finish(loaded)
        bar.update(len(loaded["idx"]))
    bar.close()
    blocks.check()  # every manifest row exactly once: scored, failed to acquire or rejected
    table = run.ledger.table(pad)
    run.finish(time.perf_counter() - t_start)
    return table


def model_device(*models) -> torch.device:
    """The first ``torch.device`` among the models' ``device`` attributes (CPU if none has one)."""
    for m in models:
        d = getattr(m, "device", None)
        if isinstance(d, torch.device):
            return d
    return torch.device("cpu")


def decodes_on_gpu(dev: torch.device, gpu_decode: bool | None) -> bool:
    """Whether plain JPEGs are decoded with nvjpeg: on a CUDA device, unless ``gpu_decode`` is False."""
    return dev.type == "cuda" and (gpu_decode is None or bool(gpu_decode))


def run_stage_ids(detector, embedder, pad, store, max_pixels, gpu_decode: bool) -> tuple[str, str, str]:
    """The run's (detection, embedding, PAD) stage ids (:func:`harness.scoring.table.stage_ids`); nvjpeg pixels
    differ from Pillow's (up to ~40 grey levels), so a GPU-decoded run's detections never share cache entries."""
    det_id, emb_id, pad_id = stage_ids(detector, embedder, pad, store, max_pixels)
    return (det_id + "+nvjpeg" if gpu_decode else det_id), emb_id, pad_id


class BatchedRun:
    """One run of the batched engine: resolved settings, the ledger, the stages' back-offs and the loader."""

    def __init__(self, manifest, detector, embedder, pad, store: ScoreStore, opts: BatchedOptions):
        self.detector, self.embedder, self.pad, self.store, self.opts = detector, embedder, pad, store, opts
        dev = torch.device(opts.device) if opts.device is not None else model_device(embedder, pad)
        self.dev = dev
        self.gpu_decode = decodes_on_gpu(dev, opts.gpu_decode)
        self.nms = opts.nms
        if self.nms == "auto":
            self.nms = "triton" if dev.type == "cuda" and triton_nms_kernel() is not None else "torchvision"
        self.timer = StageTimer(opts.profile, dev)
        self.ledger = Ledger(manifest, embedder.dim, run_stage_ids(detector, embedder, pad, store, opts.max_pixels,
                                                                   self.gpu_decode))
        self.backoff = {"detect": BackOff("detect", int(opts.detect_batch_size
                                                       or getattr(detector, "batch_size", 16))),
                        "embed": BackOff("embed", int(opts.batch_size)), "pad": BackOff("pad", int(opts.batch_size))}
        if opts.channels_last:
            for m in (embedder, pad):
                if isinstance(m, torch.nn.Module):
                    m.to(memory_format=torch.channels_last)
        self.forward = Forward(dev, amp=opts.amp, channels_last=opts.channels_last)

    def chunks(self):
        """The loaded chunks, in order (time spent waiting for them: ``wait_decode``)."""
        led, o = self.ledger, self.opts
        source = ChunkSource(led.paths, led.frames, o.chunk_size, led.stage_ids, self.store.path, self.gpu_decode,
                             max_pixels=o.max_pixels, skip=led.set_aside, read=read_bytes)
        loader = torch.utils.data.DataLoader(
            source, batch_size=None, shuffle=False, num_workers=int(o.workers), collate_fn=collate_identity,
            pin_memory=self.dev.type == "cuda", prefetch_factor=int(o.prefetch_factor) if o.workers else None,
            persistent_workers=False)
        it = iter(loader)
        while True:
            with self.timer("wait_decode"):
                try:
                    loaded = next(it)
                except StopIteration:
                    return
            yield loaded

    def score(self, loaded: dict) -> None:
        """Detect, embed and PAD one loaded chunk; store the new values and collect the outputs."""
        led = self.ledger
        for i, (c, e) in loaded["read_err"].items():
            led.reject(i, c, e)
        led.notes.update(loaded.get("notes", {}))
        led.sizes.update(loaded.get("sizes", {}))
        with self.timer("cache"):
            chunk = led.open_chunk(loaded["hash"], loaded["idx"], self.store)
        need = chunk.needs_image()
        images = self.upload(loaded, need)
        led.sizes.update({i: hw for i, (hw, _) in images.where.items()})
        self.run_stages(chunk, [i for i in need if i in images.where and led.status[i] != "rejected"], images)
        with self.timer("cache"):
            self.store.put_many(chunk.new)
        del images
        chunk.collect()

    def upload(self, loaded: dict, need: list[int]) -> "DeviceImages":
        """The chunk's decoded images on the device; rows the workers did not decode are decoded here."""
        led, images = self.ledger, DeviceImages()
        with self.timer("upload"):
            for hw, (rows, t) in loaded["groups"].items():
                images.add_stack(hw, rows, t.to(self.dev, non_blocking=True))
        if loaded.get("jpeg_idx"):
            with self.timer("gpu_decode"):
                gpu_decode(loaded, led.paths, self.dev, images.add, loaded["dec_err"], self.opts.max_pixels)
        for i in need:  # the worker skipped it (cache race) or could not say: decode here
            if i not in images.where and i not in loaded["dec_err"]:
                self.decode_here(i, images, loaded["dec_err"])
        for i in need:
            if i in loaded["dec_err"]:
                led.reject(i, *loaded["dec_err"][i])
        images.stack()
        return images

    def decode_here(self, i: int, images: "DeviceImages", dec_err: dict) -> None:
        led, note = self.ledger, []
        try:
            img = decode_sample(read_bytes(led.paths[i]), led.paths[i], led.frames[i],
                                max_pixels=self.opts.max_pixels, notes=note)
            t = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].to(self.dev)
            images.add(i, (img.shape[0], img.shape[1]), t)
        except DecodeError as e:
            dec_err[i] = (reject_code(e), str(e))
        if note:
            led.notes[i] = "; ".join(note)

    def run_stages(self, chunk: Chunk, decoded: list[int], images: "DeviceImages") -> None:
        """Detection (equal sizes batched, in the reference engine's order), then embeddings, then PAD."""
        where, imgs, det = images.where, images.imgs, self.ledger.det
        to_detect = chunk.to_detect(decoded)
        found = {}
        if to_detect:
            with self.timer("detect"):
                found = detect_stage(to_detect, where, imgs, self.detector, self.backoff["detect"],
                                     fast=self.opts.fast_detect, nms=self.nms, mtcnn_fn=mtcnn_detect)
        chunk.record_detections(to_detect, found)
        todo, out = chunk.todo("embed"), []
        if todo:
            with self.timer("align_embed"):
                out = embed_stage(todo, where, imgs, det, self.embedder, self.forward, self.backoff["embed"])
        chunk.record_embeddings(todo, out)
        todo, out = chunk.todo("pad"), []
        if todo:
            with self.timer("crop_pad"):
                out = pad_stage(todo, where, imgs, det, self.pad, self.forward, self.backoff["pad"],
                                exact=self.opts.pad_crop == "fixed")
        chunk.record_pad(todo, out)

    def finish(self, wall: float) -> None:
        n = len(self.ledger.paths)
        log.info("scored %d samples in %.1f s (%.1f img/s, batched engine on %s)", n, wall, n / max(wall, 1e-9),
                 self.dev)
        if self.opts.profile is not None:
            b = self.backoff
            self.opts.profile.update({
                "total_s": wall, "samples": n, "device": str(self.dev), "gpu_decode": self.gpu_decode,
                "backoff": b["detect"].events + b["embed"].events + b["pad"].events,
                "batch_sizes": {k: v.size for k, v in b.items()}})


class DeviceImages:
    """A chunk's images on the device, stacked by size: ``imgs[size]`` is uint8 ``[B, 3, H, W]`` and
    ``where[row] = (size, index in that stack)``."""

    def __init__(self):
        self.parts: dict[tuple[int, int], list[torch.Tensor]] = {}
        self.counts: dict[tuple[int, int], int] = {}
        self.where: dict[int, tuple[tuple[int, int], int]] = {}
        self.imgs: dict[tuple[int, int], torch.Tensor] = {}

    def add_stack(self, hw: tuple[int, int], rows: list[int], t: torch.Tensor) -> None:
        base = self.counts.get(hw, 0)
        for r, i in enumerate(rows):
            self.where[i] = (hw, base + r)
        self.counts[hw] = base + len(rows)
        self.parts.setdefault(hw, []).append(t)

    def add(self, i: int, hw: tuple[int, int], t: torch.Tensor) -> None:
        self.add_stack(hw, [i], t)

    def stack(self) -> None:
        self.imgs = {hw: (lst[0] if len(lst) == 1 else torch.cat(lst)) for hw, lst in self.parts.items()}
        self.parts = {}


