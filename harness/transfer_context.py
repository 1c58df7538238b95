"""The context check of a threshold transfer: does the evaluation data lie where the selection data did?

Two things are checked per target and stated next to the transferred rates:

* **score range**: the share of the target's match scores (trials) and PAD scores (scored probes) below the lowest
  or above the highest score the selection data showed (per score; per class: genuine / impostor / attack trials,
  bona fide / attack probes). A threshold chosen on data whose scores never reached there says nothing about them:
  the rates are still counted, but they are an extrapolation of the selection.
* **PAD crop context**: frames whose PAD crop was clamped to the image (``scores.pad_context_clamped``, written by
  models whose crop rule scales the face box, :attr:`harness.models.base.PADModel.context_clamped`; counted in
  ``summary.json``'s ``accounting``). The model saw less context than it was trained with.

Pure functions of the composed tables (:mod:`harness.transfer_runs`); the limit that turns the clamped share into a
warning is the one the experiment warns at (:data:`harness.experiment.CONTEXT_WARN_SHARE`, a harness choice).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: share of clamped PAD crops above which the check warns (same as the experiment's warning; a harness choice)
CONTEXT_WARN_SHARE = 0.05


def _scores(trials: pd.DataFrame, probes: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """``{"match": {class: scores}, "pad": {class: scores}}`` (finite scores only)."""
    ok = probes[probes["status"] == "scored"]
    out = {"match": {k: trials.loc[trials["kind"] == k, "match_score"].to_numpy(np.float64)
                     for k in ("genuine", "impostor", "attack")},
           "pad": {k: ok.loc[ok["label"] == k, "pad_score"].to_numpy(np.float64) for k in ("bona_fide", "attack")}}
    return {s: {k: v[np.isfinite(v)] for k, v in d.items() if v.size} for s, d in out.items()}


def score_range_check(sel_trials: pd.DataFrame, sel_probes: pd.DataFrame, tgt_trials: pd.DataFrame,
                      tgt_probes: pd.DataFrame) -> dict:
    """Per score (match, pad): the selection range ``[lo, hi]`` and, per target class, how many scores fall
    below / above it (``k_below``, ``k_above``, ``n``), and one line when any does."""
    sel, tgt = _scores(sel_trials, sel_probes), _scores(tgt_trials, tgt_probes)
    out: dict = {}
    for score in ("match", "pad"):
        s_all = np.concatenate(list(sel[score].values())) if sel[score] else np.zeros(0)
        if s_all.size == 0 or not tgt[score]:
            continue
        lo, hi = float(s_all.min()), float(s_all.max())
        per = {}
        for cls, v in tgt[score].items():
            per[cls] = {"n": int(v.size), "k_below": int((v < lo).sum()), "k_above": int((v > hi).sum()),
                        "min": float(v.min()), "max": float(v.max())}
        k = sum(p["k_below"] + p["k_above"] for p in per.values())
        n = sum(p["n"] for p in per.values())
        line = None
        if k:
            parts = [f"{c} {p['k_below'] + p['k_above']}/{p['n']}" for c, p in per.items() if p["k_below"] + p["k_above"]]
            line = (f"{score} scores outside the selection range [{lo:.4g}, {hi:.4g}]: {k}/{n} ({', '.join(parts)}); "
                    "rates there extrapolate the selection data")
        out[score] = {"selection_range": [lo, hi], "per_class": per, "k_outside": k, "n": n, "note": line}
    return out


def clamped_count(scores: pd.DataFrame | None, subjects: set[str] | None = None, prefix: str = "") -> dict | None:
    """``{"k", "n", "share"}``: scored frames whose PAD crop was clamped (``pad_context_clamped``) among the scored
    frames (of ``subjects``, given as ``prefix + subject``); None when the scores table lacks the column."""
    if scores is None or "pad_context_clamped" not in scores.columns:
        return None
    s = scores[scores["status"] == "scored"]
    if subjects is not None:
        s = s[(prefix + s["subject"].astype(str)).isin(subjects)]
    k = int(s["pad_context_clamped"].fillna(False).astype(bool).sum())
    n = int(len(s))
    return {"k": k, "n": n, "share": (k / n) if n else None}


def context_check(sel_trials: pd.DataFrame, sel_probes: pd.DataFrame, tgt_trials: pd.DataFrame,
                  tgt_probes: pd.DataFrame, sel_clamped: dict | None, tgt_clamped: dict | None) -> dict:
    """The context block of one target: ``score_range`` (:func:`score_range_check`), ``pad_context_clamped`` of
    the selection and the target (:func:`clamped_count`), and ``notes`` (the lines the table prints)."""
    rng = score_range_check(sel_trials, sel_probes, tgt_trials, tgt_probes)
    notes = [r["note"] for r in rng.values() if r.get("note")]
    for side, c in (("target", tgt_clamped), ("selection", sel_clamped)):
        if c and c["k"]:
            warn = " (above the 5% warning level)" if (c["share"] or 0) > CONTEXT_WARN_SHARE else ""
            notes.append(f"PAD crops clamped to the frame on the {side} data: {c['k']}/{c['n']} scored frames{warn}: "
                         "the PAD model saw less context than it was trained with")
    if tgt_clamped is None:
        notes.append("PAD crop context unknown: the target's scores table has no pad_context_clamped column")
    return {"score_range": rng, "pad_context_clamped": {"selection": sel_clamped, "target": tgt_clamped},
            "notes": notes, "ok": not notes}
