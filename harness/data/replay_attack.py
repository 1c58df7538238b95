"""Replay-Attack (Idiap; Chingovska, Anjos, Marcel, BIOSIG 2012): 50 clients filmed by a MacBook webcam
under controlled and adverse lighting; subject-disjoint ``train`` (15 clients), ``devel`` (15), ``test`` (20).

Layout (``.mov``)::

    <split>/real/client001_session01_webcam_authenticate_<light>_<take>.mov      4 per client
    <split>/attack/<fixed|hand>/attack_<pai>_client001_session01_<medium>_<photo|video>_<light>.mov  20 per client
    enroll/<split>/client001_session01_webcam_enroll_<light>.mov                 2 per client

``pai``: ``print`` (printed photo), ``mobile`` (iPhone screen), ``highdef`` (iPad screen); species:
print -> print_photo, a photo on a screen -> screen_replay, a video on a screen -> video_replay. The
``devel`` split is called ``dev`` in the manifest. Enrolment videos carry ``purpose=enroll`` (probes
``authenticate``, attacks ``attack``): a verification protocol enrols from ``purpose`` in ``[enroll]``.

``protocol`` (the database's attack subsets): ``grandtest`` (all), ``print``, ``mobile``, ``highdef``,
``photo``, ``video``, ``digitalphoto`` (photos on screens); ``support``: ``all`` | ``fixed`` | ``hand``.
Every client is checked for its 4 real, 20 attack and 2 enrolment videos; a missing one is reported by name.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pandas as pd

from harness.data.common import LayoutError, ManifestBuilder, find_dir, require_root
from harness.data.registry import register_dataset
from harness.data.video import is_video

HOW_TO_OBTAIN = (
    "Replay-Attack: request it from the Idiap Research Institute (https://www.idiap.ch/dataset/replayattack) by "
    "signing its EULA (research use only); expected layout: <root>/{train,devel,test}/real/*.mov, "
    "<root>/{train,devel,test}/attack/{fixed,hand}/*.mov and <root>/enroll/{train,devel,test}/*.mov. "
    "See datasets/README.md."
)

SPLITS = {"train": "train", "devel": "dev", "test": "test"}
REAL = re.compile(r"^client(\d+)_session(\d+)_webcam_(authenticate|enroll)_(controlled|adverse)(?:_(\d+))?$")
ATTACK = re.compile(r"^attack_(print|mobile|highdef)_client(\d+)_session(\d+)_(highdef|mobile)_(photo|video)_(controlled|adverse)$")
#: the attacks each client has, per support and lighting: (pai, medium, type)
ATTACK_KINDS = (("print", "highdef", "photo"), ("mobile", "mobile", "photo"), ("mobile", "mobile", "video"),
                ("highdef", "highdef", "photo"), ("highdef", "highdef", "video"))
LIGHTS = ("controlled", "adverse")
PROTOCOLS = {
    "grandtest": lambda pai, typ: True,
    "print": lambda pai, typ: pai == "print",
    "mobile": lambda pai, typ: pai == "mobile",
    "highdef": lambda pai, typ: pai == "highdef",
    "photo": lambda pai, typ: typ == "photo",
    "video": lambda pai, typ: typ == "video",
    "digitalphoto": lambda pai, typ: pai in ("mobile", "highdef") and typ == "photo",
}

#: capture conditions as the database paper describes them (shown on the report's first page)
CAPTURE = ("laptop webcam video (320x240), controlled and adverse lighting; attacks are printed photos and photos or"
           " videos shown on an iPhone or iPad, hand-held or on a fixed support (Chingovska et al., BIOSIG 2012)")


def species_of(pai: str, typ: str) -> str:
    if pai == "print":
        return "print_photo"
    return "screen_replay" if typ == "photo" else "video_replay"


def _split_dir(root: Path, name: str) -> Path | None:
    """``<root>/.../<name>`` holding ``real/`` or ``attack/`` (not the one under ``enroll/``)."""
    for d in [root / name, *sorted(root.glob(f"*/{name}")), *sorted(root.glob(f"*/*/{name}"))]:
        if d.is_dir() and "enroll" not in [p.lower() for p in d.relative_to(root).parts[:-1]] and (
                (d / "real").is_dir() or (d / "attack").is_dir()):
            return d
    return None


def _videos(d: Path) -> list[Path]:
    return sorted(f for f in d.iterdir() if f.is_file() and is_video(f)) if d.is_dir() else []


class _Inventory:
    """The videos found per (split, client) and how often each session number appears: what
    :func:`_report_missing` compares with the database's layout."""

    def __init__(self):
        self.seen: dict[tuple[str, int], set[str]] = {}  # (split, client) -> {"<where>/<stem>"}
        self.sessions: Counter = Counter()

    def note(self, split, client, where, f, session):
        self.seen.setdefault((split, client), set()).add(f"{where}/{f.stem}")
        self.sessions[session] += 1


def _add_real(b: ManifestBuilder, sd: Path, split: str, inv: _Inventory) -> None:
    for f in _videos(sd / "real"):
        m = REAL.match(f.stem)
        if not m or m.group(3) != "authenticate":
            b.problem("unparsed_name", f"{f}: not a Replay-Attack real-access name "
                                       "(clientNNN_sessionNN_webcam_authenticate_<light>_<take>)", f)
            continue
        client, session, _, light, take = m.groups()
        inv.note(split, int(client), "real", f, session)
        b.add(f, subject=f"replay_{int(client):03d}", label="bona_fide", species="none", split=split,
              device="webcam", session=session, lighting=light, purpose="authenticate", support="", pai="",
              take=take or "")


def _add_attacks(b: ManifestBuilder, sd: Path, split: str, keep, support: str, inv: _Inventory) -> None:
    for sup in ("fixed", "hand"):
        ad = sd / "attack" / sup
        if not ad.is_dir():
            b.problem("missing_file", f"attack folder {ad} not found", ad)
            continue
        for f in _videos(ad):
            m = ATTACK.match(f.stem)
            if not m:
                b.problem("unparsed_name", f"{f}: not a Replay-Attack attack name "
                                           "(attack_<pai>_clientNNN_sessionNN_<medium>_<photo|video>_<light>)", f)
                continue
            pai, client, session, medium, typ, light = m.groups()
            inv.note(split, int(client), sup, f, session)
            if not keep(pai, typ) or support not in ("all", sup):
                continue
            b.add(f, subject=f"replay_{int(client):03d}", label="attack", species=species_of(pai, typ), split=split,
                  device="webcam", session=session, lighting=light, attack_type=f"{pai}_{typ}", purpose="attack",
                  support=sup, pai=pai, medium=medium, take="")


def _add_enrolment(b: ManifestBuilder, root_p: Path, enrol: bool, inv: _Inventory) -> Path | None:
    """The enrolment videos (added when ``enrol``); returns the ``enroll/`` folder, None when it is missing."""
    enroll_root = find_dir(root_p, ["enroll"], depth=2)
    if enroll_root is None:
        b.problem("missing_file", f"enrolment folder enroll/ not found under {root_p}", root_p / "enroll")
        return None
    for folder, split in SPLITS.items():
        ed = enroll_root / folder
        if not ed.is_dir():
            b.problem("missing_file", f"enrolment folder {ed} not found", ed)
            continue
        for f in _videos(ed):
            m = REAL.match(f.stem)
            if not m or m.group(3) != "enroll":
                b.problem("unparsed_name", f"{f}: not a Replay-Attack enrolment name "
                                           "(clientNNN_sessionNN_webcam_enroll_<light>)", f)
                continue
            client, session, _, light, _take = m.groups()
            inv.note(split, int(client), "enroll", f, session)
            if enrol:
                b.add(f, subject=f"replay_{int(client):03d}", label="bona_fide", species="none", split=split,
                      device="webcam", session=session, lighting=light, purpose="enroll", support="", pai="",
                      take="")
    return enroll_root


def _report_missing(b: ManifestBuilder, inv: _Inventory, split_dirs: dict[str, Path],
                    enroll_root: Path | None) -> None:
    """Every client has 4 real + 20 attack + 2 enrolment videos: each one not found is a ``missing_file``."""
    session = inv.sessions.most_common(1)[0][0] if inv.sessions else "01"
    folder_of = {v: k for k, v in SPLITS.items()}
    for (split, client), have in sorted(inv.seen.items()):
        c = f"client{client:03d}_session{session}"
        sd = split_dirs[split]
        expected = {f"real/{c}_webcam_authenticate_{lt}_{t}": sd / "real" for lt in LIGHTS for t in (1, 2)}
        for sup in ("fixed", "hand"):
            expected.update({f"{sup}/attack_{pai}_{c}_{med}_{typ}_{lt}": sd / "attack" / sup
                             for pai, med, typ in ATTACK_KINDS for lt in LIGHTS})
        if enroll_root is not None:
            expected.update({f"enroll/{c}_webcam_enroll_{lt}": enroll_root / folder_of[split] for lt in LIGHTS})
        for key, folder in expected.items():
            if key not in have:
                path = folder / (key.split("/", 1)[1] + ".mov")
                b.problem("missing_file", f"{path} (client {client:03d}, split {split}) not found", path)


@register_dataset("replay_attack")
def load_replay_attack(root: str, protocol: str = "grandtest", support: str = "all", enrol: bool = True,
                       frames=None, on_problem: str = "error", allow_outside_root: bool = False, **_) -> pd.DataFrame:
    """Replay-Attack manifest (see module docstring)."""
    root_p = require_root(root, "Replay-Attack", HOW_TO_OBTAIN)
    if protocol not in PROTOCOLS:
        raise ValueError(f"dataset.protocol for replay_attack must be one of {sorted(PROTOCOLS)}, got {protocol!r}")
    if support not in ("all", "fixed", "hand"):
        raise ValueError(f"dataset.support must be 'all', 'fixed' or 'hand', got {support!r}")
    b = ManifestBuilder("Replay-Attack", root_p, HOW_TO_OBTAIN, frames, allow_outside_root=allow_outside_root)
    inv = _Inventory()
    split_dirs: dict[str, Path] = {}
    for folder, split in SPLITS.items():
        sd = _split_dir(root_p, folder)
        if sd is None:
            raise LayoutError(f"Replay-Attack: split folder {folder}/ with real/ and attack/ not found under {root_p} "
                              f"(looked for {root_p / folder / 'real'}). {HOW_TO_OBTAIN}")
        split_dirs[split] = sd
        _add_real(b, sd, split, inv)
        _add_attacks(b, sd, split, PROTOCOLS[protocol], support, inv)
    enroll_root = _add_enrolment(b, root_p, enrol, inv)
    _report_missing(b, inv, split_dirs, enroll_root)
    return b.build(on_problem, subject_disjoint=True, expected_splits=list(SPLITS.values()))
