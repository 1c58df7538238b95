"""Score -> error-rate lookup tables for the export (the runtime's evidence line).

Match table: at each table score ``s`` (ascending), ``fmr_k[i] = #{impostor trials with score >= s}`` and
``fnmr_k[i] = #{genuine trials with score < s}``. When every distinct score (impostor and genuine) fits in
``max_points`` the table holds exactly those scores (``exact: true``) and both counts for any ``x`` are read off
exactly at the smallest table score ``>= x``. Otherwise the scores are thinned evenly by rank and the runtime
brackets the rate between two neighbouring rows.

PAD table: the same over attack presentations, per PAI species (``apcer_k``), with ``bpcer_k`` over bona fide.

Observed ranges (:func:`observed_score_ranges`): the smallest and largest score of each class on the partition, so
that the runtime can tell a score inside the evidence from one beyond it (where the tables hold no trial at all).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.metrics.intervals import clopper_pearson
from harness.policy.data import ScoreSets

__all__ = ["match_table", "pad_table", "lookup_tables", "observed_score_ranges"]


def _points(neg: np.ndarray, pos: np.ndarray, max_points: int) -> tuple[np.ndarray, bool]:
    u = np.unique(np.concatenate((neg, pos)))
    if u.size <= max_points:
        return u, True
    idx = np.unique(np.round(np.linspace(0, u.size - 1, max_points)).astype(np.int64))
    return u[idx], False


def _count_ge(sorted_vals: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return sorted_vals.size - np.searchsorted(sorted_vals, pts, side="left")


def match_table(imp: np.ndarray, gen: np.ndarray, max_points: int = 512, alpha: float = 0.05) -> dict[str, Any] | None:
    if imp.size == 0:
        return None
    pts, exact = _points(imp, gen, max_points)
    si = np.sort(imp)
    fmr_k = _count_ge(si, pts)
    out: dict[str, Any] = {"score": pts.tolist(), "fmr_k": fmr_k.astype(int).tolist(), "n_impostor": int(imp.size),
                           "exact": bool(exact),
                           "fmr_ci": [list(clopper_pearson(int(k), int(imp.size), alpha)) for k in fmr_k]}
    if gen.size:
        out["fnmr_k"] = np.searchsorted(np.sort(gen), pts, side="left").astype(int).tolist()
        out["n_genuine"] = int(gen.size)
    else:
        out["n_genuine"] = None
    return out


def pad_table(bona: np.ndarray, att: np.ndarray, species: np.ndarray, max_points: int = 512) -> dict[str, Any] | None:
    if att.size == 0:
        return None
    pts, exact = _points(att, bona, max_points)
    sp_tab = {}
    for s in sorted(set(species.tolist())):
        g = np.sort(att[species == s])
        sp_tab[str(s)] = {"n": int(g.size), "apcer_k": _count_ge(g, pts).astype(int).tolist()}
    out: dict[str, Any] = {"score": pts.tolist(), "species": sp_tab, "exact": bool(exact)}
    if bona.size:
        out["bpcer_k"] = np.searchsorted(np.sort(bona), pts, side="left").astype(int).tolist()
        out["n_bona_fide"] = int(bona.size)
    else:
        out["n_bona_fide"] = None
    return out


def lookup_tables(ss: ScoreSets, max_points: int = 512, alpha: float = 0.05) -> dict[str, Any]:
    """Both tables on the partition of ``ss`` (the export uses eval, the reported partition)."""
    return {"partition": ss.partition,
            "match": match_table(ss.imp_m, ss.gen_m, max_points, alpha),
            "pad": pad_table(ss.bona_pad, ss.att_pad, ss.att_pad_species, max_points)}


def _range(scores: pd.Series) -> dict[str, Any] | None:
    v = scores.to_numpy(dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    return {"min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


def observed_score_ranges(trials: pd.DataFrame, probes: pd.DataFrame, partition: str = "eval") -> dict[str, Any]:
    """The scores observed on ``partition``, per class: ``{"partition", "match": {"genuine", "impostor",
    "attack:<species>"}, "pad": {"bona_fide", "attack:<species>"}}``, each ``{"min", "max", "n"}``.

    Match scores: trials of kind genuine / impostor / attack; PAD scores: scored probes (each presentation once) by
    label and PAI species. Only finite scores count (``n``); a class with none is left out."""
    out: dict[str, Any] = {"partition": partition, "match": {}, "pad": {}}
    t = trials[trials["partition"] == partition]
    groups: list[tuple[str, str, pd.Series]] = [("match", k, t.loc[t["kind"] == k, "match_score"])
                                                 for k in ("genuine", "impostor")]
    att = t[t["kind"] == "attack"]
    groups += [("match", f"attack:{sp}", g["match_score"]) for sp, g in att.groupby(att["species"].astype(str))]
    p = probes[(probes["partition"] == partition) & (probes["status"] == "scored")]
    groups.append(("pad", "bona_fide", p.loc[p["label"] == "bona_fide", "pad_score"]))
    pa = p[p["label"] == "attack"]
    groups += [("pad", f"attack:{sp}", g["pad_score"]) for sp, g in pa.groupby(pa["species"].astype(str))]
    for score, cls, values in groups:
        r = _range(values)
        if r is not None:
            out[score][cls] = r
    return out
