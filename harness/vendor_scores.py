"""Imported third-party scores in place of the harness's own models: the score table, the trials and the ``models``
block of a ``dataset=scores`` run (:mod:`harness.data.score_files` reads the files).

The experiment calls :func:`vendor_scoring` instead of building and running the detector, embedder and PAD model;
what it returns has the shapes the models' path produces (a :class:`harness.scoring.table.ScoreTable` with every
sample ``scored``, or ``fta`` where the score file reports a failure to acquire, a :class:`harness.protocols.trials.Trials` with the same columns and counts), so thresholds,
metrics, verdicts, the report, the export and MLflow run unchanged.

Partitions: a row's ``partition`` column (``dev`` / ``eval``) when the file gives one; else the protocol's rule over
the people in the files, exactly as :func:`harness.protocols.trials.build_trials` applies it (``partition:
subjects``: the seeded subject split with ``dev_fraction`` / ``seed``; ``split``: the ``split`` column). A comparison
belongs to its probe person's partition; the probes (PAD metrics, FTA rates) are the samples with a PAD row
(``has_pad``), scored or failed to acquire; a comparison row of a failure to acquire is not a comparison.

The vendor's identity (export ``models.<role>.vendor``): ``name`` (default: the first file's stem), ``version``,
``sdk_build`` (the build string the committee approved, or null) and the sha256 of every score file; ``identity`` is
the ``sdk_build`` when given, else the score files' sha256 joined by ``+`` (file order). The runtime checks it
instead of weight sha256s (:func:`harness.runtime.load`'s ``vendor_identity``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.data.score_files import ScoreFileError, imported
from harness.faces.detect import ROW_WIDTH
from harness.protocols.trials import Trials, split_partition, subject_partition
from harness.scoring.table import ScoreTable, finish_table

__all__ = ["VendorModel", "is_imported", "vendor_identity", "vendor_scoring", "partition_of"]

#: ``preprocessing`` of an imported model: the harness did not see its inputs
PREPROCESSING = "the vendor's own (scores imported from score files; no image seen by the harness)"


@dataclass
class VendorModel:
    """The stand-in of a model whose scores were imported: its name, metric and role (no weights, no template)."""

    name: str
    role: str
    metric: str = "vendor"
    template: None = None
    crop_size: None = None


def is_imported(manifest: pd.DataFrame) -> bool:
    """True for the manifest of ``dataset=scores`` (imported score files)."""
    return imported(manifest) is not None


def vendor_identity(vendor: dict, files: list[dict]) -> dict:
    """The ``vendor`` block of the export: name, version, sdk_build, the score files' sha256 and ``identity``."""
    name = str(vendor.get("name") or Path(files[0]["file"]).stem)
    build = vendor.get("sdk_build")
    shas = [f["sha256"] for f in files]
    return {"name": name, "version": str(vendor.get("version") or "unspecified"),
            "sdk_build": None if build in (None, "") else str(build),
            "score_files": [{"file": Path(f["file"]).name, "sha256": f["sha256"]} for f in files],
            "identity": str(build) if build not in (None, "") else "+".join(shas)}


def partition_of(subjects: pd.Series, samples: pd.DataFrame, given: pd.Series, protocol: dict) -> pd.Series:
    """Each row's partition: its ``given`` one (``dev`` / ``eval``) where set, else the protocol's rule (module
    docstring) applied to the people of ``samples``."""
    mode = protocol.get("partition", "subjects")
    if mode == "subjects":
        rule = subject_partition(samples["subject"], float(protocol.get("dev_fraction", 0.5)),
                                 int(protocol.get("seed", 0)))
    elif mode == "split":
        rule = split_partition(samples, protocol.get("dev_splits", ["dev"]), protocol.get("eval_splits", ["test"]))
    else:
        raise ValueError(f"protocol.partition must be 'subjects' or 'split', got {mode!r}")
    given = given.fillna("").astype(str)
    return given.where(given != "", subjects.map(rule)).replace("", np.nan)


def _table(manifest: pd.DataFrame) -> ScoreTable:
    """The score table: each sample ``scored`` or ``fta`` (with its reason) as its rows say; no detection (NaN),
    ``faces`` 0, as for a sample in which the harness's own detector found no face."""
    n = len(manifest)
    status = manifest["imported_status"].astype(str).to_numpy(dtype=object)
    reason = manifest["imported_reason"].fillna("").astype(str).to_numpy(dtype=object)
    det = np.full((n, ROW_WIDTH), np.nan)
    stats = {f"{stage}_{k}": 0 for stage in ("detect", "embed", "pad") for k in ("computed", "cached")}
    stats["imported_pad_scores"] = int((manifest["has_pad"] & (status == "scored")).sum())
    stats["imported_fta_samples"] = int((status == "fta").sum())
    return finish_table(manifest.drop(columns=["imported_pad_score", "imported_status", "imported_reason"]), status,
                        reason, det, manifest["imported_pad_score"].to_numpy(dtype=float),
                        np.zeros((n, 0), dtype=np.float32), stats)


def _people(samples: pd.DataFrame, comps: pd.DataFrame) -> pd.DataFrame:
    """Every person in the files (sample subjects and comparison references) with a split, for the partition rule."""
    refs = pd.DataFrame({"subject": comps["ref_subject"], "split": comps["probe_id"].map(
        samples.set_index("sample_id")["split"])})
    return pd.concat([samples[["subject", "split"]], refs], ignore_index=True).dropna()


def _trials(samples: pd.DataFrame, all_comps: pd.DataFrame, protocol: dict) -> Trials:
    """The trials of the scored comparisons; the people (hence the seeded partition) and the enrolled references
    are those of every comparison row, failed to acquire or not (a failure to acquire yields no comparison)."""
    people = _people(samples, all_comps)
    comps = all_comps[all_comps["status"].astype(str) != "fta"].reset_index(drop=True)
    probes = samples[samples["has_pad"]].copy()
    probes["partition"] = partition_of(probes["subject"], people, probes["partition"], protocol)
    n_out = int(probes["partition"].isna().sum())
    probes = probes[probes["partition"].notna()]
    pad = samples.set_index("sample_id")["pad_score"]
    kind = np.where(comps["label"] == "attack", "attack",
                    np.where(comps["probe_subject"] == comps["ref_subject"], "genuine", "impostor"))
    trials = pd.DataFrame({"kind": kind, "partition": partition_of(comps["probe_subject"], people, comps["partition"],
                                                                   protocol),
                           "probe_id": comps["probe_id"], "probe_subject": comps["probe_subject"],
                           "ref_subject": comps["ref_subject"], "species": comps["species"],
                           "match_score": comps["match_score"].astype(float),
                           "pad_score": comps["probe_id"].map(pad).astype(float)})
    trials = trials[trials["partition"].notna()].reset_index(drop=True)
    parts = {p: sorted({str(s) for s in pd.concat([probes.loc[probes["partition"] == p, "subject"],
                                                   trials.loc[trials["partition"] == p, "probe_subject"]])})
             for p in ("dev", "eval")}
    counts = {"subjects": int(people["subject"].nunique()),
              "enrolled_subjects": int(all_comps["ref_subject"].nunique()),
              "failure_to_enrol_subjects": 0, "enrolment_samples": 0, "probe_samples": int(len(probes)),
              "samples_neither_enrol_nor_probe": 0, "probe_samples_outside_partitions": n_out,
              "impostor_pairs_not_sampled": 0, "attack_probes_without_enrolment": 0,
              "imported_comparisons": int(len(all_comps)), "comparisons_outside_partitions": int(len(comps) - len(trials)),
              "imported_fta_comparison_rows": int(len(all_comps) - len(comps))}
    if not len(all_comps):  # PAD scores only: no comparison, nobody enrolled (verification is not measured)
        counts["enrolled_subjects"] = 0
    for p in ("dev", "eval"):
        counts[f"{p}_subjects"] = parts[p]
        for k in ("genuine", "impostor", "attack"):
            counts[f"{p}_{k}_trials"] = int(((trials["kind"] == k) & (trials["partition"] == p)).sum())
    return Trials(trials=trials, probes=probes, partitions=parts, counts=counts)


def _models(ident: dict, has_pad: bool, has_match: bool) -> dict:
    role = {"preprocessing": PREPROCESSING, "score_range": None, "vendor": ident}
    return {"detector": {"id": "none (imported scores)"},
            "embedder": {"name": f"{ident['name']} match", **role, "metric": "vendor", "dim": 0,
                         "score_scale": "the vendor's match score (higher = more likely the same person)"
                         if has_match else "no match scores imported"},
            "pad": {"name": f"{ident['name']} PAD", **role,
                    "score_scale": "the vendor's PAD score (higher = more likely bona fide)"
                    if has_pad else "no PAD scores imported"}}


def check_both_kinds(manifest: pd.DataFrame, block: dict) -> None:
    """Refuse, in one line naming the files, imported scores of one kind only: a run chooses a match AND a PAD
    threshold and every run of the harness has both (a PAD-only or verification-only run is not supported yet)."""
    files = ", ".join(Path(f["file"]).name for f in block["files"])
    if not len(block["trials"]):
        raise ScoreFileError(f"{files}: PAD scores only (no comparison row with a ref_subject): a run chooses a match "
                             "and a PAD threshold, so add the same people's comparison scores (a PAD-only run is "
                             "not supported yet)")
    if not bool(manifest["has_pad"].any()):
        raise ScoreFileError(f"{files}: comparison scores only (no PAD row: ref_subject empty): a run chooses a match "
                             "and a PAD threshold, so add the probes' PAD scores (a verification-only run of imported "
                             "scores is not supported yet)")


def vendor_scoring(manifest: pd.DataFrame, protocol: dict, vendor: dict | None = None):
    """``(table, trials, models, embedder, pad)`` of a ``scores`` manifest: the score table of the imported PAD scores,
    the trials of the imported comparisons (module docstring), the ``models`` block naming the vendor, and the
    :class:`VendorModel` stand-ins of the embedder and the PAD model."""
    block = imported(manifest)
    check_both_kinds(manifest, block)
    table = _table(manifest)
    tr = _trials(table.samples, block["trials"], protocol)
    ident = vendor_identity(vendor if vendor is not None else block["vendor"], block["files"])
    models = _models(ident, bool(manifest["has_pad"].any()), bool(len(block["trials"])))
    return table, tr, models, VendorModel(models["embedder"]["name"], "embedder"), \
        VendorModel(models["pad"]["name"], "pad")
