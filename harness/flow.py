"""Attempts and transactions: transaction-level rates of a KYC flow computed from REAL sequences of distinct attempts
of one person (ISO/IEC 19795-1:2006, transaction-level FAR/FRR over attempts), never from the single-attempt rate by
formula; the independence formula is printed beside each real rate so that the difference is visible.

An applicant may try up to ``k`` times (``flow.max_attempts``, one result per ``k``); the flow may send a case to
manual review.

* Attempts. A genuine attempt is a bona fide probe (status ``scored`` or ``fta``) of a person with an enrolment
  template in the partition (a ``ref_subject`` of the partition's trials): a scored one is an attempt through its
  genuine trial (its outcome = :func:`harness.decision_rule.decide_arrays` of that trial: accept / review / reject),
  an ``fta`` one (no face found) is a failed attempt (``reject``: the person retries). Scored bona fide probes
  without a genuine trial (e.g. enrolment samples) are not attempts and are counted. Unreadable files (status
  ``rejected``) are not attempts: excluded and counted. An attack attempt is an attack probe (scored through its
  attack trial, or ``fta``: never accepted, never passes PAD) aimed at an enrolled person.
* Transactions. A person's attempts are sorted by (``order``, ``sample_id``) and cut into consecutive, disjoint blocks
  of ``k`` (block j = attempts j*k .. j*k+k-1); one block is one transaction (:func:`transactions`). Walking its
  attempts: ``accept`` -> passed at that attempt; ``review`` with ``review_on_band`` -> ends in review; anything else
  is a failure; after ``review_after_failures`` failures -> review; after ``k`` failures -> ``on_exhausted``.
  Attempts after the end are not used. A person with fewer than ``k`` attempts has no complete block: excluded from
  that ``k`` and counted (``people_short``, ``attempts_short``); the ``n mod k`` attempts after the last block are
  counted as ``attempts_unused``.
* Genuine rates per ``k`` (people rates, :func:`harness.evaluate.people_rate`, clustered by person): ``frr`` (ends
  rejected), ``review_rate``, ``not_passed`` (either), ``pass_rate``; the attempts used, the time to pass, reviews
  per 10 000 applicants; the single-attempt rates over the same attempts and the independence formulas
  (:func:`independent_not_passed`, :func:`independent_reject`).
* Attack rates per ``k``, per species and pooled: an attacker is (impersonated person, species); the attacker's
  attempts are cut into blocks the same way and walked through the same flow: ``iapar`` = transactions that end
  accepted (the first ``accept`` before the flow stops), ``review_rate`` = transactions that end in review before
  any accept; PAD alone: ``apcer`` = transactions with any attempt at or above the PAD accept threshold. Clustered
  by the impersonated person. Formula: :func:`independent_accept`. Zero-effort impostor trials are not
  transactions here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd

from harness.decision_rule import decide_arrays
from harness.evaluate import people_rate

__all__ = ["DEFAULTS", "validate_flow", "evaluate_flow", "transactions", "independent_accept",
           "independent_not_passed", "independent_reject"]

DEFAULTS: dict[str, Any] = {"enabled": True, "max_attempts": [1, 2, 3], "attempt": "presentation",
                            "window_frames": 10, "review_after_failures": None, "review_on_band": True,
                            "on_exhausted": "reject", "fps": None}


def _is_int(v: Any) -> bool:
    """True for an integer that is not a bool."""
    return isinstance(v, Integral) and not isinstance(v, bool)


def _check(ok: bool, key: str, msg: str, v: Any) -> None:
    """Raise the one-line ``ValueError`` naming ``flow.<key>`` unless ``ok``."""
    if not ok:
        raise ValueError(f"flow.{key}: {msg}, got {v!r}")


def validate_flow(flow: Mapping | None) -> dict[str, Any]:
    """The validated flow config with defaults filled (``max_attempts`` as a sorted list of distinct ints); a bad
    key or value raises a one-line ``ValueError`` naming ``flow.<key>``."""
    if flow is None:
        flow = {}
    if not isinstance(flow, Mapping):
        raise ValueError(f"flow: expected a mapping, got {type(flow).__name__}")
    for key in flow:
        _check(key in DEFAULTS, str(key), f"unknown key (known: {', '.join(DEFAULTS)})", flow[key])
    c = {**DEFAULTS, **{str(k): v for k, v in flow.items()}}
    for key in ("enabled", "review_on_band"):
        _check(isinstance(c[key], bool), key, "expected true or false", c[key])
    m = c["max_attempts"]
    ks = [m] if _is_int(m) else (list(m) if isinstance(m, Sequence) and not isinstance(m, str) else None)
    _check(bool(ks) and all(_is_int(x) and x >= 1 for x in ks), "max_attempts",
           "expected an int >= 1 or a non-empty list of them", m)
    c["max_attempts"] = sorted({int(x) for x in ks})
    _check(c["attempt"] in ("presentation", "window"), "attempt", "expected presentation or window", c["attempt"])
    _check(_is_int(c["window_frames"]) and c["window_frames"] >= 1, "window_frames", "expected an int >= 1",
           c["window_frames"])
    raf = c["review_after_failures"]
    _check(raf is None or (_is_int(raf) and raf >= 1), "review_after_failures", "expected null or an int >= 1", raf)
    _check(c["on_exhausted"] in ("reject", "review"), "on_exhausted", "expected reject or review", c["on_exhausted"])
    fps = c["fps"]
    _check(fps is None or (isinstance(fps, Real) and not isinstance(fps, bool) and np.isfinite(fps) and fps > 0),
           "fps", "expected null or a number > 0", fps)
    c["window_frames"] = int(c["window_frames"])
    c["review_after_failures"] = None if raf is None else int(raf)
    c["fps"] = None if fps is None else float(fps)
    return c


def transactions(outcomes: Sequence[str], k: int, review_after_failures: int | None = None,
                 review_on_band: bool = True, on_exhausted: str = "reject") -> list[tuple[str, int]]:
    """``(end state, attempts used)`` per complete block of ``k`` of one person's ordered attempt outcomes
    (``"accept"`` / ``"review"`` / ``"reject"``; anything else, e.g. ``"fta"``, is a failure). End states:
    ``"pass"``, ``"review"``, ``"reject"``. The ``len(outcomes) % k`` attempts after the last block are ignored."""
    out = []
    for j in range(len(outcomes) // k):
        block, fails, end = outcomes[j * k:(j + 1) * k], 0, None
        for i, o in enumerate(block, 1):
            if o == "accept":
                end = ("pass", i)
            elif o == "review" and review_on_band:
                end = ("review", i)
            else:
                fails += 1
                if review_after_failures is not None and fails >= review_after_failures:
                    end = ("review", i)
            if end:
                break
        out.append(end or (on_exhausted, k))
    return out


def independent_accept(a: float, k: int, p_stop: float = 0.0, review_after_failures: int | None = None) -> float:
    """Chance that a transaction of ``k`` INDEPENDENT attempts ends accepted when each attempt is accepted with
    chance ``a`` and stops the transaction in review with chance ``p_stop``: ``1 - (1 - a)**k`` when nothing stops
    it (``p_stop = 0``, no ``review_after_failures``)."""
    if p_stop == 0.0 and review_after_failures is None:
        return float(1.0 - (1.0 - a) ** k)
    m = k if review_after_failures is None else min(k, review_after_failures)
    r = max(0.0, 1.0 - a - p_stop)
    return float(a * sum(r ** i for i in range(m)))


def independent_not_passed(p: float, k: int, p_stop: float = 0.0, review_after_failures: int | None = None) -> float:
    """Chance that a transaction of ``k`` INDEPENDENT attempts does not pass when each attempt is not accepted with
    chance ``p`` (of which ``p_stop`` stops the transaction in review): ``p**k`` when nothing stops it."""
    if p_stop == 0.0 and review_after_failures is None:
        return float(p ** k)
    return float(1.0 - independent_accept(1.0 - p, k, p_stop, review_after_failures))


def independent_reject(r: float, k: int, review_after_failures: int | None = None,
                       on_exhausted: str = "reject") -> float:
    """Chance that a transaction of ``k`` INDEPENDENT attempts ends rejected when each attempt is a (continuing)
    failure with chance ``r``: ``r**k``, or 0 when the flow never ends in reject (review after failures <= k, or
    ``on_exhausted = review``)."""
    if on_exhausted != "reject" or (review_after_failures is not None and review_after_failures <= k):
        return 0.0
    return float(r ** k)


def _rate(errors: Any, subjects: Any, confidence: float) -> dict | None:
    """A people rate, or None over no trials."""
    e = np.asarray(errors, bool)
    return None if e.size == 0 else people_rate(e, np.asarray(subjects).astype(str), None, confidence)


def _ordered(df: pd.DataFrame, probes: pd.DataFrame) -> pd.DataFrame:
    """``df`` (with ``sample_id``) joined with the probes' order and duration, sorted by (order, sample_id)."""
    cols = [c for c in ("sample_id", "order", "duration_s", "n_frames") if c in probes.columns]
    p = probes[cols].drop_duplicates("sample_id").copy()
    p["sample_id"] = p["sample_id"].astype(str)
    df = df.copy()
    df["sample_id"] = df["sample_id"].astype(str)
    df = df.merge(p, on="sample_id", how="left")
    for c in ("order", "duration_s", "n_frames"):
        if c not in df.columns:
            df[c] = 0 if c == "order" else np.nan
    df["order"] = pd.to_numeric(df["order"], errors="coerce").fillna(0)
    return df.sort_values(["subject", "order", "sample_id"], kind="stable").reset_index(drop=True)


def _attempt_tables(trials: pd.DataFrame, probes: pd.DataFrame, part: str, bands: dict
                    ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """``(genuine, attack, counts)``: one row per attempt (``subject``, ``sample_id``, ``outcome``, ``pad_pass``,
    ``species``, order and duration) of the partition (module docstring: which probes are attempts)."""
    t = trials[trials["partition"] == part]
    pr = probes[probes["partition"] == part]
    enrolled = set(t["ref_subject"].astype(str))
    t_pad = float(bands["pad"]["accept_at_or_above"])
    tables, counts = {}, {}
    for kind, label in (("genuine", "bona_fide"), ("attack", "attack")):
        tk = t[t["kind"] == kind].copy()
        tk["sample_id"] = tk["probe_id"].astype(str)
        n_dup = len(tk) - tk["sample_id"].nunique()
        tk = tk.drop_duplicates("sample_id")
        scored = pd.DataFrame({"sample_id": tk["sample_id"], "subject": tk["probe_subject"].astype(str),
                               "outcome": decide_arrays(tk["match_score"], tk["pad_score"], bands),
                               "pad_pass": tk["pad_score"].to_numpy(np.float64) >= t_pad,
                               "species": tk["species"].astype(str) if "species" in tk else "none"})
        pl = pr[pr["label"] == label]
        fta = pl[(pl["status"] == "fta") & pl["subject"].astype(str).isin(enrolled)]
        fta = pd.DataFrame({"sample_id": fta["sample_id"].astype(str), "subject": fta["subject"].astype(str),
                            "outcome": "reject", "pad_pass": False, "species": fta["species"].astype(str)})
        df = pd.concat([scored, fta], ignore_index=True)
        tables[kind] = _ordered(df, probes)
        ids = set(df["sample_id"])
        counts.update({f"{kind}_attempts": len(df), f"{kind}_fta_attempts": len(fta),
                       f"{kind}_duplicate_trials_dropped": int(n_dup),
                       f"{label}_rejected_excluded": int((pl["status"] == "rejected").sum())})
        if kind == "genuine":
            counts["bona_fide_scored_without_trial"] = int(((pl["status"] == "scored")
                                                            & ~pl["sample_id"].astype(str).isin(ids)).sum())
    counts["genuine_people"] = int(tables["genuine"]["subject"].nunique())
    counts["attackers"] = int(tables["attack"][["subject", "species"]].drop_duplicates().shape[0])
    return tables["genuine"], tables["attack"], counts


def _durations(df: pd.DataFrame, fps: float | None) -> np.ndarray:
    """Seconds per attempt: ``duration_s``, else ``n_frames / fps`` when fps is set; NaN when unknown."""
    d = pd.to_numeric(df["duration_s"], errors="coerce").to_numpy(np.float64)
    if fps is not None:
        nf = pd.to_numeric(df["n_frames"], errors="coerce").to_numpy(np.float64)
        d = np.where(np.isfinite(d), d, nf / fps)
    return d


def _walk(df: pd.DataFrame, k: int, cfg: dict, keys: list[str]) -> dict[str, Any]:
    """Transactions of every group (``keys``) of ``df`` at ``k``: per transaction its group's subject, end state,
    attempts used and row indices in the block; plus the short / unused counts."""
    rows: dict[str, list] = {"subject": [], "group": [], "end": [], "used": [], "block": []}
    short = {"people_short": 0, "attempts_short": 0, "attempts_unused": 0}
    for g, sub in df.groupby(keys, sort=True):
        idx = sub.index.to_numpy()
        if len(idx) < k:
            short["people_short"] += 1
            short["attempts_short"] += len(idx)
            continue
        short["attempts_unused"] += len(idx) % k
        ends = transactions(sub["outcome"].tolist(), k, cfg["review_after_failures"], cfg["review_on_band"],
                            cfg["on_exhausted"])
        for j, (end, used) in enumerate(ends):
            rows["subject"].append(str(sub["subject"].iloc[0]))
            rows["group"].append(g)
            rows["end"].append(end)
            rows["used"].append(used)
            rows["block"].append(idx[j * k:(j + 1) * k])
    return {**rows, **short}


def _with(k: int) -> str:
    """``with 1 attempt`` / ``with k attempts``: how a flow's sentence starts."""
    return f"with {k} attempt{'s' if k > 1 else ''}"


def _pct(x: float | None) -> str:
    """A share as ``12.3%`` (``n/a`` for None)."""
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _single(df: pd.DataFrame, w: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(outcomes, subjects)`` of the attempts in the complete blocks of ``w`` (the single-attempt basis)."""
    if not w["block"]:
        return np.array([], dtype=object), np.array([], dtype=str)
    idx = np.concatenate(w["block"])
    return df["outcome"].to_numpy(object)[idx], df["subject"].astype(str).to_numpy()[idx]


def _time_to_pass(df: pd.DataFrame, w: dict, fps: float | None) -> tuple[dict | None, str | None]:
    """Mean and median seconds to pass over the passed transactions, or None with the reason."""
    dur = _durations(df, fps)
    t = [float(dur[b[:u]].sum()) for b, u, e in zip(w["block"], w["used"], w["end"]) if e == "pass"]
    if not t:
        return None, "omitted: no transaction passed"
    if not np.all(np.isfinite(t)):
        return None, "omitted: an attempt used has no duration (duration_s unknown and flow.fps null or no n_frames)"
    return {"mean": float(np.mean(t)), "median": float(np.median(t)), "n": len(t)}, None


def _genuine_k(df: pd.DataFrame, k: int, cfg: dict, confidence: float) -> dict[str, Any]:
    """Transaction-level genuine rates at ``k`` attempts (module docstring)."""
    w = _walk(df, k, cfg, ["subject"])
    end, subj = np.asarray(w["end"], dtype=object), np.asarray(w["subject"], dtype=str)
    out: dict[str, Any] = {"k": k, "transactions": len(end), "people": len(set(w["subject"])),
                           **{c: w[c] for c in ("people_short", "attempts_short", "attempts_unused")}}
    out["attempts_used"] = int(sum(w["used"]))
    for key, err in (("frr", end == "reject"), ("review_rate", end == "review"), ("not_passed", end != "pass"),
                     ("pass_rate", end == "pass")):
        out[key] = _rate(err, subj, confidence)
    dist = np.bincount(np.asarray(w["used"], int), minlength=k + 1)[1:] if w["used"] else np.zeros(k, int)
    out["expected_attempts"] = {"mean": float(np.mean(w["used"])) if w["used"] else None,
                                "distribution": {str(i + 1): int(n) for i, n in enumerate(dist)}}
    out["time_to_pass_s"], out["time_to_pass_note"] = _time_to_pass(df, w, cfg["fps"])
    rv = out["review_rate"]
    out["review_per_10000"] = None if rv is None else {x: 10000.0 * rv[x] for x in ("value", "lo", "hi")}
    so, ss = _single(df, w)
    stop = (so == "review") if cfg["review_on_band"] else np.zeros(so.shape, bool)
    out["single_attempt"] = {"not_accepted": _rate(so != "accept", ss, confidence),
                             "rejected": _rate((so != "accept") & ~stop, ss, confidence),
                             "review": _rate(so == "review", ss, confidence)}
    p = float(np.mean(so != "accept")) if so.size else None
    p_stop = float(np.mean(stop)) if so.size else 0.0
    raf = cfg["review_after_failures"]
    out["formula_not_passed"] = None if p is None else independent_not_passed(p, k, p_stop, raf)
    out["formula_frr"] = None if p is None else independent_reject(p - p_stop, k, raf, cfg["on_exhausted"])
    np_ = out["not_passed"]
    out["text"] = (_with(k) + ": no complete transaction" if np_ is None else
                   _with(k) + f", {np_['k']}/{np_['n']} honest transactions fail "
                   f"({_pct(np_['value'])}, {100 * confidence:g}% CI {_pct(np_['lo'])}-{_pct(np_['hi'])}, "
                   f"{np_['n_subjects']} people); independent attempts would give {_pct(out['formula_not_passed'])}")
    return out


def _attack_rates(df: pd.DataFrame, w: dict, k: int, cfg: dict, confidence: float) -> dict[str, Any]:
    """IAPAR / APCER / review of the attack transactions ``w`` (a subset of attackers) at ``k``."""
    end, subj = np.asarray(w["end"], dtype=object), np.asarray(w["subject"], dtype=str)
    pad = df["pad_pass"].to_numpy(bool)
    apcer_tx = np.array([bool(pad[b].any()) for b in w["block"]], bool)
    out: dict[str, Any] = {"k": k, "transactions": len(end), "attackers": len(set(map(str, w["group"]))),
                           "people": len(set(w["subject"])),
                           **{c: w[c] for c in ("people_short", "attempts_short", "attempts_unused")}}
    out["iapar"] = _rate(end == "pass", subj, confidence)
    out["apcer"] = _rate(apcer_tx, subj, confidence)
    out["review_rate"] = _rate(end == "review", subj, confidence)
    so, ss = _single(df, w)
    idx = np.concatenate(w["block"]) if w["block"] else np.array([], int)
    out["single_attempt"] = {"iapar": _rate(so == "accept", ss, confidence),
                             "apcer": _rate(pad[idx], ss, confidence)}
    a = float(np.mean(so == "accept")) if so.size else None
    p_stop = float(np.mean(so == "review")) if so.size and cfg["review_on_band"] else 0.0
    out["formula_iapar"] = None if a is None else independent_accept(a, k, p_stop, cfg["review_after_failures"])
    out["formula_apcer"] = None if not so.size else independent_accept(float(np.mean(pad[idx])), k)
    ia = out["iapar"]
    out["text"] = (_with(k) + ": no complete attack transaction" if ia is None else
                   _with(k) + f", IAPAR rises from {_pct(a)} to {_pct(ia['value'])} "
                   f"({ia['k']}/{ia['n']}, {ia['n_subjects']} people; independent attempts would give "
                   f"{_pct(out['formula_iapar'])})")
    return out


def _attack_k(df: pd.DataFrame, k: int, cfg: dict, confidence: float) -> dict[str, Any]:
    """Attack transaction rates at ``k``: pooled over species and per species."""
    w = _walk(df, k, cfg, ["subject", "species"])
    species = sorted(set(df["species"].astype(str)))
    per = {}
    for s in species:
        keep = [i for i, g in enumerate(w["group"]) if str(g[1]) == s]
        ws = {c: [w[c][i] for i in keep] for c in ("subject", "group", "end", "used", "block")}
        sub = df[df["species"].astype(str) == s]
        ws.update(_short_counts(sub, k, ["subject", "species"]))
        per[s] = _attack_rates(df, ws, k, cfg, confidence)
    return {"pooled": _attack_rates(df, w, k, cfg, confidence), "per_species": per}


def _short_counts(df: pd.DataFrame, k: int, keys: list[str]) -> dict[str, int]:
    """``people_short`` / ``attempts_short`` / ``attempts_unused`` of the groups of ``df`` at ``k``."""
    n = df.groupby(keys).size().to_numpy() if len(df) else np.array([], int)
    return {"people_short": int((n < k).sum()), "attempts_short": int(n[n < k].sum()),
            "attempts_unused": int((n[n >= k] % k).sum())}


NOTE = ("A transaction is k consecutive attempts of one person in capture order (attempts 1..k, k+1..2k, ...); a "
        "person (or attacker: impersonated person x species) with fewer than k attempts has no transaction at that k "
        "and is excluded from its rates (counted in people_short / attempts_short), and the n mod k attempts after "
        "the last complete block are unused (attempts_unused). A failure to acquire is a failed attempt; unreadable "
        "files are not attempts (counts: *_rejected_excluded). The independence formulas (formula_*) are shown "
        "beside the real rates only for comparison: the real rates come from real sequences of attempts.")


def evaluate_flow(trials: pd.DataFrame, probes: pd.DataFrame, bands: dict, flow: Mapping | None, part: str,
                  confidence: float = 0.95) -> dict[str, Any]:
    """Transaction-level genuine and attack rates of the flow ``flow`` at the operating point ``bands`` on
    partition ``part``, one result per ``max_attempts`` (module docstring). JSON-ready (no NaN)."""
    cfg = validate_flow(flow)
    head = {"unit": "attempt", "attempt": cfg["attempt"], "window_frames": cfg["window_frames"], "partition": part,
            "enabled": cfg["enabled"], "config": cfg}
    if not cfg["enabled"]:
        return {**head, "note": "flow.enabled is false: no transaction-level rates"}
    gen, att, counts = _attempt_tables(trials, probes, part, bands)
    out = {**head, "confidence": float(confidence),
           "genuine": {str(k): _genuine_k(gen, k, cfg, confidence) for k in cfg["max_attempts"]},
           "attack": {str(k): _attack_k(att, k, cfg, confidence) for k in cfg["max_attempts"]},
           "note": NOTE, "counts": counts}
    return _plain(out)


def _plain(d: Any) -> Any:
    """``d`` with numpy scalars as Python values and non-finite floats as None."""
    if isinstance(d, dict):
        return {str(k): _plain(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_plain(v) for v in d]
    if isinstance(d, (np.bool_, bool)):
        return bool(d)
    if isinstance(d, (np.integer,)):
        return int(d)
    if isinstance(d, (float, np.floating)):
        return float(d) if np.isfinite(d) else None
    return d
