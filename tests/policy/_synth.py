"""Synthetic trials / probes tables shaped like harness.protocols.trials output (for policy and export tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.policy.data import ScoreSets

TRIAL_COLS = ["kind", "partition", "probe_id", "probe_subject", "ref_subject", "species", "match_score", "pad_score"]


def tables(parts: dict[str, dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``parts = {"dev": {"genuine": [(m, p), ...], "impostor": [(m, p)], "attack": [(m, p, species)]}, ...}``.

    Each genuine / attack row is its own probe; impostor rows reuse the genuine probes' PAD scores only through
    the given pad value (PAD probes are built from the genuine and attack rows)."""
    rows, probes = [], []
    for part, d in parts.items():
        for i, (m, p) in enumerate(d.get("genuine", [])):
            pid = f"{part}-g{i}"
            rows.append(("genuine", part, pid, "s", "s", "none", float(m), float(p)))
            probes.append((pid, f"s{part}", part, "scored", "bona_fide", "none", float(p)))
        for i, (m, p) in enumerate(d.get("impostor", [])):
            rows.append(("impostor", part, f"{part}-i{i}", "s", "t", "none", float(m), float(p)))
        for i, (m, p, sp) in enumerate(d.get("attack", [])):
            pid = f"{part}-a{i}"
            rows.append(("attack", part, pid, "s", "s", sp, float(m), float(p)))
            probes.append((pid, f"s{part}", part, "scored", "attack", sp, float(p)))
    t = pd.DataFrame(rows, columns=TRIAL_COLS)
    pr = pd.DataFrame(probes, columns=["sample_id", "subject", "partition", "status", "label", "species", "pad_score"])
    return t, pr


def score_sets(gen=(), imp=(), att=(), bona_pad=None, att_pad=None, part="dev") -> ScoreSets:
    """ScoreSets from (m, p) pairs; PAD probes default to the genuine / attack trials' PAD scores."""
    g = np.asarray(gen, dtype=np.float64).reshape(-1, 2)
    i = np.asarray(imp, dtype=np.float64).reshape(-1, 2)
    a_m = np.asarray([x[0] for x in att], dtype=np.float64)
    a_p = np.asarray([x[1] for x in att], dtype=np.float64)
    a_s = np.asarray([x[2] if len(x) > 2 else "print" for x in att], dtype=object).astype(str)
    bp = g[:, 1] if bona_pad is None else np.asarray(bona_pad, dtype=np.float64)
    if att_pad is None:
        ap, aps = a_p, a_s
    else:
        ap = np.asarray([x[0] for x in att_pad], dtype=np.float64)
        aps = np.asarray([x[1] for x in att_pad], dtype=object).astype(str)
    return ScoreSets(part, g[:, 0], g[:, 1], i[:, 0], i[:, 1], a_m, a_p, a_s, bp, ap, aps)


def random_tables(seed: int = 0, n_gen: int = 120, n_imp_per: int = 3, n_att: int = 80):
    rng = np.random.default_rng(seed)
    parts = {}
    for part in ("dev", "eval"):
        gen = [(rng.normal(0.8, 0.1), rng.beta(8, 2)) for _ in range(n_gen)]
        imp = [(rng.normal(0.3, 0.12), gen[k // n_imp_per][1]) for k in range(n_gen * n_imp_per)]
        att = [(rng.normal(0.75, 0.1), rng.beta(2, 6), "print_photo" if k % 2 else "replay") for k in range(n_att)]
        parts[part] = {"genuine": gen, "impostor": imp, "attack": att}
    return tables(parts)


def people_tables(seed: int = 0, people: int = 12, frames: int = 6, attacks: int = 8, species=("print_photo",),
                  fta_genuine: int = 0, fta_attack: int = 0, pad_dtype=np.float32):
    """Trials and probes of ``people`` enrolled people per partition with person effects, built the way
    harness.protocols.trials builds them: each bona fide probe is compared with its own template (genuine) and
    with every other person's (impostor); each attack probe with the attacked person's template. PAD scores are
    ``pad_dtype`` numbers (float32, as the models emit). ``fta_*``: extra probes per partition that failed to
    acquire (no scores), spread over the people."""
    rng = np.random.default_rng(seed)
    rows, probes = [], []
    for part in ("dev", "eval"):
        subj = [f"{part}-p{i:02d}" for i in range(people)]
        u = rng.normal(0, 0.05, people)
        for si, s in enumerate(subj):
            for f in range(frames):
                pid = f"{s}-b{f}"
                pad = float(pad_dtype(rng.beta(8, 2)))
                probes.append((pid, s, part, "scored", "bona_fide", "none", pad))
                for ri, r in enumerate(subj):
                    m = rng.normal(0.8 + u[si], 0.08) if r == s else rng.normal(0.35 + u[si] + u[ri], 0.1)
                    rows.append(("genuine" if r == s else "impostor", part, pid, s, r, "none", float(m), pad))
            for k in range(attacks):
                pid = f"{s}-a{k}"
                sp = species[k % len(species)]
                pad = float(pad_dtype(rng.beta(2, 6)))
                probes.append((pid, s, part, "scored", "attack", sp, pad))
                rows.append(("attack", part, pid, s, s, sp, float(rng.normal(0.75, 0.1)), pad))
        for k in range(fta_genuine):
            probes.append((f"{part}-fg{k}", subj[k % people], part, "fta", "bona_fide", "none", np.nan))
        for k in range(fta_attack):
            probes.append((f"{part}-fa{k}", subj[k % people], part, "fta", "attack", species[k % len(species)], np.nan))
    t = pd.DataFrame(rows, columns=TRIAL_COLS)
    pr = pd.DataFrame(probes, columns=["sample_id", "subject", "partition", "status", "label", "species", "pad_score"])
    return t, pr
