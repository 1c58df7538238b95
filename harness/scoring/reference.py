"""The reference scoring engine: decode -> detect -> (embed, PAD), one image at a time, in the calling process.

It states the scoring contract (statuses, reasons, cache keys, stats: :mod:`harness.scoring.table`) in the
plainest code; the batched engine (:mod:`harness.scoring.batched`) is checked against it
(``tests/scoring/test_engine_parity.py``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from harness.faces.align import warp_to_template
from harness.faces.decode import (DecodeError, content_hash, decode_note, decode_sample, read_bytes, reject_code,
                                  sample_hw)
from harness.faces.detect import Detection, MTCNNDetector
from harness.models.base import Embedder, PADModel
from harness.scoring.store import ScoreStore
from harness.scoring.table import Chunk, Ledger, ScoreTable, stage_ids


def run_model(model: torch.nn.Module, crops: list[np.ndarray], batch_size: int, amp: bool) -> np.ndarray:
    """``model`` on uint8 HxWx3 crops in slices of ``batch_size`` (optionally under AMP on CUDA)."""
    outs = []
    dev = model.device
    for s in range(0, len(crops), batch_size):
        x = torch.from_numpy(np.stack(crops[s:s + batch_size])).permute(0, 3, 1, 2).contiguous()
        x = x.to(dev, non_blocking=True)
        with torch.inference_mode(), torch.autocast(dev.type, enabled=amp and dev.type == "cuda"):
            y = model(x)
        outs.append(y.float().cpu().numpy())
    return np.concatenate(outs) if outs else np.zeros((0,))


def _read_chunk(led: Ledger, idx: list[int]) -> tuple[dict[int, bytes], dict[int, str]]:
    """Read and hash each row of the chunk (video frames share one read); unreadable rows are rejected."""
    blobs: dict[int, bytes] = {}
    hashes: dict[int, str] = {}
    by_path: dict[str, tuple[bytes, str] | DecodeError] = {}
    for i in idx:
        if i in led.set_aside:  # set aside by the manifest: never opened
            continue
        path = led.manifest.at[i, "path"]
        if path not in by_path:
            try:
                data = read_bytes(path)
                by_path[path] = (data, content_hash(data))
            except DecodeError as e:
                by_path[path] = e
        got = by_path[path]
        if isinstance(got, DecodeError):
            led.reject(i, reject_code(got), str(got))
        else:
            blobs[i], hashes[i] = got
    return blobs, hashes


def _decode_chunk(led: Ledger, chunk: Chunk, blobs: dict[int, bytes], max_pixels) -> dict[int, np.ndarray]:
    """Decode the rows that still need pixels; fully cached rows only get their decode note from the header."""
    need = chunk.needs_image()
    images: dict[int, np.ndarray] = {}
    sizes: dict[str, tuple[int, int] | None] = {}  # one size per file (a video's frames share it)
    for i in sorted(set(chunk.live) - set(need)):
        if led.frames[i] < 0 and (note := decode_note(blobs[i], led.manifest.at[i, "path"], max_pixels)):
            led.notes[i] = note
        if not np.isnan(chunk.hit[chunk.k_det[i]][0]):  # a cached face: its frame size for pad_context_clamped
            path = led.manifest.at[i, "path"]
            hw = sizes.get(path) if path in sizes else sample_hw(blobs[i], path, led.frames[i], max_pixels)
            sizes[path] = hw
            if hw is not None:
                led.sizes[i] = hw
    for i in need:
        note: list[str] = []
        try:
            images[i] = decode_sample(blobs[i], led.manifest.at[i, "path"], led.frames[i], max_pixels=max_pixels,
                                      notes=note)
        except DecodeError as e:
            led.reject(i, reject_code(e), str(e))
        if note:
            led.notes[i] = "; ".join(note)
        if i in images:
            led.sizes[i] = (int(images[i].shape[0]), int(images[i].shape[1]))
    return images


def _score_chunk(chunk: Chunk, images, detector, embedder, pad, batch_size: int, amp: bool) -> None:
    to_detect = chunk.to_detect(images)
    found = dict(zip(to_detect, detector.detect([images[i] for i in to_detect]))) if to_detect else {}
    chunk.record_detections(to_detect, found)
    det = chunk.ledger.det
    todo = chunk.todo("embed")
    out = []
    if todo:
        crops = [warp_to_template(images[i], Detection.from_array(det[i]).landmarks, embedder.template,
                                  embedder.crop_size) for i in todo]
        out = run_model(embedder, crops, batch_size, amp)
    chunk.record_embeddings(todo, out)
    todo = chunk.todo("pad")
    out = []
    if todo:
        out = run_model(pad, [pad.crop(images[i], det[i, :4]) for i in todo], batch_size, amp).reshape(-1)
    chunk.record_pad(todo, out)


def score_manifest(
    manifest: pd.DataFrame,
    detector: MTCNNDetector,
    embedder: Embedder,
    pad: PADModel,
    cache: ScoreStore,
    batch_size: int = 32,
    chunk_size: int = 128,
    amp: bool = False,
    progress: bool = True,
    max_pixels: int | None = None,
) -> ScoreTable:
    """Score every manifest row (:mod:`harness.scoring.table`); ``max_pixels``: the decode pixel cap (None: the
    default)."""
    n = len(manifest)
    led = Ledger(manifest, embedder.dim, stage_ids(detector, embedder, pad, cache, max_pixels))
    bar = tqdm(total=n, desc="scoring", unit="img", disable=not progress)
    for start in range(0, n, chunk_size):
        idx = list(range(start, min(n, start + chunk_size)))
        blobs, hashes = _read_chunk(led, idx)
        chunk = led.open_chunk(hashes, idx, cache)
        images = _decode_chunk(led, chunk, blobs, max_pixels)
        blobs.clear()
        _score_chunk(chunk, images, detector, embedder, pad, batch_size, amp)
        cache.put_many(chunk.new)
        chunk.collect()
        bar.update(len(idx))
    bar.close()
    return led.table(pad)
