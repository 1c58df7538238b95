"""Whole-system metrics: a face matcher and a PAD subsystem in series.

A presentation is accepted by the system iff ``match_score >= t_match`` AND ``pad_score >= t_pad``.

* IAPAR (impostor attack presentation accept rate, ISO/IEC 30107-3:2023, full-system evaluation): proportion of
  impostor attack presentations (of one PAI species) that the whole system accepts.
* :func:`riapar` here is the conditional rate P(system accepts | matcher alone accepts) over attack presentations,
  i.e. how many of the attacks that fool the matcher also get through PAD. NOTE: the 2023 edition of the standard
  also names a "relative IAPAR" (RIAPAR) that, as far as we know, combines IAPAR with the genuine users'
  false-reject rate; that is a different quantity and is not implemented here.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._checks import as_labels, as_scores, check_threshold
from .intervals import Rate, rate

__all__ = ["iapar", "riapar", "joint_surface"]


def _paired(match: Any, pad: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    m = as_scores(match, f"{what}_match_scores")
    p = as_scores(pad, f"{what}_pad_scores")
    if m.size != p.size:
        raise ValueError(f"{what}_match_scores has {m.size} entries but {what}_pad_scores has {p.size}; they must "
                         "be paired (one match score and one PAD score per presentation)")
    return m, p


def _per_species(ok: np.ndarray, species: Any, denom_mask: np.ndarray | None, alpha: float) -> dict[str, Rate]:
    lab = as_labels(species, "species", ok.size).astype(str)
    out: dict[str, Rate] = {}
    for s in np.unique(lab):
        sel = lab == s
        if denom_mask is not None:
            sel &= denom_mask
        n = int(np.count_nonzero(sel))
        if n == 0:
            continue
        out[str(s)] = rate(int(np.count_nonzero(ok & sel)), n, alpha)
    return out


def iapar(
    attack_match_scores: Any,
    attack_pad_scores: Any,
    t_match: float,
    t_pad: float,
    species: Any = None,
    alpha: float = 0.05,
) -> Rate | tuple[Rate, dict[str, Rate]]:
    """IAPAR: share of impostor attack presentations accepted by matcher AND PAD.

    Returns the pooled :class:`Rate`; when ``species`` is given returns ``(pooled Rate, {species: Rate})`` —
    the standard's IAPAR is per PAI species, the pooled value is a summary.
    """
    m, p = _paired(attack_match_scores, attack_pad_scores, "attack")
    tm, tp = check_threshold(t_match, "t_match"), check_threshold(t_pad, "t_pad")
    ok = (m >= tm) & (p >= tp)
    pooled = rate(int(np.count_nonzero(ok)), m.size, alpha)
    if species is None:
        return pooled
    return pooled, _per_species(ok, species, None, alpha)


def riapar(
    attack_match_scores: Any,
    attack_pad_scores: Any,
    t_match: float,
    t_pad: float,
    species: Any = None,
    alpha: float = 0.05,
) -> Rate | tuple[Rate, dict[str, Rate]]:
    """Conditional IAPAR: of the attacks the matcher alone accepts (``match >= t_match``), the share PAD passes.

    ``k = #{match >= t_match and pad >= t_pad}``, ``n = #{match >= t_match}``. Raises ``ValueError`` when the
    matcher accepts no attack (the rate is undefined). With ``species``: ``(pooled, {species: Rate})``; species
    whose attacks the matcher never accepts are left out. Not the ISO/IEC 30107-3:2023 "RIAPAR" (see module
    docstring).
    """
    m, p = _paired(attack_match_scores, attack_pad_scores, "attack")
    tm, tp = check_threshold(t_match, "t_match"), check_threshold(t_pad, "t_pad")
    fooled = m >= tm
    n = int(np.count_nonzero(fooled))
    if n == 0:
        raise ValueError(f"no attack presentation reaches t_match={tm:g} (0 of {m.size}); the conditional rate "
                         "is undefined — report IAPAR (0) instead")
    ok = fooled & (p >= tp)
    r = rate(int(np.count_nonzero(ok)), n, alpha)
    r = Rate(r.k, r.n, r.value, r.lo, r.hi, r.method + "; conditional on match >= t_match", r.alpha)
    if species is None:
        return r
    return r, _per_species(ok, species, fooled, alpha)


def _dominance_counts(m: np.ndarray, p: np.ndarray, gm: np.ndarray, gp: np.ndarray) -> np.ndarray:
    """``C[a, b] = #{i : m_i >= gm[a] and p_i >= gp[b]}`` for arbitrary (unsorted) grids, exact."""
    om, op = np.argsort(gm, kind="stable"), np.argsort(gp, kind="stable")
    sm, sp = gm[om], gp[op]
    i = np.searchsorted(sm, m, side="right")  # number of sorted grid values <= m  -> m >= sm[a] iff a < i
    j = np.searchsorted(sp, p, side="right")
    G, H = sm.size, sp.size
    hist = np.bincount(i * (H + 1) + j, minlength=(G + 1) * (H + 1)).reshape(G + 1, H + 1)
    # C_sorted[a, b] = sum_{i > a, j > b} hist[i, j]
    cum = hist[::-1, ::-1].cumsum(0).cumsum(1)[::-1, ::-1]
    c_sorted = cum[1:, 1:]
    out = np.empty((G, H), dtype=np.int64)
    out[np.ix_(om, op)] = c_sorted
    return out


def joint_surface(
    genuine_match: Any,
    genuine_pad: Any,
    impostor_match: Any,
    impostor_pad: Any,
    attack_match: Any,
    attack_pad: Any,
    t_match_grid: Sequence[float],
    t_pad_grid: Sequence[float],
) -> dict[str, Any]:
    """System operating surfaces over a grid of (t_match, t_pad); arrays have shape ``(len(t_match_grid), len(t_pad_grid))``.

    * ``genuine_accept``: genuine bona fide trials accepted by both (1 - system FNMR, ``system_fnmr`` also given)
    * ``zero_effort_fmr``: zero-effort impostor (bona fide) trials accepted by both
    * ``iapar``: impostor attack presentations accepted by both
    Exact counts are in ``*_k`` with totals ``n_genuine``, ``n_impostor``, ``n_attack``.
    """
    gm_ = np.asarray(t_match_grid, dtype=np.float64).ravel()
    gp_ = np.asarray(t_pad_grid, dtype=np.float64).ravel()
    if gm_.size == 0 or gp_.size == 0:
        raise ValueError("t_match_grid and t_pad_grid must be non-empty")
    if np.isnan(gm_).any() or np.isnan(gp_).any():
        raise ValueError("threshold grids contain NaN")
    out: dict[str, Any] = {"t_match": gm_, "t_pad": gp_}
    for key, (mm, pp, what) in {
        "genuine_accept": (genuine_match, genuine_pad, "genuine"),
        "zero_effort_fmr": (impostor_match, impostor_pad, "impostor"),
        "iapar": (attack_match, attack_pad, "attack"),
    }.items():
        m, p = _paired(mm, pp, what)
        c = _dominance_counts(m.astype(np.float64), p.astype(np.float64), gm_, gp_)
        out[f"{key}_k"] = c
        out[f"n_{what}"] = m.size
        out[key] = c / m.size
    out["system_fnmr"] = 1.0 - out["genuine_accept"]
    return out
