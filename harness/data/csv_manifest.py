"""Generic CSV manifest for in-house data (and the shared faceapi_bbt / silentface fixtures).

The CSV needs ``path, subject, label`` (``attack_type`` or ``species`` for attacks, ``split`` optional);
``path`` is relative to the CSV's folder unless absolute. Extra columns are kept as metadata.

Every path must resolve (symlinks followed) inside the dataset root, the CSV's folder unless ``root`` is given:
a row whose path escapes it (``../../etc/hostname``, ``/etc/passwd``, a symlink pointing out) is an
``outside_root`` problem naming the CSV line and the path as written, and is left out without being opened.
``on_problem: error`` (default) stops with the list, ``warn`` keeps the other rows. ``allow_outside_root: true``
in the dataset config admits such paths.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.data.common import Problem, config_flag, inside_root, settle_problems
from harness.data.registry import register_dataset
from harness.data.sample import ManifestError, validate_manifest
from harness.paths import DataMissingError


def read_csv_manifest(csv: Path, default_split: str = "test", how_to_obtain: str = "", root: str | Path | None = None,
                      allow_outside_root: bool = False, on_problem: str = "error") -> pd.DataFrame:
    """The manifest of ``csv``; paths outside ``root`` (default: the CSV's folder) are problems, see module docstring."""
    csv = Path(csv)
    allow_outside_root = config_flag(allow_outside_root, "dataset.allow_outside_root")
    if not csv.is_file():
        hint = f" {how_to_obtain}" if how_to_obtain else ""
        raise DataMissingError(f"dataset manifest not found: {csv}.{hint}")
    try:
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except Exception as e:  # pandas raises several types for malformed files
        raise ManifestError(f"{csv}: not a readable CSV ({e})") from e
    for col in ("path", "subject", "label"):
        if col not in df.columns:
            raise ManifestError(f"{csv}: missing column {col!r} (have {list(df.columns)})")
    if "species" not in df.columns:
        df["species"] = df["attack_type"] if "attack_type" in df.columns else "none"
    if "split" not in df.columns:
        df["split"] = default_split
    bound = csv.parent if root is None else Path(root)  # the dataset root the paths must stay in
    root = csv.parent  # what relative paths are relative to
    problems = []
    if not allow_outside_root:  # before anything looks at the files: an outside path is never opened
        keep = [inside_root(root / p, bound) for p in df["path"]]
        for i in (i for i, ok in enumerate(keep) if not ok):
            p = df["path"].iat[i]
            problems.append(Problem("outside_root", f"{csv.name} line {i + 2}: path {p!r} resolves outside the dataset "
                                                    f"root {bound}; left out, not read (dataset.allow_outside_root="
                                                    f"true admits it)", (p,)))
        df = df[keep].reset_index(drop=True)
    df["path"] = [str(p if Path(p).is_absolute() else (root / p).resolve()) for p in df["path"]]
    if "frame" not in df.columns:
        df["frame"] = -1
    df["frame"] = df["frame"].astype(int)
    if "sample_id" not in df.columns:
        df["sample_id"] = [f"{Path(p).relative_to(root) if p.startswith(str(root)) else p}#{f}" for p, f in zip(df["path"], df["frame"])]
    if df.empty and problems:  # every row was left out: nothing to keep going with
        return settle_problems(df, problems, "error", f"{csv} (dataset root {bound})")
    df = validate_manifest(df, source=str(csv))
    df.attrs["root"] = str(bound)
    return settle_problems(df, problems, on_problem, f"{csv} (dataset root {bound})")


@register_dataset("csv")
def load_csv(csv: str, default_split: str = "test", root: str | None = None, allow_outside_root: bool = False,
             on_problem: str = "error", **_) -> pd.DataFrame:
    """Any CSV manifest (see module docstring). ``root``: the dataset root the paths must stay in (default: the
    CSV's folder); ``allow_outside_root``: admit paths outside it; ``on_problem``: ``error`` | ``warn``."""
    return read_csv_manifest(Path(csv), default_split=default_split, root=root, allow_outside_root=allow_outside_root,
                             on_problem=on_problem)
