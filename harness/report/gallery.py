"""Error-gallery images: ONLY the embedder's aligned face crop of a sample, never the frame it came from.

The crop is exactly what the embedder saw: the stored detection's 5 landmarks warped onto the embedder's
template (:func:`harness.faces.align.warp_to_template`) at the embedder's crop size, so nobody else in the
frame (NUAA frames contain bystanders) can appear. The landmarks come from the run directory's scores (the very
detection that was scored: ``lm0_x..lm4_y`` of :mod:`harness.rundir`); for a run written before those columns,
from the run's score cache, and on a cache miss the frame is re-detected with the run's detector configuration
and the new box must agree with the stored one. The frame itself is decoded in memory and dropped; nothing but the
crop leaves this module. ``blur`` (Gaussian sigma, pixels) blurs the crop as well.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.faces.align import warp_to_template
from harness.faces.decode import DecodeError, DecodeLimits, content_hash, decode_sample, read_bytes
from harness.faces.detect import Detection

from harness.rundir import BOX_COLUMNS, LANDMARK_COLUMNS

BOX_TOLERANCE_PX = 2.0


def stored_detections(rows: pd.DataFrame, sample_ids) -> dict:
    """``sample_id -> detection array`` (:meth:`Detection.to_array` layout) of the samples whose scores carry the
    box and all 5 landmarks (a run directory written by :mod:`harness.rundir`)."""
    cols = ("det_prob", *BOX_COLUMNS, *LANDMARK_COLUMNS)
    if not all(c in rows.columns for c in cols):
        return {}
    out = {}
    for sid in sample_ids:
        r = rows.loc[sid]
        box, lm = (np.array([_number(r[c]) for c in names]) for names in (BOX_COLUMNS, LANDMARK_COLUMNS))
        if np.all(np.isfinite(box)) and np.all(np.isfinite(lm)):
            n_faces = _number(r["n_faces"]) if "n_faces" in rows.columns else np.nan
            n_faces = n_faces if np.isfinite(n_faces) else 1.0
            out[sid] = np.concatenate([box, [_number(r["det_prob"]), n_faces], lm])
    return out


def limits_of_note(note) -> DecodeLimits | None:
    """The decode limits a scored sample was read with, from its ``decode_note`` (a JPEG read reduced for
    ``runtime.decode_long_side`` says the bound): the stored box and landmarks are in that image's pixels."""
    m = re.search(r"runtime\.decode_long_side=(\d+)", str(note or ""))
    return DecodeLimits(long_side=int(m.group(1))) if m else None


def _number(x) -> float:
    """A scores cell as a float (an empty cell of a CSV read as text: NaN)."""
    return np.nan if x is None or (isinstance(x, str) and not x.strip()) else float(x)


def _cached_detections(rows: pd.DataFrame, hashes: dict, cache_path: Path | None, detector_id: str | None) -> dict:
    if cache_path is None or detector_id is None or not Path(cache_path).is_file():
        return {}
    from harness.scoring.cache import ScoreCache, cache_key

    keys = {sid: cache_key(hashes[sid], int(rows.loc[sid, "frame"]), detector_id) for sid in hashes}
    cache = ScoreCache(cache_path)
    try:
        hit = cache.get_many(list(keys.values()))
    finally:
        cache.close()
    return {sid: hit[k] for sid, k in keys.items() if k in hit and np.isfinite(hit[k][0])}


def aligned_crops(samples: pd.DataFrame, sample_ids: list[str], template: np.ndarray, crop_size: tuple[int, int], *,
                  detector: Any = None, detector_factory=None, cache_path: Path | None = None,
                  detector_id: str | None = None, blur: float = 0.0) -> dict[str, np.ndarray | str]:
    """``sample_id -> aligned crop (H, W, 3) uint8`` or, when a crop cannot be made, the reason (a string).

    ``samples`` has ``sample_id``, ``path``, ``frame`` and the stored ``box_x1..box_y2`` (and, from a run
    directory, the landmarks: then neither the cache nor a detector is used). Otherwise ``detector`` (or a
    ``detector_factory`` called on first need) re-detects frames missing from the cache at ``cache_path``.
    """
    rows = samples.drop_duplicates("sample_id").set_index("sample_id")
    out: dict[str, np.ndarray | str] = {}
    data: dict[str, bytes] = {}
    hashes: dict[str, str] = {}
    for sid in dict.fromkeys(sample_ids):
        if sid not in rows.index:
            out[sid] = "sample not in scores.csv"
            continue
        try:
            data[sid] = read_bytes(rows.loc[sid, "path"])
            hashes[sid] = content_hash(data[sid])
        except DecodeError as e:
            out[sid] = str(e)
    cached = stored_detections(rows, hashes)
    missing = {sid: h for sid, h in hashes.items() if sid not in cached}
    cached |= _cached_detections(rows, missing, cache_path, detector_id) if missing else {}
    for sid in hashes:
        r = rows.loc[sid]
        frame = int(r["frame"])
        try:
            image = decode_sample(data.pop(sid), str(r["path"]), frame, max_pixels=limits_of_note(r.get("decode_note")))
        except DecodeError as e:
            out[sid] = str(e)
            continue
        if sid in cached:
            det = Detection.from_array(cached[sid])
        else:
            if detector is None and detector_factory is not None:
                detector = detector_factory()
            if detector is None:
                out[sid] = "detection not in the score cache and no detector to re-detect it"
                continue
            det = detector.detect([image])[0]
            if det is None:
                out[sid] = "no face on re-detection"
                continue
        stored = np.array([float(r[c]) for c in BOX_COLUMNS]) if all(c in r.index for c in BOX_COLUMNS) else None
        if stored is not None and np.all(np.isfinite(stored)) and np.max(np.abs(det.box - stored)) > BOX_TOLERANCE_PX:
            out[sid] = "re-detected face differs from the scored one; not shown"
            continue
        crop = warp_to_template(image, det.landmarks, template, crop_size)
        del image
        if blur and blur > 0:
            import cv2

            crop = cv2.GaussianBlur(crop, (0, 0), float(blur))
        if crop.shape[:2] != tuple(crop_size):  # pragma: no cover - warp_to_template guarantees the size
            out[sid] = "crop has the wrong size; not shown"
            continue
        out[sid] = np.ascontiguousarray(crop, dtype=np.uint8)
    return out


def png_bytes(image: np.ndarray) -> bytes:
    """RGB uint8 array -> PNG bytes."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()
