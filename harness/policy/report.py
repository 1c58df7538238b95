"""What an operating point does on a partition: every rate at the thresholds, and the three-way decisions.

All rates come from :mod:`harness.metrics` (k/n with Clopper-Pearson intervals). :func:`decide_arrays` is the
vectorised twin of :meth:`harness.runtime.OperatingPoint.decide` (same rule, same tie handling).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.metrics.intervals import rate
from harness.metrics.pad import apcer_per_species, bpcer
from harness.metrics.system import iapar
from harness.metrics.verification import rates_at

from .data import ScoreSets, score_sets

__all__ = ["bands_of", "decide_arrays", "decision_counts", "measure"]

OUTCOMES = ("accept", "review", "reject")


def bands_of(t_match: float, t_pad: float, match_reject: float | None = None, pad_reject: float | None = None) -> dict:
    """The bands dict of an operating point; without reject thresholds there is no review band (reject = accept)."""
    return {
        "match": {"accept_at_or_above": float(t_match),
                  "reject_below": float(t_match if match_reject is None else match_reject)},
        "pad": {"accept_at_or_above": float(t_pad), "reject_below": float(t_pad if pad_reject is None else pad_reject)},
    }


def decide_arrays(match: Any, pad: Any, bands: dict) -> np.ndarray:
    """``"accept"`` / ``"review"`` / ``"reject"`` per (match, PAD) pair; a missing (NaN) score is a reject."""
    m = np.asarray(match, dtype=np.float64)
    p = np.asarray(pad, dtype=np.float64)
    bm, bp = bands["match"], bands["pad"]
    bad = ~np.isfinite(m) | ~np.isfinite(p)
    with np.errstate(invalid="ignore"):
        reject = bad | (p < bp["reject_below"]) | (m < bm["reject_below"])
        accept = ~reject & (m >= bm["accept_at_or_above"]) & (p >= bp["accept_at_or_above"])
    out = np.full(m.shape, "review", dtype=object)
    out[accept] = "accept"
    out[reject] = "reject"
    return out


def decision_counts(match: np.ndarray, pad: np.ndarray, bands: dict, alpha: float = 0.05) -> dict | None:
    """``{"accept"|"review"|"reject": Rate dict}`` over the pairs (None when there are none)."""
    if np.size(match) == 0:
        return None
    d = decide_arrays(match, pad, bands)
    n = int(d.size)
    return {o: rate(int(np.count_nonzero(d == o)), n, alpha).to_dict() for o in OUTCOMES}


def measure_sets(ss: ScoreSets, bands: dict, alpha: float = 0.05) -> dict[str, Any]:
    t_match = bands["match"]["accept_at_or_above"]
    t_pad = bands["pad"]["accept_at_or_above"]
    out: dict[str, Any] = {"partition": ss.partition, "t_match": t_match, "t_pad": t_pad, "counts": ss.counts(),
                           "verif": {}, "pad": {}, "system": {}, "decisions": {}}
    if ss.imp_m.size and ss.gen_m.size:
        r = rates_at(ss.imp_m, ss.gen_m, t_match, alpha)
        out["verif"] = {"fmr": r["fmr"].to_dict(), "fnmr": r["fnmr"].to_dict()}
    elif ss.gen_m.size:
        out["verif"] = {"fnmr": rate(int(np.count_nonzero(ss.gen_m < t_match)), ss.gen_m.size, alpha).to_dict()}
    if ss.att_pad.size:
        per = apcer_per_species(ss.att_pad, ss.att_pad_species, t_pad, alpha)
        worst = max(sorted(per), key=lambda s: (per[s].value, per[s].n))
        out["pad"].update({"apcer_per_species": {s: r.to_dict() for s, r in per.items()},
                           "apcer_max": per[worst].to_dict(), "apcer_max_species": worst})
    if ss.bona_pad.size:
        out["pad"]["bpcer"] = bpcer(ss.bona_pad, t_pad, alpha).to_dict()
    sysd = out["system"]
    if ss.att_m.size:
        pooled, per = iapar(ss.att_m, ss.att_p, t_match, t_pad, species=ss.att_species, alpha=alpha)
        sysd["iapar"] = pooled.to_dict()
        sysd["iapar_per_species"] = {s: r.to_dict() for s, r in per.items()}
    if ss.imp_m.size:
        k = int(np.count_nonzero((ss.imp_m >= t_match) & (ss.imp_p >= t_pad)))
        sysd["zero_effort_fmr"] = rate(k, ss.imp_m.size, alpha).to_dict()
    if ss.gen_m.size:
        k = int(np.count_nonzero(~((ss.gen_m >= t_match) & (ss.gen_p >= t_pad))))
        sysd["genuine_rejection"] = rate(k, ss.gen_m.size, alpha).to_dict()
    for kind, (m, p) in {"genuine": (ss.gen_m, ss.gen_p), "impostor": (ss.imp_m, ss.imp_p),
                         "attack": (ss.att_m, ss.att_p)}.items():
        dc = decision_counts(m, p, bands, alpha)
        if dc is not None:
            out["decisions"][kind] = dc
    return out


def measure(trials: pd.DataFrame, probes: pd.DataFrame, part: str, bands: dict, alpha: float = 0.05) -> dict[str, Any]:
    """Every rate of the operating point ``bands`` on partition ``part`` (see module docstring)."""
    return measure_sets(score_sets(trials, probes, part), bands, alpha)
