"""Generic folder layout for in-house data (images and/or videos)::

    <root>/<subject>/bona_fide/...                 any depth below; images and videos
    <root>/<subject>/attack/<species>/...          species from the vocabulary (print_photo, screen_replay, ...)

There is no official protocol: ``split: seeded`` (default) assigns subjects to ``dev``/``eval`` with a seeded,
subject-disjoint split (``dev_fraction``, ``seed``; the same assignment the trials builder makes), any other
value (e.g. ``test``) puts every sample in that split. A subject folder holding neither ``bona_fide/`` nor
``attack/``, an unknown species folder, an empty class folder or a stray file is reported with its path.
A file or folder that resolves outside ``<root>`` (a symlink pointing out) is an ``outside_root`` problem and is
neither listed nor opened, unless the dataset config sets ``allow_outside_root: true``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.data.common import ManifestBuilder, inside_root, require_root
from harness.data.registry import register_dataset
from harness.data.sample import SPECIES
from harness.data.splits import seeded_subject_split
from harness.data.video import is_image, is_video

HOW_TO_OBTAIN = (
    "In-house folder layout: <root>/<subject>/bona_fide/<files> and <root>/<subject>/attack/<species>/<files> "
    f"(species: {', '.join(s for s in SPECIES if s != 'none')}). See datasets/README.md."
)
IGNORED = {".ds_store", "thumbs.db", "desktop.ini"}


def _media(d: Path, root: Path) -> list[Path]:
    """Images and videos under ``d``; a symlink resolving outside ``root`` is listed (whatever it points to, without
    looking at it) so that :meth:`ManifestBuilder.add` reports it."""
    return sorted(f for f in d.rglob("*") if (is_image(f) or is_video(f))
                  and (not inside_root(f, root) or f.is_file()))


@register_dataset("folder")
def load_folder(root: str, split: str = "seeded", dev_fraction: float = 0.5, seed: int = 0, frames=None,
                on_problem: str = "error", allow_outside_root: bool = False, **_) -> pd.DataFrame:
    """Manifest of a ``<root>/<subject>/<bona_fide|attack/<species>>/...`` tree (see module docstring)."""
    root_p = require_root(root, "folder dataset", HOW_TO_OBTAIN)
    b = ManifestBuilder("folder dataset", root_p, HOW_TO_OBTAIN, frames, allow_outside_root=allow_outside_root)
    subjects = sorted(d for d in root_p.iterdir() if d.is_dir() and not d.name.startswith("."))
    for stray in sorted(f for f in root_p.iterdir() if f.is_file() and f.name.lower() not in IGNORED
                        and not f.name.startswith(".")):
        if is_image(stray) or is_video(stray):
            b.problem("unexpected_entry", f"{stray} is outside any <subject>/ folder", stray)
    part = seeded_subject_split([d.name for d in subjects], dev_fraction, seed) if split == "seeded" else None

    def escapes(d: Path) -> bool:
        """A folder resolving outside the root is reported and not listed (unless allow_outside_root)."""
        if b.allow_outside_root or inside_root(d, root_p):
            return False
        b.problem("outside_root", f"{b.rel(d)}/ resolves outside the dataset root {root_p}; left out, not listed "
                                  f"(dataset.allow_outside_root=true admits it)", b.rel(d))
        return True

    for sd in subjects:
        if escapes(sd):
            continue
        sp = part[sd.name] if part is not None else str(split)
        entries = {c.name: c for c in sd.iterdir() if not c.name.startswith(".") and c.name.lower() not in IGNORED}
        if "bona_fide" not in entries and "attack" not in entries:
            b.problem("unexpected_entry", f"subject folder {sd} holds neither bona_fide/ nor attack/", sd)
            continue
        for name, c in sorted(entries.items()):
            if name not in ("bona_fide", "attack") or not c.is_dir():
                b.problem("unexpected_entry", f"{c}: expected only bona_fide/ and attack/<species>/ in {sd}", c)
        if "bona_fide" in entries and entries["bona_fide"].is_dir() and not escapes(entries["bona_fide"]):
            files = _media(entries["bona_fide"], root_p)
            if not files:
                b.problem("empty_class", f"{entries['bona_fide']} holds no images or videos", entries["bona_fide"])
            for f in files:
                b.add(f, subject=sd.name, label="bona_fide", species="none", split=sp)
        if "attack" in entries and entries["attack"].is_dir() and not escapes(entries["attack"]):
            ad = entries["attack"]
            kinds = sorted(c for c in ad.iterdir() if not c.name.startswith(".") and c.name.lower() not in IGNORED)
            if not kinds:
                b.problem("empty_class", f"{ad} holds no <species>/ folders", ad)
            for kd in kinds:
                if not kd.is_dir() or kd.name not in SPECIES or kd.name == "none":
                    b.problem("unexpected_entry", f"{kd}: attack files go in attack/<species>/ with species one of "
                                                  f"{[s for s in SPECIES if s != 'none']}", kd)
                    continue
                if escapes(kd):
                    continue
                files = _media(kd, root_p)
                if not files:
                    b.problem("empty_class", f"{kd} holds no images or videos", kd)
                for f in files:
                    b.add(f, subject=sd.name, label="attack", species=kd.name, split=sp, attack_type=kd.name)
    return b.build(on_problem, subject_disjoint=True, expected_splits=[])
