"""Generators of SMALL database trees built from REAL face images, with each database's exact file naming and
protocol files, so that the real models (MTCNN, MiniFASNet) find faces and every official protocol can be run.

Pixels: every generated video holds 4 frames of one NUAA Imposter Database person (shared test material,
``datasets/nuaa/images``), downscaled from 640x480 to 320x240 (faces about 50-120 px wide, above MTCNN's
``min_face_size`` 40) and encoded with PyAV (mpeg4, 10 fps, every frame a keyframe, ``qmin = qmax = 12``):

* ``real``: 4 ``ClientRaw`` frames of the person (bona fide webcam captures);
* ``print``: 4 frames from the first half of the person's ``ImposterRaw`` frames (printed-photo attacks);
* ``replay``: 4 frames from the second half of ``ImposterRaw``. NUAA holds print attacks only: a "replay" (or
  "cut photo") file's species comes from its NAME, its pixels are a printed-photo attack.

Each tree maps :data:`PEOPLE` (6 NUAA people with both classes) onto the database's user ids. A person has 3
distinct encoded videos per container (``.avi`` / ``.mov`` / ``.mp4``), encoded once per process and cached in
memory; every file of a tree is a byte COPY of one of them (many names, few distinct contents: the score cache
keys on content, so scoring a tree costs a few dozen videos). Each ``make_*_real(root, shared=None)`` returns
``root``; ``shared`` is the shared material folder (default :func:`harness.paths.shared_root`).
"""

from __future__ import annotations

import io
import shutil
from functools import lru_cache
from pathlib import Path

import numpy as np

from tests.data.fakes import Tree

#: NUAA people (folders with both ClientRaw and ImposterRaw frames); MTCNN finds a face in each of their frames
PEOPLE = ("0001", "0002", "0003", "0004", "0005", "0006")
#: NUAA people whose print frames stand in for the MSU attacks of clients 005 and 022
MSU_ATTACK_PEOPLE = {5: "0007", 22: "0008"}
N_FRAMES, W, H, FPS, QUANT = 4, 320, 240, 10, 12
KINDS = ("real", "print", "replay")
CONTAINERS = {".avi": "avi", ".mov": "mov", ".mp4": "mp4"}


def nuaa_dir(shared: Path | str | None = None) -> Path:
    """The NUAA images folder of the shared material (``FileNotFoundError`` when it is absent)."""
    if shared is None:
        from harness.paths import shared_root

        shared = shared_root(required=True)
    d = Path(shared) / "datasets" / "nuaa" / "images"
    if not d.is_dir():
        raise FileNotFoundError(f"NUAA images not found at {d}")
    return d


def pick_frames(images: Path, person: str, kind: str) -> list[Path]:
    """The 4 NUAA image files of ``person`` for ``kind`` (evenly spaced over the chosen frames, sorted by name)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    folder = "ClientRaw" if kind == "real" else "ImposterRaw"
    files = sorted((images / folder / person).glob("*.jpg"))
    if kind != "real":
        half = len(files) // 2
        files = files[:half] if kind == "print" else files[half:]
    if len(files) < N_FRAMES:
        raise FileNotFoundError(f"NUAA {folder}/{person}: {len(files)} frames for {kind}, need {N_FRAMES}")
    return [files[int(i)] for i in np.linspace(0, len(files) - 1, N_FRAMES)]


def encode_frames(files: list[Path], container: str) -> bytes:
    """The bytes of a ``container`` video (mpeg4, 320x240, 10 fps, all keyframes) of the images ``files``."""
    import av
    from PIL import Image

    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as c:
        s = c.add_stream("mpeg4", rate=FPS)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.codec_context.gop_size = 1
        s.codec_context.options = {"qmin": str(QUANT), "qmax": str(QUANT)}
        for f in files:
            with Image.open(f) as im:
                rgb = np.asarray(im.convert("RGB").resize((W, H), Image.BILINEAR))
            for pkt in s.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return buf.getvalue()


@lru_cache(maxsize=None)
def person_video(images: str, person: str, kind: str, ext: str) -> bytes:
    """The cached encoded video of ``person``'s ``kind`` frames for file extension ``ext``."""
    return encode_frames(pick_frames(Path(images), person, kind), CONTAINERS[ext])


class RealTree(Tree):
    """Writes a tree under ``root`` (:class:`tests.data.fakes.Tree`'s ``file`` / ``text``): video files as copies
    of the cached person videos."""

    def __init__(self, root: Path | str, shared: Path | str | None = None):
        """A tree at ``root`` (created) drawing NUAA frames from ``shared``."""
        super().__init__(Path(root), {})
        self.images = str(nuaa_dir(shared))
        self.root.mkdir(parents=True, exist_ok=True)
        self.contents: set[tuple[str, str, str]] = set()

    def video(self, rel: str, person: str, kind: str) -> Path:
        """Write ``rel`` as ``person``'s ``kind`` video (container from the extension)."""
        ext = Path(rel).suffix.lower()
        self.contents.add((person, kind, ext))
        return self.file(rel, person_video(self.images, person, kind, ext))


def tree_stats(root: Path | str) -> dict[str, int]:
    """``{"files", "videos", "distinct_videos", "bytes"}`` of a tree (distinct by content)."""
    files = [f for f in Path(root).rglob("*") if f.is_file()]
    vids = [f for f in files if f.suffix.lower() in CONTAINERS]
    return {"files": len(files), "videos": len(vids), "distinct_videos": len({f.read_bytes() for f in vids}),
            "bytes": sum(f.stat().st_size for f in files)}


# ------------------------------------------------------------------------------------------ OULU-NPU

#: default OULU-NPU users per split (NUAA people in :data:`PEOPLE` order) and the session each split films
OULU_USERS = {"Train": ("01", "02"), "Dev": ("21", "22"), "Test": ("36", "37")}
OULU_SESSIONS = {"Train": (1,), "Dev": (2,), "Test": (3,)}
OULU_LABEL = {1: "+1", 2: "-1", 3: "-1", 4: "-2", 5: "-2"}
OULU_KIND = {1: "real", 2: "print", 3: "print", 4: "replay", 5: "replay"}


def oulu_keeps(protocol: int, fold: int | None, split: str, phone: int, session: int, code: int) -> bool:
    """Whether video ``<phone>_<session>_<user>_<code>`` of list ``split`` (Train/Dev/Test) is in the protocol
    (Boulkenafet et al., FG 2017): P1 sessions 1,2 vs 3; P2 print1+replay1 (codes 2, 4) vs print2+replay2
    (3, 5); P3 leave phone ``fold`` out (test on it); P4 all three at once. Dev follows Train."""
    test = split == "Test"
    ok_session = (session == 3) if test else (session in (1, 2))
    ok_code = code in ((1, 3, 5) if test else (1, 2, 4))
    ok_phone = (phone == fold) if test else (phone != fold)
    return {1: ok_session, 2: ok_code, 3: ok_phone, 4: ok_session and ok_code and ok_phone}[protocol]


def oulu_list_names() -> list[tuple[int, int | None, str]]:
    """Every official list as ``(protocol, fold, file stem)``: P1/P2 ``Train``..., P3/P4 ``Train_1``...."""
    out = []
    for p in (1, 2, 3, 4):
        for fold in ((None,) if p < 3 else range(1, 7)):
            out.extend((p, fold, s + ("" if fold is None else f"_{fold}")) for s in OULU_USERS)
    return out


def make_oulu_real(root: Path | str, shared: Path | str | None = None, users: dict | None = None,
                   sessions: dict | None = None) -> Path:
    """OULU-NPU: ``{Train,Dev,Test}_files/<phone>_<session>_<user>_<code>.avi`` for users ``users`` (default
    :data:`OULU_USERS`, 2 per split), phones 1-6, sessions ``sessions`` (default Train 1, Dev 2, Test 3: every
    protocol's lists non-empty with both classes), codes 1-5; and every list of Protocols 1-4 (folds 1-6 for 3
    and 4) naming the written files the protocol keeps, ``<label>,<name>`` with CRLF line ends."""
    users, sessions = users or OULU_USERS, sessions or OULU_SESSIONS
    t = RealTree(root, shared)
    people = iter(PEOPLE * 4)
    written: dict[str, list[tuple[int, int, int, str]]] = {s: [] for s in users}
    for split, ids in users.items():
        for user in ids:
            person = next(people)
            for phone in range(1, 7):
                for session in sessions[split]:
                    for code in range(1, 6):
                        name = f"{phone}_{session}_{user}_{code}"
                        t.video(f"{split}_files/{name}.avi", person, OULU_KIND[code])
                        written[split].append((phone, session, code, name))
    for p, fold, stem in oulu_list_names():
        split = stem.split("_")[0]
        lines = [f"{OULU_LABEL[c]},{n}\r\n" for ph, se, c, n in sorted(written[split], key=lambda x: x[3])
                 if oulu_keeps(p, fold, split, ph, se, c)]
        t.text(f"Protocols/Protocol_{p}/{stem}.txt", "".join(lines))
    return t.root


# ------------------------------------------------------------------------------------------ Replay-Attack

REPLAY_CLIENTS = {"train": (1, 2), "devel": (3, 5), "test": (9, 101)}
REPLAY_ATTACKS = (("print", "highdef", "photo"), ("mobile", "mobile", "photo"), ("mobile", "mobile", "video"),
                  ("highdef", "highdef", "photo"), ("highdef", "highdef", "video"))


def make_replay_attack_real(root: Path | str, shared: Path | str | None = None, clients: dict | None = None) -> Path:
    """Replay-Attack: clients ``clients`` (default 2 per split), each with the database's 4 real
    (``<split>/real/clientNNN_session01_webcam_authenticate_<light>_<take>.mov``), 20 attack
    (``<split>/attack/<fixed|hand>/attack_<pai>_clientNNN_session01_<medium>_<photo|video>_<light>.mov``) and 2
    enrolment (``enroll/<split>/clientNNN_session01_webcam_enroll_<light>.mov``) videos. Pixels: real and
    enrolment = the person's real video; photo attacks = print; video attacks = replay (a print attack too)."""
    t = RealTree(root, shared)
    people = iter(PEOPLE * 4)
    for split, ids in (clients or REPLAY_CLIENTS).items():
        for c in ids:
            person, cs = next(people), f"client{c:03d}_session01"
            for light in ("controlled", "adverse"):
                for take in (1, 2):
                    t.video(f"{split}/real/{cs}_webcam_authenticate_{light}_{take}.mov", person, "real")
                for sup in ("fixed", "hand"):
                    for pai, med, typ in REPLAY_ATTACKS:
                        kind = "print" if typ == "photo" else "replay"
                        t.video(f"{split}/attack/{sup}/attack_{pai}_{cs}_{med}_{typ}_{light}.mov", person, kind)
                t.video(f"enroll/{split}/{cs}_webcam_enroll_{light}.mov", person, "real")
    return t.root


# ------------------------------------------------------------------------------------------ SiW

SIW_SUBJECTS = {"Train": ("003", "006", "008"), "Test": ("090", "101", "120")}


def make_siw_real(root: Path | str, shared: Path | str | None = None, subjects: dict | None = None) -> Path:
    """SiW: ``<Train|Test>/<live|spoof>/<subject>/<subject>-<sensor>-<type>-<medium>-<session>.mov`` for
    ``subjects`` (default 3 per split), 8 videos each: live ``-1-1-1-1`` and ``-2-1-2-1``, print media 1-2
    (``-1-2-<m>-1``), replay media 1-4 (``-1-3-<m>-1``; pixels: a print attack): protocols 1, 2 (folds 1-4)
    and 3 (folds 1-2) all have both classes in both splits."""
    t = RealTree(root, shared)
    people = iter(PEOPLE * 4)
    for split, ids in (subjects or SIW_SUBJECTS).items():
        for s in ids:
            person = next(people)
            t.video(f"{split}/live/{s}/{s}-1-1-1-1.mov", person, "real")
            t.video(f"{split}/live/{s}/{s}-2-1-2-1.mov", person, "real")
            for m in (1, 2):
                t.video(f"{split}/spoof/{s}/{s}-1-2-{m}-1.mov", person, "print")
            for m in (1, 2, 3, 4):
                t.video(f"{split}/spoof/{s}/{s}-1-3-{m}-1.mov", person, "replay")
    return t.root


# ------------------------------------------------------------------------------------------ CASIA-FASD

CASIA_CLIPS = ("1", "2", "HR_1", "3", "4", "HR_2", "5", "6", "HR_3", "7", "8", "HR_4")
CASIA_KIND = {"1": "real", "2": "real", "HR_1": "real", "3": "print", "4": "print", "HR_2": "print",
              "5": "print", "6": "print", "HR_3": "print", "7": "replay", "8": "replay", "HR_4": "replay"}
#: train_release 1, 2 (grandtest train) and 16 (grandtest dev); test_release 1-3
CASIA_SUBJECTS = {"train_release": (1, 2, 16), "test_release": (1, 2, 3)}


def make_casia_real(root: Path | str, shared: Path | str | None = None, subjects: dict | None = None) -> Path:
    """CASIA-FASD: ``<train_release|test_release>/<n>/<clip>.avi`` with all 12 clips (``1, 2, HR_1`` real;
    ``3, 4, HR_2`` warped photo and ``5, 6, HR_3`` cut photo: print pixels; ``7, 8, HR_4`` replay: a print
    attack's pixels) for ``subjects`` (default 3 per release, train subject 16 in grandtest's dev split)."""
    t = RealTree(root, shared)
    people = iter(PEOPLE * 4)
    for rel, ids in (subjects or CASIA_SUBJECTS).items():
        for n in ids:
            person = next(people)
            for clip in CASIA_CLIPS:
                t.video(f"{rel}/{n}/{clip}.avi", person, CASIA_KIND[clip])
    return t.root


# ------------------------------------------------------------------------------------------ MSU-MFSD

MSU_REAL = {5: "real_client005_android_SD_scene01.mp4", 22: "real_client022_android_SD_scene01.mp4"}
MSU_PAIS = {"printed_photo": "print", "ipad_video": "replay", "iphone_video": "replay"}


def make_msu_real(root: Path | str, shared: Path | str | None = None) -> Path:
    """MSU-MFSD: the two REAL bona fide videos of the shared sample copied to ``real/`` (clients 005, 022;
    about 7.5 MB each, 300 frames), GENERATED attacks ``attack/attack_client<NNN>_android_SD_<pai>_scene01.mp4``
    (``printed_photo``, ``ipad_video``, ``iphone_video``) whose pixels are NUAA print attacks of a stand-in
    person (:data:`MSU_ATTACK_PEOPLE`, not the client), the subject lists ``train_sub_list.txt`` (05) and
    ``test_sub_list.txt`` (22) (two digits, CRLF, no final newline, as the database writes them) and
    ``msu_mfsd_mod_realvids.txt`` / ``msu_mfsd_mod_attackvids.txt`` naming exactly these 8 videos (the shared
    sample's lists name the whole database). Protocol ``official``; no fold files (2 clients make no 3 splits)."""
    base = Path(shared) if shared is not None else nuaa_dir().parents[2]
    sample = base / "datasets" / "msu_mfsd_sample"
    t = RealTree(root, base)
    real, attack = [], []
    for client, name in MSU_REAL.items():
        dst = t.root / "real" / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sample / name, dst)
        real.append(f"./real/{name}")
        for pai, kind in MSU_PAIS.items():
            rel = f"attack/attack_client{client:03d}_android_SD_{pai}_scene01.mp4"
            t.video(rel, MSU_ATTACK_PEOPLE[client], kind)
            attack.append(f"./{rel}")
    t.text("train_sub_list.txt", "05")
    t.text("test_sub_list.txt", "22")
    t.text("msu_mfsd_mod_realvids.txt", "\n".join(real) + "\n")
    t.text("msu_mfsd_mod_attackvids.txt", "\n".join(attack) + "\n")
    return t.root
