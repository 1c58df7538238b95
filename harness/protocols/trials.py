"""Enrolment templates and trials: genuine, zero-effort impostor, and attack-vs-enrolment.

* Enrolment: each subject's bona fide samples selected by the protocol (``mode: field`` - a manifest column
  takes one of ``enrol_in``, e.g. NUAA sessions 01-02 = split ``train``; ``mode: first_k`` - the first ``k``
  bona fide samples of each subject by sample_id). Template = mean of the enrolment embeddings (L2-normalised
  first for cosine models). A subject whose enrolment samples all failed is a failure to enrol.
* Probes: every other sample (``mode: field``: those whose column takes one of ``probe_in``).
* Trials (``trials: templates``, the default): genuine = bona fide probe vs its own subject's template;
  zero-effort impostor = bona fide probe vs every other enrolled subject's template *in the same partition*;
  attack = attack probe vs the template of the subject it impersonates (the fraud a stolen photo enables).
  ``trials: pairs`` compares bona fide probes pairwise instead (all pairs within a partition; impostor pairs
  sampled down to ``max_impostor_pairs`` with ``seed`` when set, the number left out counted); attack trials
  stay attack-vs-enrolment.
* Partitions: subjects are split, seeded, into disjoint ``dev`` (threshold selection) and ``eval``
  (reporting) sets; every trial and PAD sample belongs to its subjects' partition. With
  ``partition: split`` the database's own split decides instead (``dev_splits`` -> dev, ``eval_splits`` ->
  eval, e.g. Replay-Attack's devel/test); a subject found in both is an error naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.models.base import similarity


@dataclass
class Trials:
    trials: pd.DataFrame  # kind, partition, probe_id, probe_subject, ref_subject, species, match_score, pad_score
    probes: pd.DataFrame  # probe samples with partition (for PAD metrics and FTA rates)
    partitions: dict[str, list[str]]
    counts: dict = field(default_factory=dict)


def subject_partition(subjects, dev_fraction: float, seed: int) -> dict[str, str]:
    """Seeded, subject-disjoint dev/eval split: ``{subject: 'dev'|'eval'}``."""
    subs = sorted(set(subjects))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(subs))
    n_dev = int(round(dev_fraction * len(subs)))
    return {subs[j]: ("dev" if r < n_dev else "eval") for r, j in enumerate(order)}


def split_partition(samples: pd.DataFrame, dev_splits, eval_splits) -> dict[str, str]:
    """``{subject: 'dev'|'eval'}`` from the database's official split; subjects only in other splits are left out."""
    dev_s, eval_s = set(_as_str_list(dev_splits)), set(_as_str_list(eval_splits))
    out: dict[str, str] = {}
    for subj, grp in samples.groupby("subject"):
        sp = grp["split"].astype(str)
        parts = {"dev" if x in dev_s else "eval" for x in sp if x in dev_s | eval_s}
        if len(parts) > 1:
            raise ValueError(f"subject {subj!r} appears in both dev splits {sorted(dev_s)} and eval splits "
                             f"{sorted(eval_s)}: e.g. {grp.loc[sp.isin(dev_s), 'path'].iloc[0]} and "
                             f"{grp.loc[sp.isin(eval_s), 'path'].iloc[0]}; the official partition leaks")
        if parts:
            out[subj] = parts.pop()
    return out


def _as_str_list(v) -> list[str]:
    return [str(x) for x in (v if isinstance(v, (list, tuple)) else [v])]


def _pair_rows(probes: pd.DataFrame, embeddings: np.ndarray, metric: str, part: str, cap, seed: int):
    """Every pair of bona fide probes of one partition: genuine if same subject, else impostor (capped, seeded)."""
    idx = probes.index.to_numpy()
    if len(idx) < 2:
        return [], 0
    i, j = np.triu_indices(len(idx), k=1)
    subj = probes["subject"].to_numpy()
    same = subj[i] == subj[j]
    imp = np.flatnonzero(~same)
    n_cut = 0
    if cap is not None and len(imp) > int(cap):
        keep = np.sort(np.random.default_rng(seed).choice(imp, size=int(cap), replace=False))
        n_cut = len(imp) - int(cap)
        sel = np.sort(np.concatenate([np.flatnonzero(same), keep]))
        i, j, same = i[sel], j[sel], same[sel]
    e = embeddings[idx].astype(np.float64)
    sc = similarity(e[i], e[j], metric)
    sid, pad = probes["sample_id"].to_numpy(), probes["pad_score"].to_numpy()
    rows = [("genuine" if g else "impostor", part, sid[a], subj[a], subj[b], "none", float(v), float(pad[a]))
            for a, b, g, v in zip(i, j, same, sc)]
    return rows, n_cut


def split_enrol_probe(samples: pd.DataFrame, enrol: dict) -> tuple[pd.Series, pd.Series]:
    """Boolean masks (enrolment, probe) over the samples, per the protocol's enrolment rule."""
    bona = samples["label"] == "bona_fide"
    mode = enrol.get("mode", "field")
    if mode == "field":
        col = enrol["field"]
        if col not in samples.columns:
            raise KeyError(f"protocol.enrol.field {col!r} is not a manifest column (have {list(samples.columns)})")
        vals = samples[col].astype(str)
        is_enrol = bona & vals.isin(_as_str_list(enrol["enrol_in"]))
        probe_vals = enrol.get("probe_in")
        is_probe = vals.isin(_as_str_list(probe_vals)) if probe_vals is not None else ~is_enrol
        return is_enrol, is_probe & ~is_enrol
    if mode == "first_k":
        k = int(enrol["k"])
        order = samples[bona].sort_values("sample_id").groupby("subject").head(k).index
        is_enrol = samples.index.isin(order)
        return pd.Series(is_enrol, index=samples.index), pd.Series(~is_enrol, index=samples.index)
    raise ValueError(f"protocol.enrol.mode must be 'field' or 'first_k', got {mode!r}")


def build_trials(samples: pd.DataFrame, embeddings: np.ndarray, metric: str, protocol: dict) -> Trials:
    """Build every trial of the protocol from a scored sample table (see module docstring)."""
    mode = protocol.get("partition", "subjects")
    if mode == "subjects":
        part = subject_partition(samples["subject"], float(protocol.get("dev_fraction", 0.5)), int(protocol.get("seed", 0)))
    elif mode == "split":
        part = split_partition(samples, protocol.get("dev_splits", ["dev"]), protocol.get("eval_splits", ["test"]))
    else:
        raise ValueError(f"protocol.partition must be 'subjects' or 'split', got {mode!r}")
    is_enrol, is_probe = split_enrol_probe(samples, protocol["enrol"])
    scored = samples["status"] == "scored"

    templates: dict[str, np.ndarray] = {}
    fte = []
    for subj, grp in samples[is_enrol & samples["subject"].isin(list(part))].groupby("subject"):
        ok = grp.index[scored[grp.index]]
        if len(ok) == 0:
            fte.append(subj)
            continue
        e = embeddings[ok].astype(np.float64)
        if metric == "cosine":
            e = e / np.linalg.norm(e, axis=1, keepdims=True)
        templates[subj] = e.mean(0)

    probes = samples[is_probe].copy()
    probes["partition"] = probes["subject"].map(part)
    n_unpartitioned = int(probes["partition"].isna().sum())
    probes = probes[probes["partition"].notna()]
    ok = probes[probes["status"] == "scored"]
    rows = []
    pairs_mode = protocol.get("trials", "templates") == "pairs"
    if protocol.get("trials", "templates") not in ("templates", "pairs"):
        raise ValueError(f"protocol.trials must be 'templates' or 'pairs', got {protocol.get('trials')!r}")
    subj_by_part = {p: [s for s in templates if part[s] == p] for p in ("dev", "eval")}
    for i, r in ok.iterrows():
        e = embeddings[i].astype(np.float64)
        p = r["partition"]
        if r["label"] == "attack":
            refs = [(r["subject"], "attack")] if r["subject"] in templates else []
        elif pairs_mode:
            continue  # bona fide comparisons are sample pairs (below)
        else:
            refs = [(s, "genuine" if s == r["subject"] else "impostor") for s in subj_by_part[p]]
        if not refs:
            continue
        ref_mat = np.stack([templates[s] for s, _ in refs])
        sc = similarity(np.repeat(e[None], len(refs), 0), ref_mat, metric)
        for (s, kind), v in zip(refs, sc):
            rows.append((kind, p, r["sample_id"], r["subject"], s, r["species"], float(v), float(r["pad_score"])))
    n_capped = 0
    if pairs_mode:
        bona_ok = ok[ok["label"] == "bona_fide"]
        for p in ("dev", "eval"):
            new_rows, n_cut = _pair_rows(bona_ok[bona_ok["partition"] == p], embeddings, metric, p,
                                         protocol.get("max_impostor_pairs"), int(protocol.get("seed", 0)))
            rows.extend(new_rows)
            n_capped += n_cut
    trials = pd.DataFrame(rows, columns=["kind", "partition", "probe_id", "probe_subject", "ref_subject", "species",
                                         "match_score", "pad_score"])
    counts = {
        "subjects": int(samples["subject"].nunique()),
        "enrolled_subjects": len(templates),
        "failure_to_enrol_subjects": len(fte),
        "enrolment_samples": int(is_enrol.sum()),
        "probe_samples": int(len(probes)),
        "samples_neither_enrol_nor_probe": int((~is_enrol & ~is_probe).sum()),
        "probe_samples_outside_partitions": n_unpartitioned,
        "impostor_pairs_not_sampled": n_capped,
        "attack_probes_without_enrolment": int(((ok["label"] == "attack") & ~ok["subject"].isin(list(templates))).sum()),
    }
    for p in ("dev", "eval"):
        counts[f"{p}_subjects"] = sorted(str(s) for s, q in part.items() if q == p)
        for kind in ("genuine", "impostor", "attack"):
            counts[f"{p}_{kind}_trials"] = int(((trials["kind"] == kind) & (trials["partition"] == p)).sum())
    return Trials(trials=trials, probes=probes, partitions={p: counts[f"{p}_subjects"] for p in ("dev", "eval")}, counts=counts)
