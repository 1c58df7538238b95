"""Standards presets (``conf/standards/*.yaml``) and their verdicts, computed on confidence bounds.

A preset states its source, what we know of its numbers, the confidence level, and a list of criteria::

    - id: frr
      metric: system_frr        # see METRICS
      op: "<="                   # "<=" or "<"
      limit: 0.03
      rule: bound               # bound (default) | zero_count | coverage
      min_n: 150                # zero_count / coverage only
      confidence: 0.80          # optional per-criterion override of the preset's confidence

Verdict of one criterion on a measured rate k/n, with [lo, hi] its two-sided ``confidence`` Clopper-Pearson
interval (:func:`harness.metrics.intervals.rate`):

* ``bound`` (``rate <= limit``): **pass** iff hi <= limit; **fail** iff lo > limit; otherwise **insufficient
  evidence** (the data cannot tell). With ``<``: pass iff hi < limit; fail iff lo >= limit.
* ``zero_count`` (a published "0 %" criterion, which no confidence bound can ever show): pass iff k == 0 and
  n >= ``min_n``; fail iff k > 0; insufficient evidence when n < ``min_n``.
* ``coverage`` (e.g. number of PAI species tested): pass iff the count meets the limit, otherwise insufficient
  evidence (the data do not cover what the standard tests; never a fail).

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
from harness.paths import REPO_ROOT

from .bounds import min_n_for_zero_errors

__all__ = ["PRESET_DIR", "METRICS", "available_presets", "load_preset", "resolve_standards", "evaluate_criterion",
           "evaluate_preset", "evaluate_standards", "DISCLAIMER"]

PRESET_DIR = REPO_ROOT / "conf" / "standards"
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
    return f"{100 * x:.3g}%"


def _judge_rate(r: dict, crit: dict, conf: float) -> tuple[str, str]:
    k, n = int(r["k"]), int(r["n"])
    op, limit = crit.get("op", "<="), float(crit["limit"])
    rule = crit.get("rule", "bound")
    if rule == "zero_count":
        min_n = int(crit.get("min_n") or 1)
        if k > 0:
            return "fail", f"{k}/{n} accepted; the criterion allows none"
        if n < min_n:
            return "insufficient evidence", f"0/{n}, but the criterion is judged on >= {min_n} presentations"
        return "pass", f"0/{n} (>= {min_n} presentations)"
    rr = rate(k, n, 1.0 - conf)
    head = f"{k}/{n} = {_fmt(rr.value)}, {100 * conf:g}% CI [{_fmt(rr.lo)}, {_fmt(rr.hi)}] vs {op} {_fmt(limit)}"
    strict = op == "<"
    if (rr.hi < limit) if strict else (rr.hi <= limit):
        return "pass", head + ": upper bound meets the limit"
    if (rr.lo >= limit) if strict else (rr.lo > limit):
        return "fail", head + ": lower bound already violates the limit"
    need = min_n_for_zero_errors(limit, conf) if 0 < limit < 1 else None
    extra = f" (with 0 errors >= {need} trials would be needed)" if need else ""
    return "insufficient evidence", head + ": the interval straddles the limit" + extra


def _combine(verdicts: list[str]) -> str:
    if "fail" in verdicts:
        return "fail"
    if all(v == "pass" for v in verdicts) and verdicts:
        return "pass"
    return "insufficient evidence"


def evaluate_criterion(crit: dict, rates: dict, conf: float) -> dict:
    """Verdict of one criterion against :func:`harness.policy.report.measure` output ``rates``."""
    out = {k: crit[k] for k in ("id", "metric", "op", "limit", "rule", "description", "provenance") if k in crit}
    metric = crit["metric"]
    conf = float(crit.get("confidence", conf))
    out["confidence"] = conf
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
    if metric.endswith("_per_species"):
        parts = {s: _judge_rate(r, crit, conf) for s, r in sorted(val.items())}
        out["per_species"] = {s: {"verdict": v, "reason": why} for s, (v, why) in parts.items()}
        out["verdict"] = _combine([v for v, _ in parts.values()])
        out["reason"] = "; ".join(f"{s}: {v} ({why})" for s, (v, why) in parts.items())
        return out
    v, why = _judge_rate(val, crit, conf)
    out.update(verdict=v, reason=why)
    return out


def evaluate_preset(preset: dict, rates: dict) -> dict:
    conf = float(preset.get("confidence", 0.95))
    crits = preset.get("criteria") or []
    res = {"name": preset["name"], "title": preset.get("title", preset["name"]), "source": preset.get("source", ""),
           "confidence": conf, "what_we_know": preset.get("what_we_know", ""), "disclaimer": DISCLAIMER,
           "partition": rates.get("partition")}
    if not crits or preset.get("transcribed") is False:
        res.update(verdict="not evaluated", criteria=[],
                   reason="the preset's numeric criteria are not transcribed; nothing to judge (see what_we_know)")
        return res
    judged = [evaluate_criterion(c, rates, conf) for c in crits]
    vs = [c["verdict"] for c in judged]
    res["criteria"] = judged
    res["verdict"] = "fail" if "fail" in vs else ("pass" if all(v == "pass" for v in vs) else "insufficient evidence")
    return res


def evaluate_standards(presets: list[dict], rates: dict) -> list[dict]:
    return [evaluate_preset(p, rates) for p in presets]
