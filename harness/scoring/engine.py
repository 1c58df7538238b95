"""Score every sample of a manifest: decode -> detect -> (embed, PAD), batched and cached.

Every sample ends in exactly one status: ``scored``, ``fta`` (no face found: failure to acquire) or
``rejected`` (with a ``code`` from :data:`harness.faces.decode.REJECT_CODES` and a one-line ``reason`` naming the
file or row). Rows the manifest already set aside (``reject_code``: outside the root, duplicate, missing,
directory, ...) are rejected without being opened. Stats count what was computed and what came from the cache,
per stage. ``faces`` counts the faces found (the largest is used; more than one is flagged in the accounting) and
``decode_note`` says when an image over ``max_pixels`` was decoded reduced.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from harness.faces.align import warp_to_template
from harness.faces.decode import (DEFAULT_MAX_PIXELS, DecodeError, content_hash, decode_note, decode_sample, read_bytes,
                                  reject_code)
from harness.faces.detect import Detection, MTCNNDetector
from harness.models.base import Embedder, PADModel
from harness.scoring.cache import ScoreCache, cache_key

STATUSES = ("scored", "fta", "rejected")
_FTA = np.full(16, np.nan)  # cached marker for "no face"


@dataclass
class ScoreTable:
    """One row per manifest sample (manifest columns + status, reason, detection, pad_score) + embeddings."""

    samples: pd.DataFrame
    embeddings: np.ndarray  # [N, D] float32, NaN rows where not scored
    stats: dict = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        c = self.samples["status"].value_counts()
        return {s: int(c.get(s, 0)) for s in STATUSES} | {"total": int(len(self.samples))}


def manifest_rejections(manifest: pd.DataFrame) -> dict[int, tuple[str, str]]:
    """``{row: (code, reason)}`` of the rows the manifest set aside (never to be opened)."""
    if "reject_code" not in manifest.columns:
        return {}
    codes = manifest["reject_code"].fillna("").astype(str).to_numpy()
    reasons = (manifest["reject_reason"].fillna("").astype(str).to_numpy() if "reject_reason" in manifest.columns
               else codes)
    return {i: (c, reasons[i] or c) for i, c in enumerate(codes) if c}


def decode_stage_suffix(max_pixels) -> str:
    """Cache-key suffix for the decode settings: a non-default pixel cap can change what a detector sees."""
    return "" if max_pixels is None or int(max_pixels) == DEFAULT_MAX_PIXELS else f"+maxpx{int(max_pixels)}"


def apply_detections(live, k_det, hit, status, reason, det_arr) -> list[int]:
    """Copy each live sample's (cached or new) detection into ``det_arr``; no face -> status ``fta``.

    Returns the indices that have a face and go on to embedding and PAD."""
    for i in live:
        if status[i] == "rejected":
            continue
        det_arr[i] = hit[k_det[i]]
        if np.isnan(det_arr[i, 0]):
            status[i], reason[i] = "fta", "no face detected"
    return [i for i in live if status[i] == "scored"]


def collect_outputs(faced, embs, pads, paths, status, reason, emb, pad_score, code=None) -> None:
    """Store each face's embedding and PAD score; a non-finite output rejects the sample, naming its file."""
    for i, e, p in zip(faced, embs, pads):
        p = float(np.asarray(p).reshape(-1)[0])
        if not np.all(np.isfinite(e)) or not np.isfinite(p):
            status[i], reason[i] = "rejected", f"non-finite model output for {paths[i]}"
            if code is not None:
                code[i] = "non_finite_output"
            continue
        emb[i], pad_score[i] = e, p


def finish_table(manifest, status, reason, det_arr, pad_score, emb, stats, code=None, notes=None) -> ScoreTable:
    """The ScoreTable contract: manifest columns + status, code, reason, detection columns (``faces``: faces found,
    0 for FTA, empty when rejected), pad_score, decode_note."""
    out = manifest.copy()
    n = len(out)
    code = np.array([""] * n, dtype=object) if code is None else code
    for i in range(n):  # a rejection without a code (defensive): name the generic decode failure
        if status[i] == "rejected" and not code[i]:
            code[i] = "corrupt"
        elif status[i] != "rejected":
            code[i] = ""
    out["status"], out["code"], out["reason"] = status, code, reason
    out["det_prob"], out["n_faces"] = det_arr[:, 4], det_arr[:, 5]
    faces = pd.array(np.where(np.isnan(det_arr[:, 5]), 0, det_arr[:, 5]).astype(np.int64), dtype="Int64")
    faces[np.asarray(status == "rejected")] = pd.NA
    out["faces"] = faces
    for j, c in enumerate(("box_x1", "box_y1", "box_x2", "box_y2")):
        out[c] = det_arr[:, j]
    out["pad_score"] = pad_score
    out["decode_note"] = [""] * n if notes is None else [notes.get(i, "") for i in range(n)]
    return ScoreTable(samples=out, embeddings=emb, stats=stats)


def _run_batched(model: torch.nn.Module, crops: list[np.ndarray], batch_size: int, amp: bool) -> np.ndarray:
    outs = []
    dev = model.device
    for s in range(0, len(crops), batch_size):
        x = torch.from_numpy(np.stack(crops[s:s + batch_size])).permute(0, 3, 1, 2).contiguous()
        x = x.to(dev, non_blocking=True)
        with torch.inference_mode(), torch.autocast(dev.type, enabled=amp and dev.type == "cuda"):
            y = model(x)
        outs.append(y.float().cpu().numpy())
    return np.concatenate(outs) if outs else np.zeros((0,))


def score_manifest(
    manifest: pd.DataFrame,
    detector: MTCNNDetector,
    embedder: Embedder,
    pad: PADModel,
    cache: ScoreCache,
    batch_size: int = 32,
    chunk_size: int = 128,
    amp: bool = False,
    progress: bool = True,
    max_pixels: int | None = None,
) -> ScoreTable:
    """Score every manifest row (module docstring); ``max_pixels``: the decode pixel cap (None: the default)."""
    n = len(manifest)
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

    bar = tqdm(total=n, desc="scoring", unit="img", disable=not progress)
    for start in range(0, n, chunk_size):
        idx = list(range(start, min(n, start + chunk_size)))
        blobs: dict[int, bytes] = {}
        hashes: dict[int, str] = {}
        by_path: dict[str, tuple[bytes, str] | DecodeError] = {}  # video frames share one read + hash
        for i in idx:
            if i in pre:  # set aside by the manifest: never opened
                continue
            path = manifest.at[i, "path"]
            if path not in by_path:
                try:
                    data = read_bytes(path)
                    by_path[path] = (data, content_hash(data))
                except DecodeError as e:
                    by_path[path] = e
            got = by_path[path]
            if isinstance(got, DecodeError):
                status[i], code[i], reason[i] = "rejected", reject_code(got), str(got)
            else:
                blobs[i], hashes[i] = got
        live = [i for i in idx if i in hashes]
        frame = {i: int(manifest.at[i, "frame"]) for i in live}
        k_det = {i: cache_key(hashes[i], frame[i], det_id) for i in live}
        k_emb = {i: cache_key(hashes[i], frame[i], det_id, emb_id) for i in live}
        k_pad = {i: cache_key(hashes[i], frame[i], det_id, pad_id) for i in live}
        hit = cache.get_many([*k_det.values(), *k_emb.values(), *k_pad.values()])

        need_image = [i for i in live if not (k_det[i] in hit and (np.isnan(hit[k_det[i]][0]) or (k_emb[i] in hit and k_pad[i] in hit)))]
        images: dict[int, np.ndarray] = {}
        for i in set(live) - set(need_image):  # scores from the cache: the header says whether it was reduced
            if frame[i] < 0 and (note := decode_note(blobs[i], manifest.at[i, "path"], max_pixels)):
                notes[i] = note
        for i in need_image:
            note: list[str] = []
            try:
                images[i] = decode_sample(blobs[i], manifest.at[i, "path"], frame[i], max_pixels=max_pixels, notes=note)
            except DecodeError as e:
                status[i], code[i], reason[i] = "rejected", reject_code(e), str(e)
            if note:
                notes[i] = "; ".join(note)
        blobs.clear()
        by_path.clear()

        # detection
        to_detect = [i for i in images if k_det[i] not in hit]
        new: dict[str, np.ndarray] = {}
        if to_detect:
            for i, d in zip(to_detect, detector.detect([images[i] for i in to_detect])):
                new[k_det[i]] = _FTA if d is None else d.to_array()
            stats["detect_computed"] += len(to_detect)
        stats["detect_cached"] += sum(1 for i in live if k_det[i] in hit)
        hit.update(new)
        faced = apply_detections(live, k_det, hit, status, reason, det_arr)
        # embeddings
        todo = [i for i in faced if k_emb[i] not in hit]
        if todo:
            crops = [warp_to_template(images[i], Detection.from_array(det_arr[i]).landmarks, embedder.template, embedder.crop_size) for i in todo]
            out = _run_batched(embedder, crops, batch_size, amp)
            for i, v in zip(todo, out):
                new[k_emb[i]] = hit[k_emb[i]] = v.astype(np.float32)
            stats["embed_computed"] += len(todo)
        stats["embed_cached"] += len(faced) - len(todo)
        # PAD
        todo = [i for i in faced if k_pad[i] not in hit]
        if todo:
            crops = [pad.crop(images[i], det_arr[i, :4]) for i in todo]
            out = _run_batched(pad, crops, batch_size, amp)
            for i, v in zip(todo, out.reshape(-1)):
                new[k_pad[i]] = hit[k_pad[i]] = np.asarray([v], dtype=np.float64)
            stats["pad_computed"] += len(todo)
        stats["pad_cached"] += len(faced) - len(todo)
        cache.put_many(new)

        collect_outputs(faced, [hit[k_emb[i]] for i in faced], [hit[k_pad[i]] for i in faced],
                        manifest["path"], status, reason, emb, pad_score, code=code)
        bar.update(len(idx))
    bar.close()
    return finish_table(manifest, status, reason, det_arr, pad_score, emb, stats, code=code, notes=notes)
