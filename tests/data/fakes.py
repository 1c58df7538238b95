"""Generators of tiny fake database trees with each database's exact file naming and protocol files.

Videos are 10-frame 64x48 clips written with PyAV (frame ``i`` has grey level ``20 * i + 10`` and a white
square in its top-left corner), images 32x32 JPEG/PNG; every file of a tree is a copy of one of these.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

N_FRAMES = 10
W, H = 64, 48


def frame_pattern(i: int, w: int = W, h: int = H) -> np.ndarray:
    img = np.full((h, w, 3), 20 * i + 10, dtype=np.uint8)
    img[2:10, 2:10] = 255  # top-left marker (shows rotation)
    return img


def encode_video(path: Path, n_frames: int = N_FRAMES, rotation: int | None = None, fps: int = 10,
                 codec: str = "mpeg4", gop: int = 4) -> Path:
    """Write a small video with PyAV (a keyframe every ``gop`` frames, so that random access seeks; libx264 adds
    B-frames); ``rotation``: display-matrix rotation, counter-clockwise degrees."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.codec_context.gop_size = gop
        s.options = {"qscale": "2"} if codec == "mpeg4" else {"bf": "2", "crf": "10", "keyint_min": str(gop)}
        if rotation:
            s.set_display_rotation(rotation)
        for i in range(n_frames):
            fr = av.VideoFrame.from_ndarray(frame_pattern(i), format="rgb24")
            for pkt in s.encode(fr):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path


class Tree:
    """Writes files under a root from the ``media`` templates."""

    def __init__(self, root: Path, media: dict[str, bytes]):
        self.root, self.media = Path(root), media

    def file(self, rel: str, data: bytes | None = None) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(self.media[p.suffix.lower()] if data is None else data)
        return p

    def text(self, rel: str, text: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(text.encode())
        return p


# ------------------------------------------------------------------------------------------ databases

CASIA_CLIPS = ("1", "2", "HR_1", "3", "4", "HR_2", "5", "6", "HR_3", "7", "8", "HR_4")


def make_casia(t: Tree, train=(1, 2), test=(1,)) -> Path:
    for rel, subs in (("train_release", train), ("test_release", test)):
        for n in subs:
            for clip in CASIA_CLIPS:
                t.file(f"{rel}/{n}/{clip}.avi")
    return t.root


REPLAY_ATTACKS = (("print", "highdef", "photo"), ("mobile", "mobile", "photo"), ("mobile", "mobile", "video"),
                  ("highdef", "highdef", "photo"), ("highdef", "highdef", "video"))


def make_replay_attack(t: Tree, clients=None) -> Path:
    clients = clients or {"train": [1], "devel": [3], "test": [101]}
    for split, ids in clients.items():
        for c in ids:
            cs = f"client{c:03d}_session01"
            for light in ("controlled", "adverse"):
                for take in (1, 2):
                    t.file(f"{split}/real/{cs}_webcam_authenticate_{light}_{take}.mov")
                for sup in ("fixed", "hand"):
                    for pai, med, typ in REPLAY_ATTACKS:
                        t.file(f"{split}/attack/{sup}/attack_{pai}_{cs}_{med}_{typ}_{light}.mov")
                t.file(f"enroll/{split}/{cs}_webcam_enroll_{light}.mov")
    return t.root


def make_replay_mobile(t: Tree) -> Path:
    for split, c in (("train", 1), ("devel", 5), ("test", 7)):
        cs = f"client{c:03d}_session01"
        t.file(f"{split}/real/{cs}_authenticate_mobile_lightoff.mov")
        t.file(f"{split}/real/{cs}_authenticate_tablet_controlled.mov")
        t.file(f"{split}/attack/attack_{cs}_print_fixed_mobile_photo_lightoff.mov")
        t.file(f"{split}/attack/attack_{cs}_mattescreen_hand_tablet_photo_controlled.mov")
        t.file(f"{split}/attack/attack_{cs}_mattescreen_fixed_mobile_video_lightoff.mov")
        t.file(f"enroll/{split}/{cs}_enroll_tablet_lightoff.mov")
    return t.root


MSU_PAIS = ("ipad_video", "iphone_video", "printed_photo")


def make_msu(t: Tree, train=(2, 5), test=(1,)) -> Path:
    real, attack = [], []
    for c in (*train, *test):
        for dev, ext in (("android", "mp4"), ("laptop", "mov")):
            real.append(f"./real/real_client{c:03d}_{dev}_SD_scene01.{ext}")
            attack.extend(f"./attack/attack_client{c:03d}_{dev}_SD_{pai}_scene01.{ext}" for pai in MSU_PAIS)
    for rel in real + attack:
        t.file(rel[2:])
    # the database's subject lists: two-digit numbers, CRLF, no final newline
    t.text("train_sub_list.txt", "\r\n".join(f"{c:02d}" for c in train))
    t.text("test_sub_list.txt", "\r\n".join(f"{c:02d}" for c in test))
    t.text("clients_fold1.txt", "\n".join([f"{train[0]:02d} train", f"{train[1]:02d} devel", f"{test[0]:02d} test"]) + "\n")
    t.text("msu_mfsd_mod_realvids.txt", "\n".join(real) + "\n")
    t.text("msu_mfsd_mod_attackvids.txt", "\n".join(attack) + "\n")
    return t.root


OULU_LABEL = {1: "+1", 2: "-1", 3: "-1", 4: "-2", 5: "-2"}


def make_oulu(t: Tree) -> Path:
    """Users 01 (Train), 21 (Dev), 36 (Test); phones 1-2, session 1; all 5 file codes. Protocol_1 lists every
    file of its split; Protocol_3 fold 1 leaves phone 1 out of train/dev and tests on phone 1 only."""
    users = {"Train": "01", "Dev": "21", "Test": "36"}
    lists = {}
    for split, u in users.items():
        names = [f"{phone}_1_{u}_{code}" for phone in (1, 2) for code in range(1, 6)]
        for n in names:
            t.file(f"{split}_files/{n}.avi")
        lists[split] = names
    for split, names in lists.items():
        t.text(f"Protocols/Protocol_1/{split}.txt", "".join(f"{OULU_LABEL[int(n[-1])]},{n}\r\n" for n in names))
        keep = [n for n in names if (n[0] == "1") == (split == "Test")]
        t.text(f"Protocols/Protocol_3/{split}_1.txt", "".join(f"{OULU_LABEL[int(n[-1])]},{n}\n" for n in keep))
    return t.root


def make_siw(t: Tree) -> Path:
    for split, s in (("Train", "003"), ("Test", "090")):
        t.file(f"{split}/live/{s}/{s}-1-1-1-1.mov")
        t.file(f"{split}/live/{s}/{s}-2-1-2-1.mov")
        t.file(f"{split}/spoof/{s}/{s}-1-2-1-1.mov")  # print, medium 1
        t.file(f"{split}/spoof/{s}/{s}-1-2-2-1.mov")  # print, medium 2
        for m in (1, 2, 3, 4):
            t.file(f"{split}/spoof/{s}/{s}-1-3-{m}-1.mov")  # replay, media 1-4
    return t.root


def celeba_labels(spoof_type: int, illum: int = 0, env: int = 0) -> list[int]:
    return [0] * 40 + [spoof_type, illum, env, 0 if spoof_type == 0 else 1]


def make_celeba_spoof(t: Tree) -> Path:
    entries = {"train": {}, "test": {}}
    for split, subj, n0 in (("train", "10", 1), ("train", "11", 20), ("test", "4980", 40)):
        entries[split][f"Data/{split}/{subj}/live/{n0:06d}.jpg"] = celeba_labels(0)
        for k, (stype, ill, env) in enumerate(((1, 1, 1), (4, 2, 2), (6, 4, 1), (8, 3, 1), (10, 1, 2))):
            entries[split][f"Data/{split}/{subj}/spoof/{n0 + 1 + k:06d}.png"] = celeba_labels(stype, ill, env)
    for split, lab in entries.items():
        for rel in lab:
            t.file(rel)
        t.text(f"metas/intra_test/{split}_label.json", json.dumps(lab))
    return t.root


def make_lfw(t: Tree) -> Path:
    for name, n in (("Alice_Smith", 2), ("Bob_Jones", 1), ("Carol_King", 2), ("Dave_Lee", 1)):
        for i in range(1, n + 1):
            t.file(f"lfw/{name}/{name}_{i:04d}.jpg")
    t.text("pairs.txt", "2\t1\nAlice_Smith\t1\t2\nAlice_Smith\t1\tBob_Jones\t1\n"
                        "Carol_King\t1\t2\nCarol_King\t2\tDave_Lee\t1\n")
    return t.root


def make_folder(t: Tree) -> Path:
    for s in ("alice", "bob", "carol", "dave"):
        t.file(f"{s}/bona_fide/selfie_1.jpg")
        t.file(f"{s}/bona_fide/day2/selfie_2.png")
        t.file(f"{s}/attack/print_photo/p1.jpg")
    t.file("alice/bona_fide/clip.mp4")
    t.file("bob/attack/screen_replay/replay.mov")
    return t.root
