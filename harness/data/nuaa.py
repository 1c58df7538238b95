"""NUAA Photograph Imposter Database (Tan et al., ECCV 2010): raw webcam frames, bona fide (ClientRaw) and
printed-photo attacks (ImposterRaw) of the same subjects; official protocol train = sessions 01-02, test = 03.

Reads ``labels.csv`` (or another list such as ``ci_smoke.csv``) when present, else the database's own
``*_train_raw.txt`` / ``*_test_raw.txt`` lists. File names: ``ID_glasses_pos_session_picNo.jpg``.

Every sample path (a CSV row or a list line) must resolve inside ``root``, symlinks followed; one that escapes it is
an ``outside_root`` problem and its row is kept as a rejected sample, unread (``on_problem``: ``error`` stops,
``warn`` keeps going; ``allow_outside_root: true`` admits such paths). Duplicate entries are set aside the same way
(``harness.data.common``); a listed file that is absent is rejected as ``missing`` when the run reads it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from harness.data.common import (Problem, config_flag, inside_root, require_usable, set_aside_duplicates,
                                 settle_problems)
from harness.data.csv_manifest import read_csv_manifest
from harness.data.registry import register_dataset
from harness.data.sample import validate_manifest
from harness.paths import DataMissingError

HOW_TO_OBTAIN = (
    "NUAA Photograph Imposter Database: request it from its authors (Tan, Li, Liu, Jiang, ECCV 2010; "
    "research use); expected layout: <root>/ClientRaw/<id>/*.jpg, <root>/ImposterRaw/<id>/*.jpg and the "
    "official lists client_{train,test}_raw.txt, imposter_{train,test}_raw.txt (or a labels.csv). "
    "The test copy lives at $HARNESS_SHARED/datasets/nuaa. See datasets/README.md."
)

#: capture conditions as the database paper describes them (shown on the report's first page)
CAPTURE = ("frames from a generic webcam in three sessions about two weeks apart, in different places and lighting; "
           "attacks are printed photographs (photographic and A4 paper) of the same people, held, moved or bent in "
           "front of the webcam (Tan et al., ECCV 2010)")


def _from_official_lists(root: Path, allow_outside_root: bool = False, on_problem: str = "error") -> pd.DataFrame:
    rows, problems = [], []
    for cls, label, species in (("client", "bona_fide", "none"), ("imposter", "attack", "print_photo")):
        for split in ("train", "test"):
            lst = next((p for p in (root / f"{cls}_{split}_raw.txt", root / "original_lists" / f"{cls}_{split}_raw.txt") if p.is_file()), None)
            if lst is None:
                raise DataMissingError(f"NUAA list {cls}_{split}_raw.txt not found under {root}. {HOW_TO_OBTAIN}")
            folder = root / ("ClientRaw" if cls == "client" else "ImposterRaw")
            if not folder.is_dir():
                folder = root / "images" / folder.name
            for line in lst.read_text(errors="replace").splitlines():
                rel = line.strip().replace("\\", "/")
                if not rel:
                    continue
                if not allow_outside_root and not inside_root(folder / rel, root):
                    problems.append(Problem("outside_root", f"{lst.name}: {rel!r} resolves outside the dataset root "
                                                            f"{root}; set aside, not read (dataset.allow_outside_root="
                                                            f"true admits it)", (rel,)))
                    n = sum(p.kind == "outside_root" for p in problems)
                    rows.append(dict(sample_id=f"{lst.name}:outside_root:{n}", path="", frame=-1,
                                     subject=f"nuaa_{rel.split('/')[0]}", label=label, species=species, split=split,
                                     glasses="unknown", pos_code="", session="", frame_no=-1,
                                     reject_code="outside_root",
                                     reject_reason=f"{lst.name}: an entry resolves outside the dataset root; not read"))
                    continue
                codes = Path(rel).stem.split("_")
                meta = dict(glasses="unknown", pos_code="", session="", frame_no=-1)
                if len(codes) == 5 and all(c.isdigit() for c in codes):  # ID_glasses_pos_session_picNo
                    _, glasses, pos, session, pic = codes
                    meta = dict(glasses="with_glasses" if glasses == "00" else "no_glasses", pos_code=pos,
                                session=session, frame_no=int(pic))
                rows.append(dict(  # a listed file that is absent is rejected (missing) when scored: the shared
                    sample_id=f"{folder.name}/{rel}", path=str(folder / rel), frame=-1,  # copy is a subset
                    subject=f"nuaa_{rel.split('/')[0]}", label=label, species=species, split=split, **meta,
                    reject_code="", reject_reason="",
                ))
    df = set_aside_duplicates(pd.DataFrame(rows), problems)
    require_usable(df, problems, f"NUAA at {root}")
    return settle_problems(validate_manifest(df, source=str(root)), problems, on_problem, f"NUAA at {root}")


@register_dataset("nuaa")
def load_nuaa(root: str, list: str | None = "labels.csv", allow_outside_root: bool = False,  # noqa: A002 - config key
              on_problem: str = "error", **_) -> pd.DataFrame:
    """NUAA manifest from ``root``. ``list``: a labels CSV inside root (None = use the official lists).
    ``allow_outside_root``: admit sample paths outside ``root``; ``on_problem``: ``error`` | ``warn``."""
    allow_outside_root = config_flag(allow_outside_root, "dataset.allow_outside_root")
    root_p = Path(root)
    if not root_p.is_dir():
        raise DataMissingError(f"NUAA dataset not found at {root_p}. {HOW_TO_OBTAIN}")
    if list:
        csv = root_p / list
        if csv.is_file():
            df = read_csv_manifest(csv, how_to_obtain=HOW_TO_OBTAIN, root=root_p, allow_outside_root=allow_outside_root,
                                   on_problem=on_problem)
            good = df["reject_code"] == ""  # rows set aside keep their own names (no path to derive one from)
            df.loc[good, "sample_id"] = [Path(os.path.relpath(p, root_p.resolve())).as_posix()
                                         for p in df.loc[good, "path"]]
            return df
        if list != "labels.csv":
            raise DataMissingError(f"NUAA list {csv} not found. {HOW_TO_OBTAIN}")
    return _from_official_lists(root_p, allow_outside_root, on_problem)
