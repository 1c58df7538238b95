"""The common sample record. A dataset is a *manifest*: a pandas DataFrame with one row per sample.

Required columns (see :data:`COLUMNS`): ``sample_id`` (unique), ``path`` (absolute), ``frame`` (video frame
index, -1 for a still image), ``subject`` (the identity shown; for an attack, the person impersonated),
``label`` (``bona_fide`` | ``attack``), ``species`` (attack species from :data:`SPECIES`; ``none`` for bona
fide, ``unknown`` for an attack whose species is not known), ``split``. Any further columns are capture metadata
(session, device, lighting, glasses, ...) used for per-condition breakdowns.
"""

from __future__ import annotations

import pandas as pd

LABELS = ("bona_fide", "attack")

#: Attack species vocabulary (presentation-attack instrument species, ISO/IEC 30107-3 sense).
SPECIES = (
    "none",  # bona fide
    "print_photo",
    "screen_replay",
    "video_replay",
    "paper_mask",
    "3d_mask",
    "cutout",
    "makeup_disguise",
    "digital_animation",
    "injection",
    # an attack whose instrument is not known (e.g. imported third-party scores, bob files without a species
    # mapping): accepted and reported as its own species, never folded into a known one
    "unknown",
)

COLUMNS = ("sample_id", "path", "frame", "subject", "label", "species", "split")


class ManifestError(ValueError):
    """The manifest is malformed; the message names the file/column/rows at fault."""


def validate_manifest(df: pd.DataFrame, source: str = "manifest") -> pd.DataFrame:
    """Check the columns and vocabularies; return the frame with a clean index. Raises :class:`ManifestError`."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"{source}: missing column(s) {missing}; required: {list(COLUMNS)}")
    if df.empty:
        raise ManifestError(f"{source}: no samples")
    bad = df.loc[~df["label"].isin(LABELS), "label"].unique()
    if len(bad):
        raise ManifestError(f"{source}: unknown label(s) {list(bad)}; expected one of {LABELS}")
    bad = df.loc[~df["species"].isin(SPECIES), "species"].unique()
    if len(bad):
        raise ManifestError(f"{source}: unknown attack species {list(bad)}; vocabulary: {SPECIES}")
    incons = df[(df["label"] == "bona_fide") != (df["species"] == "none")]
    if len(incons):
        raise ManifestError(
            f"{source}: {len(incons)} row(s) where label and species disagree (bona_fide <=> species 'none'), "
            f"e.g. {incons.iloc[0]['path']}"
        )
    dup = df["sample_id"].duplicated()
    if dup.any():
        raise ManifestError(f"{source}: duplicate sample_id(s), e.g. {df.loc[dup, 'sample_id'].iloc[0]}")
    return df.reset_index(drop=True)
