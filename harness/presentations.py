"""Presentations: the frames of one video (or one burst of stills) decided together, as a lending flow decides.

ISO/IEC 30107-3 counts presentations, not frames; bob's ``bob pad finalize-scores`` and NIST's PAD evaluations
decide once per video. A presentation groups the frame rows of a manifest:

* a ``presentation`` column, where a manifest has one (a CSV manifest may group stills this way);
* else the ``video`` column: every video file is one presentation (its sampled frames);
* else the dataset's own rule, :data:`DATASET_RULES` (NUAA: subject + label + glasses + pose code + session: one
  recording of one person in one condition);
* else every sample is its own presentation.

A presentation's PAD score is its frames' scores under one rule of :mod:`harness.aggregation` (the same code the
production runtime runs); frames with no face are dropped first and counted, a presentation with no face in any
frame is a failure to acquire, one whose files were all rejected is rejected. Its face template for matching is
the mean of its scored frames' embeddings (L2-normalised first for cosine models, as enrolment templates are built
in :mod:`harness.protocols.trials`) or the embedding of its best-quality frame (highest detector probability).

Capture order within a presentation: the video frame index, else a numeric ``frame_no`` column, else the manifest's
row order. An *attempt* of a flow (:mod:`harness.flow`) is a presentation or a window of ``n`` consecutive frames of
one (:func:`window_ids`; a last window shorter than ``n`` is dropped and counted).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.aggregation import aggregate, check_aggregation
from harness.protocols.trials import Trials, build_trials, split_enrol_probe

#: dataset name -> the manifest columns whose values identify one presentation of still frames
DATASET_RULES = {"nuaa": ("subject", "label", "glasses", "pos_code", "session")}
TEMPLATES = ("mean", "best_quality")

__all__ = ["DATASET_RULES", "TEMPLATES", "presentation_ids", "grouping_text", "capture_order", "frame_columns",
           "window_ids", "pool",
           "presentation_trials", "presentation_counts"]


def _nonempty(col: pd.Series) -> pd.Series:
    return col.notna() & (col.astype(str).str.strip() != "")


def presentation_ids(samples: pd.DataFrame, dataset: str | None = None) -> pd.Series:
    """One presentation id per sample row (module docstring); rows set aside at the manifest keep their own id."""
    ids = samples["sample_id"].astype(str).copy()
    keys = DATASET_RULES.get(str(dataset or ""))
    if keys and all(k in samples.columns for k in keys):
        ids = samples[list(keys)].astype(str).agg("|".join, axis=1)
    if "video" in samples.columns:
        v = _nonempty(samples["video"])
        ids[v] = "video:" + samples.loc[v, "video"].astype(str)
    if "presentation" in samples.columns:
        p = _nonempty(samples["presentation"])
        ids[p] = samples.loc[p, "presentation"].astype(str)
    if "reject_code" in samples.columns:
        r = _nonempty(samples["reject_code"])
        ids[r] = samples.loc[r, "sample_id"].astype(str)
    return ids.rename("presentation")


def grouping_text(samples: pd.DataFrame, dataset: str | None = None) -> str:
    """The grouping rule :func:`presentation_ids` applied to these samples, in words."""
    parts = []
    if "presentation" in samples.columns and _nonempty(samples["presentation"]).any():
        parts.append("the manifest's presentation column")
    if "video" in samples.columns and _nonempty(samples["video"]).any():
        parts.append("one presentation per video file (its sampled frames)")
    keys = DATASET_RULES.get(str(dataset or ""))
    if not parts and keys and all(k in samples.columns for k in keys):
        parts.append(f"{dataset}: frames sharing {' + '.join(keys)}")
    return "; ".join(parts) or "one presentation per sample (no grouping column or rule)"


def capture_order(samples: pd.DataFrame) -> pd.Series:
    """Integer capture order of every row (module docstring): a rank usable to sort frames of one presentation."""
    frame = pd.to_numeric(samples.get("frame", pd.Series(-1, index=samples.index)), errors="coerce").fillna(-1)
    key = frame.astype(float)
    if "frame_no" in samples.columns:
        fno = pd.to_numeric(samples["frame_no"], errors="coerce")
        key = key.where(key >= 0, fno.where(fno >= 0, -1.0))
    pos = pd.Series(np.arange(len(samples), dtype=float), index=samples.index)
    order = pd.DataFrame({"k": key, "p": pos}).sort_values(["k", "p"], kind="stable")
    return pd.Series(np.arange(len(samples)), index=order.index).reindex(samples.index).astype(int).rename(
        "capture_order")


def frame_columns(samples: pd.DataFrame, dataset: str | None = None) -> dict[str, pd.Series]:
    """``{"presentation", "capture_order"}``: the columns the run directory's ``scores`` carry for every frame, and
    what :func:`harness.session_metrics.session_results` groups by (computed once, right after scoring)."""
    return {"presentation": presentation_ids(samples, dataset), "capture_order": capture_order(samples)}


def window_ids(ids: pd.Series, order: pd.Series, n: int) -> pd.Series:
    """Attempt ids ``<presentation>#w<j>``: windows of ``n`` consecutive frames (capture order) of each presentation;
    frames of a last window shorter than ``n`` get ``""`` (not an attempt)."""
    if int(n) < 1:
        raise ValueError(f"flow.window_frames must be a whole number >= 1, got {n!r}")
    rank = order.groupby(ids).rank(method="first").astype(int) - 1
    size = ids.map(ids.value_counts())
    j = rank // int(n)
    full = (j + 1) * int(n) <= size
    return pd.Series(np.where(full, ids + "#w" + j.astype(str), ""), index=ids.index, name="attempt")


def _template(emb: np.ndarray, quality: np.ndarray, how: str, metric: str) -> np.ndarray:
    if how == "best_quality":
        q = np.where(np.isfinite(quality), quality, -np.inf)
        return emb[int(np.argmax(q))].astype(np.float64)
    e = emb.astype(np.float64)
    if metric == "cosine":
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
    return e.mean(0)


def pool(samples: pd.DataFrame, embeddings: np.ndarray, ids: pd.Series, aggregation: dict | None = None,
         template: str = "mean", metric: str = "cosine", fps: float | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per presentation id (rows with id ``""`` are left out) and its pooled embedding.

    Columns: the first frame's metadata, ``sample_id`` = ``presentation`` = the id, ``status`` (scored: a face in
    at least one frame; fta: none; rejected: every file rejected), ``reason``, ``pad_score`` (aggregated),
    ``det_prob`` (best frame), ``n_frames``, ``frames_scored``, ``frames_fta``, ``frames_rejected``,
    ``frames_used`` (by the rule), ``order`` (capture order of the presentation), ``duration_s`` (frames spanned /
    fps, from the video's own fps or ``fps``; NaN when unknown), ``frames_context_clamped`` (frames whose PAD crop
    ran off the image: the model saw less context than it was trained with)."""
    agg = check_aggregation(aggregation)
    if template not in TEMPLATES:
        raise ValueError(f"presentation.template must be one of {list(TEMPLATES)}, got {template!r}")
    order = capture_order(samples)
    df = samples.assign(_pid=ids.values, _ord=order.values, _row=np.arange(len(samples)))
    df = df[df["_pid"] != ""].sort_values(["_ord", "_row"], kind="stable")
    rows, embs = [], []
    dim = embeddings.shape[1] if embeddings.ndim == 2 else 0
    for pid, g in df.groupby("_pid", sort=False):
        st = g["status"].astype(str).to_numpy()
        ok = st == "scored"
        prob = pd.to_numeric(g.get("det_prob"), errors="coerce").to_numpy(dtype=float) if "det_prob" in g else None
        score, used = aggregate([float(x) if o else None for x, o in zip(g["pad_score"], ok)],
                                None if prob is None else [float(x) for x in prob], agg)
        status = "scored" if ok.any() else "fta" if (st == "fta").any() else "rejected"
        first = g.iloc[0].to_dict()
        reason = "" if status == "scored" else (f"no face in any of {len(g)} frames" if status == "fta"
                                                else "; ".join(sorted(set(g["reason"].astype(str))))[:300])
        row = {k: v for k, v in first.items() if not k.startswith("_")}
        row.update(sample_id=pid, presentation=pid, status=status, reason=reason,
                   pad_score=np.nan if score is None else score,
                   det_prob=float(np.nanmax(prob[ok])) if prob is not None and ok.any() else np.nan,
                   n_frames=len(g), frames_scored=int(ok.sum()), frames_fta=int((st == "fta").sum()),
                   frames_rejected=int((st == "rejected").sum()), frames_used=int(used),
                   order=int(g["_ord"].min()), duration_s=_duration(g, fps),
                   frames_context_clamped=_clamped(g))
        rows.append(row)
        idx = g["_row"].to_numpy()[ok]
        embs.append(_template(embeddings[idx], prob[ok] if prob is not None else np.zeros(len(idx)), template, metric)
                    if ok.any() else np.full(dim, np.nan))
    out = pd.DataFrame(rows).reset_index(drop=True)
    return out, (np.stack(embs) if embs else np.zeros((0, dim)))


def _clamped(g: pd.DataFrame) -> int:
    """Frames of the presentation whose PAD crop ran off the image (``pad_context_clamped``; 0 when unknown)."""
    if "pad_context_clamped" not in g.columns:
        return 0
    return int(pd.array(g["pad_context_clamped"], dtype="boolean").fillna(False).sum())


def _duration(g: pd.DataFrame, fps: float | None) -> float:
    f = float(g["fps"].iloc[0]) if "fps" in g.columns and pd.notna(g["fps"].iloc[0]) else 0.0
    f = f if f > 0 else float(fps or 0.0)
    frames = pd.to_numeric(g.get("frame"), errors="coerce") if "frame" in g.columns else None
    if f <= 0:
        return float("nan")
    if frames is not None and (frames >= 0).all():
        return float(frames.max() - frames.min() + 1) / f
    return float(len(g)) / f


def presentation_trials(samples: pd.DataFrame, embeddings: np.ndarray, ids: pd.Series, protocol: dict, metric: str,
                        aggregation: dict | None = None, template: str = "mean", fps: float | None = None) -> Trials:
    """The protocol's trials with every probe a presentation (pooled by :func:`pool`) and every enrolment template
    exactly as the frame-level run built it (the same enrolment frames, the same subjects and partitions).
    ``Trials.probes`` are the presentation rows (with ``partition``)."""
    is_enrol, is_probe = split_enrol_probe(samples, protocol["enrol"])
    pooled = is_probe.to_numpy() & (ids.to_numpy() != "")  # frames of no attempt stay as "other" rows: the
    pres, pemb = pool(samples[pooled], embeddings[np.flatnonzero(pooled)], ids[pooled], aggregation,  # subject set,
                      template, metric, fps)  # hence the seeded partition, is the frame-level run's
    keep = ~pooled
    frames = samples[keep].assign(_role=np.where(is_enrol.to_numpy()[keep], "enrol", "other"))
    both = pd.concat([frames, pres.assign(_role="probe")], ignore_index=True)
    emb = np.concatenate([embeddings[keep].astype(np.float64), pemb.astype(np.float64)]) if len(pres) else \
        embeddings[keep].astype(np.float64)
    proto = {**protocol, "enrol": {"mode": "field", "field": "_role", "enrol_in": ["enrol"], "probe_in": ["probe"]}}
    tr = build_trials(both, emb, metric, proto)
    tr.probes = tr.probes.drop(columns=["_role"])
    return tr


def presentation_counts(probes: pd.DataFrame) -> dict:
    """Per partition and class: presentations, people, frames, failures to acquire, presentations scored on only
    part of their frames (``partial``) and presentations with a PAD crop that ran off the image
    (``context_clamped``: at least one frame)."""
    out: dict = {}
    for (part, label), g in probes.groupby(["partition", "label"]):
        out.setdefault(str(part), {})[str(label)] = {
            "presentations": int(len(g)), "people": int(g["subject"].nunique()), "frames": int(g["n_frames"].sum()),
            "scored": int((g["status"] == "scored").sum()), "fta": int((g["status"] == "fta").sum()),
            "rejected": int((g["status"] == "rejected").sum()),
            "partial": int(((g["status"] == "scored") & (g["frames_scored"] < g["n_frames"])).sum()),
            "context_clamped": int((g.get("frames_context_clamped", pd.Series(0, index=g.index)).fillna(0) > 0).sum()),
            "frames_per_presentation": {"min": int(g["n_frames"].min()), "median": float(g["n_frames"].median()),
                                        "max": int(g["n_frames"].max())}}
    return out
