"""From a policy's choice to the exported thresholds: never dominated on dev, placed mid-gap, float-safe.

Every policy first picks thresholds by its own rule; this module then applies two rules that hold for all of them.

1. **Never dominated on the selection data.** Security that buys no convenience is never given away.
   *One score* (``target_rates``, ``eer``, the accept thresholds of ``bands``): among thresholds with the same dev
   FNMR (match) or BPCER (PAD), only those with the lowest FMR / APCER (every species at once) are candidates: the
   threshold moves up to the lowest genuine / bona fide score at or above it (no customer changes side; every
   negative below it is now rejected). With no genuine score above, it moves just above the highest negative.
   *Two scores* (``joint``, ``min_cost``): a pair is dominated when another pair accepts at least as many genuine
   trials and at most as many attack and impostor trials, one of them strictly. :func:`pareto_grid` replaces the
   policy's grid cell by the lexicographically best cell among those at least as good on every dev rate (fewest
   attacks, then impostors, then most genuine): no other grid cell dominates it. :func:`refine_axes` then repeats
   the one-score move on the full set of dev scores for each axis in turn (genuine trials accepted by the other
   score), until neither moves.
2. **Placed mid-gap, float-safe.** Every threshold in the open-closed gap ``(l, h]`` between the highest dev score
   below it and the lowest dev score at or above it makes the same dev decisions; that gap is the non-dominated
   sub-interval. The exported threshold is the float32 number nearest to the gap's midpoint (the margin protects
   unseen scores on both sides), kept inside the gap; both ends and the rates there are recorded. Because it is a
   float32 number, ``score >= t`` decides the same for a float32 score compared in float32 or float64, in numpy,
   torch and the stdlib runtime, and JSON writes it back exactly. A float64 score within half a float32 step of
   ``t`` could still round across it; :func:`decision_disagreements` counts such scores among all scores of the
   run (reported; the placement avoids them where the gap allows).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["next_at_or_above", "non_dominated_1d", "equal_decision_gap", "float_safe_threshold",
           "decision_disagreements", "place", "pareto_grid", "refine_axes"]


def _f64(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).ravel()


def next_at_or_above(values: np.ndarray, t: float) -> float | None:
    v = values[values >= t]
    return float(v.min()) if v.size else None


def non_dominated_1d(t: float, negatives: Any, positives: Any) -> float:
    """Move ``t`` up to the lowest positive >= t (same FNMR/BPCER, fewest accepted negatives); with no positive
    above, just above the highest negative (when that is stricter). Never moves down."""
    neg, pos = _f64(negatives), _f64(positives)
    g = next_at_or_above(pos, t)
    if g is not None:
        return max(float(t), g)
    if neg.size and neg.max() >= t:
        return float(np.nextafter(neg.max(), np.inf))
    return float(t)


def equal_decision_gap(t: float, scores: Any) -> tuple[float, float]:
    """``(l, h)``: every threshold in ``(l, h]`` makes the same decisions as ``t`` on ``scores`` (-inf / +inf when
    no score lies below / at or above ``t``)."""
    s = _f64(scores)
    above = s[s >= t]
    h = float(above.min()) if above.size else math.inf
    below = s[s < h] if math.isfinite(h) else s
    l_ = float(below.max()) if below.size else -math.inf
    return l_, h


def _f32_up(x: float) -> float:
    """Smallest float32 number > x (as a Python float)."""
    y = np.float32(x)
    if float(y) <= x:
        y = np.nextafter(y, np.float32(np.inf))
    return float(y)


def _f32_down(x: float) -> float:
    """Largest float32 number <= x."""
    y = np.float32(x)
    if float(y) > x:
        y = np.nextafter(y, np.float32(-np.inf))
    return float(y)


def decision_disagreements(scores: Any, t: float) -> int:
    """How many ``scores`` are decided differently by ``score >= t`` in float64 and in float32."""
    s = _f64(scores)
    if s.size == 0:
        return 0
    return int(np.count_nonzero((s >= t) != (s.astype(np.float32) >= np.float32(t))))


def float_safe_threshold(l_: float, h: float, check: Any = ()) -> tuple[float, bool]:
    """A float32-representable threshold in ``(l_, h]``, nearest to the midpoint (or to the finite end when the
    other is infinite), avoiding decision disagreements on ``check`` where possible. Returns ``(t, float32_safe)``;
    ``float32_safe`` is False when no float32 number lies in the gap (then ``t = h`` in float64)."""
    lo_ok = _f32_up(l_) if math.isfinite(l_) else None
    hi_ok = _f32_down(h) if math.isfinite(h) else None
    if lo_ok is None and hi_ok is None:
        return 0.0, True
    if lo_ok is None:
        cands = [hi_ok]
    elif hi_ok is None:
        cands = [lo_ok]
    else:
        if lo_ok > hi_ok:  # no float32 number in the gap
            return float(h), False
        mid = l_ / 2 + h / 2
        m32 = float(np.float32(mid))
        m32 = min(max(m32, lo_ok), hi_ok)
        cands = [m32]
        x = np.float32(m32)
        for _ in range(8):  # a few neighbours, should a float64 score round onto the midpoint
            x_up, x_dn = np.nextafter(x, np.float32(np.inf)), np.nextafter(np.float32(cands[-1]), np.float32(-np.inf))
            cands += [float(v) for v in (x_up, x_dn) if lo_ok <= float(v) <= hi_ok]
            x = x_up
    chk = _f64(check)
    for c in cands:
        if decision_disagreements(chk, c) == 0:
            return c, True
    return cands[0], decision_disagreements(chk, cands[0]) == 0


def place(t: float, dev_scores: Any, all_scores: Any = ()) -> dict[str, Any]:
    """Mid-gap float-safe placement of ``t`` among ``dev_scores``; ``all_scores`` (every partition) are checked for
    float32/float64 agreement. Returns ``threshold, lower_end, upper_end, gap, float32_safe, disagreements, rule``."""
    l_, h = equal_decision_gap(t, dev_scores)
    thr, safe = float_safe_threshold(l_, h, all_scores)
    lower = _f32_up(l_) if math.isfinite(l_) else None
    if lower is not None and math.isfinite(h) and lower > h:
        lower = h
    upper = _f32_down(h) if math.isfinite(h) else None
    if upper is not None and math.isfinite(l_) and upper <= l_:
        upper = h
    rule = ("float32 number nearest the midpoint of the equal-decision gap" if math.isfinite(l_) and math.isfinite(h)
            else "the gap's finite end (the other end is unbounded)")
    return {"threshold": thr, "lower_end": lower, "upper_end": upper,
            "gap": [l_ if math.isfinite(l_) else None, h if math.isfinite(h) else None],
            "float32_safe": bool(safe), "disagreements": decision_disagreements(all_scores, thr), "rule": rule}


# ------------------------------------------------------------------------------------------------------- 2-D


def pareto_grid(accept_good: np.ndarray, accept_bad: list[np.ndarray], a: int, b: int) -> tuple[int, int]:
    """The lexicographically best cell (fewest accepted of each ``accept_bad`` array in order, then most
    ``accept_good``, then the stricter cell) among those at least as good as ``(a, b)`` on every count: no grid
    cell dominates the result. ``accept_good``: genuine trials accepted per grid cell; ``accept_bad``: attack,
    impostor (and per-species attack) trials accepted per cell."""
    G = accept_good
    ok = G >= G[a, b]
    for X in accept_bad:
        ok &= X <= X[a, b]
    ia, ib = np.meshgrid(np.arange(G.shape[0]), np.arange(G.shape[1]), indexing="ij")
    big = np.iinfo(np.int64).max
    keys = [np.where(ok, X, big).ravel() for X in accept_bad] + [np.where(ok, -G, big).ravel()]
    order = np.lexsort(tuple([-ib.ravel(), -ia.ravel()] + keys[::-1]))
    return tuple(int(i) for i in np.unravel_index(order[0], G.shape))  # type: ignore[return-value]


def refine_axes(t_match: float, t_pad: float, gen_m: Any, gen_p: Any, rounds: int = 4) -> tuple[float, float]:
    """One-score moves on the full dev scores, axis by axis: raise ``t_match`` to the lowest genuine match score
    >= it among genuine trials the PAD accepts, then the same for ``t_pad``; repeat until nothing moves. Genuine
    acceptance never changes; attack and impostor acceptance can only fall."""
    gm, gp = _f64(gen_m), _f64(gen_p)
    for _ in range(rounds):
        moved = False
        m = next_at_or_above(gm[gp >= t_pad], t_match)
        if m is not None and m > t_match:
            t_match, moved = m, True
        p = next_at_or_above(gp[gm >= t_match], t_pad)
        if p is not None and p > t_pad:
            t_pad, moved = p, True
        if not moved:
            break
    return float(t_match), float(t_pad)
