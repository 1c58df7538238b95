"""Every rate of an operating point on one partition: ONE computation that ``summary.json``, ``operating_point.json``,
the report, the standards verdicts and the policies all read.

:func:`evaluate` returns ``(rates, outcomes)``. ``rates`` is JSON-ready; every rate in it is a *people rate*
(:func:`people_rate`): ``k/n``, the point value, a people-aware interval ``[lo, hi]``
(:func:`harness.metrics.clustered_rate`: people, not frames, are the independent units), the trial-level
Clopper-Pearson interval ``[cp_lo, cp_hi]`` beside it, and ``n_subjects`` (distinct people behind the rate).
``outcomes`` keeps the per-trial outcomes so that a verdict can recompute a rate at another confidence level.

Which trials count (accept iff score >= threshold):

* ``verif``: matcher alone. FMR over impostor comparisons (clustered two ways: probe person x reference person),
  FNMR over genuine comparisons (clustered by person). Comparisons only: failures to acquire are not comparisons
  (ISO/IEC 19795-1 defines FMR/FNMR per comparison).
* ``pad``: PAD subsystem alone, ISO/IEC 30107-3 (2023): APCER per PAI species (clustered by the attacked person),
  APCER_max = the worst species (:func:`harness.metrics.pad.worst_species`: highest rate, ties to the larger
  ``n`` then the name), BPCER over bona fide presentations. Presentations the PAD never scored (no face found) are
  the standard's non-responses, reported per class and per species (``non_response``), not folded into
  APCER/BPCER.
* ``system``: matcher AND PAD, transactions. Failures to acquire are folded in as ISO/IEC 19795-1 (2006, 8.3.3)
  prescribes for FAR/FRR: a genuine attempt that failed to acquire is a false rejection (``genuine_rejection`` =
  FRR); an impostor attempt that failed to acquire is not a false accept but counts in the denominator
  (``zero_effort_fmr`` = FAR); an attack presentation that failed to acquire was not accepted and counts in the
  IAPAR denominator (ISO/IEC 30107-3 counts every attack presentation of the species). An attempt is a probe
  presentation of a person with an enrolment in the partition (the people the trials compare against).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.metrics.clustered import clustered_rate
from harness.metrics.pad import worst_species

__all__ = ["Outcome", "people_rate", "evaluate", "check_unit", "UNITS", "FTA_CONVENTION", "rate_at",
           "min_subjects_note"]

#: what one probe row is (:func:`evaluate`'s ``unit``)
UNITS = ("frame", "presentation", "attempt")

FTA_CONVENTION = ("system rates fold in failures to acquire (ISO/IEC 19795-1: FRR counts them as rejections, FAR "
                  "in its denominator; ISO/IEC 30107-3: IAPAR counts every attack presentation); matcher-only FMR/FNMR "
                  "and PAD-only APCER/BPCER exclude them and report them as non-response")


@dataclass
class Outcome:
    """Per-trial outcomes behind one rate: ``errors`` (bool), the person of each trial, and the other person for
    two-way (impostor) rates."""

    errors: np.ndarray
    subjects: np.ndarray
    ref_subjects: np.ndarray | None = None

    def rate(self, confidence: float = 0.95, side: str = "two-sided") -> dict[str, Any] | None:
        if self.errors.size == 0:
            return None
        return people_rate(self.errors, self.subjects, self.ref_subjects, confidence, side)


def people_rate(errors: Any, subjects: Any, ref_subjects: Any = None, confidence: float = 0.95,
                side: str = "two-sided") -> dict[str, Any]:
    """The rate record every report of the harness shows (see module docstring)."""
    r = clustered_rate(np.asarray(errors, bool), np.asarray(subjects).astype(str),
                       None if ref_subjects is None else np.asarray(ref_subjects).astype(str), confidence, side)
    return {"k": r.k, "n": r.n, "value": r.value, "lo": r.lo, "hi": r.hi, "n_subjects": r.n_subjects,
            "confidence": r.confidence, "side": r.side, "estimable": r.estimable, "cp_lo": r.cp_lo, "cp_hi": r.cp_hi,
            "design_effect": r.design_effect, "method": r.method}


def rate_at(outcome: "Outcome | dict[str, Outcome] | None", confidence: float) -> Any:
    if outcome is None:
        return None
    if isinstance(outcome, dict):
        return {s: o.rate(confidence) for s, o in outcome.items()}
    return outcome.rate(confidence)


def min_subjects_note(r: dict | None, min_subjects: int) -> str | None:
    """None when the rate rests on at least ``min_subjects`` people, else the one-line reason."""
    if r is None:
        return "no trials"
    n = int(r.get("n_subjects", 0))
    if n < int(min_subjects):
        return f"insufficient evidence: {n} subject{'s' if n != 1 else ''} (at least {int(min_subjects)} needed)"
    return None


def _str(x: pd.Series) -> np.ndarray:
    return x.astype(str).to_numpy()


def _f64(x: pd.Series) -> np.ndarray:
    return x.to_numpy(dtype=np.float64)


def outcomes(trials: pd.DataFrame, probes: pd.DataFrame, part: str, t_match: float, t_pad: float
             ) -> dict[str, Any]:
    """Per-trial outcomes of every rate at (``t_match``, ``t_pad``) on partition ``part`` (module docstring)."""
    t = trials[trials["partition"] == part]
    pr = probes[probes["partition"] == part]
    g, i, a = (t[t["kind"] == k] for k in ("genuine", "impostor", "attack"))
    enrolled = set(_str(t["ref_subject"]).tolist())
    fta = pr[pr["status"] == "fta"]
    fta_bona = fta[(fta["label"] == "bona_fide") & fta["subject"].astype(str).isin(enrolled)]
    fta_att = fta[(fta["label"] == "attack") & fta["subject"].astype(str).isin(enrolled)]
    ok = pr[pr["status"] == "scored"]
    bona, att = ok[ok["label"] == "bona_fide"], ok[ok["label"] == "attack"]
    out: dict[str, Any] = {}

    gm, gp, im, ip, am, ap = (_f64(x[c]) for x in (g, i, a) for c in ("match_score", "pad_score"))
    out["match_fnmr"] = Outcome(gm < t_match, _str(g["probe_subject"]))
    out["match_fmr"] = Outcome(im >= t_match, _str(i["probe_subject"]), _str(i["ref_subject"]))
    out["bpcer"] = Outcome(_f64(bona["pad_score"]) < t_pad, _str(bona["subject"]))
    a_sp = _str(att["species"])
    out["apcer_per_species"] = {s: Outcome(_f64(att["pad_score"])[a_sp == s] >= t_pad, _str(att["subject"])[a_sp == s])
                                for s in sorted(set(a_sp.tolist()))}
    # system transactions, failures to acquire folded in
    fb_subj = _str(fta_bona["subject"])
    out["system_frr"] = Outcome(np.r_[~((gm >= t_match) & (gp >= t_pad)), np.ones(fb_subj.size, bool)],
                                np.r_[_str(g["probe_subject"]), fb_subj])
    imp_a = [s for s in fb_subj for r in sorted(enrolled) if r != s]
    imp_b = [r for s in fb_subj for r in sorted(enrolled) if r != s]
    out["system_fmr"] = Outcome(np.r_[(im >= t_match) & (ip >= t_pad), np.zeros(len(imp_a), bool)],
                                np.r_[_str(i["probe_subject"]), np.asarray(imp_a, dtype=str)],
                                np.r_[_str(i["ref_subject"]), np.asarray(imp_b, dtype=str)])
    acc = (am >= t_match) & (ap >= t_pad)
    sp_all = np.r_[_str(a["species"]), _str(fta_att["species"])]
    subj_all = np.r_[_str(a["probe_subject"]), _str(fta_att["subject"])]
    err_all = np.r_[acc, np.zeros(len(fta_att), bool)]
    out["iapar"] = Outcome(err_all, subj_all)
    out["iapar_per_species"] = {s: Outcome(err_all[sp_all == s], subj_all[sp_all == s])
                                for s in sorted(set(sp_all.tolist()))}
    # non-response (failure to acquire) of the PAD subsystem, per class and per species
    pb = pr[pr["label"] == "bona_fide"]
    pa = pr[pr["label"] == "attack"]
    scored_or_fta = lambda f: f[f["status"].isin(["scored", "fta"])]  # noqa: E731 - rejected files are not presentations
    pb, pa = scored_or_fta(pb), scored_or_fta(pa)
    out["non_response_bona_fide"] = Outcome(_str(pb["status"]) == "fta", _str(pb["subject"]))
    out["non_response_attack"] = Outcome(_str(pa["status"]) == "fta", _str(pa["subject"]))
    pa_sp = _str(pa["species"])
    out["non_response_attack_per_species"] = {s: Outcome(_str(pa["status"])[pa_sp == s] == "fta",
                                                         _str(pa["subject"])[pa_sp == s])
                                              for s in sorted(set(pa_sp.tolist()))}
    out["_counts"] = {"genuine_trials": int(len(g)), "impostor_trials": int(len(i)), "attack_trials": int(len(a)),
                      "bona_fide_presentations": int(len(bona)), "attack_presentations": int(len(att)),
                      "genuine_fta_attempts": int(len(fta_bona)), "impostor_fta_attempts": len(imp_a),
                      "attack_fta_presentations": int(len(fta_att)),
                      "subjects": {"genuine": int(g["probe_subject"].nunique()),
                                   "impostor": int(pd.concat([i["probe_subject"], i["ref_subject"]]).nunique()),
                                   "attack": int(a["probe_subject"].nunique()),
                                   "bona_fide_presentations": int(bona["subject"].nunique()),
                                   "attack_presentations": int(att["subject"].nunique()),
                                   "enrolled": len(enrolled)}}
    out["_decisions"] = {"genuine": (gm, gp, _str(g["probe_subject"]), None),
                         "impostor": (im, ip, _str(i["probe_subject"]), _str(i["ref_subject"])),
                         "attack": (am, ap, _str(a["probe_subject"]), None)}
    return out


def _decisions(o: dict, bands: dict, confidence: float) -> dict:
    from harness.decision_rule import OUTCOMES, decide_arrays

    res = {}
    for kind, (m, p, sa, sb) in o["_decisions"].items():
        if m.size == 0:
            continue
        d = decide_arrays(m, p, bands)
        res[kind] = {out: people_rate(d == out, sa, sb, confidence) for out in OUTCOMES}
    return res


def check_unit(probes: pd.DataFrame, unit: str) -> None:
    """``unit`` names what one probe row is: ``frame`` (a scored sample), ``presentation`` or ``attempt`` (rows
    pooled by :mod:`harness.presentations`, which carry ``n_frames``); a table of the wrong kind is refused."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {list(UNITS)}, got {unit!r}")
    if unit != "frame" and len(probes) and "n_frames" not in probes.columns:
        raise ValueError(f"unit={unit!r} needs pooled probes (harness.presentations.pool: an n_frames column); "
                         "these are frame rows")


def evaluate(trials: pd.DataFrame, probes: pd.DataFrame, part: str, bands: dict, confidence: float = 0.95,
             unit: str = "frame") -> tuple[dict[str, Any], dict[str, Any]]:
    """Every rate of the operating point ``bands`` (accept thresholds + reject thresholds) on partition ``part``.

    ``unit``: what a probe row is (:data:`UNITS`): ``frame`` rows of the scored samples, or ``presentation`` /
    ``attempt`` rows pooled by :mod:`harness.presentations` (ISO/IEC 30107-3 counts presentations). The rates are
    computed the same way; the result says which.

    Returns ``(rates, outcomes)``: ``rates`` = ``{"unit", "partition", "t_match", "t_pad", "confidence", "counts",
    "verif": {fmr, fnmr}, "pad": {apcer_per_species, apcer_max, apcer_max_species, bpcer, non_response},
    "system": {iapar, iapar_per_species, zero_effort_fmr, genuine_rejection, fta_convention}, "decisions"}``.
    """
    check_unit(probes, unit)
    t_match = float(bands["match"]["accept_at_or_above"])
    t_pad = float(bands["pad"]["accept_at_or_above"])
    o = outcomes(trials, probes, part, t_match, t_pad)
    c = confidence
    rates: dict[str, Any] = {"partition": part, "t_match": t_match, "t_pad": t_pad, "confidence": c,
                             "counts": o["_counts"], "verif": {}, "pad": {}, "system": {}, "decisions": {}}
    if unit != "frame":  # frame-level results keep their shape (and golden values) unchanged
        rates["unit"] = unit
    v = rates["verif"]
    for key, name in (("fmr", "match_fmr"), ("fnmr", "match_fnmr")):
        r = o[name].rate(c)
        if r is not None:
            v[key] = r
    p = rates["pad"]
    per = {s: x.rate(c) for s, x in o["apcer_per_species"].items()}
    per = {s: r for s, r in per.items() if r is not None}
    if per:
        w = worst_species(per)
        p.update(apcer_per_species=per, apcer_max=per[w], apcer_max_species=w)
    b = o["bpcer"].rate(c)
    if b is not None:
        p["bpcer"] = b
    nr = {"bona_fide": o["non_response_bona_fide"].rate(c), "attack": o["non_response_attack"].rate(c),
          "attack_per_species": {s: x.rate(c) for s, x in o["non_response_attack_per_species"].items()}}
    p["non_response"] = {k: x for k, x in nr.items() if x}
    s = rates["system"]
    for key, name in (("iapar", "iapar"), ("zero_effort_fmr", "system_fmr"), ("genuine_rejection", "system_frr")):
        r = o[name].rate(c)
        if r is not None:
            s[key] = r
    ips = {sp: x.rate(c) for sp, x in o["iapar_per_species"].items()}
    if ips:
        s["iapar_per_species"] = ips
    s["fta_convention"] = FTA_CONVENTION
    rates["decisions"] = _decisions(o, bands, c)
    return rates, o
