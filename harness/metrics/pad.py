"""Presentation attack detection (PAD) metrics, ISO/IEC 30107-3:2023.

PAD scores: higher = more likely bona fide; a presentation is classified bona fide iff ``score >= threshold``.

* APCER (per PAI species): ``#{attacks of species s with score >= t} / N_s`` — attacks classified bona fide.
  The standard reports APCER per species; :func:`apcer_max` is the worst species.
* BPCER: ``#{bona fide with score < t} / N_bf`` — bona fide presentations classified as attacks.
* BPCER20 / BPCER100 / BPCER1000: BPCER at the threshold where APCER (of every species) is at most 5 %, 1 %,
  0.1 %; :func:`bpcer_at_apcer` uses the loosest threshold meeting the target for the worst species.
* ACER and HTER are not ISO/IEC 30107-3 metrics; their results carry ``standard = "non-ISO"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._checks import as_labels, as_scores, check_probability, check_threshold
from .intervals import Rate, rate
from .verification import threshold_for_fmr, threshold_for_fnmr

__all__ = [
    "worst_species",
    "STANDARD",
    "BPCER_PRESETS",
    "apcer_per_species",
    "apcer_max",
    "bpcer",
    "bpcer_at_apcer",
    "bpcer_preset",
    "apcer_at_bpcer",
    "non_response_rate",
    "acer",
    "hter",
]

STANDARD = "ISO/IEC 30107-3:2023"
#: ``BPCERx`` = BPCER at APCER <= 1/x.
BPCER_PRESETS: dict[str, float] = {"BPCER20": 0.05, "BPCER100": 0.01, "BPCER1000": 0.001}


def _groups(attack_scores: Any, species: Any) -> dict[str, np.ndarray]:
    scores = as_scores(attack_scores, "attack_scores")
    if species is None:
        raise ValueError("species is required: one PAI species label per attack score (ISO/IEC 30107-3 reports "
                         "APCER per species); pass e.g. ['unknown'] * n if the species is not recorded")
    lab = as_labels(species, "species", scores.size).astype(str)
    names, inv = np.unique(lab, return_inverse=True)
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(names.size + 1))
    return {str(nm): scores[order[bounds[i]:bounds[i + 1]]] for i, nm in enumerate(names)}


def _apcers(groups: dict[str, np.ndarray], t: float, alpha: float) -> dict[str, Rate]:
    return {s: rate(int(np.count_nonzero(g >= t)), g.size, alpha) for s, g in groups.items()}


def worst_species(per: dict[str, Any]) -> str:
    """THE rule for APCER_max's species (the only implementation in the harness): the highest APCER point value;
    ties go to the species with more presentations, then to the alphabetically first name. ``per`` maps species to
    :class:`Rate` objects or rate dicts (``value``, ``n``)."""
    if not per:
        raise ValueError("no species: APCER_max needs at least one PAI species")

    def key(s: str) -> tuple[float, int]:
        r = per[s]
        return (float(r["value"]), int(r["n"])) if isinstance(r, dict) else (float(r.value), int(r.n))

    names = sorted(per)
    best = names[0]
    for s in names[1:]:
        if key(s) > key(best):
            best = s
    return best


def _worst(per: dict[str, Rate]) -> tuple[str, Rate]:
    s = worst_species(per)
    return s, per[s]


def apcer_per_species(attack_scores: Any, species: Any, threshold: float, alpha: float = 0.05) -> dict[str, Rate]:
    """APCER of each PAI species at ``threshold`` (an attack is a false accept iff ``score >= threshold``)."""
    t = check_threshold(threshold)
    return _apcers(_groups(attack_scores, species), t, alpha)


def apcer_max(attack_scores: Any, species: Any, threshold: float, alpha: float = 0.05) -> tuple[str, Rate]:
    """``(species, Rate)`` of the worst species at ``threshold`` (ties: larger N, then alphabetical)."""
    return _worst(apcer_per_species(attack_scores, species, threshold, alpha))


def bpcer(bona_fide_scores: Any, threshold: float, alpha: float = 0.05) -> Rate:
    """BPCER at ``threshold``: ``#{bona fide score < threshold} / N``."""
    bf = as_scores(bona_fide_scores, "bona_fide_scores")
    t = check_threshold(threshold)
    return rate(int(np.count_nonzero(bf < t)), bf.size, alpha)


def _preset_name(target: float, table: dict[str, float]) -> str | None:
    for name, v in table.items():
        if v == target:
            return name
    return None


def bpcer_at_apcer(
    bona_fide_scores: Any, attack_scores: Any, species: Any, target_apcer: float, alpha: float = 0.05
) -> dict[str, Any]:
    """BPCER at the loosest threshold where EVERY species' APCER is ``<= target_apcer``.

    Per species the loosest qualifying threshold is :func:`~harness.metrics.verification.threshold_for_fmr` on
    that species' scores; the answer is the highest of them (APCER only falls as the threshold rises).
    ``reachable`` is False when some species has fewer than ``1/target`` presentations (it then has to be
    rejected entirely and its APCER cannot be shown to meet the target).

    Returns ``threshold, bpcer (Rate), apcer_max (Rate), apcer_max_species, per_species (dict[str, Rate]),
    target_apcer, name (e.g. "BPCER20" or None), reachable, note, standard``.
    """
    bf = as_scores(bona_fide_scores, "bona_fide_scores")
    groups = _groups(attack_scores, species)
    tgt = check_probability(target_apcer, "target_apcer")
    choices = {s: threshold_for_fmr(g, tgt, alpha) for s, g in groups.items()}
    thr = max(c.threshold for c in choices.values())
    per = _apcers(groups, thr, alpha)
    sp, worst = _worst(per)
    too_small = [f"{s} (N={groups[s].size})" for s, c in choices.items() if not c.reachable]
    binding = max(choices, key=lambda s: choices[s].threshold)
    if too_small:
        note = (f"target APCER {tgt:g} is below 1/N for species {', '.join(too_small)}: they can only meet it by "
                f"being rejected entirely; not measurable on this data")
    else:
        note = f"threshold set by species {binding!r}; APCER_max {worst} ({sp})"
    return {
        "threshold": thr,
        "bpcer": rate(int(np.count_nonzero(bf < thr)), bf.size, alpha),
        "apcer_max": worst,
        "apcer_max_species": sp,
        "per_species": per,
        "target_apcer": tgt,
        "name": _preset_name(tgt, BPCER_PRESETS),
        "reachable": not too_small,
        "note": note,
        "standard": STANDARD,
    }


def bpcer_preset(bona_fide_scores: Any, attack_scores: Any, species: Any, preset: str = "BPCER20",
                 alpha: float = 0.05) -> dict[str, Any]:
    """``bpcer_at_apcer`` at a named preset: ``"BPCER20"`` (5 %), ``"BPCER100"`` (1 %), ``"BPCER1000"`` (0.1 %)."""
    if preset not in BPCER_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(BPCER_PRESETS)}")
    return bpcer_at_apcer(bona_fide_scores, attack_scores, species, BPCER_PRESETS[preset], alpha)


def apcer_at_bpcer(
    bona_fide_scores: Any, attack_scores: Any, species: Any, target_bpcer: float, alpha: float = 0.05
) -> dict[str, Any]:
    """APCER (per species and max) at the strictest threshold with BPCER ``<= target_bpcer``.

    The threshold is :func:`~harness.metrics.verification.threshold_for_fnmr` on the bona fide scores.
    Returns ``threshold, bpcer, apcer_max, apcer_max_species, per_species, target_bpcer, reachable, note,
    standard``.
    """
    bf = as_scores(bona_fide_scores, "bona_fide_scores")
    groups = _groups(attack_scores, species)
    tgt = check_probability(target_bpcer, "target_bpcer")
    ch = threshold_for_fnmr(bf, tgt, alpha)
    per = _apcers(groups, ch.threshold, alpha)
    sp, worst = _worst(per)
    return {
        "threshold": ch.threshold,
        "bpcer": ch.achieved,
        "apcer_max": worst,
        "apcer_max_species": sp,
        "per_species": per,
        "target_bpcer": tgt,
        "reachable": ch.reachable,
        "note": ch.note.replace("FNMR", "BPCER").replace("positive", "bona fide"),
        "standard": STANDARD,
    }


def non_response_rate(k_fta: int, n: int, alpha: float = 0.05) -> Rate:
    """Proportion of presentations with no PAD decision (failure to acquire / process), as a :class:`Rate`.

    Compute it separately for attack and bona fide presentations; ISO/IEC 30107-3 reports non-response
    alongside APCER/BPCER rather than folding it into them.
    """
    return rate(k_fta, n, alpha)


def acer(bona_fide_scores: Any, attack_scores: Any, species: Any, threshold: float,
         alpha: float = 0.05) -> dict[str, Any]:
    """NON-ISO: ``ACER = (APCER_max + BPCER) / 2`` at ``threshold`` (as popularised by OULU-NPU).

    Not an ISO/IEC 30107-3 metric (it averages two error rates with different costs); kept for comparison
    with the literature. The result has ``standard = "non-ISO"``.
    """
    t = check_threshold(threshold)
    sp, worst = apcer_max(attack_scores, species, t, alpha)
    bp = bpcer(bona_fide_scores, t, alpha)
    return {
        "acer": (worst.value + bp.value) / 2,
        "apcer_max": worst,
        "apcer_max_species": sp,
        "bpcer": bp,
        "threshold": t,
        "standard": "non-ISO",
        "note": "ACER is not defined in ISO/IEC 30107-3; report APCER per species and BPCER instead",
    }


def hter(negatives: Any, positives: Any, threshold: float, alpha: float = 0.05) -> dict[str, Any]:
    """NON-ISO: half total error rate ``(FMR + FNMR) / 2`` (or ``(APCER + BPCER)/2``) at ``threshold``."""
    neg = as_scores(negatives, "negatives")
    pos = as_scores(positives, "positives")
    t = check_threshold(threshold)
    fm = rate(int(np.count_nonzero(neg >= t)), neg.size, alpha)
    fnm = rate(int(np.count_nonzero(pos < t)), pos.size, alpha)
    return {
        "hter": (fm.value + fnm.value) / 2,
        "fmr": fm,
        "fnmr": fnm,
        "threshold": t,
        "standard": "non-ISO",
        "note": "HTER is not an ISO/IEC 19795-1 or 30107-3 metric",
    }


