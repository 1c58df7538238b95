"""Standards presets (``conf/standards/*.yaml``) and their verdicts, computed on confidence bounds.

A preset states its source, what we know of its numbers, the confidence level, and a list of criteria::

    - id: frr
      metric: system_frr        # see METRICS
      op: "<="                   # "<=" or "<"
      limit: 0.03
      rule: bound               # bound (default) | zero_count | coverage
      min_n: 150                # zero_count / coverage only
      confidence: 0.80          # optional per-criterion override of the preset's confidence

Verdict of one criterion on a measured rate k/n, with [lo, hi] its two-sided ``confidence`` PEOPLE-AWARE interval
(:func:`harness.evaluate.people_rate`, recomputed from the per-trial outcomes at the criterion's confidence; a bare
``k/n`` dict without outcomes falls back to Clopper-Pearson), and ``N`` the distinct people behind the rate:

* ``bound`` (``rate <= limit``): **pass** iff hi <= limit and N >= ``min_subjects``; **fail** iff lo > limit;
  otherwise **insufficient evidence** (the data cannot tell, or "insufficient evidence: N subjects" when only
  the number of people stands between the data and a pass). With ``<``: pass iff hi < limit; fail iff lo >= limit.
* ``zero_count`` (a published "0 %" criterion, which no confidence bound can ever show): pass iff k == 0,
  n >= ``min_n`` and N >= ``min_subjects``; fail iff k > 0; insufficient evidence otherwise.
* ``coverage`` (e.g. number of PAI species tested): pass iff the count meets the limit, otherwise insufficient
  evidence (the data do not cover what the standard tests; never a fail).

``min_subjects``: per criterion, else the preset's, else :data:`DEFAULT_MIN_SUBJECTS` (the harness default, used
where the standard states no number; the verdict says which applied). A fail needs no minimum: a lower bound above
the limit, or an accepted attack under a "0 %" rule, is evidence against the system whatever the number of people.

Per-species metrics are judged for every species (fail if any fails, pass only if all pass). A metric the data
cannot measure is **not evaluable**. Preset verdict: fail if any criterion fails; else insufficient evidence if
any criterion is not a pass; else pass; **not evaluated** when the preset's criteria are not transcribed.
A verdict is indicative only: it is computed on this dataset at the exported thresholds, not under the
standard's test protocol (subjects, PAI species and effort, environment, attempts), and is never a certification.
"""

from __future__ import annotations

from typing import Any

import yaml

from harness.metrics.intervals import rate
from harness.metrics.pad import worst_species
from harness.paths import CONF_DIR

from .bounds import min_n_for_zero_errors

__all__ = ["PRESET_DIR", "METRICS", "available_presets", "load_preset", "resolve_standards", "evaluate_criterion",
           "evaluate_preset", "evaluate_standards", "DISCLAIMER", "DEFAULT_MIN_SUBJECTS"]

#: people behind a rate before any verdict can pass, where the standard states no number (harness default)
DEFAULT_MIN_SUBJECTS = 10

PRESET_DIR = CONF_DIR / "standards"
DISCLAIMER = ("indicative verdict: computed on this dataset's evaluation partition at the exported thresholds, not "
              "under the standard's own test protocol; not a certification")

#: metric name -> (group, key) in :func:`harness.policy.report.measure`'s output
METRICS: dict[str, tuple[str, str]] = {
    "match_fmr": ("verif", "fmr"),
    "match_fnmr": ("verif", "fnmr"),
    "system_fmr": ("system", "zero_effort_fmr"),
    "system_frr": ("system", "genuine_rejection"),
    "iapar": ("system", "iapar"),
    "iapar_per_species": ("system", "iapar_per_species"),
    "apcer_per_species": ("pad", "apcer_per_species"),
    "apcer_max": ("pad", "apcer_max"),
    "bpcer": ("pad", "bpcer"),
}
COVERAGE = {"attack_species_count", "bona_fide_presentations", "attack_presentations_per_species"}


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name: str) -> dict:
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown standards preset {name!r}: no {path} (available: {', '.join(available_presets())})")
    d = yaml.safe_load(path.read_text())
    d.setdefault("name", name)
    return d


def resolve_standards(spec: Any) -> list[dict]:
    """``"all"`` / None -> every preset; a name or list of names -> those; preset dicts are used as they are."""
    if spec is None or spec == "all":
        return [load_preset(n) for n in available_presets()]
    if spec in ("none", False) or spec == []:
        return []
    if isinstance(spec, str):
        spec = [s.strip() for s in spec.split(",") if s.strip()]
    if isinstance(spec, dict):
        spec = [spec] if "criteria" in spec else list(spec.values())
    return [s if isinstance(s, dict) else load_preset(str(s)) for s in spec]


def _fmt(x: float) -> str:
    if x == 0:
        return "0%"
    return "<0.0001%" if x < 1e-6 else f"{100 * x:.3g}%"


def _rate_at(r: dict, conf: float, outcome: Any) -> dict:
    """The rate at ``conf``: recomputed people-aware from the outcomes, else Clopper-Pearson on the dict's k/n."""
    if outcome is not None:
        x = outcome.rate(conf)
        if x is not None:
            return x
    rr = rate(int(r["k"]), int(r["n"]), 1.0 - conf)
    return {"k": rr.k, "n": rr.n, "value": rr.value, "lo": rr.lo, "hi": rr.hi, "n_subjects": r.get("n_subjects")}


def _judge_rate(r: dict, crit: dict, conf: float, outcome: Any = None, min_subjects: tuple[int, str] = (1, "")
                ) -> tuple[str, str]:
    k, n = int(r["k"]), int(r["n"])
    op, limit = crit.get("op", "<="), float(crit["limit"])
    rule = crit.get("rule", "bound")
    rr = _rate_at(r, conf, outcome)
    people = rr.get("n_subjects")
    m, src = min_subjects
    few = people is None or int(people) < m
    people_txt = f"{people if people is not None else 'unknown'} subject{'s' if people != 1 else ''}"
    short = f"insufficient evidence: {people_txt} (at least {m} needed; {src})"
    if rule == "zero_count":
        min_n = int(crit.get("min_n") or 1)
        if k > 0:
            return "fail", f"{k}/{n} accepted ({people_txt}); the criterion allows none"
        if n < min_n:
            return "insufficient evidence", f"0/{n} ({people_txt}), but the criterion is judged on >= {min_n} presentations"
        if few:
            return "insufficient evidence", f"0/{n}: {short}"
        return "pass", f"0/{n} (>= {min_n} presentations, {people_txt})"
    head = (f"{k}/{n} = {_fmt(rr['value'])} over {people_txt}, {100 * conf:g}% people-aware CI [{_fmt(rr['lo'])}, "
            f"{_fmt(rr['hi'])}] vs {op} {_fmt(limit)}")
    strict = op == "<"
    if (rr["lo"] >= limit) if strict else (rr["lo"] > limit):
        return "fail", head + ": lower bound already violates the limit"
    if (rr["hi"] < limit) if strict else (rr["hi"] <= limit):
        if few:
            return "insufficient evidence", head + f": upper bound meets the limit, but {short}"
        return "pass", head + ": upper bound meets the limit"
    need = min_n_for_zero_errors(limit, conf) if 0 < limit < 1 else None
    extra = f" (trial-level: with 0 errors >= {need} trials would be needed, from enough people)" if need else ""
    return "insufficient evidence", head + ": the interval straddles the limit" + extra


def _combine(verdicts: list[str]) -> str:
    if "fail" in verdicts:
        return "fail"
    if all(v == "pass" for v in verdicts) and verdicts:
        return "pass"
    return "insufficient evidence"


#: criterion metric -> key of :func:`harness.evaluate.outcomes`
OUTCOME_KEYS = {"match_fmr": "match_fmr", "match_fnmr": "match_fnmr", "system_fmr": "system_fmr",
                "system_frr": "system_frr", "iapar": "iapar", "iapar_per_species": "iapar_per_species",
                "apcer_per_species": "apcer_per_species", "bpcer": "bpcer", "apcer_max": "apcer_per_species"}


def _min_subjects(crit: dict, preset_min: tuple[int, str] | None) -> tuple[int, str]:
    if crit.get("min_subjects") is not None:
        return int(crit["min_subjects"]), str(crit.get("min_subjects_source", "this criterion's minimum"))
    if preset_min is not None:
        return preset_min
    return DEFAULT_MIN_SUBJECTS, "harness default: the standard states no number"


def evaluate_criterion(crit: dict, rates: dict, conf: float, outcomes: dict | None = None,
                       preset_min: tuple[int, str] | None = None) -> dict:
    """Verdict of one criterion against :func:`harness.evaluate.evaluate` output ``rates`` (and its per-trial
    ``outcomes``, to recompute the rate at the criterion's confidence)."""
    out = {k: crit[k] for k in ("id", "metric", "op", "limit", "rule", "description", "provenance") if k in crit}
    metric = crit["metric"]
    conf = float(crit.get("confidence", conf))
    out["confidence"] = conf
    ms = _min_subjects(crit, preset_min)
    out["min_subjects"], out["min_subjects_source"] = ms
    if crit.get("rule") == "coverage" or metric in COVERAGE:
        per = rates.get("pad", {}).get("apcer_per_species") or rates.get("system", {}).get("iapar_per_species") or {}
        if metric == "attack_species_count":
            value = len(per)
        elif metric == "bona_fide_presentations":
            value = int((rates.get("pad", {}).get("bpcer") or {}).get("n", 0))
        elif metric == "attack_presentations_per_species":
            value = min((int(r["n"]) for r in per.values()), default=0)
        else:
            raise ValueError(f"unknown coverage metric {metric!r}")
        limit = crit["limit"]
        ok = value >= limit
        out.update(value=value, verdict="pass" if ok else "insufficient evidence",
                   reason=f"{metric} = {value} vs >= {limit}" + ("" if ok else ": the data do not cover what the standard "
                                                                   "tests"))
        return out
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} in criterion {crit.get('id')!r}; known: {sorted(METRICS) + sorted(COVERAGE)}")
    group, key = METRICS[metric]
    val = (rates.get(group) or {}).get(key)
    if not val:
        out.update(verdict="not evaluable", reason=f"{metric} cannot be measured on this data (no trials of that kind)")
        return out
    oc = (outcomes or {}).get(OUTCOME_KEYS.get(metric, ""))
    if metric == "apcer_max" and isinstance(oc, dict):  # the worst species, by the one rule
        sp = rates.get("pad", {}).get("apcer_max_species") or worst_species(rates["pad"]["apcer_per_species"])
        oc = oc.get(sp)
    if metric.endswith("_per_species"):
        parts = {s: _judge_rate(r, crit, conf, (oc or {}).get(s), ms) for s, r in sorted(val.items()) if r}
        out["per_species"] = {s: {"verdict": v, "reason": why} for s, (v, why) in parts.items()}
        out["verdict"] = _combine([v for v, _ in parts.values()])
        out["reason"] = "; ".join(f"{s}: {v} ({why})" for s, (v, why) in parts.items())
        return out
    v, why = _judge_rate(val, crit, conf, oc, ms)
    out.update(verdict=v, reason=why)
    return out


def evaluate_preset(preset: dict, rates: dict, outcomes: dict | None = None) -> dict:
    conf = float(preset.get("confidence", 0.95))
    pmin = None
    if preset.get("min_subjects") is not None:
        pmin = (int(preset["min_subjects"]), str(preset.get("min_subjects_source", preset["name"])))
    crits = preset.get("criteria") or []
    res = {"name": preset["name"], "title": preset.get("title", preset["name"]), "source": preset.get("source", ""),
           "confidence": conf, "what_we_know": preset.get("what_we_know", ""), "disclaimer": DISCLAIMER,
           "partition": rates.get("partition")}
    if not crits or preset.get("transcribed") is False:
        res.update(verdict="not evaluated", criteria=[],
                   reason="the preset's numeric criteria are not transcribed; nothing to judge (see what_we_know)")
        return res
    judged = [evaluate_criterion(c, rates, conf, outcomes, pmin) for c in crits]
    vs = [c["verdict"] for c in judged]
    res["criteria"] = judged
    res["verdict"] = "fail" if "fail" in vs else ("pass" if all(v == "pass" for v in vs) else "insufficient evidence")
    return res


def evaluate_standards(presets: list[dict], rates: dict, outcomes: dict | None = None) -> list[dict]:
    return [evaluate_preset(p, rates, outcomes) for p in presets]
