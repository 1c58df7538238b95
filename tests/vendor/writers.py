"""Write a finished run's scores as a third-party vendor would hand them over: the documented score CSV
(:mod:`harness.data.score_files`) and bob.bio.base / bob.pad.base 4-column score files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness import rundir

#: the smoke experiment's protocol without its NUAA list (the score files replace the images and models)
OVERRIDES = ["dataset=scores", "protocol=first_k", "tracking=none", "runtime.progress=false"]


def run_tables(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(probes, trials) of a run directory (verified Parquet)."""
    return rundir.read_table(run_dir, "probes"), rundir.read_table(run_dir, "trials")


def write_csv(run_dir: Path, out: Path, species=None, fta=None) -> Path:
    """The run's probes (PAD rows) and trials (comparison rows) as the documented CSV; ``species``: an optional
    ``probe_id -> species`` override (e.g. ``""`` for an attack whose species the vendor does not know); ``fta``: an
    optional ``probe_id -> reason`` of probes the vendor failed to acquire (``status`` = ``fta``, empty score, on
    the PAD row and on every comparison row of that probe). The run's own failures to acquire are written as such."""
    probes, trials = run_tables(run_dir)
    species = species or {}
    fta = dict(fta or {}) | {r.sample_id: r.reason or "no face detected" for r in
                             probes[probes["status"] == "fta"].itertuples()}
    probes = probes[probes["status"].isin(["scored", "fta"])]

    def status(sid, score):
        return ({"score": "", "status": "fta", "reason": fta[sid]} if sid in fta else
                {"score": repr(float(score)), "status": "scored", "reason": ""})

    rows = [{"id": r.sample_id, "subject": r.subject, "ref_subject": "", "label": r.label,
             "species": species.get(r.sample_id, r.species), "presentation": "", **status(r.sample_id, r.pad_score)}
            for r in probes.itertuples()]
    rows += [{"id": r.probe_id, "subject": r.probe_subject, "ref_subject": r.ref_subject,
              "label": "attack" if r.kind == "attack" else "bona_fide",
              "species": species.get(r.probe_id, r.species), "presentation": "", **status(r.probe_id, r.match_score)}
             for r in trials.itertuples()]
    pd.DataFrame(rows).drop(columns=[] if fta else ["status", "reason"]).to_csv(out, index=False)
    return out


def run_scores(tmp_path: Path, files, *extra: str) -> dict:
    """The summary of ``harness.run`` on imported score files (the smoke experiment's protocol, no tracking)."""
    import harness

    return harness.run([*OVERRIDES, f"dataset.files={files}", *extra], results_dir=tmp_path / "results")


def numbers(block, drop: tuple = ()):
    """The numbers of a metrics block (rates' k, n, value, interval; thresholds), without the words (and ``drop``)."""
    if isinstance(block, dict):
        return {k: numbers(v, drop) for k, v in block.items() if k not in ("method", "note", "notes", *drop)}
    if isinstance(block, list):
        return [numbers(v, drop) for v in block]
    return block


def write_bob4(run_dir: Path, verification: Path, pad: Path) -> tuple[Path, Path]:
    """The run as two bob 4-column files: comparisons ``claimed_id real_id test_label score`` (attacks: real_id
    ``attack``) and PAD scores ``client attack|client test_label score`` (bob.pad.base's convention)."""
    probes, trials = run_tables(run_dir)
    probes = probes[probes["status"] == "scored"]
    for ids in (probes["sample_id"], trials["probe_id"]):
        assert not ids.astype(str).str.contains(r"\s").any(), "bob fields cannot hold whitespace"
    with open(verification, "w") as f:
        f.write("# claimed_id real_id test_label score (bob.bio.base four-column)\n")
        for r in trials.itertuples():
            real = "attack" if r.kind == "attack" else r.probe_subject
            f.write(f"{r.ref_subject} {real} {r.probe_id} {float(r.match_score)!r}\n")
    with open(pad, "w") as f:
        for r in probes.itertuples():
            f.write(f"{r.subject} {'attack' if r.label == 'attack' else r.subject} {r.sample_id} {float(r.pad_score)!r}\n")
    return verification, pad
