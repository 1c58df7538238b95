"""Operating-point selection (first cut): thresholds chosen on the selection partition (dev by default).

* match threshold: the loosest threshold whose FMR on the selection impostor trials is <= ``target_fmr``;
* PAD threshold: the loosest threshold whose APCER is <= ``target_apcer`` for every attack species
  (ISO/IEC 30107-3 BPCER@APCER "at most" rule over the worst species).

Accept iff score >= threshold. A threshold that the data cannot support is ``None`` with a note saying why.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.metrics.pad import bpcer_at_apcer
from harness.metrics.verification import threshold_for_fmr


def choose_thresholds(trials: pd.DataFrame, probes: pd.DataFrame, policy: dict) -> dict:
    sel = policy.get("select_on", "dev")
    if sel not in ("dev", "eval"):
        raise ValueError(f"policy.select_on must be 'dev' or 'eval', got {sel!r}")
    t = trials[trials["partition"] == sel]
    p = probes[(probes["partition"] == sel) & (probes["status"] == "scored")]
    out: dict = {"policy": dict(policy), "selected_on": sel, "selected_on_eval_data": sel == "eval", "notes": []}

    imp = t.loc[t["kind"] == "impostor", "match_score"].to_numpy()
    if len(imp):
        ch = threshold_for_fmr(imp, float(policy["target_fmr"]))
        out["t_match"] = float(ch.threshold)
        out["t_match_selection"] = {"target_fmr": float(policy["target_fmr"]), "achieved_fmr": ch.achieved.to_dict(),
                                    "reachable": bool(ch.reachable), "note": ch.note}
        if not ch.reachable:
            out["notes"].append(f"match: {ch.note}")
    else:
        out["t_match"] = None
        out["notes"].append(f"match: no impostor trials in the {sel} partition; no match threshold chosen")

    bona = p.loc[p["label"] == "bona_fide", "pad_score"].to_numpy()
    att = p[p["label"] == "attack"]
    if len(bona) and len(att):
        r = bpcer_at_apcer(bona, att["pad_score"].to_numpy(), att["species"].to_numpy(), float(policy["target_apcer"]))
        out["t_pad"] = float(r["threshold"])
        out["t_pad_selection"] = {"target_apcer": float(policy["target_apcer"]), "bpcer": r["bpcer"].to_dict(),
                                  "apcer_max": r["apcer_max"].to_dict()}
    else:
        out["t_pad"] = None
        out["notes"].append(f"pad: the {sel} partition lacks bona fide or attack presentations; no PAD threshold chosen")
    return out


def finite_or_none(x) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)
