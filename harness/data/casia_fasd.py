"""CASIA-FASD (Zhang et al., "A face antispoofing database with diverse attacks", ICB 2012): 50 subjects,
12 videos each; release layout ``train_release/<1..20>/`` and ``test_release/<1..30>/`` (the two releases
number their own subjects from 1: test subject 1 is not train subject 1).

Clip names -> class, attack and quality (bob.db.casia_fasd, Idiap's reference interface):

====================  ===================================  =====================
clip                  class / attack (species)             quality (capture)
====================  ===================================  =====================
``1``, ``2``          bona fide                            1 normal, 2 low
``HR_1``              bona fide                            high
``3``, ``4``          warped printed photo (print_photo)   3 normal, 4 low
``HR_2``              warped printed photo                 high
``5``, ``6``          cut printed photo, eyes cut out      5 normal, 6 low
                      (cutout)
``HR_3``              cut printed photo                    high
``7``, ``8``          video replay on a tablet             7 normal, 8 low
                      (video_replay)
``HR_4``              video replay                         high
====================  ===================================  =====================

The quality order of clips 1/2 (3/4, ...) follows bob.db.casia_fasd (``1,3,5,7`` normal, ``2,4,6,8`` low);
some third-party descriptions give the opposite order. Capture devices: low = a long-used USB camera,
normal = a new USB camera, high = Sony NEX-5.

Protocols: ``official`` (train = train_release, test = test_release) and ``grandtest``, read from the public
list of bob.db.casia_fasd 2.0.9 (``newfolds/real.txt``, BSD; shipped as ``protocol_lists/casia_fasd/``): its
spoofing interface's default ``fold_no=1`` is dev (train_release subjects 10, 14, 16, 20), the other folds train;
test_release test.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import pandas as pd

from harness.data.common import LayoutError, ManifestBuilder, find_dir, require_root
from harness.data.registry import register_dataset
from harness.data.video import is_video

#: bob.db.casia_fasd 2.0.9's newfolds/real.txt: ``train_release/<subject>/<clip>\t<fold 1..5>`` (SOURCE.md beside it)
FOLDS_FILE = Path(__file__).with_name("protocol_lists") / "casia_fasd" / "newfolds_real.txt"
GRANDTEST_DEV_FOLD = 1


@lru_cache(maxsize=1)
def grandtest_dev_subjects() -> frozenset[int]:
    """train_release subjects in the grandtest dev set: fold :data:`GRANDTEST_DEV_FOLD` of the public list."""
    dev = set()
    for line in FOLDS_FILE.read_text().splitlines():
        if line.strip():
            rel, fold = line.split("\t")
            if int(fold) == GRANDTEST_DEV_FOLD:
                dev.add(int(rel.split("/")[1]))
    return frozenset(dev)


HOW_TO_OBTAIN = (
    "CASIA-FASD: request it from the Center for Biometrics and Security Research (CBSR), Institute of Automation, "
    "Chinese Academy of Sciences, by signing its release agreement (non-commercial research use); expected layout: "
    "<root>/train_release/<1..20>/{1,2,HR_1,3,...,8,HR_4}.avi and <root>/test_release/<1..30>/... "
    "See datasets/README.md."
)

#: clip -> (label, species, attack_type, quality)
CLIPS = {
    "1": ("bona_fide", "none", "", "normal"),
    "2": ("bona_fide", "none", "", "low"),
    "HR_1": ("bona_fide", "none", "", "high"),
    "3": ("attack", "print_photo", "warped_photo", "normal"),
    "4": ("attack", "print_photo", "warped_photo", "low"),
    "HR_2": ("attack", "print_photo", "warped_photo", "high"),
    "5": ("attack", "cutout", "cut_photo", "normal"),
    "6": ("attack", "cutout", "cut_photo", "low"),
    "HR_3": ("attack", "cutout", "cut_photo", "high"),
    "7": ("attack", "video_replay", "video_replay", "normal"),
    "8": ("attack", "video_replay", "video_replay", "low"),
    "HR_4": ("attack", "video_replay", "video_replay", "high"),
}
DEVICE = {"low": "old_usb_camera", "normal": "new_usb_camera", "high": "sony_nex5"}
_SUBJECT = re.compile(r"^\d+$")

#: capture conditions as the database paper describes them (shown on the report's first page)
CAPTURE = ("videos from a low-quality USB camera, a normal-quality camera and a high-quality Sony NEX-5; attacks are"
           " warped printed photos, cut photos (eye holes) and video replays (Zhang et al., ICB 2012)")


@register_dataset("casia_fasd")
def load_casia_fasd(root: str, protocol: str = "official", frames=None, on_problem: str = "error",
                    allow_outside_root: bool = False, **_) -> pd.DataFrame:
    """CASIA-FASD manifest (one row per sampled frame). ``protocol``: ``official`` | ``grandtest``."""
    root_p = require_root(root, "CASIA-FASD", HOW_TO_OBTAIN)
    if protocol not in ("official", "grandtest"):
        raise ValueError(f"dataset.protocol for casia_fasd must be 'official' or 'grandtest', got {protocol!r}")
    b = ManifestBuilder("CASIA-FASD", root_p, HOW_TO_OBTAIN, frames, allow_outside_root=allow_outside_root)
    releases = {}
    for rel in ("train_release", "test_release"):
        d = find_dir(root_p, [rel], depth=2)
        if d is None:
            raise LayoutError(f"CASIA-FASD: folder {rel}/ not found under {root_p} (looked for {root_p / rel}). "
                              f"{HOW_TO_OBTAIN}")
        releases[rel] = d
    for rel, d in releases.items():
        release = rel.split("_")[0]
        subjects = sorted((c for c in d.iterdir() if c.is_dir()), key=lambda c: (not c.name.isdigit(), c.name.zfill(4)))
        for extra in sorted(c for c in d.iterdir() if not c.is_dir()):
            b.problem("unexpected_entry", f"{extra} is not a subject folder", extra)
        for sd in subjects:
            if not _SUBJECT.match(sd.name):
                b.problem("unexpected_entry", f"{sd} is not a numbered subject folder", sd)
                continue
            n = int(sd.name)
            if protocol == "official":
                split = release
            else:
                split = "test" if release == "test" else ("dev" if n in grandtest_dev_subjects() else "train")
            found = {}
            for f in sorted(sd.iterdir()):
                if not f.is_file():
                    continue
                clip = f.stem.upper() if f.stem.upper().startswith("HR_") else f.stem
                if clip not in CLIPS or not is_video(f):
                    if is_video(f):
                        b.problem("unparsed_name", f"{f}: clip name {f.stem!r} is not one of {list(CLIPS)}", f)
                    continue
                found[clip] = f
            if not found:
                b.problem("empty_class", f"subject folder {sd} holds no clip videos", sd)
                continue
            for clip in CLIPS:
                if clip not in found:
                    b.problem("missing_file", f"{sd / (clip + '.avi')} (clip {clip} of {rel} subject {n})",
                              sd / f"{clip}.avi")
            for clip, f in found.items():
                label, species, attack_type, quality = CLIPS[clip]
                b.add(f, subject=f"casia_{release}_{n:02d}", label=label, species=species, split=split,
                      device=DEVICE[quality], attack_type=attack_type, quality=quality, clip=clip, release=release)
    splits = ["train", "test"] if protocol == "official" else ["train", "dev", "test"]
    return b.build(on_problem, subject_disjoint=True, expected_splits=splits)
