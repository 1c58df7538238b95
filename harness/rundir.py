"""The run directory: the one versioned contract between scoring and everything after it (export, report, notebooks).

A run directory written by :func:`write_tables` holds, besides what the experiment writes itself:

- ``scores.parquet`` / ``scores.csv``: one row per manifest sample (manifest columns, ``status``, ``code``,
  ``reason``, the detection: ``det_prob``, ``n_faces``, ``faces``, ``box_x1..box_y2``, ``pad_score``, ``decode_note``,
  ``path`` and then the 5-point landmarks ``lm0_x, lm0_y, ..., lm4_y`` of the scored face);
- ``probes.parquet``: the probe samples as the trials were built on them, with their ``partition``;
- ``trials.parquet`` / ``trials.csv``: every trial;
- (1.1) ``presentations.parquet`` / ``presentations.csv``: the probe presentations (:mod:`harness.presentations`: one
  row per video or group of stills, its aggregated PAD score, frame counts, ``partition``), and
  ``presentation_trials.parquet``: the trials with every probe a presentation; ``scores`` gains ``presentation``
  and ``capture_order``; ``protocol_presentations.parquet`` / ``.csv``: every video of every official sub-protocol
  with its score (:mod:`harness.official`);
- ``run_config.json``: the resolved (redacted) configuration;
- ``summary.json`` (written through :func:`write_summary`);
- ``run_manifest.json``: ``format_version`` and every file above with its sha256 (and row count for tables).

Readers use Parquet (floats round-trip exactly); the CSVs are for people. A reader checks ``format_version``
(:func:`read_manifest`: a newer MAJOR version is refused in one line; minor versions only add files or trailing
columns) and the sha256 of every file it reads (a changed file is named in one line). A directory without a
manifest (runs written before this module) is read through the old path: ``scores.csv`` / ``trials.csv`` as text
(``float()`` round-trips pandas' repr) and no probes file (:func:`has_manifest` says which).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.models.weights import sha256_file

FORMAT = "harness-run-directory"
#: MAJOR.MINOR: readers refuse a newer MAJOR; a MINOR bump only adds files or trailing columns
FORMAT_VERSION = "1.1"
MANIFEST_FILE = "run_manifest.json"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "run_config.json"
#: table name -> (Parquet file, CSV file or None)
TABLES = {"scores": ("scores.parquet", "scores.csv"), "probes": ("probes.parquet", None),
          "trials": ("trials.parquet", "trials.csv"),
          "presentations": ("presentations.parquet", "presentations.csv"),
          "presentation_trials": ("presentation_trials.parquet", None),
          "protocol_presentations": ("protocol_presentations.parquet", "protocol_presentations.csv")}
BOX_COLUMNS = ("box_x1", "box_y1", "box_x2", "box_y2")
#: the 5 landmarks (order of :mod:`harness.models.base`) as columns of ``scores``
LANDMARK_COLUMNS = tuple(f"lm{i}_{axis}" for i in range(5) for axis in ("x", "y"))


class RunDirError(ValueError):
    """A run directory that cannot be read: missing file, changed file, or a format this harness does not read."""



def _major(version: str) -> int:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        raise RunDirError(f"run_manifest.json has an unreadable format_version {version!r}") from None


def scores_frame(samples: pd.DataFrame, detections: np.ndarray | None = None) -> pd.DataFrame:
    """The ``scores`` table: ``samples`` with ``path`` moved last (the column order of every ``scores.csv``) and,
    when ``detections`` (``[N, 16]`` of :meth:`harness.faces.detect.Detection.to_array`) is given, the landmark
    columns after it. ``samples`` that already carry the landmark columns keep them."""
    out = samples.drop(columns=["path", *[c for c in LANDMARK_COLUMNS if c in samples.columns]])
    out = out.assign(path=samples["path"])
    if detections is not None:
        lm = np.asarray(detections, dtype=np.float64)[:, 6:16]
        for j, c in enumerate(LANDMARK_COLUMNS):
            out[c] = lm[:, j]
    elif all(c in samples.columns for c in LANDMARK_COLUMNS):
        for c in LANDMARK_COLUMNS:
            out[c] = samples[c]
    return out


def _load_manifest(run_dir: Path) -> dict:
    p = Path(run_dir) / MANIFEST_FILE
    return json.loads(p.read_text()) if p.is_file() else {"format": FORMAT, "format_version": FORMAT_VERSION,
                                                          "files": {}}


def _record(run_dir: Path, manifest: dict, name: str, rows: int | None = None) -> None:
    entry: dict[str, Any] = {"sha256": sha256_file(Path(run_dir) / name)}
    if rows is not None:
        entry["rows"] = int(rows)
    manifest["files"][name] = entry


def _save_manifest(run_dir: Path, manifest: dict) -> None:
    manifest["files"] = dict(sorted(manifest["files"].items()))
    (Path(run_dir) / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")


def write_table(run_dir: Path, name: str, df: pd.DataFrame) -> None:
    """Write table ``name`` (a key of :data:`TABLES`) as Parquet (and its CSV) and record both in the manifest."""
    run_dir = Path(run_dir)
    parquet, csv = TABLES[name]
    df.to_parquet(run_dir / parquet, engine="pyarrow")
    manifest = _load_manifest(run_dir)
    _record(run_dir, manifest, parquet, len(df))
    if csv is not None:
        df.to_csv(run_dir / csv, index=False)
        _record(run_dir, manifest, csv, len(df))
    _save_manifest(run_dir, manifest)


def write_tables(run_dir: Path, *, config: dict | None = None, **tables: pd.DataFrame | None) -> None:
    """Write the given tables (keys of :data:`TABLES`: ``scores=``, ``probes=``, ``trials=``, ...; and the resolved
    ``config``, redacted) and record them in ``run_manifest.json``."""
    for name, df in tables.items():
        if name not in TABLES:
            raise ValueError(f"unknown run-directory table {name!r}; known: {sorted(TABLES)}")
        if df is not None:
            write_table(run_dir, name, df)
    if config is not None:
        from harness.redact import redact_config

        write_json(run_dir, CONFIG_FILE, redact_config(config))


def write_json(run_dir: Path, name: str, doc: str | dict, default=None) -> None:
    """Write a JSON document (a dict, or its text already rendered) and record it in the manifest."""
    text = doc if isinstance(doc, str) else json.dumps(doc, indent=2, default=default)
    (Path(run_dir) / name).write_text(text)
    manifest = _load_manifest(run_dir)
    _record(run_dir, manifest, name)
    _save_manifest(run_dir, manifest)


def write_summary(run_dir: Path, text: str) -> None:
    """Write ``summary.json`` (already rendered) and record it in the manifest (called again when it is rewritten)."""
    write_json(run_dir, SUMMARY_FILE, text)


# ----------------------------------------------------------------------------------------------------------- read


def has_manifest(run_dir: Path) -> bool:
    """True for a run directory written through this module (False: a run written before it)."""
    return (Path(run_dir) / MANIFEST_FILE).is_file()


def read_manifest(run_dir: Path) -> dict | None:
    """``run_manifest.json`` with its ``format_version`` checked (None: an old run directory without one)."""
    p = Path(run_dir) / MANIFEST_FILE
    if not p.is_file():
        return None
    try:
        manifest = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise RunDirError(f"{p} is not valid JSON ({e.msg} at line {e.lineno})") from None
    version = str(manifest.get("format_version", ""))
    if _major(version) > _major(FORMAT_VERSION):
        raise RunDirError(f"{Path(run_dir)} is run directory format {version}, newer than this harness reads "
                          f"({_major(FORMAT_VERSION)}.x): use a newer harness")
    return manifest


def verified_path(run_dir: Path, name: str, manifest: dict | None = None) -> Path:
    """``run_dir / name`` after checking it exists and, when the manifest lists it, that its sha256 is unchanged."""
    run_dir = Path(run_dir)
    path = run_dir / name
    manifest = read_manifest(run_dir) if manifest is None else manifest
    if not path.is_file():
        raise RunDirError(f"{run_dir} is not a finished run directory: {name} is missing")
    want = ((manifest or {}).get("files") or {}).get(name, {}).get("sha256")
    if want is not None and sha256_file(path) != want:
        raise RunDirError(f"{path} was changed after the run wrote it (sha256 differs from {MANIFEST_FILE})")
    return path


def verify(run_dir: Path) -> dict:
    """Check the format version and the sha256 of every file the manifest lists; return the manifest."""
    manifest = read_manifest(run_dir)
    if manifest is None:
        raise RunDirError(f"{run_dir} has no {MANIFEST_FILE} (a run written before the versioned run directory)")
    for name in manifest.get("files") or {}:
        verified_path(run_dir, name, manifest)
    return manifest


def _read_csv_table(path: Path, floats: tuple[str, ...]) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in floats:  # Python's float() round-trips pandas' repr output exactly
        if col in df.columns:
            df[col] = df[col].map(lambda s: float(s) if s not in ("", None) else np.nan)
    return df


def read_table(run_dir: Path, name: str, manifest: dict | None = None) -> pd.DataFrame:
    """Table ``name`` (``scores``, ``probes``, ``trials``): Parquet, verified, from a run directory with a manifest;
    from an old one, the CSV as text with the score columns as floats (``probes``: RunDirError, never written)."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir) if manifest is None else manifest
    parquet, csv = TABLES[name]
    if manifest is not None and parquet in (manifest.get("files") or {}):
        return pd.read_parquet(verified_path(run_dir, parquet, manifest), engine="pyarrow")
    if csv is None:
        raise RunDirError(f"{run_dir} has no {parquet}")
    floats = ("match_score", "pad_score") if name == "trials" else ("pad_score", *BOX_COLUMNS, *LANDMARK_COLUMNS)
    return _read_csv_table(verified_path(run_dir, csv, manifest), floats)


def read_summary(run_dir: Path, manifest: dict | None = None) -> dict:
    """``summary.json`` (verified when the manifest lists it)."""
    return json.loads(verified_path(run_dir, SUMMARY_FILE, manifest).read_text())


def read_config(run_dir: Path, manifest: dict | None = None) -> dict | None:
    """The run's resolved config: ``run_config.json``; for an old run, ``operating_point.json``'s ``config`` or
    ``.hydra/config.yaml`` (None when none is there)."""
    run_dir = Path(run_dir)
    if manifest is not None and CONFIG_FILE in (manifest.get("files") or {}):
        return json.loads(verified_path(run_dir, CONFIG_FILE, manifest).read_text())
    opj = run_dir / "operating_point.json"
    config = json.loads(opj.read_text()).get("config") if opj.is_file() else None
    if config is None and (run_dir / ".hydra" / "config.yaml").is_file():
        import yaml

        config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    return config
