"""CelebA-Spoof (Zhang et al., ECCV 2020): 625,537 images of 10,177 subjects; ``Data/<train|test>/<subject>/
<live|spoof>/<image>`` with the JSON labels ``metas/<protocol>/<split>_label.json`` mapping each image path
(relative to the root, e.g. ``Data/train/4980/spoof/494405.png``) to 44 integers: 0-39 the CelebA face
attributes, 40 the spoof type, 41 the illumination, 42 the environment, 43 live (0) / spoof (1).

Spoof type -> species: 1 Photo, 2 Poster, 3 A4 -> print_photo; 4 Face Mask, 5 Upper Body Mask -> paper_mask;
6 Region Mask -> cutout; 7 PC, 8 Pad, 9 Phone -> screen_replay; 10 3D Mask -> 3d_mask (0 = live). Illumination
1 normal, 2 strong, 3 back, 4 dark; environment 1 indoor, 2 outdoor (0 for live images). ``protocol``: the folder
under ``metas/`` (default ``intra_test``); every ``*_label.json`` in it is one split.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from harness.data.common import LayoutError, ManifestBuilder, require_root
from harness.data.registry import register_dataset

HOW_TO_OBTAIN = (
    "CelebA-Spoof: download it from the authors (https://github.com/ZhangYuanhan-AI/CelebA-Spoof) after accepting "
    "its agreement (non-commercial research only, no redistribution); expected layout: <root>/Data/{train,test}/"
    "<subject>/{live,spoof}/*.jpg|png and <root>/metas/intra_test/{train,test}_label.json. See datasets/README.md."
)

SPOOF_TYPES = {0: ("live", "none"), 1: ("photo", "print_photo"), 2: ("poster", "print_photo"), 3: ("a4", "print_photo"),
               4: ("face_mask", "paper_mask"), 5: ("upper_body_mask", "paper_mask"), 6: ("region_mask", "cutout"),
               7: ("pc", "screen_replay"), 8: ("pad", "screen_replay"), 9: ("phone", "screen_replay"),
               10: ("3d_mask", "3d_mask")}
ILLUMINATION = {0: "", 1: "normal", 2: "strong", 3: "back", 4: "dark"}
ENVIRONMENT = {0: "", 1: "indoor", 2: "outdoor"}


@register_dataset("celeba_spoof")
def load_celeba_spoof(root: str, protocol: str = "intra_test", frames=None, on_problem: str = "error",
                      allow_outside_root: bool = False, **_) -> pd.DataFrame:
    """CelebA-Spoof manifest from its JSON labels (see module docstring)."""
    root_p = require_root(root, "CelebA-Spoof", HOW_TO_OBTAIN)
    metas = root_p / "metas" / protocol
    if not metas.is_dir():
        raise LayoutError(f"CelebA-Spoof: label folder {metas} not found (dataset.protocol = a folder under metas/, "
                          f"e.g. intra_test). {HOW_TO_OBTAIN}")
    label_files = sorted(metas.glob("*_label.json"))
    if not label_files:
        raise LayoutError(f"CelebA-Spoof: no *_label.json in {metas}. {HOW_TO_OBTAIN}")
    b = ManifestBuilder("CelebA-Spoof", root_p, HOW_TO_OBTAIN, frames, allow_outside_root=allow_outside_root)
    splits = []
    for lf in label_files:
        split = lf.name[: -len("_label.json")]
        splits.append(split)
        try:
            labels = json.loads(lf.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise LayoutError(f"CelebA-Spoof: {lf} is not readable JSON ({e}). {HOW_TO_OBTAIN}") from e
        if not isinstance(labels, dict):
            raise LayoutError(f"CelebA-Spoof: {lf} is not a JSON object of path -> labels. {HOW_TO_OBTAIN}")
        for rel, lab in labels.items():
            parts = Path(rel).parts
            ok = (isinstance(lab, list) and len(lab) >= 44 and len(parts) >= 5 and parts[-2] in ("live", "spoof"))
            if not ok:
                b.problem("unparsed_name", f"{lf}: entry {rel!r} is not 'Data/<split>/<subject>/<live|spoof>/<image>' "
                                           "with 44 labels", lf)
                continue
            stype, illum, env, is_spoof = (int(x) for x in lab[40:44])
            if stype not in SPOOF_TYPES:
                b.problem("protocol_mismatch", f"{lf}: {rel} has unknown spoof type {stype}", lf)
                continue
            name, species = SPOOF_TYPES[stype]
            folder = parts[-2]
            if (stype == 0) != (is_spoof == 0) or (folder == "live") != (is_spoof == 0):
                b.problem("protocol_mismatch", f"{lf}: {rel} has spoof type {stype}, live/spoof label {is_spoof}, "
                                               f"folder {folder}/: they disagree", root_p / rel)
                continue
            b.add(root_p / rel, subject=f"celeba_{parts[-3]}", label="bona_fide" if stype == 0 else "attack",
                  species=species, split=split, lighting=ILLUMINATION.get(illum, str(illum)),
                  scenario=ENVIRONMENT.get(env, str(env)), attack_type="" if stype == 0 else name, spoof_type=stype)
    return b.build(on_problem, subject_disjoint=True, expected_splits=splits)
