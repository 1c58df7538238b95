"""Aggregation of frame scores into one presentation score: the rule a video (or a burst of stills) is decided by.

Standard library only: :mod:`harness.runtime` applies exactly this code in production and :mod:`harness.presentations`
applies it offline, so the two cannot disagree. Peers aggregate the same way: bob's ``bob pad finalize-scores``
(mean / median / min / max of the frame scores of a video); ISO/IEC 30107-3 counts presentations, not frames.

Conventions: scores are PAD scores (higher = more likely bona fide). The frames are given in capture order; a frame
with no face (``None`` or a non-finite score) is dropped before the rule applies, and a presentation with no scored
frame has no score (a failure to acquire). Sums use :func:`math.fsum` (correctly rounded, order independent).

Rules (``s_1..s_m``: the scored frames in capture order, ``s_(1)..s_(m)``: the same sorted):

* ``mean``: ``fsum(s) / m``
* ``median``: the middle order statistic; the mean of the two middle ones when ``m`` is even
* ``min``, ``max``
* ``trimmed_mean`` (``trim`` in [0, 0.5)): drop ``g = floor(trim * m)`` frames from each end of the sorted scores,
  mean of the rest (scipy's ``trim_mean``)
* ``quantile`` (``q`` in [0, 1]): linear interpolation between order statistics at ``h = (m - 1) q`` (numpy's
  default ``linear`` method)
* ``first_n_mean`` (``n`` >= 1): mean of the first ``n`` scored frames in capture order (a flow that decides early)
* ``prob_weighted_mean``: ``fsum(w s) / fsum(w)`` with ``w`` the detector's face probability of each frame; when no
  weight is positive, the plain mean
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

RULES = ("mean", "median", "min", "max", "trimmed_mean", "quantile", "first_n_mean", "prob_weighted_mean")
DEFAULTS = {"rule": "mean", "trim": 0.1, "q": 0.5, "n": 3}

__all__ = ["RULES", "DEFAULTS", "AggregationError", "check_aggregation", "aggregate", "usable_frames"]


class AggregationError(ValueError):
    """An aggregation rule or its parameter is not valid (the message names the key)."""


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)  # numpy scalars register as numbers.Real


def check_aggregation(spec: dict | None, where: str = "presentation.aggregation") -> dict:
    """The rule with its parameters filled in (``{"rule", "trim", "q", "n"}``); a bad key or value raises
    :class:`AggregationError` naming ``<where>.<key>``."""
    spec = dict(spec or {})
    unknown = sorted(set(spec) - set(DEFAULTS))
    if unknown:
        raise AggregationError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(DEFAULTS)}")
    out = {**DEFAULTS, **{k: v for k, v in spec.items() if v is not None}}
    if out["rule"] not in RULES:
        raise AggregationError(f"{where}.rule must be one of {list(RULES)}, got {out['rule']!r}")
    if not (_is_number(out["trim"]) and 0 <= out["trim"] < 0.5):
        raise AggregationError(f"{where}.trim must be a number in [0, 0.5), got {out['trim']!r}")
    if not (_is_number(out["q"]) and 0 <= out["q"] <= 1):
        raise AggregationError(f"{where}.q must be a number in [0, 1], got {out['q']!r}")
    if not (isinstance(out["n"], int) and not isinstance(out["n"], bool) and out["n"] >= 1):
        raise AggregationError(f"{where}.n must be a whole number >= 1, got {out['n']!r}")
    out["trim"], out["q"] = float(out["trim"]), float(out["q"])
    return out


def usable_frames(scores: Sequence[Any], qualities: Sequence[Any] | None = None) -> tuple[list[float], list[float]]:
    """(scores, qualities) of the frames that have a finite score, in the order given. A missing or non-finite
    quality becomes 0. ``qualities``, when given, must be as long as ``scores``."""
    if qualities is not None and len(qualities) != len(scores):
        raise AggregationError(f"{len(scores)} frame scores but {len(qualities)} qualities; they must be paired")
    s_out, w_out = [], []
    for i, s in enumerate(scores):
        if s is None or not _is_number(s) or not math.isfinite(float(s)):
            continue
        w = qualities[i] if qualities is not None else 1.0
        w = float(w) if _is_number(w) and math.isfinite(float(w)) and float(w) > 0 else 0.0
        s_out.append(float(s))
        w_out.append(w)
    return s_out, w_out


def _quantile(sorted_s: list[float], q: float) -> float:
    h = (len(sorted_s) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_s) - 1)
    return sorted_s[lo] + (h - lo) * (sorted_s[hi] - sorted_s[lo])


def aggregate(scores: Sequence[Any], qualities: Sequence[Any] | None = None, spec: dict | None = None
              ) -> tuple[float | None, int]:
    """``(presentation score, frames used)`` of the frame ``scores`` (capture order) under the rule ``spec``
    (see module docstring); ``(None, 0)`` when no frame has a score (a failure to acquire)."""
    a = check_aggregation(spec)
    s, w = usable_frames(scores, qualities)
    m = len(s)
    if m == 0:
        return None, 0
    rule = a["rule"]
    if rule == "mean":
        return math.fsum(s) / m, m
    if rule == "first_n_mean":
        k = min(a["n"], m)
        return math.fsum(s[:k]) / k, k
    if rule == "prob_weighted_mean":
        tw = math.fsum(w)
        if tw <= 0:
            return math.fsum(s) / m, m
        return math.fsum(x * y for x, y in zip(s, w)) / tw, m
    o = sorted(s)
    if rule == "min":
        return o[0], m
    if rule == "max":
        return o[-1], m
    if rule == "median":
        mid = m // 2
        return (o[mid] if m % 2 else (o[mid - 1] + o[mid]) / 2.0), m
    if rule == "quantile":
        return _quantile(o, a["q"]), m
    g = int(math.floor(a["trim"] * m))  # trimmed_mean
    kept = o[g:m - g]
    return math.fsum(kept) / len(kept), m
