"""The run directories a threshold transfer is composed from: read through :mod:`harness.rundir` (every file checked
against ``run_manifest.json``), one partition taken, and relabelled so that the ordinary threshold machinery
(:func:`harness.policy.select.choose_thresholds`, :func:`harness.evaluate.evaluate`) runs on it unchanged.

Conventions: a run is named on the command line as ``RUN_DIR[:PARTITION]`` (``dev``, ``train``, ``eval`` or ``all``);
its rows of that partition become partition ``dev`` (selection side) or ``eval`` (target side) of a composed table,
and every person id is prefixed with the run's label (``<label>/<subject>``) so that two databases never share a
person. A *finished* run (``summary.json`` present) can be either side; a run that stopped after scoring (its tables
written, no summary: e.g. a bona fide only sample that has no impostor trials to choose on) can only be a target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness import rundir

PARTITIONS = ("dev", "train", "eval", "all")
#: person-id columns of the trials and probes tables
SUBJECT_COLUMNS = {"trials": ("probe_subject", "ref_subject"), "probes": ("subject",)}


class TransferInputError(ValueError):
    """A run directory or argument a transfer cannot use (the message is one line naming the file or key)."""


@dataclass
class ScoredRun:
    """One run directory as a transfer reads it: its trials and probes (all partitions), its config, its summary
    (None: the run stopped after scoring), its ``scores`` table and the label its people are prefixed with."""

    run_dir: Path
    label: str
    trials: pd.DataFrame
    probes: pd.DataFrame
    config: dict
    summary: dict | None
    scores: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    unit: str = "frame"

    @property
    def dataset(self) -> str:
        """The dataset name (summary, else config); a generic CSV manifest is named by the CSV's folder."""
        ds = self.config.get("dataset") or {}
        name = str((self.summary or {}).get("dataset", {}).get("name") or ds.get("name", "?"))
        if name == "csv" and ds.get("csv"):
            return Path(str(ds["csv"])).parent.name
        return name

    @property
    def partitions(self) -> list[str]:
        """The partitions its probes fall in (sorted)."""
        return sorted(set(self.probes["partition"].astype(str)) | set(self.trials["partition"].astype(str)))


def parse_spec(spec: str, default_partition: str) -> tuple[Path, str]:
    """``RUN_DIR[:PARTITION]`` -> (path, partition); an unknown partition name is refused in one line."""
    text = str(spec).strip()
    head, sep, tail = text.rpartition(":")
    if sep and tail in PARTITIONS:
        return Path(head), tail
    if sep and "/" not in tail and tail and not Path(text).exists():
        raise TransferInputError(f"{text}: unknown partition {tail!r} (one of {', '.join(PARTITIONS)})")
    return Path(text), default_partition


#: unit -> (trials table, probes table) of the run directory (:data:`harness.evaluate.UNITS`)
UNIT_TABLES = {"frame": ("trials", "probes"), "presentation": ("presentation_trials", "presentations")}


def check_unit_tables(run_dir: Path, manifest: dict, unit: str) -> None:
    """``unit=presentation`` needs the run's presentation tables; a run without them is refused in one line saying
    why: they are built after the thresholds (a run that stopped after scoring has none), and they cannot be rebuilt
    from the run directory, since a presentation's match score compares its pooled face template (the mean of its
    frames' embeddings, :mod:`harness.presentations`), and a run directory keeps no embeddings."""
    if unit != "presentation":
        return
    files = manifest.get("files") or {}
    missing = [rundir.TABLES[t][0] for t in UNIT_TABLES[unit] if rundir.TABLES[t][0] not in files]
    if not missing:
        return
    why = ("the run stopped after scoring, before the presentations are built (no summary.json)"
           if rundir.SUMMARY_FILE not in files else "the run built none (imported scores, or no presentation grouping)")
    raise TransferInputError(f"{run_dir}: unit=presentation needs {' and '.join(missing)}, and {why}; they cannot be "
                             "rebuilt from the run directory (a presentation's match score needs its frames' face "
                             "embeddings, which a run directory does not keep): use unit=frame, or rerun it to the end")


def load_run(run_dir: Path | str, label: str | None = None, *, finished: bool = False,
             unit: str = "frame") -> ScoredRun:
    """Read a run directory through :mod:`harness.rundir` (format version and sha256s checked). ``finished``:
    refuse a run without ``summary.json``. ``unit``: ``frame`` (trials, probes) or ``presentation`` (the run's
    presentation tables: one row per video or group of stills, :mod:`harness.presentations`)."""
    if unit not in UNIT_TABLES:
        raise TransferInputError(f"unit must be one of {', '.join(UNIT_TABLES)}, got {unit!r}")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TransferInputError(f"{run_dir}: no such run directory")
    try:
        manifest = rundir.read_manifest(run_dir)
        if manifest is None:
            raise TransferInputError(f"{run_dir}: no {rundir.MANIFEST_FILE} (not a run directory of format "
                                     f"{rundir.FORMAT_VERSION}: rerun it with this harness)")
        check_unit_tables(run_dir, manifest, unit)
        trials = rundir.read_table(run_dir, UNIT_TABLES[unit][0], manifest)
        probes = rundir.read_table(run_dir, UNIT_TABLES[unit][1], manifest)
        config = rundir.read_config(run_dir, manifest) or {}
        has_summary = rundir.SUMMARY_FILE in (manifest.get("files") or {})
        if finished and not has_summary:
            raise TransferInputError(f"{run_dir / rundir.SUMMARY_FILE} is missing: the run stopped before choosing "
                                     "thresholds; thresholds can only be chosen on a finished run")
        summary = rundir.read_summary(run_dir, manifest) if has_summary else None
        scores = rundir.read_table(run_dir, "scores", manifest) if "scores.parquet" in manifest["files"] else None
    except rundir.RunDirError as e:
        raise TransferInputError(str(e)) from None
    run = ScoredRun(run_dir, label or run_dir.name, trials, probes, config, summary, scores, unit=unit)
    if summary is None:
        run.notes.append("the run stopped after scoring (no summary.json): its tables are read, its own thresholds "
                         "are chosen here")
    return run


def rows_of(run: ScoredRun, partition: str, as_partition: str, *, drop_species: tuple[str, ...] = ()
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials, probes) of ``run``'s ``partition`` (``all``: every partition) relabelled ``as_partition``, people
    prefixed with the run's label, attacks of ``drop_species`` removed. A partition the run lacks is refused."""
    if partition not in PARTITIONS:
        raise TransferInputError(f"partition must be one of {', '.join(PARTITIONS)}, got {partition!r}")
    if partition != "all" and partition not in run.partitions:
        raise TransferInputError(f"{run.run_dir}: the run has no {partition!r} partition (it has "
                                 f"{', '.join(run.partitions) or 'none'})")
    out = []
    for name, df in (("trials", run.trials), ("probes", run.probes)):
        d = df if partition == "all" else df[df["partition"].astype(str) == partition]
        d = d.copy()
        d["partition"] = as_partition
        for col in SUBJECT_COLUMNS[name]:
            if col in d.columns:
                d[col] = run.label + "/" + d[col].astype(str)
        if drop_species:
            is_att = (d["kind"] == "attack") if name == "trials" else (d["label"] == "attack")
            d = d[~(is_att & d["species"].astype(str).isin(drop_species))]
        out.append(d.reset_index(drop=True))
    return out[0], out[1]


def compose(parts: list[tuple[pd.DataFrame, pd.DataFrame]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Concatenate several (trials, probes) pairs (columns united)."""
    trials = pd.concat([p[0] for p in parts], ignore_index=True)
    probes = pd.concat([p[1] for p in parts], ignore_index=True)
    return trials, probes


def model_identity(run: ScoredRun) -> dict[str, str]:
    """``{"embedder": ..., "pad": ...}``: weights sha256 from the summary, else the configured model name."""
    models = (run.summary or {}).get("models") or {}
    out = {}
    for role in ("embedder", "pad"):
        m = models.get(role) or {}
        out[role] = str(m.get("weights_sha256") or m.get("name") or (run.config.get(role) or {}).get("name", "?"))
    return out


def model_names(run: ScoredRun) -> dict[str, str]:
    """``{"embedder": name, "pad": name}`` of the run's config."""
    return {role: str((run.config.get(role) or {}).get("name", "?")) for role in ("embedder", "pad")}


def check_same_models(select: list[ScoredRun], targets: list[ScoredRun]) -> None:
    """Thresholds mean something only for the models that produced them: every run must use the same embedder
    and PAD model (by weights sha256 where both runs finished, else by configured name); one line otherwise."""
    ref = select[0]
    for other in [*select[1:], *targets]:
        for role in ("embedder", "pad"):
            a, b = model_names(ref)[role], model_names(other)[role]
            ia, ib = model_identity(ref)[role], model_identity(other)[role]
            both = ref.summary is not None and other.summary is not None
            if a != b or (both and ia != ib):
                raise TransferInputError(f"{other.run_dir}: {role} {b} ({ib[:12]}) differs from {a} ({ia[:12]}) of "
                                         f"{ref.run_dir}: thresholds transfer only between runs of the same models")


def setting_differences(ref: ScoredRun, other: ScoredRun, groups: tuple[str, ...] = ("detector", "runtime")) -> list[str]:
    """One line per config key of ``groups`` whose value differs between two runs (e.g. the detector's
    ``pad_fraction``): the scores of the two runs come from differently prepared inputs."""
    out = []
    for g in groups:
        a, b = ref.config.get(g) or {}, other.config.get(g) or {}
        keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in ("progress", "threads"))
        if keys:
            out.append(f"{g} settings differ from the selection run's: " +
                       ", ".join(f"{g}.{k}={b.get(k)!r} (selection {a.get(k)!r})" for k in keys))
    return out
