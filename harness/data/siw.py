"""Spoof in the Wild (SiW; Liu, Jourabloo, Liu, CVPR 2018): 165 subjects, ``Train/`` (90) and ``Test/`` (75).

Layout: ``<Train|Test>/<live|spoof>/<subject>/<subject>-<sensor>-<type>-<medium>-<session>.mov`` (``.mp4``
accepted). ``type``: 1 live, 2 print, 3 replay; ``medium``: the print quality (print) or the replay device
(replay: 1-4) or the live variant; ``sensor``: the capture camera (1, 2); ``session``: the recording session.
Species: print -> print_photo, replay -> video_replay.

Protocols (Liu et al. 2018):

* ``1``: all of Train (only its first ``protocol1_train_frames`` = 60 frames per video) vs all of Test;
* ``2`` (``fold`` 1-4): cross replay medium - train on live + replay with medium != fold, test on live +
  replay with medium == fold;
* ``3`` (``fold`` 1-2): cross attack type - fold 1 trains on live + print and tests on live + replay,
  fold 2 the other way round.
"""

from __future__ import annotations

import re

import pandas as pd

from harness.data.common import LayoutError, ManifestBuilder, find_dir, require_root
from harness.data.registry import register_dataset
from harness.data.video import is_video

HOW_TO_OBTAIN = (
    "SiW (Spoof in the Wild): request it from the MSU Computer Vision Lab "
    "(http://cvlab.cse.msu.edu/siw-spoof-in-the-wild-database.html) by signing its release agreement (research "
    "use only); expected layout: <root>/{Train,Test}/{live,spoof}/<subject>/<subject>-<sensor>-<type>-<medium>-"
    "<session>.mov. See datasets/README.md."
)

NAME = re.compile(r"^(\d{3})-(\d)-([123])-(\d)-(\d)$")
TYPES = {"1": ("bona_fide", "none", "live"), "2": ("attack", "print_photo", "print"), "3": ("attack", "video_replay", "replay")}


def _keep(protocol: str, fold: int | None, split: str, typ: str, medium: str) -> bool:
    if protocol == "1" or typ == "1":
        return True
    if protocol == "2":
        return typ == "3" and ((medium != str(fold)) if split == "train" else (medium == str(fold)))
    # protocol 3
    train_type, test_type = ("2", "3") if int(fold) == 1 else ("3", "2")
    return typ == (train_type if split == "train" else test_type)


@register_dataset("siw")
def load_siw(root: str, protocol: int | str = 1, fold: int | None = None, protocol1_train_frames: int = 60,
             frames=None, on_problem: str = "error", allow_outside_root: bool = False, **_) -> pd.DataFrame:
    """SiW manifest for ``protocol`` 1, 2 (``fold`` 1-4) or 3 (``fold`` 1-2)."""
    root_p = require_root(root, "SiW", HOW_TO_OBTAIN)
    p = str(protocol)
    if p not in ("1", "2", "3"):
        raise ValueError(f"dataset.protocol for siw must be 1, 2 or 3, got {protocol!r}")
    folds = {"2": range(1, 5), "3": range(1, 3)}
    if p in folds and (fold is None or int(fold) not in folds[p]):
        raise ValueError(f"SiW protocol {p} needs dataset.fold in {list(folds[p])} (got {fold!r})")
    b = ManifestBuilder("SiW", root_p, HOW_TO_OBTAIN, frames, allow_outside_root=allow_outside_root)
    for folder, split in (("Train", "train"), ("Test", "test")):
        sd = find_dir(root_p, [folder], depth=2)
        if sd is None or not ((sd / "live").is_dir() or (sd / "spoof").is_dir()):
            raise LayoutError(f"SiW: folder {folder}/ with live/ and spoof/ not found under {root_p} "
                              f"(looked for {root_p / folder / 'live'}). {HOW_TO_OBTAIN}")
        sampling = b.frames.with_max_frames(int(protocol1_train_frames)) if (p == "1" and split == "train") else None
        for kind in ("live", "spoof"):
            kd = sd / kind
            if not kd.is_dir():
                b.problem("empty_class", f"folder {kd} not found", kd)
                continue
            for subj_dir in sorted(kd.iterdir()):
                if not subj_dir.is_dir():
                    b.problem("unexpected_entry", f"{subj_dir} is not a subject folder", subj_dir)
                    continue
                vids = sorted(f for f in subj_dir.iterdir() if f.is_file() and is_video(f))
                if not vids:
                    b.problem("empty_class", f"subject folder {subj_dir} holds no videos", subj_dir)
                for f in vids:
                    m = NAME.match(f.stem.split("_")[0])
                    if not m:
                        b.problem("unparsed_name", f"{f}: not a SiW name (<subject>-<sensor>-<type>-<medium>-<session>)", f)
                        continue
                    subj, sensor, typ, medium, session = m.groups()
                    label, species, tname = TYPES[typ]
                    if (kind == "live") != (typ == "1"):
                        b.problem("protocol_mismatch", f"{f}: type {typ} ({tname}) in the {kind}/ folder", f)
                        continue
                    if subj != subj_dir.name:
                        b.problem("protocol_mismatch", f"{f}: subject {subj} in the folder of subject {subj_dir.name}", f)
                    if not _keep(p, fold, split, typ, medium):
                        continue
                    b.add(f, subject=f"siw_{subj}", label=label, species=species, split=split, device=f"sensor{sensor}",
                          session=session, attack_type="" if typ == "1" else f"{tname}{medium}", medium=medium,
                          sampling=sampling)
    return b.build(on_problem, subject_disjoint=True, expected_splits=["train", "test"])
