"""MSU Mobile Face Spoofing Database (MSU-MFSD; Wen, Han, Jain, IEEE TIFS 2015): 35 subjects, each filmed by
a MacBook Air webcam (``laptop``, ``.mov``) and a Google Nexus 5 (``android``, ``.mp4``): 2 real and 6
attack videos per subject.

Names (in ``real/`` and ``attack/``, possibly under ``scene01/``; a flat folder is accepted too)::

    real_client005_android_SD_scene01.mp4
    attack_client005_laptop_SD_<ipad_video|iphone_video|printed_photo>_scene01.mov

Species: ``printed_photo`` -> print_photo; ``ipad_video``, ``iphone_video`` (HD / mobile video replays)
-> video_replay. Protocols: ``official`` - the database's ``train_sub_list.txt`` (15 subjects) and
``test_sub_list.txt`` (20); ``fold1`` .. ``fold5`` - ``clients_fold<N>.txt`` (``NN train|devel|test``, from
the bob.db.msu_mfsd_mod package). When ``msu_mfsd_mod_realvids.txt`` / ``msu_mfsd_mod_attackvids.txt`` are in
the root (``file_lists: true``), every video they name must be present.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from harness.data.common import LayoutError, ManifestBuilder, find_file, read_text_lines, require_root
from harness.data.registry import register_dataset
from harness.data.video import is_video

HOW_TO_OBTAIN = (
    "MSU-MFSD: request it from the MSU Biometrics group (Wen, Han, Jain, IEEE TIFS 2015; "
    "http://biometrics.cse.msu.edu) by signing its release agreement (research use only); expected layout: "
    "<root>/real/real_clientNNN_<android|laptop>_SD_scene01.<mp4|mov>, <root>/attack/attack_clientNNN_..., and the "
    "subject lists train_sub_list.txt, test_sub_list.txt. Two sample videos live at "
    "$HARNESS_SHARED/datasets/msu_mfsd_sample. See datasets/README.md."
)

NAME = re.compile(r"^(real|attack)_client(\d+)_(android|laptop)_(SD|HD)_(?:(ipad_video|iphone_video|printed_photo)_)?scene(\d+)$")
SPECIES = {"printed_photo": "print_photo", "ipad_video": "video_replay", "iphone_video": "video_replay"}
FOLD_SPLITS = {"train": "train", "devel": "dev", "dev": "dev", "test": "test"}

#: capture conditions as the database paper describes them (shown on the report's first page)
CAPTURE = ("laptop webcam and Android phone videos; attacks are printed photos and videos replayed on an iPad or "
           "iPhone (Wen et al., IEEE TIFS 2015)")


def _subject_lists(root: Path, protocol: str, b: ManifestBuilder) -> dict[int, str]:
    """``{client number: split}`` from the protocol's list files; a client in two lists is a subject leak."""
    assigned: dict[int, list[tuple[str, Path]]] = {}
    if protocol == "official":
        sources = []
        for split in ("train", "test"):
            f = find_file(root, [f"{split}_sub_list.txt"], depth=2)
            if f is None:
                raise LayoutError(f"MSU-MFSD: subject list {split}_sub_list.txt not found under {root} "
                                  f"(looked for {root / f'{split}_sub_list.txt'}). {HOW_TO_OBTAIN}")
            sources.append((f, split))
        for f, split in sources:
            for ln in read_text_lines(f):
                if not ln.isdigit():
                    b.problem("unparsed_name", f"{f}: line {ln!r} is not a subject number", f)
                    continue
                assigned.setdefault(int(ln), []).append((split, f))
    else:
        m = re.fullmatch(r"fold([1-5])", protocol)
        if not m:
            raise ValueError(f"dataset.protocol for msu_mfsd must be 'official' or fold1..fold5, got {protocol!r}")
        f = find_file(root, [f"clients_fold{m.group(1)}.txt"], depth=2)
        if f is None:
            raise LayoutError(f"MSU-MFSD: fold file clients_fold{m.group(1)}.txt not found under {root}. {HOW_TO_OBTAIN}")
        for ln in read_text_lines(f):
            parts = ln.split()
            if len(parts) != 2 or not parts[0].isdigit() or parts[1] not in FOLD_SPLITS:
                b.problem("unparsed_name", f"{f}: line {ln!r} is not '<subject> <train|devel|test>'", f)
                continue
            assigned.setdefault(int(parts[0]), []).append((FOLD_SPLITS[parts[1]], f))
    out = {}
    for subj, lst in assigned.items():
        splits = sorted({s for s, _ in lst})
        if len(splits) > 1:
            b.problem("subject_leak", f"subject {subj:02d} is listed in " + " and ".join(
                f"{s} ({f})" for s, f in lst), *[f for _, f in lst])
        out[subj] = lst[0][0]
    return out


@register_dataset("msu_mfsd")
def load_msu_mfsd(root: str, protocol: str = "official", file_lists: bool = True, frames=None,
                  on_problem: str = "error", allow_outside_root: bool = False, **_) -> pd.DataFrame:
    """MSU-MFSD manifest (see module docstring)."""
    root_p = require_root(root, "MSU-MFSD", HOW_TO_OBTAIN)
    b = ManifestBuilder("MSU-MFSD", root_p, HOW_TO_OBTAIN, frames, allow_outside_root=allow_outside_root)
    split_of = _subject_lists(root_p, protocol, b)
    videos = sorted(f for f in root_p.rglob("*") if f.is_file() and is_video(f) and len(f.relative_to(root_p).parts) <= 4)
    found: dict[str, Path] = {}
    for f in videos:
        m = NAME.match(f.stem)
        if not m:
            b.problem("unparsed_name", f"{f}: not an MSU-MFSD name "
                                       "((real|attack)_clientNNN_<android|laptop>_SD_[<pai>_]sceneNN)", f)
            continue
        kind, client, device, quality, pai, scene = m.groups()
        if (kind == "real") != (pai is None):
            b.problem("unparsed_name", f"{f}: {'a real video names an attack' if pai else 'an attack video names no attack'}", f)
            continue
        folder = f.parent.name.lower()
        if folder in ("real", "attack") and folder != kind:
            b.problem("protocol_mismatch", f"{f}: a {kind} video in the {folder}/ folder", f)
        found[f.name] = f
        n = int(client)
        split = split_of.get(n)
        if split is None:
            b.problem("protocol_mismatch", f"{f}: subject {n:02d} is in no subject list of protocol {protocol}", f)
            split = "unassigned"
        b.add(f, subject=f"msu_{n:03d}", label="bona_fide" if kind == "real" else "attack",
              species="none" if kind == "real" else SPECIES[pai], split=split, device=device, session="",
              lighting="", scenario=f"scene{scene}", attack_type=pai or "", quality=quality)
    if file_lists:
        for name in ("msu_mfsd_mod_realvids.txt", "msu_mfsd_mod_attackvids.txt"):
            lst = find_file(root_p, [name], depth=2)
            if lst is None:
                continue
            for ln in read_text_lines(lst):
                rel = ln.replace("\\", "/").lstrip("./")
                if Path(rel).name not in found:
                    b.problem("missing_file", f"{root_p / rel} (listed in {lst.name}) not found", root_p / rel)
    splits = sorted(set(split_of.values()))
    return b.build(on_problem, subject_disjoint=True, expected_splits=splits)
