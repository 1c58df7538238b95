"""Presets of the threshold transfer (``conf/transfer/<name>.yaml``), each one command and one table:

* ``pair`` — dataset A -> dataset B (bob's ``bob pad cross``, bob.pad.base): thresholds on ``select`` runs, rates on
  ``eval`` runs (the plain command is this preset).
* ``leave_one_dataset_out`` — over any list of runs, one fold per run: thresholds on the others pooled, rates on
  the one left out. ``ocim`` is this preset over O, C, I, M = OULU-NPU, CASIA-FASD, Replay-Attack (Idiap),
  MSU-MFSD, the cross-dataset protocol of face PAD (Shao et al., CVPR 2019, "Multi-adversarial discriminative deep
  domain generalization for face presentation attack detection": train on three databases, test on the fourth).
* ``leave_one_species_out`` — per attack species S of one run: thresholds chosen on its selection partition
  without S, APCER reported on S (and every rate) on its evaluation partition; the comparison chooses on the same
  selection partition with S (what not having seen S costs). The unseen-attack protocols of SiW-M / SiW-Mv2 and
  the leave-one-attack-type-out protocols of the PAD literature are this design.

A fold is ``{"name", "select": [(run, partition)], "targets": [(run, partition)], "drop_species"}``; running the
folds is :func:`harness.transfer_eval.transfer`.
"""

from __future__ import annotations

from typing import Any

from harness.transfer_runs import ScoredRun, TransferInputError

KINDS = ("pair", "leave_one_dataset_out", "leave_one_species_out")


def pair_folds(select: list[tuple[ScoredRun, str]], targets: list[tuple[ScoredRun, str]]) -> list[dict]:
    """One fold: ``select`` -> every target."""
    if not select or not targets:
        raise TransferInputError("select= and eval= each need at least one run directory")
    for side in (select, targets):
        names = [r.dataset for r, _ in side]
        labels = [n if names.count(n) == 1 else f"{n}:{p}" for n, (_, p) in zip(names, side)]
        for i, (run, _) in enumerate(side):
            run.label = labels[i] if labels.count(labels[i]) == 1 else f"{labels[i]}#{i}"
    name = "+".join(r.label for r, _ in select) + " -> " + ", ".join(r.label for r, _ in targets)
    return [{"name": name, "select": select, "targets": targets, "drop_species": ()}]


def dataset_labels(runs: list[ScoredRun], letters: dict[str, str] | None) -> list[str]:
    """Each run's label: its letter in ``letters`` (letter -> dataset name, e.g. OCIM) by its dataset, else its
    dataset name. Every letter must be present exactly once; one line otherwise."""
    if not letters:
        names = [r.dataset for r in runs]
        return [n if names.count(n) == 1 else f"{n}#{i}" for i, n in enumerate(names)]
    by_ds = {ds: letter for letter, ds in letters.items()}
    labels = []
    for r in runs:
        if r.dataset not in by_ds:
            raise TransferInputError(f"{r.run_dir}: dataset {r.dataset!r} is not one of the preset's "
                                     f"{', '.join(f'{k}={v}' for k, v in letters.items())}")
        labels.append(by_ds[r.dataset])
    missing = [f"{k}={v}" for k, v in letters.items() if k not in labels]
    if missing or len(set(labels)) != len(labels):
        raise TransferInputError(f"runs= must hold one run of each of {', '.join(f'{k}={v}' for k, v in letters.items())}"
                                 f" (missing: {', '.join(missing) or 'none'}; given: {', '.join(labels)})")
    return labels


def lodo_folds(runs: list[ScoredRun], select_partition: str, eval_partition: str,
               letters: dict[str, str] | None = None) -> list[dict]:
    """One fold per run: the others (``select_partition`` of each, pooled) -> it (``eval_partition``)."""
    if len(runs) < 2:
        raise TransferInputError("runs= needs at least two run directories for leave-one-dataset-out")
    labels = dataset_labels(runs, letters)
    for r, label in zip(runs, labels):
        r.label = label
    order = list(letters) if letters else labels
    runs = sorted(runs, key=lambda r: order.index(r.label))
    folds = []
    for held in runs:
        rest = [r for r in runs if r is not held]
        folds.append({"name": "".join(r.label for r in rest) + " -> " + held.label if letters else
                      "+".join(r.label for r in rest) + " -> " + held.label,
                      "select": [(r, select_partition) for r in rest], "targets": [(held, eval_partition)],
                      "drop_species": ()})
    return folds


def attack_species(run: ScoredRun) -> list[str]:
    """The attack species of a run's scored probes (sorted)."""
    p = run.probes
    return sorted(set(p.loc[(p["label"] == "attack") & (p["status"] == "scored"), "species"].astype(str)))


def loso_folds(run: ScoredRun, species: list[str] | None, select_partition: str, eval_partition: str) -> list[dict]:
    """One fold per species S (default: every attack species of the run): selection without S -> evaluation."""
    have = attack_species(run)
    if len(have) < 2:
        raise TransferInputError(f"{run.run_dir}: leave-one-species-out needs at least two attack species "
                                 f"(the run has {', '.join(have) or 'none'})")
    chosen = list(species) if species else have
    unknown = [s for s in chosen if s not in have]
    if unknown:
        raise TransferInputError(f"species={','.join(unknown)}: not an attack species of {run.run_dir} "
                                 f"(it has {', '.join(have)})")
    run.label = run.dataset
    return [{"name": f"without {s} -> {s}", "select": [(run, select_partition)], "targets": [(run, eval_partition)],
             "drop_species": (s,)} for s in chosen]


def preset_folds(preset: dict[str, Any], args: dict[str, Any]) -> list[dict]:
    """The folds of a preset (its yaml merged with the command's keys; ``args`` holds the loaded runs)."""
    kind = preset.get("kind", "pair")
    if kind not in KINDS:
        raise TransferInputError(f"transfer preset kind must be one of {', '.join(KINDS)}, got {kind!r}")
    sp, ep = str(preset.get("select_partition", "dev")), str(preset.get("eval_partition", "eval"))
    if kind == "pair":
        return pair_folds(args.get("select") or [], args.get("eval") or [])
    if kind == "leave_one_dataset_out":
        return lodo_folds(args.get("runs") or [], sp, ep, preset.get("datasets"))
    run = args.get("run")
    if run is None:
        raise TransferInputError("leave_one_species_out needs run=RUN_DIR")
    species = preset.get("species")
    return loso_folds(run, [species] if isinstance(species, str) else species, sp, ep)
