"""Official protocol tables: a video database reported the way its papers and leaderboards report it, per video.

Every sub-protocol of a database (:data:`OFFICIAL`: OULU-NPU Protocols 1-4 with the six leave-one-phone-out folds of
3 and 4; Replay-Attack and Replay-Mobile grandtest; SiW Protocols 1-3 with their folds; CASIA-FASD overall and per
quality; MSU-MFSD's subject lists) is one row, computed by :func:`protocol_row` from the per-video PAD scores
(:mod:`harness.presentations`, one presentation per video):

* the PAD threshold is chosen on the protocol's threshold split (``dev`` where the database has one, else ``train``)
  at the equal-error point of the bona fide and attack videos there (:func:`harness.metrics.verification.eer`);
  as far as we know this is what the databases' papers did (Chingovska et al. 2012 for Replay-Attack's HTER;
  Boulkenafet et al. 2017 for OULU-NPU) - unverified against each paper's code;
* the rates are those of the test split at that threshold, through the one metrics function
  (:func:`harness.evaluate.evaluate`, ``unit="presentation"``): ISO/IEC 30107-3 APCER per PAI species and its
  maximum, BPCER, each a people rate (k/n, people-aware interval, people), and BPCER20 (BPCER at APCER 5%, threshold
  chosen on the test split itself, ISO/IEC 30107-3's BPCER@APCER);
* the literature's summary numbers, labelled non-ISO: ACER = (APCER_max + BPCER) / 2 (OULU-NPU, SiW), HTER =
  (APCER over all attacks + BPCER) / 2 (Replay-Attack, Replay-Mobile, CASIA-FASD, MSU-MFSD), and the test EER.

Sub-protocols that the papers average (OULU-NPU P3, P4; SiW P2, P3) are summarised as mean +- standard deviation
over their folds (sample standard deviation, ddof=1; which one each paper used is unverified).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from harness.evaluate import evaluate, people_rate
from harness.metrics.pad import bpcer_at_apcer
from harness.metrics.verification import eer

__all__ = ["SubProtocol", "Database", "OFFICIAL", "protocol_row", "summarise", "table_frame", "TABLE_METRICS"]


@dataclass(frozen=True)
class SubProtocol:
    """One official sub-protocol: its ``name``, the adapter options that select it, an optional row filter
    (``where``: column -> value, e.g. CASIA-FASD's quality) and the ``group`` it is averaged in (None: alone)."""

    name: str
    options: dict = field(default_factory=dict)
    where: dict = field(default_factory=dict)
    group: str | None = None


@dataclass(frozen=True)
class Database:
    """A database's official protocols, the split thresholds are chosen on, and the literature's summary rate."""

    subs: tuple[SubProtocol, ...]
    threshold_split: str
    test_split: str = "test"
    literature: str = "hter"  # hter | acer
    source: str = ""


def _folds(prefix: str, options: dict, n: int) -> tuple[SubProtocol, ...]:
    return tuple(SubProtocol(f"{prefix}-{f}", {**options, "fold": f}, group=prefix) for f in range(1, n + 1))


OFFICIAL: dict[str, Database] = {
    "oulu_npu": Database(
        (SubProtocol("P1", {"protocol": 1}), SubProtocol("P2", {"protocol": 2}), *_folds("P3", {"protocol": 3}, 6),
         *_folds("P4", {"protocol": 4}, 6)), "dev", literature="acer",
        source="Boulkenafet et al., OULU-NPU, FG 2017: Protocols 1-4, mean +- std over the 6 folds of 3 and 4"),
    "replay_attack": Database((SubProtocol("grandtest", {"protocol": "grandtest"}),), "dev",
                              source="Chingovska, Anjos, Marcel, BIOSIG 2012: devel -> test, HTER"),
    "replay_mobile": Database((SubProtocol("grandtest", {"protocol": "grandtest"}),), "dev",
                              source="Costa-Pazo et al., BIOSIG 2016: devel -> test"),
    "siw": Database((SubProtocol("P1", {"protocol": 1}), *_folds("P2", {"protocol": 2}, 4),
                     *_folds("P3", {"protocol": 3}, 2)), "train", literature="acer",
                    source="Liu, Jourabloo, Liu, CVPR 2018: Protocols 1-3, mean +- std over the folds of 2 and 3"),
    "casia_fasd": Database((SubProtocol("overall", {"protocol": "official"}),
                            *(SubProtocol(q, {"protocol": "official"}, where={"quality": q})
                              for q in ("low", "normal", "high"))), "train",
                           source="Zhang et al., ICB 2012: train -> test, overall and per quality"),
    "msu_mfsd": Database((SubProtocol("official", {"protocol": "official"}),), "train",
                         source="Wen, Han, Jain, IEEE TIFS 2015: the train / test subject lists"),
}

#: the numbers of a row that the mean +- std summary covers (``<rate>`` = its ``value``)
TABLE_METRICS = ("apcer_max", "bpcer", "acer", "hter", "eer", "bpcer20")


def _value(r: Any) -> float | None:
    return None if not isinstance(r, dict) or r.get("value") is None else float(r["value"])


def protocol_row(pres: pd.DataFrame, db: Database, confidence: float = 0.95) -> dict:
    """One sub-protocol's row from its presentations (one per video: ``split``, ``label``, ``species``,
    ``subject``, ``status``, ``pad_score``): threshold on ``db.threshold_split``, rates on ``db.test_split``
    (module docstring). A split without bona fide and attack videos gives a row that says so."""
    ok = pres[pres["status"] == "scored"]
    thr_set, test = ok[ok["split"] == db.threshold_split], pres[pres["split"] == db.test_split]
    att, bona = (thr_set.loc[thr_set["label"] == c, "pad_score"].to_numpy(float) for c in ("attack", "bona_fide"))
    row: dict[str, Any] = {"videos": {"threshold_split": int(len(thr_set)), "test": int(len(test))},
                           "people": {"threshold_split": int(thr_set["subject"].nunique()),
                                      "test": int(test["subject"].nunique())}}
    if "frames_context_clamped" in pres.columns:  # videos whose PAD crop ran off the image in some frame
        row["context_clamped_videos"] = {"threshold_split": int((thr_set["frames_context_clamped"] > 0).sum()),
                                         "test": int((test["frames_context_clamped"].fillna(0) > 0).sum())}
    if not (att.size and bona.size):
        row["note"] = f"no threshold: the {db.threshold_split} split lacks bona fide or attack videos"
        return row
    _, thr = eer(att, bona)
    row["threshold"] = float(thr)
    row["threshold_rule"] = f"equal-error point of the {db.threshold_split} videos (accept iff score >= it)"
    probes = test.assign(partition="eval")
    bands = {"match": {"accept_at_or_above": -np.inf, "reject_below": -np.inf},
             "pad": {"accept_at_or_above": float(thr), "reject_below": float(thr)}}
    trials = pd.DataFrame(columns=["kind", "partition", "probe_id", "probe_subject", "ref_subject", "species",
                                   "match_score", "pad_score"])
    rates, _ = evaluate(trials, probes, "eval", bands, confidence, unit="presentation")
    pad = rates["pad"]
    row.update({k: pad.get(k) for k in ("apcer_per_species", "apcer_max", "apcer_max_species", "bpcer",
                                        "non_response")})
    t_ok = test[test["status"] == "scored"]
    t_att, t_bona = (t_ok[t_ok["label"] == c] for c in ("attack", "bona_fide"))
    row["apcer_all_attacks"] = (people_rate(t_att["pad_score"].to_numpy(float) >= thr, t_att["subject"], None,
                                            confidence) if len(t_att) else None)
    a_max, b, a_all = _value(row["apcer_max"]), _value(row["bpcer"]), _value(row["apcer_all_attacks"])
    row["acer"] = None if a_max is None or b is None else (a_max + b) / 2
    row["hter"] = None if a_all is None or b is None else (a_all + b) / 2
    row["non_iso"] = {"acer": "ACER = (APCER_max + BPCER) / 2: reported by the literature, not an ISO/IEC 30107-3 "
                              "metric", "hter": "HTER = (APCER over all attacks + BPCER) / 2: the literature's "
                              "half total error rate, not an ISO/IEC 30107-3 metric",
                      "eer": "EER of the test videos (threshold chosen on test itself): literature only"}
    if len(t_att) and len(t_bona):
        a_s, b_s = t_att["pad_score"].to_numpy(float), t_bona["pad_score"].to_numpy(float)
        row["eer"] = float(eer(a_s, b_s)[0])
        r = bpcer_at_apcer(b_s, a_s, t_att["species"].astype(str).to_numpy(), 0.05)
        row["bpcer20"] = float(r["bpcer"].value) if r["reachable"] else None
        row["bpcer20_note"] = "" if r["reachable"] else str(r["note"])
    return row


def _metric(row: dict, name: str) -> float | None:
    v = row.get(name)
    return _value(v) if isinstance(v, dict) else (None if v is None else float(v))


def summarise(rows: dict[str, dict], db: Database) -> dict:
    """``{group: {metric: {"mean", "std", "n"}}}`` over the sub-protocols of each averaged group (OULU-NPU P3,
    P4; SiW P2, P3), sample standard deviation (ddof=1; None with one fold)."""
    out: dict = {}
    for g in dict.fromkeys(s.group for s in db.subs if s.group):
        members = [rows[s.name] for s in db.subs if s.group == g and s.name in rows]
        out[g] = {}
        for m in TABLE_METRICS:
            vals = [v for v in (_metric(r, m) for r in members) if v is not None]
            out[g][m] = {"mean": float(np.mean(vals)) if vals else None,
                         "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else None, "n": len(vals)}
    return out


def table_frame(rows: dict[str, dict], summary: dict) -> pd.DataFrame:
    """The table people read: one line per sub-protocol (ISO rates as ``k/n = %``, with people), then one line per
    averaged group (``mean +- std`` in percent)."""
    from harness.rate_text import rate_text

    lines = []
    for name, r in rows.items():
        lines.append({"protocol": name, "threshold": r.get("threshold"), "APCER_max": rate_text(r.get("apcer_max")),
                      "APCER_max species": r.get("apcer_max_species"), "BPCER": rate_text(r.get("bpcer")),
                      "BPCER20": _pct(r.get("bpcer20")), "ACER (non-ISO)": _pct(r.get("acer")),
                      "HTER (non-ISO)": _pct(r.get("hter")), "test EER (non-ISO)": _pct(r.get("eer")),
                      "test videos": (r.get("videos") or {}).get("test"),
                      "test people": (r.get("people") or {}).get("test"),
                      "test videos with a clamped PAD crop": (r.get("context_clamped_videos") or {}).get("test"),
                      "note": r.get("note", "")})
    for g, ms in summary.items():
        lines.append({"protocol": f"{g} mean +- std", **{
            col: _pm(ms[m]) for col, m in (("APCER_max", "apcer_max"), ("BPCER", "bpcer"), ("BPCER20", "bpcer20"),
                                           ("ACER (non-ISO)", "acer"), ("HTER (non-ISO)", "hter"),
                                           ("test EER (non-ISO)", "eer"))}})
    return pd.DataFrame(lines)


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * float(x):.2f}%"


def _pm(s: dict) -> str:
    if s.get("mean") is None:
        return "n/a"
    sd = "n/a" if s.get("std") is None else f"{100 * s['std']:.2f}"
    return f"{100 * s['mean']:.2f} +- {sd}% ({s['n']} folds)"
