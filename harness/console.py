"""The console summary of a run: the few lines printed at the end of an experiment, also written to the run's
log file(s) and to ``console_summary.txt``."""

from __future__ import annotations

import logging
from pathlib import Path

from harness.rate_text import rate_text

log = logging.getLogger("harness")


def to_log_files(text: str) -> None:
    """Write ``text`` to the run's log file(s) (Hydra's ``<job>.log``) without echoing it on the console again."""
    rec = log.makeRecord(log.name, logging.INFO, __file__, 0, "console summary:\n%s", (text,), None)
    for h in {*logging.getLogger().handlers, *log.handlers}:
        if isinstance(h, logging.FileHandler):
            h.handle(rec)


def summary_text(s: dict, out_dir: Path) -> str:
    """The console summary of a run (printed at the end, logged, and written to ``console_summary.txt``)."""
    a, m = s["accounting"], s["metrics"]["eval"]
    op = s["operating_point"]
    lines = [
        f"== {s['run']['name']}  ({s['run']['wall_time_s']:.1f} s)  -> {out_dir}",
        f"samples {a['input_samples']}: scored {a['scored']}, FTA {a['fta']}, rejected {a['rejected']}"
        f"   (cache: detect {a['detect_cached']} cached / {a['detect_computed']} computed)",
        f"trials (dev | eval): genuine {a['dev_genuine_trials']} | {a['eval_genuine_trials']}, impostor "
        f"{a['dev_impostor_trials']} | {a['eval_impostor_trials']}, attack {a['dev_attack_trials']} | {a['eval_attack_trials']}",
    ]
    v = m["verif"]
    if "eer" in v:
        e = v["eer"]
        lines.append(f"eval EER {100 * e['value']:.2f}% at t={e['threshold']:.4g}  (FMR {rate_text(e['fmr'])}, FNMR {rate_text(e['fnmr'])})")
        f1 = v["fnmr_at_fmr"].get("fmr_1e-2", {})
        lines.append(f"eval FNMR@FMR=1%: {rate_text(f1.get('fnmr')) if f1.get('measurable', True) else 'not measurable'}")
    lines.append("intervals: people-aware 95% (people, not frames, are the independent units); 'N people' = distinct "
                 "people behind the rate")
    lines.append(f"thresholds (chosen on {op['selected_on']}): t_match={op['t_match']}, t_pad={op['t_pad']}")
    if "at_operating_point" in v:
        o = v["at_operating_point"]
        lines.append(f"eval at t_match: FMR {rate_text(o['fmr'])}, "
                     f"FNMR {rate_text(o['fnmr'])}")
    p = m["pad"].get("at_operating_point")
    if p:
        lines.append(f"eval at t_pad: APCER_max ({p['apcer_max_species']}) {rate_text(p['apcer_max'])}"
                     f", BPCER {rate_text(p['bpcer'])}")
    if "iapar" in m["system"]:
        lines.append(f"eval IAPAR {rate_text(m['system']['iapar'])}")
    lines += session_lines(s)
    for n in op["notes"]:
        lines.append(f"note: {n}")
    return "\n".join(lines)


def session_lines(s: dict) -> list[str]:
    """The presentation and flow lines of the console summary (none for a run without those blocks)."""
    pres, flow = s.get("presentations") or {}, s.get("flow") or {}
    out = []
    pm = (pres.get("metrics") or {}).get("eval") or {}
    if pres:
        c = (pres.get("counts") or {}).get("eval") or {}
        n = ", ".join(f"{lab} {d.get('presentations')} ({d.get('people')} people)" for lab, d in sorted(c.items()))
        out.append(f"presentations ({pres.get('grouping')}; PAD {(pres.get('aggregation') or {}).get('rule')} of "
                   f"frames): eval {n}")
        po = (pm.get("pad") or {}).get("at_operating_point") or {}
        out.append(f"eval per presentation: APCER_max {rate_text(po.get('apcer_max'))}, BPCER "
                   f"{rate_text(po.get('bpcer'))}, IAPAR {rate_text((pm.get('system') or {}).get('iapar'))}")
    for k, g in (flow.get("genuine") or {}).items():
        if g.get("text"):
            out.append(f"flow: {g['text']}")
    for k, a in (flow.get("attack") or {}).items():
        if (a.get("pooled") or {}).get("text"):
            out.append(f"flow (attacks): {a['pooled']['text']}")
    return out


def print_summary(s: dict, out_dir: Path) -> None:
    """Print :func:`summary_text`."""
    print(summary_text(s, out_dir), flush=True)
