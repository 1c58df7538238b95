"""Replay-Mobile (Idiap and Gradiant; Costa-Pazo et al., BIOSIG 2016): 40 clients filmed with an iPad Mini 2
(``tablet``) and an LG G4 (``mobile``) under five lighting conditions; subject-disjoint ``train``,
``devel`` (called ``dev`` in the manifest) and ``test``.

Layout (``.mov``)::

    <split>/real/client001_session01_authenticate_<mobile|tablet>_<light>.mov
    <split>/attack/attack_client001_session01_<print|mattescreen>_<fixed|hand>_<mobile|tablet>_<photo|video>_<light>.mov
    enroll/<split>/client001_session01_enroll_<mobile|tablet>_<light>.mov

(attack files are also found in sub-folders of ``attack/``). Species: print -> print_photo, a photo on the
matte screen -> screen_replay, a video on it -> video_replay. Enrolment videos carry ``purpose=enroll``.
``protocol``: ``grandtest`` (all), ``print``, ``mattescreen``; ``capture_device``: ``all`` | ``mobile`` |
``tablet`` (the device that filmed the access).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from harness.data.common import LayoutError, ManifestBuilder, find_dir, require_root
from harness.data.registry import register_dataset
from harness.data.video import is_video

HOW_TO_OBTAIN = (
    "Replay-Mobile: request it from the Idiap Research Institute (https://www.idiap.ch/dataset/replay-mobile) by "
    "signing its EULA (research use only); expected layout: <root>/{train,devel,test}/real/*.mov, "
    "<root>/{train,devel,test}/attack/*.mov and <root>/enroll/{train,devel,test}/*.mov. See datasets/README.md."
)

SPLITS = {"train": "train", "devel": "dev", "test": "test"}
REAL = re.compile(r"^client(\d+)_session(\d+)_(authenticate|enroll)_(mobile|tablet)_([a-z]+)$")
ATTACK = re.compile(r"^attack_client(\d+)_session(\d+)_(print|mattescreen)_(fixed|hand)_(mobile|tablet)_(photo|video)_([a-z]+)$")
PROTOCOLS = ("grandtest", "print", "mattescreen")


def species_of(pai: str, typ: str) -> str:
    if pai == "print":
        return "print_photo"
    return "screen_replay" if typ == "photo" else "video_replay"


def _split_dir(root: Path, name: str) -> Path | None:
    for d in [root / name, *sorted(root.glob(f"*/{name}"))]:
        if d.is_dir() and "enroll" not in [p.lower() for p in d.relative_to(root).parts[:-1]] and (
                (d / "real").is_dir() or (d / "attack").is_dir()):
            return d
    return None


@register_dataset("replay_mobile")
def load_replay_mobile(root: str, protocol: str = "grandtest", capture_device: str = "all", enrol: bool = True,
                       frames=None, on_problem: str = "error", allow_outside_root: bool = False, **_) -> pd.DataFrame:
    """Replay-Mobile manifest (see module docstring)."""
    root_p = require_root(root, "Replay-Mobile", HOW_TO_OBTAIN)
    if protocol not in PROTOCOLS:
        raise ValueError(f"dataset.protocol for replay_mobile must be one of {PROTOCOLS}, got {protocol!r}")
    if capture_device not in ("all", "mobile", "tablet"):
        raise ValueError(f"dataset.capture_device must be 'all', 'mobile' or 'tablet', got {capture_device!r}")
    b = ManifestBuilder("Replay-Mobile", root_p, HOW_TO_OBTAIN, frames, allow_outside_root=allow_outside_root)
    dev_ok = (lambda d: True) if capture_device == "all" else (lambda d: d == capture_device)
    for folder, split in SPLITS.items():
        sd = _split_dir(root_p, folder)
        if sd is None:
            raise LayoutError(f"Replay-Mobile: split folder {folder}/ with real/ and attack/ not found under {root_p} "
                              f"(looked for {root_p / folder / 'real'}). {HOW_TO_OBTAIN}")
        for sub, label in (("real", "bona_fide"), ("attack", "attack")):
            d = sd / sub
            files = sorted(f for f in d.rglob("*") if f.is_file() and is_video(f)) if d.is_dir() else []
            if not files:
                b.problem("empty_class", f"no videos in {d}", d)
            for f in files:
                if label == "bona_fide":
                    m = REAL.match(f.stem)
                    if not m or m.group(3) != "authenticate":
                        b.problem("unparsed_name", f"{f}: not a Replay-Mobile real-access name "
                                                   "(clientNNN_sessionNN_authenticate_<device>_<light>)", f)
                        continue
                    client, session, _, device, light = m.groups()
                    if dev_ok(device):
                        b.add(f, subject=f"replaymobile_{int(client):03d}", label=label, species="none", split=split,
                              device=device, session=session, lighting=light, purpose="authenticate", support="",
                              pai="")
                else:
                    m = ATTACK.match(f.stem)
                    if not m:
                        b.problem("unparsed_name", f"{f}: not a Replay-Mobile attack name (attack_clientNNN_sessionNN_"
                                                   "<print|mattescreen>_<fixed|hand>_<device>_<photo|video>_<light>)", f)
                        continue
                    client, session, pai, sup, device, typ, light = m.groups()
                    if (protocol == "grandtest" or protocol == pai) and dev_ok(device):
                        b.add(f, subject=f"replaymobile_{int(client):03d}", label=label, species=species_of(pai, typ),
                              split=split, device=device, session=session, lighting=light, attack_type=f"{pai}_{typ}",
                              purpose="attack", support=sup, pai=pai)
    enroll_root = find_dir(root_p, ["enroll"], depth=2)
    if enroll_root is None:
        b.problem("missing_file", f"enrolment folder enroll/ not found under {root_p}", root_p / "enroll")
    elif enrol:
        for folder, split in SPLITS.items():
            ed = enroll_root / folder
            files = sorted(f for f in ed.iterdir() if f.is_file() and is_video(f)) if ed.is_dir() else []
            if not files:
                b.problem("empty_class", f"no enrolment videos in {ed}", ed)
            for f in files:
                m = REAL.match(f.stem)
                if not m or m.group(3) != "enroll":
                    b.problem("unparsed_name", f"{f}: not a Replay-Mobile enrolment name "
                                               "(clientNNN_sessionNN_enroll_<device>_<light>)", f)
                    continue
                client, session, _, device, light = m.groups()
                if dev_ok(device):
                    b.add(f, subject=f"replaymobile_{int(client):03d}", label="bona_fide", species="none", split=split,
                          device=device, session=session, lighting=light, purpose="enroll", support="", pai="")
    return b.build(on_problem, subject_disjoint=True, expected_splits=list(SPLITS.values()))
