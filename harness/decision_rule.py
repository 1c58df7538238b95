"""The decision rule of an operating point: its bands (accept and reject thresholds per score) and the
accept / review / reject outcome of (match, PAD) score pairs. Scores: higher = more likely the same person / bona
fide; accept iff both scores reach their accept thresholds, reject iff either falls below its reject threshold (or
is missing), review otherwise. :mod:`harness.runtime` applies the same rule with the standard library only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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
