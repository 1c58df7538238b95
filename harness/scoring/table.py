"""The score table and its per-chunk bookkeeping, shared by both scoring engines.

Every sample ends in exactly one status: ``scored``, ``fta`` (no face found: failure to acquire) or
``rejected`` (with a ``code`` from :data:`harness.faces.decode.REJECT_CODES` and a one-line ``reason`` naming the
file or row). Rows the manifest already set aside (``reject_code``: outside the root, duplicate, missing,
directory, ...) are rejected without being opened. Stats count what was computed and what came from the cache,
per stage. ``faces`` counts the faces found (the largest is used; more than one is flagged in the accounting) and
``decode_note`` says when an image over ``max_pixels`` was decoded reduced.

:class:`Ledger` holds a run's per-sample outcome arrays; :class:`Chunk` holds one chunk's cache keys, cache hits
and new values, and records each stage's results (counting computed and cached) the same way for both engines.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.faces.decode import DEFAULT_MAX_PIXELS, long_side_bound, pixel_cap
from harness.faces.detect import BOX, N_FACES, PROB, ROW_WIDTH
from harness.scoring.store import cache_key, model_stage_id

STATUSES = ("scored", "fta", "rejected")
FTA_MARKER = np.full(ROW_WIDTH, np.nan)  # cached detection value for "no face"


@dataclass
class ScoreTable:
    """One row per manifest sample (manifest columns + status, reason, detection, pad_score) + embeddings."""

    samples: pd.DataFrame
    embeddings: np.ndarray  # [N, D] float32, NaN rows where not scored
    stats: dict = field(default_factory=dict)
    detections: np.ndarray | None = None  # [N, 16] Detection.to_array rows (box, prob, n_faces, landmarks); NaN: none

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
    """Cache-key suffix for the decode settings (``max_pixels``: a cap or a
    :class:`harness.faces.files.DecodeLimits`): a non-default pixel cap or a reduced-decode bound changes what a
    detector sees."""
    cap, bound = pixel_cap(max_pixels), long_side_bound(max_pixels)
    return ("" if cap == DEFAULT_MAX_PIXELS else f"+maxpx{cap}") + ("" if bound is None else f"+ls{bound}")


def apply_detections(live, k_det, hit, status, reason, det_arr) -> list[int]:
    """Copy each live sample's (cached or new) detection into ``det_arr``; no face -> status ``fta``.

    Returns the indices that have a face and go on to embedding and PAD."""
    for i in live:
        if status[i] == "rejected":
            continue
        det_arr[i] = hit[k_det[i]]
        if np.isnan(det_arr[i, PROB]):
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


def context_flags(pad, status, det_arr, sizes: dict) -> pd.arrays.BooleanArray:
    """``pad_context_clamped`` per row: ``pad.context_clamped(box, (H, W))`` of each scored row whose decoded size
    is known (``sizes[row]``), else NA (FTA, rejected, no size, or a PAD model without the method). Derived from
    the box and the frame size, never cached; it changes no score."""
    out = pd.array([pd.NA] * len(status), dtype="boolean")
    fn = getattr(pad, "context_clamped", None)
    for i, st in enumerate(status):
        if fn is not None and st == "scored" and i in sizes and not np.isnan(det_arr[i, PROB]):
            out[i] = bool(fn(det_arr[i, BOX], sizes[i]))
    return out


def finish_table(manifest, status, reason, det_arr, pad_score, emb, stats, code=None, notes=None,
                 clamped=None) -> ScoreTable:
    """The ScoreTable contract: manifest columns + status, code, reason, detection columns (``faces``: faces found,
    0 for FTA, empty when rejected), pad_score, pad_context_clamped (nullable boolean, :func:`context_flags`; all
    NA when ``clamped`` is None), decode_note."""
    out = manifest.copy()
    n = len(out)
    code = np.array([""] * n, dtype=object) if code is None else code
    for i in range(n):  # a rejection without a code (defensive): name the generic decode failure
        if status[i] == "rejected" and not code[i]:
            code[i] = "corrupt"
        elif status[i] != "rejected":
            code[i] = ""
    out["status"], out["code"], out["reason"] = status, code, reason
    out["det_prob"], out["n_faces"] = det_arr[:, PROB], det_arr[:, N_FACES]
    faces = pd.array(np.where(np.isnan(det_arr[:, N_FACES]), 0, det_arr[:, N_FACES]).astype(np.int64), dtype="Int64")
    faces[np.asarray(status == "rejected")] = pd.NA
    out["faces"] = faces
    for c, col in zip(("box_x1", "box_y1", "box_x2", "box_y2"), det_arr[:, BOX].T):
        out[c] = col
    out["pad_score"] = pad_score
    out["pad_context_clamped"] = pd.array([pd.NA] * n, dtype="boolean") if clamped is None else clamped
    out["decode_note"] = [""] * n if notes is None else [notes.get(i, "") for i in range(n)]
    return ScoreTable(samples=out, embeddings=emb, stats=stats, detections=det_arr.copy())


def stage_ids(detector, embedder, pad, store, max_pixels) -> tuple[str, str, str]:
    """(detector, embedder, PAD) stage ids of the cache keys; the store reports a changed model key."""
    det_id = detector.detector_id + decode_stage_suffix(max_pixels)
    sid = getattr(store, "stage_id", model_stage_id)
    return det_id, sid(embedder), sid(pad)


class Ledger:
    """A run's outcome per manifest row (status, code, reason, note, detection, embedding, PAD score) and its
    stats; rows the manifest set aside start rejected."""

    def __init__(self, manifest: pd.DataFrame, dim: int, stage_ids: tuple[str, str, str]):
        n = len(manifest)
        self.manifest = manifest
        self.paths = [str(p) for p in manifest["path"]]
        self.frames = [int(f) for f in manifest["frame"]]
        self.stage_ids = stage_ids  # (detector, embedder, PAD)
        self.status = np.array(["scored"] * n, dtype=object)
        self.reason = np.array([""] * n, dtype=object)
        self.code = np.array([""] * n, dtype=object)
        self.notes: dict[int, str] = {}
        self.sizes: dict[int, tuple[int, int]] = {}  # row -> decoded (H, W), for pad_context_clamped
        self.det = np.full((n, ROW_WIDTH), np.nan)
        self.pad_score = np.full(n, np.nan)
        self.emb = np.full((n, dim), np.nan, dtype=np.float32)
        self.stats = {f"{stage}_{k}": 0 for stage in ("detect", "embed", "pad") for k in ("computed", "cached")}
        self.set_aside = manifest_rejections(manifest)
        for i, (c, why) in self.set_aside.items():
            self.reject(i, c, why)

    def reject(self, i: int, code: str, reason: str) -> None:
        self.status[i], self.code[i], self.reason[i] = "rejected", code, reason

    def open_chunk(self, hashes: dict[int, str], idx: list[int], store) -> "Chunk":
        """The chunk of rows ``idx`` whose bytes were read (``hashes``): keys built, the store probed once."""
        live = [i for i in idx if i in hashes]
        det_id, emb_id, pad_id = self.stage_ids
        fr = self.frames
        k_det = {i: cache_key(hashes[i], fr[i], det_id) for i in live}
        k_emb = {i: cache_key(hashes[i], fr[i], det_id, emb_id) for i in live}
        k_pad = {i: cache_key(hashes[i], fr[i], det_id, pad_id) for i in live}
        hit = store.get_many([*k_det.values(), *k_emb.values(), *k_pad.values()])
        return Chunk(self, live, k_det, k_emb, k_pad, hit)

    def table(self, pad=None) -> ScoreTable:
        """The ScoreTable of the run so far; with ``pad``, its ``pad_context_clamped`` flags (else all NA)."""
        clamped = None if pad is None else context_flags(pad, self.status, self.det, self.sizes)
        return finish_table(self.manifest, self.status, self.reason, self.det, self.pad_score, self.emb, self.stats,
                            code=self.code, notes=self.notes, clamped=clamped)


@dataclass
class Chunk:
    """One chunk's cache keys per stage, the values found (``hit``, new ones added) and the new values to store."""

    ledger: Ledger
    live: list[int]
    k_det: dict[int, str]
    k_emb: dict[int, str]
    k_pad: dict[int, str]
    hit: dict[str, np.ndarray]
    new: dict[str, np.ndarray] = field(default_factory=dict)
    faced: list[int] = field(default_factory=list)

    def needs_image(self) -> list[int]:
        """Live rows with something left to compute (no cached detection, or a face without both outputs)."""
        h = self.hit
        return [i for i in self.live if not (self.k_det[i] in h and (np.isnan(h[self.k_det[i]][0])
                                                                     or (self.k_emb[i] in h and self.k_pad[i] in h)))]

    def to_detect(self, decoded) -> list[int]:
        return [i for i in decoded if self.k_det[i] not in self.hit]

    def record_detections(self, to_detect: list[int], found) -> list[int]:
        """Store new detections (``found[i]``: a Detection or None), count, and return the rows with a face."""
        led = self.ledger
        for i in to_detect:
            d = found[i]
            self.new[self.k_det[i]] = FTA_MARKER if d is None else d.to_array()
        led.stats["detect_computed"] += len(to_detect)
        led.stats["detect_cached"] += sum(1 for i in self.live if self.k_det[i] in self.hit)
        self.hit.update(self.new)
        self.faced = apply_detections(self.live, self.k_det, self.hit, led.status, led.reason, led.det)
        return self.faced

    def todo(self, stage: str) -> list[int]:
        """Faces whose ``"embed"`` or ``"pad"`` value is not known yet."""
        keys = self.k_emb if stage == "embed" else self.k_pad
        return [i for i in self.faced if keys[i] not in self.hit]

    def record_embeddings(self, todo: list[int], out) -> None:
        for i, v in zip(todo, out):
            self.new[self.k_emb[i]] = self.hit[self.k_emb[i]] = v.astype(np.float32)
        self.ledger.stats["embed_computed"] += len(todo)
        self.ledger.stats["embed_cached"] += len(self.faced) - len(todo)

    def record_pad(self, todo: list[int], out) -> None:
        for i, v in zip(todo, out):
            self.new[self.k_pad[i]] = self.hit[self.k_pad[i]] = np.asarray([v], dtype=np.float64)
        self.ledger.stats["pad_computed"] += len(todo)
        self.ledger.stats["pad_cached"] += len(self.faced) - len(todo)

    def collect(self) -> None:
        """Copy the chunk's faces' embeddings and PAD scores into the ledger (non-finite -> rejected)."""
        led, f = self.ledger, self.faced
        collect_outputs(f, [self.hit[self.k_emb[i]] for i in f], [self.hit[self.k_pad[i]] for i in f],
                        led.paths, led.status, led.reason, led.emb, led.pad_score, code=led.code)
