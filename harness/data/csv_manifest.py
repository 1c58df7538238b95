"""Generic CSV manifest for in-house data (and the shared faceapi_bbt / silentface fixtures).

The CSV needs ``path, subject, label`` (``attack_type`` or ``species`` for attacks, ``split`` optional);
``path`` is relative to the CSV's folder unless absolute. Extra columns are kept as metadata.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.data.registry import register_dataset
from harness.data.sample import ManifestError, validate_manifest
from harness.paths import DataMissingError


def read_csv_manifest(csv: Path, default_split: str = "test", how_to_obtain: str = "") -> pd.DataFrame:
    csv = Path(csv)
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
    root = csv.parent
    df["path"] = [str(p if Path(p).is_absolute() else (root / p).resolve()) for p in df["path"]]
    if "frame" not in df.columns:
        df["frame"] = -1
    df["frame"] = df["frame"].astype(int)
    if "sample_id" not in df.columns:
        df["sample_id"] = [f"{Path(p).relative_to(root) if p.startswith(str(root)) else p}#{f}" for p, f in zip(df["path"], df["frame"])]
    return validate_manifest(df, source=str(csv))


@register_dataset("csv")
def load_csv(csv: str, default_split: str = "test", **_) -> pd.DataFrame:
    """Any CSV manifest (see module docstring)."""
    return read_csv_manifest(Path(csv), default_split=default_split)
