"""The score sets a policy sees: trials (match + PAD score per comparison) and PAD probes of one partition."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.metrics.system import joint_surface

__all__ = ["ScoreSets", "score_sets", "candidates", "surfaces"]


@dataclass
class ScoreSets:
    """Scores of one partition. ``gen_*``, ``imp_*``, ``att_*``: trials (match score, PAD score of the probe);
    ``bona_pad`` / ``att_pad`` (+ ``att_pad_species``): scored PAD probes (each presentation once)."""

    partition: str
    gen_m: np.ndarray
    gen_p: np.ndarray
    imp_m: np.ndarray
    imp_p: np.ndarray
    att_m: np.ndarray
    att_p: np.ndarray
    att_species: np.ndarray
    bona_pad: np.ndarray
    att_pad: np.ndarray
    att_pad_species: np.ndarray
    # people: probe person of each trial, reference person of impostor trials, person of each PAD presentation
    gen_subj: np.ndarray | None = None
    imp_subj: np.ndarray | None = None
    imp_ref: np.ndarray | None = None
    att_subj: np.ndarray | None = None
    bona_pad_subj: np.ndarray | None = None
    att_pad_subj: np.ndarray | None = None

    def __post_init__(self) -> None:  # synthetic score sets without people: one person per trial (independent)
        for name, ref in (("gen_subj", "gen_m"), ("imp_subj", "imp_m"), ("att_subj", "att_m"),
                          ("bona_pad_subj", "bona_pad"), ("att_pad_subj", "att_pad")):
            if getattr(self, name) is None:
                setattr(self, name, np.asarray([f"{name}:{i}" for i in range(getattr(self, ref).size)], dtype=str))
        if self.imp_ref is None:
            self.imp_ref = np.asarray([f"imp_ref:{i}" for i in range(self.imp_m.size)], dtype=str)

    def counts(self) -> dict[str, int]:
        return {"genuine_trials": int(self.gen_m.size), "impostor_trials": int(self.imp_m.size),
                "attack_trials": int(self.att_m.size), "bona_fide_presentations": int(self.bona_pad.size),
                "attack_presentations": int(self.att_pad.size)}


def _f64(s: pd.Series) -> np.ndarray:
    return s.to_numpy(dtype=np.float64)


def _s(s: pd.Series) -> np.ndarray:
    return s.astype(str).to_numpy()


def score_sets(trials: pd.DataFrame, probes: pd.DataFrame, part: str) -> ScoreSets:
    t = trials[trials["partition"] == part]
    g, i, a = (t[t["kind"] == k] for k in ("genuine", "impostor", "attack"))
    p = probes[(probes["partition"] == part) & (probes["status"] == "scored")]
    bona = p[p["label"] == "bona_fide"]
    att = p[p["label"] == "attack"]
    return ScoreSets(
        partition=part,
        gen_m=_f64(g["match_score"]), gen_p=_f64(g["pad_score"]),
        imp_m=_f64(i["match_score"]), imp_p=_f64(i["pad_score"]),
        att_m=_f64(a["match_score"]), att_p=_f64(a["pad_score"]), att_species=a["species"].astype(str).to_numpy(),
        bona_pad=_f64(bona["pad_score"]), att_pad=_f64(att["pad_score"]),
        att_pad_species=att["species"].astype(str).to_numpy(),
        gen_subj=_s(g["probe_subject"]), imp_subj=_s(i["probe_subject"]), imp_ref=_s(i["ref_subject"]),
        att_subj=_s(a["probe_subject"]), bona_pad_subj=_s(bona["subject"]), att_pad_subj=_s(att["subject"]),
    )


def candidates(*score_arrays: np.ndarray, max_grid: int | None = None, include=()) -> np.ndarray:
    """Candidate thresholds (ascending) covering every distinct outcome of ``accept iff score >= t``.

    ``min(u)`` (accept all) and the next float above each distinct score ``u_j`` (the loosest threshold that
    rejects ``u_j``; the last one rejects everything). With ``max_grid`` the list is thinned to about that many
    evenly spaced (by rank) candidates, always keeping both ends and the ``include`` values: then the search is
    exact only on the thinned grid.
    """
    arrs = [np.asarray(a, dtype=np.float64).ravel() for a in score_arrays if np.size(a)]
    if not arrs:
        return np.asarray(sorted(set(float(x) for x in include)), dtype=np.float64)
    u = np.unique(np.concatenate(arrs))
    c = np.concatenate((u[:1], np.nextafter(u, np.inf)))
    if max_grid is not None and c.size > int(max_grid):
        idx = np.unique(np.round(np.linspace(0, c.size - 1, int(max_grid))).astype(np.int64))
        c = c[idx]
    if len(include):
        c = np.union1d(c, np.asarray(list(include), dtype=np.float64))
    return c


def surfaces(ss: ScoreSets, gm: np.ndarray, gp: np.ndarray, species: str | None = None) -> dict[str, np.ndarray]:
    """Acceptance counts on the grid, one :func:`harness.metrics.system.joint_surface` call for all classes:
    ``{"genuine"|"impostor"|"attack": C}`` with ``C[a, b] = #{trials of the class with match >= gm[a] and
    pad >= gp[b]}``. ``species`` restricts the attack trials to one PAI species. Empty classes give zeros."""
    am, ap = ss.att_m, ss.att_p
    if species is not None:
        sel = ss.att_species == species
        am, ap = am[sel], ap[sel]
    classes = {"genuine": (ss.gen_m, ss.gen_p), "impostor": (ss.imp_m, ss.imp_p), "attack": (am, ap)}
    dummy = (np.zeros(1), np.zeros(1))
    args = [classes[c] if classes[c][0].size else dummy for c in ("genuine", "impostor", "attack")]
    s = joint_surface(args[0][0], args[0][1], args[1][0], args[1][1], args[2][0], args[2][1], gm, gp)
    out = {}
    for c, key in (("genuine", "genuine_accept_k"), ("impostor", "zero_effort_fmr_k"), ("attack", "iapar_k")):
        cnt = np.asarray(s[key], dtype=np.int64)
        out[c] = cnt if classes[c][0].size else np.zeros_like(cnt)
    return out
