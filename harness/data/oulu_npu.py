"""OULU-NPU (Boulkenafet et al., FG 2017): 55 subjects, 6 phones, 3 sessions; 4950 videos named
``<phone>_<session>_<user>_<file>.avi`` in ``Train_files/`` (users 1-20), ``Dev_files/`` (21-35) and
``Test_files/`` (36-55), and the protocol lists ``Protocols/Protocol_<1..4>/{Train,Dev,Test}[_<fold>].txt``
(Protocols 3 and 4: leave-one-phone-out, folds 1-6), one ``<label>,<name>`` per line: ``+1`` real, ``-1``
print, ``-2`` video replay.

File code: 1 = real, 2 / 3 = print 1 / print 2 (two printers), 4 / 5 = replay 1 / replay 2 (two displays);
a protocol label that contradicts the file code is reported. Phones: 1 Samsung Galaxy S6 edge, 2 HTC Desire
EYE, 3 MEIZU X5, 4 ASUS Zenfone Selfie, 5 Sony XPERIA C5 Ultra Dual, 6 OPPO N3. Sessions (lighting and
background): 1 open-plan office, 2 meeting room, 3 small office.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from harness.data.common import LayoutError, ManifestBuilder, find_dir, read_text_lines, require_root
from harness.data.registry import register_dataset

HOW_TO_OBTAIN = (
    "OULU-NPU: request it from the University of Oulu (https://sites.google.com/site/oulunpudatabase/) by signing "
    "its license agreement (non-commercial research use); expected layout: <root>/{Train,Dev,Test}_files/"
    "<phone>_<session>_<user>_<file>.avi and <root>/Protocols/Protocol_<N>/{Train,Dev,Test}[_<fold>].txt. "
    "See datasets/README.md."
)

NAME = re.compile(r"^([1-6])_([1-3])_(\d{2})_([1-5])$")
FILE_CODE = {"1": ("bona_fide", "none", "", "+1"), "2": ("attack", "print_photo", "print1", "-1"),
             "3": ("attack", "print_photo", "print2", "-1"), "4": ("attack", "video_replay", "replay1", "-2"),
             "5": ("attack", "video_replay", "replay2", "-2")}
PHONES = {"1": "samsung_galaxy_s6_edge", "2": "htc_desire_eye", "3": "meizu_x5", "4": "asus_zenfone_selfie",
          "5": "sony_xperia_c5_ultra_dual", "6": "oppo_n3"}
SESSIONS = {"1": "open_plan_office", "2": "meeting_room", "3": "small_office"}
LISTS = {"Train": "train", "Dev": "dev", "Test": "test"}

#: capture conditions as the database paper describes them (shown on the report's first page)
CAPTURE = ("front cameras of six smartphones in three sessions with different lighting and backgrounds; attacks are "
           "photos printed on two printers and videos replayed on two displays (Boulkenafet et al., FG 2017)")


def _label_code(s: str) -> str:
    s = s.strip()
    return s if s.startswith(("+", "-")) else f"+{s}"


@register_dataset("oulu_npu")
def load_oulu_npu(root: str, protocol: int | str = 1, fold: int | None = None, frames=None, on_problem: str = "error",
                  allow_outside_root: bool = False, **_) -> pd.DataFrame:
    """OULU-NPU manifest for ``protocol`` 1-4 (``fold`` 1-6 for protocols 3 and 4)."""
    root_p = require_root(root, "OULU-NPU", HOW_TO_OBTAIN)
    p = str(protocol).replace("Protocol_", "")
    if p not in ("1", "2", "3", "4"):
        raise ValueError(f"dataset.protocol for oulu_npu must be 1, 2, 3 or 4, got {protocol!r}")
    if p in ("3", "4"):
        if fold is None or str(fold) not in {str(i) for i in range(1, 7)}:
            raise ValueError(f"OULU-NPU protocol {p} is leave-one-phone-out: set dataset.fold to 1..6 (got {fold!r})")
        suffix = f"_{int(fold)}"
    else:
        suffix = ""
    pdir = find_dir(root_p, ["Protocols"], depth=2)
    pdir = (pdir / f"Protocol_{p}") if pdir is not None else None
    if pdir is None or not pdir.is_dir():
        raise LayoutError(f"OULU-NPU: protocol folder Protocols/Protocol_{p}/ not found under {root_p} "
                          f"(looked for {root_p / 'Protocols' / f'Protocol_{p}'}). {HOW_TO_OBTAIN}")
    video_dirs = {s: find_dir(root_p, [f"{s}_files"], depth=2) for s in LISTS}
    for s, d in video_dirs.items():
        if d is None:
            raise LayoutError(f"OULU-NPU: video folder {s}_files/ not found under {root_p} "
                              f"(looked for {root_p / f'{s}_files'}). {HOW_TO_OBTAIN}")
    b = ManifestBuilder("OULU-NPU", root_p, HOW_TO_OBTAIN, frames, allow_outside_root=allow_outside_root)
    for lst_name, split in LISTS.items():
        lst = pdir / f"{lst_name}{suffix}.txt"
        if not lst.is_file():
            raise LayoutError(f"OULU-NPU: protocol list {lst} not found. {HOW_TO_OBTAIN}")
        lines = read_text_lines(lst)
        if not lines:
            b.problem("empty_class", f"protocol list {lst} is empty", lst)
        for ln in lines:
            parts = [x.strip() for x in ln.split(",")]
            m = NAME.match(parts[1]) if len(parts) == 2 else None
            if m is None:
                b.problem("unparsed_name", f"{lst}: line {ln!r} is not '<+1|-1|-2>,<phone>_<session>_<user>_<file>'", lst)
                continue
            phone, session, user, code = m.groups()
            label, species, pai, expect = FILE_CODE[code]
            if _label_code(parts[0]) != expect:
                b.problem("protocol_mismatch", f"{lst}: {parts[1]} is labelled {parts[0]} but file code {code} means "
                                               f"{pai or 'real'} ({expect})", lst)
            path = _locate(video_dirs, lst_name, parts[1])
            b.add(path, subject=f"oulu_{user}", label=label, species=species, split=split, device=PHONES[phone],
                  session=session, lighting=SESSIONS[session], scenario=SESSIONS[session], attack_type=pai,
                  phone=phone, file_code=code)
    return b.build(on_problem, subject_disjoint=True, expected_splits=list(LISTS.values()))


def _locate(video_dirs: dict[str, Path], preferred: str, name: str) -> Path:
    """``<Split>_files/<name>.avi`` (any video extension), preferring the list's own split folder."""
    order = [preferred, *[s for s in video_dirs if s != preferred]]
    for s in order:
        d = video_dirs[s]
        for ext in (".avi", ".mp4", ".mov", ".AVI", ".MP4", ".MOV"):
            f = d / f"{name}{ext}"
            if f.is_file():
                return f
    return video_dirs[preferred] / f"{name}.avi"
