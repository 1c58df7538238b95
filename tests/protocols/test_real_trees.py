"""The real-face database trees of :mod:`tests.protocols.real_trees`: each loads through its adapter for EVERY
official protocol / fold without a problem (``on_problem="error"``), with the splits, labels, species and video
counts the protocol definitions give; MTCNN finds a face in every frame of every distinct video; the MSU tree
scores with the real models on CPU. Skips without the shared material (fails under HARNESS_REQUIRE_SHARED=1)."""

from __future__ import annotations

import math
from itertools import product
from pathlib import Path

import pytest

from harness.data.registry import load_dataset
from tests.protocols import real_trees as rt

pytestmark = pytest.mark.shared

ONE = {"mode": "uniform", "n": 1}
BUILDERS = {"oulu_npu": rt.make_oulu_real, "replay_attack": rt.make_replay_attack_real, "siw": rt.make_siw_real,
            "casia_fasd": rt.make_casia_real, "msu_mfsd": rt.make_msu_real}


@pytest.fixture(scope="module")
def trees(shared, tmp_path_factory) -> dict[str, Path]:
    """Every tree, written once for the module: dataset name -> root."""
    base = tmp_path_factory.mktemp("real_trees")
    return {name: make(base / name, shared) for name, make in BUILDERS.items()}


def _load(name: str, root: Path, **kw):
    """The manifest of ``root`` (one frame per video unless ``frames`` is given); any problem raises."""
    kw.setdefault("frames", ONE)
    df = load_dataset(name, root=str(root), on_problem="error", **kw)
    assert df.attrs["problems"] == [] and set(df["reject_code"]) == {""}
    return df


def _videos(df):
    """One row per video."""
    return df.drop_duplicates("video")


def _by_split(df, col: str) -> dict[str, set]:
    """split -> the set of ``col`` values in it."""
    return {s: set(g[col]) for s, g in _videos(df).groupby("split")}


# ------------------------------------------------------------------------------------------ the trees


def test_tree_sizes_and_distinct_contents(trees):
    """Video counts, few distinct contents (6 people x real/print/replay), and under 5 MB (MSU: 2 real copies)."""
    stats = {name: rt.tree_stats(root) for name, root in trees.items()}
    assert {n: s["videos"] for n, s in stats.items()} == {
        "oulu_npu": 180, "replay_attack": 156, "siw": 48, "casia_fasd": 72, "msu_mfsd": 8}
    for name in ("oulu_npu", "replay_attack", "siw", "casia_fasd"):
        assert stats[name]["distinct_videos"] == 18, name  # 6 people x (real, print, replay)
        assert stats[name]["bytes"] < 5_000_000, stats[name]
    assert stats["msu_mfsd"]["distinct_videos"] == 6  # 2 real MSU videos + (print, replay) x 2 stand-ins


def test_every_distinct_video_has_a_face_in_every_frame(trees):
    """MTCNN (min_face_size 40, as conf/detector/mtcnn.yaml) finds a face in all 4 frames of the 18 videos."""
    from harness.faces.detect import build_detector
    from harness.faces.video import probe_video, read_frames

    first: dict[bytes, Path] = {}
    for f in sorted(trees["casia_fasd"].rglob("*.avi")):
        first.setdefault(f.read_bytes(), f)
    assert len(first) == 18
    for f in first.values():
        info = probe_video(f)
        assert (info.frames, info.width, info.height) == (4, rt.W, rt.H)
    frames = [(f, i, img) for f in first.values() for i, img in enumerate(read_frames(f, range(4)))]
    found = build_detector("mtcnn", batch_size=24, device="cpu").detect([img for _, _, img in frames])
    missed = [(f.name, i) for (f, i, _), d in zip(frames, found) if d is None or d.box[2] - d.box[0] < 40]
    assert missed == []


# ------------------------------------------------------------------------------------------ OULU-NPU


def test_oulu_protocol_definitions_give_the_published_list_sizes():
    """Applied to the full database (users 1-20 / 21-35 / 36-55, 6 phones, 3 sessions, 5 codes), the
    protocol rules give the list sizes of Boulkenafet et al., FG 2017, Table 2."""
    users = {"Train": 20, "Dev": 15, "Test": 20}
    sizes = {}
    for p, fold in [(1, None), (2, None), (3, 1), (4, 1)]:
        sizes[p] = tuple(users[s] * sum(rt.oulu_keeps(p, fold, s, ph, se, c)
                                        for ph, se, c in product(range(1, 7), (1, 2, 3), range(1, 6)))
                         for s in users)
    assert sizes == {1: (1200, 900, 600), 2: (1080, 810, 1080), 3: (1500, 1125, 300), 4: (600, 450, 60)}


OULU_CASES = [(1, None), (2, None), *[(3, f) for f in range(1, 7)], *[(4, f) for f in range(1, 7)]]


@pytest.mark.parametrize("protocol,fold", OULU_CASES, ids=[f"P{p}" + (f"_{f}" if f else "") for p, f in OULU_CASES])
def test_oulu_every_protocol_and_fold(trees, protocol, fold):
    """Each OULU list: the users, sessions, phones (P3/P4: fold phone only in test) and file codes (P2/P4: print1 +
    replay1 in train/dev, print2 + replay2 in test) the protocol defines, 2 users x phones x codes videos."""
    df = _load("oulu_npu", trees["oulu_npu"], protocol=protocol, fold=fold)
    assert _by_split(df, "subject") == {"train": {"oulu_01", "oulu_02"}, "dev": {"oulu_21", "oulu_22"},
                                        "test": {"oulu_36", "oulu_37"}}
    assert _by_split(df, "session") == {"train": {"1"}, "dev": {"2"}, "test": {"3"}}
    phones, codes = _by_split(df, "phone"), _by_split(df, "file_code")
    all_phones, all_codes = {str(i) for i in range(1, 7)}, {str(i) for i in range(1, 6)}
    cross_phone, cross_pai = protocol in (3, 4), protocol in (2, 4)
    for split in ("train", "dev", "test"):
        want_phones = ({str(fold)} if split == "test" else all_phones - {str(fold)}) if cross_phone else all_phones
        want_codes = ({"1", "3", "5"} if split == "test" else {"1", "2", "4"}) if cross_pai else all_codes
        assert (phones[split], codes[split]) == (want_phones, want_codes), split
        assert len(_videos(df[df["split"] == split])) == 2 * len(want_phones) * len(want_codes)
    v = _videos(df)
    assert set(v.loc[v["label"] == "bona_fide", "file_code"]) == {"1"}
    assert set(v["species"]) == {"none", "print_photo", "video_replay"}
    if cross_pai:
        assert set(v.loc[v["split"] == "test", "attack_type"]) == {"", "print2", "replay2"}


# ------------------------------------------------------------------------------------------ Replay-Attack

#: attacks per client in each attack subset (of 20: 2 supports x 2 lights x 5 kinds)
REPLAY_SUBSETS = {"grandtest": 20, "print": 4, "mobile": 8, "highdef": 8, "photo": 12, "video": 8, "digitalphoto": 8}


@pytest.mark.parametrize("protocol", list(REPLAY_SUBSETS))
def test_replay_attack_every_protocol(trees, protocol):
    """Each attack subset: clients per split, 4 real + 2 enrolment + the subset's attacks per client, species."""
    df = _load("replay_attack", trees["replay_attack"], protocol=protocol)
    assert _by_split(df, "subject") == {"train": {"replay_001", "replay_002"}, "dev": {"replay_003", "replay_005"},
                                        "test": {"replay_009", "replay_101"}}
    assert df.groupby("purpose").size().to_dict() == {"attack": 6 * REPLAY_SUBSETS[protocol], "authenticate": 24,
                                                      "enroll": 12}
    species = set(df.loc[df["label"] == "attack", "species"])
    assert species == {"grandtest": {"print_photo", "screen_replay", "video_replay"}, "print": {"print_photo"},
                       "mobile": {"screen_replay", "video_replay"}, "highdef": {"screen_replay", "video_replay"},
                       "photo": {"print_photo", "screen_replay"}, "video": {"video_replay"},
                       "digitalphoto": {"screen_replay"}}[protocol]
    fixed = _load("replay_attack", trees["replay_attack"], protocol=protocol, support="fixed", enrol=False)
    assert set(fixed.loc[fixed["label"] == "attack", "support"]) == {"fixed"}
    assert (fixed["label"] == "attack").sum() == 3 * REPLAY_SUBSETS[protocol]


# ------------------------------------------------------------------------------------------ SiW

SIW_CASES = [(1, None), *[(2, f) for f in range(1, 5)], (3, 1), (3, 2)]


@pytest.mark.parametrize("protocol,fold", SIW_CASES, ids=[f"P{p}" + (f"_{f}" if f else "") for p, f in SIW_CASES])
def test_siw_every_protocol_and_fold(trees, protocol, fold):
    """P1 all; P2 replay medium != fold in train, == fold in test; P3 print vs replay (fold 2 reversed)."""
    df = _load("siw", trees["siw"], protocol=protocol, fold=fold)
    assert _by_split(df, "subject") == {"train": {"siw_003", "siw_006", "siw_008"},
                                        "test": {"siw_090", "siw_101", "siw_120"}}
    v = _videos(df)
    att = {s: sorted(g.loc[g["label"] == "attack", "attack_type"].unique()) for s, g in v.groupby("split")}
    assert (v["label"] == "bona_fide").groupby(v["split"]).sum().to_dict() == {"train": 6, "test": 6}
    replay = [f"replay{m}" for m in range(1, 5)]
    if protocol == 1:
        want = {s: ["print1", "print2", *replay] for s in ("train", "test")}
    elif protocol == 2:
        want = {"train": [r for r in replay if r != f"replay{fold}"], "test": [f"replay{fold}"]}
    else:
        prints = ["print1", "print2"]
        want = {"train": prints, "test": replay} if fold == 1 else {"train": replay, "test": prints}
    assert att == want
    assert len(v) == 2 * 3 * 2 + 3 * sum(len(x) for x in want.values())


# ------------------------------------------------------------------------------------------ CASIA-FASD and MSU-MFSD


@pytest.mark.parametrize("protocol", ["official", "grandtest"])
def test_casia_every_protocol(trees, protocol):
    """official: releases as splits; grandtest: train subject 16 in dev; 12 clips per subject, 4 species."""
    df = _load("casia_fasd", trees["casia_fasd"], protocol=protocol)
    train = {"casia_train_01", "casia_train_02", "casia_train_16"}
    test = {"casia_test_01", "casia_test_02", "casia_test_03"}
    want = {"train": train, "test": test} if protocol == "official" else {
        "train": train - {"casia_train_16"}, "dev": {"casia_train_16"}, "test": test}
    assert _by_split(df, "subject") == want
    v = _videos(df)
    assert len(v) == 72 and v.groupby("subject").size().eq(12).all()
    assert v.groupby("species").size().to_dict() == {"cutout": 18, "none": 18, "print_photo": 18, "video_replay": 18}
    assert set(v["quality"]) == {"low", "normal", "high"}


def test_msu_official(trees):
    """Client 005 trains, 022 tests; the 2 real videos (300/301 frames) and 6 generated 4-frame attacks."""
    df = _load("msu_mfsd", trees["msu_mfsd"], protocol="official", frames={"mode": "uniform", "n": 4})
    assert _by_split(df, "subject") == {"train": {"msu_005"}, "test": {"msu_022"}}
    v = _videos(df).set_index("video")
    assert len(v) == 8 and df.groupby("video").size().eq(4).all()
    assert v.loc["real/real_client005_android_SD_scene01.mp4", ["label", "split"]].tolist() == ["bona_fide", "train"]
    assert v.loc["attack/attack_client022_android_SD_printed_photo_scene01.mp4", "species"] == "print_photo"
    assert v.loc["attack/attack_client022_android_SD_ipad_video_scene01.mp4", "species"] == "video_replay"
    assert sorted(v["video_frames"].unique()) == [4, 300, 301]


def test_msu_tree_scores_with_the_real_models(trees, cpu_models):
    """MTCNN + dlib ResNet + MiniFASNet v2 on CPU, no cache: every frame of every video has a face."""
    from tests.conftest import score_reference

    df = _load("msu_mfsd", trees["msu_mfsd"], protocol="official", frames={"mode": "uniform", "n": 4})
    table = score_reference(df, cpu_models)
    s = table.samples
    assert len(s) == 32 and set(s["status"]) == {"scored"}, s[["sample_id", "status", "reason"]]
    assert all(math.isfinite(x) for x in s["pad_score"])
