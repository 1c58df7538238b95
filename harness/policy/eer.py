"""The ``eer`` policy: each threshold at its equal-error point (a baseline; it carries no security target).

Match: impostor vs genuine trials. PAD: attacks vs bona fide, pooled over species (not an ISO/IEC 30107-3 metric).
Each threshold is moved to the non-dominated end of its plateau (:func:`harness.policy.refine.non_dominated_1d`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.evaluate import people_rate
from harness.metrics.verification import eer

from .bounds import alpha_of
from .data import ScoreSets
from .refine import non_dominated_1d
from .select import policy_result, register_policy

__all__ = ["eer_policy"]


@register_policy("eer")
def eer_policy(ss: ScoreSets, pol: dict) -> dict[str, Any]:
    notes: list[str] = []
    sel: dict[str, Any] = {}
    alpha = alpha_of(float(pol.get("confidence", 0.95)))
    tm = tp = None
    if ss.imp_m.size and ss.gen_m.size:
        e, tm = eer(ss.imp_m, ss.gen_m)
        tm = tm if np.isfinite(tm) else float(np.nextafter(max(ss.imp_m.max(), ss.gen_m.max()), np.inf))
        tm = non_dominated_1d(tm, ss.imp_m, ss.gen_m)
        sel["match"] = {"eer": float(e), "fmr": people_rate(ss.imp_m >= tm, ss.imp_subj, ss.imp_ref, 1 - alpha),
                        "fnmr": people_rate(ss.gen_m < tm, ss.gen_subj, None, 1 - alpha)}
    else:
        notes.append(f"match: the {ss.partition} partition lacks genuine or impostor trials; no EER threshold")
    if ss.bona_pad.size and ss.att_pad.size:
        e, tp = eer(ss.att_pad, ss.bona_pad)
        tp = tp if np.isfinite(tp) else float(np.nextafter(max(ss.att_pad.max(), ss.bona_pad.max()), np.inf))
        tp = non_dominated_1d(tp, ss.att_pad, ss.bona_pad)
        sel["pad"] = {"eer_non_iso": float(e),
                      "apcer_pooled": people_rate(ss.att_pad >= tp, ss.att_pad_subj, None, 1 - alpha),
                      "bpcer": people_rate(ss.bona_pad < tp, ss.bona_pad_subj, None, 1 - alpha),
                      "note": "EER over all attack species pooled: not an ISO/IEC 30107-3 metric"}
    else:
        notes.append(f"pad: the {ss.partition} partition lacks bona fide or attack presentations; no EER threshold")
    notes.append("eer policy: thresholds at the equal-error points carry no security target; use target_rates, "
                 "joint or min_cost for a production operating point")
    return policy_result(t_match=tm, t_pad=tp, supported=tm is not None and tp is not None, selection=sel, notes=notes)
