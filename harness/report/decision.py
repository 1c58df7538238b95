"""The committee's decision: one JSON block (``summary.json["decision"]``) from which the report's first page and the
MLflow run description are rendered, so every number a committee reads exists in one machine-readable place.

:func:`build_decision` reads only what the run already computed (``summary``'s operating point, the policy's rates on
the report partition through :func:`harness.evaluate.evaluate`, the standards verdicts) plus people rates of the
match-only acceptance per attack species (:func:`harness.evaluate.people_rate`). Conventions:

* every rate is a people rate (``k, n, value, lo, hi, n_subjects``; ``lo``/``hi`` the people-aware interval) with
  ``per_10000`` (value, lo, hi scaled to 10,000 attempts) and ``evidence``: ``"measured"``, or ``"insufficient"``
  when it rests on fewer people than the policy's ``min_subjects`` (the page then shows "insufficient evidence: N
  people" instead of the number);
* attack species are named with :data:`ATTACK_FAMILIES`; the families a run did not test are listed by name, so that
  "no attack passed" is never read as "no attack of any kind passes".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.evaluate import people_rate

from .evidence import PER, evidence_rate, slim  # noqa: F401  (re-exported)

#: attack families a remote face check meets, with the words the page uses. Presentation attacks follow ISO/IEC
#: 30107-1 (artefact species: print, screen replay, masks); injection attacks (a virtual camera or an emulator
#: feeding frames that never passed through the camera) are outside ISO/IEC 30107 and covered by CEN/TS 18099.
ATTACK_FAMILIES: dict[str, str] = {
    "print_photo": "printed photo",
    "screen_replay": "photo shown on a screen",
    "video_replay": "replayed or bought video",
    "paper_mask": "paper / cut-out mask",
    "3d_mask": "3D mask (resin, silicone, latex)",
    "deepfake": "deepfake, face swap or animated still",
    "injection": "digital injection (virtual camera, emulator)",
}

#: one line per rate name the page uses
GLOSSARY: dict[str, str] = {
    "FMR": "false match rate: share of comparisons of two different people that the face matcher accepts",
    "FNMR": "false non-match rate: share of comparisons of the same person that the face matcher rejects",
    "APCER": "attack presentation classification error rate (ISO/IEC 30107-3): share of attack presentations of one "
             "species that the liveness check (PAD) lets through",
    "BPCER": "bona fide presentation classification error rate (ISO/IEC 30107-3): share of live, honest "
             "presentations that the liveness check rejects",
    "IAPAR": "impostor attack presentation accept rate (ISO/IEC 30107-3): share of attacks that pass the whole system "
             "(face match AND liveness)",
    "FTA": "failure to acquire: no usable face found in the capture (counted as a rejection of an honest customer)",
    "people-aware interval": "95% range for the rate that treats people, not frames, as the independent units "
                             "(frames of one person are near-duplicates)",
    "review": "the share of applicants a review band sends to a human reviewer",
}


#: the policy keys that are targets, with the rate they bound
TARGET_KEYS = {"target_fmr": "FMR", "target_apcer": "APCER", "target_iapar": "IAPAR"}


def _family(species: str) -> str:
    return ATTACK_FAMILIES.get(species, species.replace("_", " "))


def _tested(summary: dict, probes: pd.DataFrame, trials: pd.DataFrame, part: str, capture: str | None) -> dict:
    ds = summary["dataset"]
    parts = ds.get("partitions") or {}
    pr = probes[probes["partition"] == part]
    att = pr[pr["label"] == "attack"]
    species = sorted(att["species"].astype(str).unique()) if len(att) else []
    tp = trials[trials["partition"] == part]
    counts = {
        "genuine_attempts": int((tp["kind"] == "genuine").sum()),
        "impostor_comparisons": int((tp["kind"] == "impostor").sum()),
        "attack_attempts": int((tp["kind"] == "attack").sum()),
        "bona_fide_presentations": int((pr["label"] == "bona_fide").sum()),
        "attack_presentations": int(len(att)),
    }
    per_species = {sp: {"name": _family(sp), "presentations": int((att["species"].astype(str) == sp).sum()),
                        "people": int(att.loc[att["species"].astype(str) == sp, "subject"].nunique())}
                   for sp in species}
    not_tested = [{"species": k, "name": v} for k, v in ATTACK_FAMILIES.items() if k not in species]
    return {"dataset": ds.get("name"), "capture": capture or "capture conditions not described by the dataset adapter",
            "people": {"total": int(ds.get("subjects", 0)), **{p: len(v) for p, v in parts.items()},
                       "evaluation": int(pr["subject"].nunique())},
            "attempts": counts, "species_tested": per_species, "species_not_tested": not_tested,
            "partition": part}


def _targets(policy: dict) -> dict[str, float]:
    return {TARGET_KEYS[k]: float(policy[k]) for k in TARGET_KEYS if policy.get(k) is not None}


def _outcomes(summary: dict, trials: pd.DataFrame, part: str, min_subjects: int) -> dict:
    op = summary["operating_point"]
    rates = (op.get("report") or {}).get("rates") or {}
    if (op.get("report") or {}).get("partition") != part:
        rates = {}
    sysr, dec = rates.get("system") or {}, rates.get("decisions") or {}
    ev = lambda r: evidence_rate(r, min_subjects)  # noqa: E731
    honest = {"rejected": ev(sysr.get("genuine_rejection")),
              "sent_to_review": ev((dec.get("genuine") or {}).get("review")) if op.get("review_band") else None}
    impostors = {"accepted": ev(sysr.get("zero_effort_fmr"))}
    basis = "whole system (face match AND liveness)"
    if not sysr and op.get("t_match") is not None:  # no liveness threshold (verification-only data): the matcher
        basis = "face matching only (no liveness threshold was chosen)"  # alone decides; same people rates
        tp = trials[trials["partition"] == part]
        g, i = tp[tp["kind"] == "genuine"], tp[tp["kind"] == "impostor"]
        t = float(op["t_match"])
        if len(g):
            honest["rejected"] = ev(people_rate(g["match_score"].to_numpy(float) < t, g["probe_subject"]))
        if len(i):
            impostors["accepted"] = ev(people_rate(i["match_score"].to_numpy(float) >= t, i["probe_subject"],
                                                   i["ref_subject"]))
    t = trials[(trials["partition"] == part) & (trials["kind"] == "attack")]
    attacks = []
    for sp, r in sorted((sysr.get("iapar_per_species") or {}).items()):
        g = t[t["species"].astype(str) == sp]
        match_only = (people_rate(g["match_score"].to_numpy(dtype=float) >= float(op["t_match"]), g["probe_subject"])
                      if len(g) and op.get("t_match") is not None else None)
        attacks.append({"species": sp, "name": _family(sp), "accepted_by_system": ev(r),
                        "accepted_by_matching_alone": ev(match_only)})
    return {"basis": basis, "honest_customers": honest, "zero_effort_impostors": impostors, "attacks": attacks}


def _standards(op: dict, supported: bool, targets: dict) -> dict:
    st = (op.get("report") or {}).get("standards") or []
    rows = [{"name": p.get("name"), "title": p.get("title", p.get("name")), "verdict": p.get("verdict"),
             "caveat": p.get("disclaimer", ""), "what_we_know": p.get("what_we_know", ""),
             "reason": p.get("reason", "")} for p in st]
    tally = {v: sum(1 for r in rows if r["verdict"] == v) for v in ("pass", "fail", "insufficient evidence",
                                                                     "not evaluated")}
    tgt = ", ".join(f"{k} {100 * v:g}%" for k, v in targets.items())
    if not targets:
        rec = ("This policy sets no security target of its own, so 'targets supported' says nothing about security; "
               "the standards below are the only security limits judged, on the evaluation people"
               + (", and at least one of them fails." if tally["fail"] else "."))
    elif supported and tally["fail"]:
        rec = (f"The policy's own targets ({tgt}) are shown to be met on the selection data, but the standards below "
               "set different or stricter limits, measured under their own rules; a 'fail' there is not contradicted "
               "by 'targets supported'.")
    elif supported:
        rec = f"The policy's own targets ({tgt}) are shown to be met on the selection data."
    else:
        rec = (f"The policy's targets ({tgt}) are NOT shown to be met: the data cannot support them (see 'How sure "
               "we are'). The standards verdicts below are judged separately, on the evaluation people, and cannot "
               "turn this into a pass.")
    return {"presets": rows, "tally": tally, "reconciliation": rec}


def build_decision(summary: dict, trials: pd.DataFrame, probes: pd.DataFrame, *, policy: dict | None = None,
                   capture: str | None = None, alternatives: list[dict] | None = None,
                   score_meaning: dict | None = None) -> dict[str, Any]:
    """The ``decision`` block of ``summary.json`` (see module docstring). ``alternatives``: the policy comparison
    (:func:`harness.report.alternatives.compare_policies`); ``score_meaning``: :func:`score_meaning`."""
    op = summary["operating_point"]
    policy = dict(policy or op.get("policy") or {})
    part = (op.get("report") or {}).get("partition") or summary["run"].get("report_partition", "eval")
    min_subjects = int(policy.get("min_subjects", (op.get("evidence") or {}).get("min_subjects", 10)))
    confidence = float(policy.get("confidence", 0.95))
    targets = _targets(policy)
    supported = bool(op.get("supported"))
    bands = op.get("bands") or {}
    out = {
        "version": 1,
        "partition": part,
        "per": PER,
        "confidence": confidence,
        "min_subjects": min_subjects,
        "tested": _tested(summary, probes, trials, part, capture),
        "decision": {
            "policy": op.get("name"), "targets": targets, "selected_on": op.get("selected_on"),
            "selected_on_eval_data": bool(op.get("selected_on_eval_data")),
            "t_match": op.get("t_match"), "t_pad": op.get("t_pad"), "review_band": bool(op.get("review_band")),
            "reject_below": {"match": (bands.get("match") or {}).get("reject_below"),
                             "pad": (bands.get("pad") or {}).get("reject_below")},
            "models": {"embedder": (summary["models"].get("embedder") or {}).get("name"),
                       "pad": (summary["models"].get("pad") or {}).get("name")},
        },
        "outcomes": _outcomes(summary, trials, part, min_subjects),
        "certainty": {
            "targets_supported": supported,
            "interval": (op.get("evidence") or {}).get("interval", "people-aware interval"),
            "reasons": list(op.get("notes") or []),
        },
        "standards": _standards(op, supported, targets),
        "glossary": dict(GLOSSARY),
    }
    if alternatives is not None:
        out["alternatives"] = alternatives
    if score_meaning is not None:
        out["score_meaning"] = score_meaning
    return out


# ------------------------------------------------------------------------------------------- what a score means


def _points(neg: np.ndarray, pos: np.ndarray, extra: list[float]) -> list[float]:
    allv = np.concatenate([neg, pos]) if neg.size + pos.size else np.zeros(0)
    pts = [float(x) for x in np.quantile(allv, [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])] if allv.size else []
    pts += [float(x) for x in extra if x is not None and np.isfinite(x)]
    return sorted(set(pts))


def score_meaning(summary: dict, trials: pd.DataFrame, probes: pd.DataFrame, part: str, *,
                  thresholds: dict[str, list[float]] | None = None, observed: dict | None = None) -> dict:
    """Per score (match; PAD): the model's scale in words, the range observed on ``part`` and a score -> evidence
    table: at each listed score (quantiles of the observed scores plus ``thresholds``) the FMR / FNMR (match) or
    the APCER per species / BPCER (PAD) an accept threshold there gives, as people rates."""
    thresholds = thresholds or {}
    md = summary["models"]
    t = trials[trials["partition"] == part]
    pr = probes[(probes["partition"] == part) & (probes["status"] == "scored")]
    g, i = t[t["kind"] == "genuine"], t[t["kind"] == "impostor"]
    gen, imp = g["match_score"].to_numpy(float), i["match_score"].to_numpy(float)
    rows_m = []
    for s in _points(imp, gen, thresholds.get("match", [])):
        rows_m.append({"score": s,
                       "fmr": slim(people_rate(imp >= s, i["probe_subject"], i["ref_subject"])) if imp.size else None,
                       "fnmr": slim(people_rate(gen < s, g["probe_subject"])) if gen.size else None})
    bona_df, att = pr[pr["label"] == "bona_fide"], pr[pr["label"] == "attack"]
    bona, a_s = bona_df["pad_score"].to_numpy(float), att["pad_score"].to_numpy(float)
    a_sp = att["species"].astype(str).to_numpy()
    rows_p = []
    for s in _points(a_s, bona, thresholds.get("pad", [])):
        rows_p.append({"score": s, "apcer": {sp: slim(people_rate(a_s[a_sp == sp] >= s, att["subject"].to_numpy()[a_sp == sp]))
                                             for sp in sorted(set(a_sp))},
                       "bpcer": slim(people_rate(bona < s, bona_df["subject"])) if bona.size else None})

    def scale(role: str) -> dict:
        m = md.get(role) or {}
        return {"model": m.get("name"), "scale": m.get("score_scale") or "", "possible_range": m.get("score_range")}

    return {"partition": part,
            "match": {**scale("embedder"), "observed": (observed or {}).get("match"), "table": rows_m},
            "pad": {**scale("pad"), "observed": (observed or {}).get("pad"), "table": rows_p}}


def decision_for_run(summary: dict, trials: pd.DataFrame, probes: pd.DataFrame, policy: dict, *,
                     capture: str | None = None) -> dict[str, Any]:
    """The whole ``decision`` block of a run: the policy comparison, the score meaning, the decision itself and its
    plain-language markdown (``description_markdown``, the MLflow run description)."""
    from .alternatives import compare_policies
    from .decision_page import description_markdown

    op = summary["operating_point"]
    part = (op.get("report") or {}).get("partition") or "eval"
    alts = compare_policies(summary, trials, probes, policy)
    try:
        from harness.export.lookup import observed_score_ranges

        observed = observed_score_ranges(trials, probes, part)
    except ImportError:  # pragma: no cover - an older export module
        observed = None
    ok = [r for r in alts["rows"] if not r.get("error")]
    meaning = score_meaning(summary, trials, probes, part, observed=observed,
                            thresholds={"match": [r["t_match"] for r in ok], "pad": [r["t_pad"] for r in ok]})
    d = build_decision(summary, trials, probes, policy=policy, capture=capture, alternatives=alts,
                       score_meaning=meaning)
    if d["decision"]["policy"] == "min_cost":  # its objective is the cost model, not a target
        d["decision"]["cost_model"] = alts["cost_model"]
    d["description_markdown"] = description_markdown(d)
    return d
