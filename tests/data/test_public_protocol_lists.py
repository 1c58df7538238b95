"""The adapters against the databases' public protocol lists (``harness/data/protocol_lists/<database>/``, from the
BSD-licensed ``bob.db.*`` packages on PyPI; see each folder's SOURCE.md).

Each test writes a tree FROM the public list (every file it names, as a copy of one tiny 1-frame video) and
checks that the adapter's manifest holds exactly the list's files, in the list's split, per protocol.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

import pytest

from harness.data.registry import load_dataset
from tests.data.fakes import encode_video

PROTO = Path(__file__).resolve().parents[2] / "harness" / "data" / "protocol_lists"


@pytest.fixture(scope="module")
def one_frame(tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("media1")
    return {ext: encode_video(d / f"v{ext}", n_frames=1).read_bytes() for ext in (".avi", ".mov", ".mp4")}


def _write(root: Path, rels, data: bytes) -> None:
    for rel in rels:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def _videos(df) -> dict[str, str]:
    """{video path relative to the root: split} of a manifest (one frame per video)."""
    v = df.drop_duplicates("video")
    assert (v["reject_code"].fillna("") == "").all() if "reject_code" in v else True
    return dict(zip(v["video"], v["split"]))


# ------------------------------------------------------------------------------------------ Replay-Mobile

RM_SPLIT = {"train": "train", "devel": "dev", "test": "test"}


def _rm_rows():
    with open(PROTO / "replay_mobile" / "replaymobile_files.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_replay_mobile_public_list_is_the_full_database():
    rows = _rm_rows()
    assert len(rows) == 1190 and len({r["path"] for r in rows}) == 1190
    clients = {r["client_id"]: r["client_set"] for r in rows}
    assert sorted(list(clients.values()).count(s) for s in ("train", "devel", "test")) == [12, 12, 16]
    for r in rows:  # every path lies in its client's set folder (enroll/<set>/... or <set>/...)
        parts = r["path"].split("/")
        assert (parts[1] if parts[0] == "enroll" else parts[0]) == r["client_set"], r["path"]


@pytest.fixture(scope="module")
def rm_root(tmp_path_factory, one_frame):
    root = tmp_path_factory.mktemp("replaymobile_public")
    _write(root, (r["path"] + ".mov" for r in _rm_rows()), one_frame[".mov"])
    return root


@pytest.mark.parametrize("protocol", ["grandtest", "print", "mattescreen"])
def test_replay_mobile_adapter_matches_public_protocol(rm_root, protocol):
    rows = _rm_rows()
    want = {r["path"] + ".mov": RM_SPLIT[r["client_set"]] for r in rows if protocol in r["protocols"].split(";")}
    df = load_dataset("replay_mobile", root=str(rm_root), protocol=protocol, enrol=False, frames="uniform:1")
    assert df.attrs["problems"] == []
    got = _videos(df)
    assert sorted(set(got) - set(want)) == [] and sorted(set(want) - set(got)) == []
    assert {k: v for k, v in got.items() if want[k] != v} == {}
    # labels, devices, lights, supports as the database's own tables give them
    by = {r["path"] + ".mov": r for r in rows}
    v = df.drop_duplicates("video")
    for video, label, dev, light, sup, pai, subject in zip(v["video"], v["label"], v["device"], v["lighting"],
                                                           v["support"], v["pai"], v["subject"]):
        r = by[video]
        assert label == ("bona_fide" if r["class"] == "real" else "attack"), video
        assert dev == r["device"] and light == r["light"], video
        assert subject == f"replaymobile_{int(r['client_id']):03d}", video
        if r["class"] == "attack":
            assert (sup, pai) == (r["attack_support"], r["attack_device"]), video


def test_replay_mobile_enrolment_videos_are_extra_to_the_protocol(rm_root):
    """Harness design: enrol=True (default) adds the enrolment videos, which the public PAD protocols do not
    hold, as bona fide rows with purpose=enroll; they must be exactly the database's enrolment files."""
    rows = _rm_rows()
    proto = {r["path"] + ".mov" for r in rows if "grandtest" in r["protocols"].split(";")}
    enroll = {r["path"] + ".mov": RM_SPLIT[r["client_set"]] for r in rows if r["purpose"] == "enroll"}
    assert len(enroll) == 160 and not proto & set(enroll)
    df = load_dataset("replay_mobile", root=str(rm_root), protocol="grandtest", frames="uniform:1")
    got = _videos(df)
    assert {k: v for k, v in got.items() if k not in proto} == enroll
    v = df.drop_duplicates("video").set_index("video")
    assert set(v.loc[sorted(enroll), "purpose"]) == {"enroll"}


# ------------------------------------------------------------------------------------------ CASIA-FASD

def _casia_index() -> list[str]:
    return (PROTO / "casia_fasd" / "face_locations_index.txt").read_text().split()


def _casia_folds() -> dict[str, int]:
    out = {}
    for name in ("newfolds_real.txt", "newfolds_cut_warped_video_attack.txt"):
        for line in (PROTO / "casia_fasd" / name).read_text().splitlines():
            stem, fold = line.rstrip("\t").split("\t")
            assert stem not in out
            out[stem] = int(fold)
    return out


@pytest.fixture(scope="module")
def casia_root(tmp_path_factory, one_frame):
    root = tmp_path_factory.mktemp("casia_public")
    _write(root, (s + ".avi" for s in _casia_index()), one_frame[".avi"])
    return root


def test_casia_fasd_official_matches_public_file_index(casia_root):
    idx = _casia_index()
    assert len(idx) == 600
    df = load_dataset("casia_fasd", root=str(casia_root), protocol="official", frames="uniform:1")
    assert df.attrs["problems"] == []
    assert _videos(df) == {s + ".avi": s.split("_")[0] for s in idx}
    subj = df.drop_duplicates("subject").groupby("split")["subject"].nunique().to_dict()
    assert subj == {"train": 20, "test": 30}


def test_casia_fasd_folds_cover_exactly_the_train_release():
    folds = _casia_folds()
    assert set(folds) == {s for s in _casia_index() if s.startswith("train_release/")}
    by_subject = defaultdict(set)
    for stem, fold in folds.items():
        by_subject[int(stem.split("/")[1])].add(fold)
    assert all(len(f) == 1 for f in by_subject.values())  # folds are subject-disjoint


def test_casia_fasd_grandtest_matches_public_default_fold(casia_root):
    """bob.db.casia_fasd's spoofing interface (grandtest, default fold_no=1 of newfolds/): devel = the
    train_release files of fold 1, train = the other train_release files, test = test_release. (The adapter once
    re-derived it as subjects 16-20; it now reads the list.)"""
    folds = _casia_folds()
    want = {s + ".avi": ("test" if s.startswith("test_release/") else "dev" if folds[s] == 1 else "train")
            for s in _casia_index()}
    df = load_dataset("casia_fasd", root=str(casia_root), protocol="grandtest", frames="uniform:1")
    got = _videos(df)
    assert set(got) == set(want)
    dev_subjects = lambda m: sorted({int(k.split("/")[1]) for k, v in m.items() if v == "dev"})  # noqa: E731
    assert dev_subjects(got) == dev_subjects(want)  # public: [10, 14, 16, 20]


# ------------------------------------------------------------------------------------------ MSU-MFSD

MSU = PROTO / "msu_mfsd"


def _msu_files() -> list[str]:
    out = []
    for name in ("msu_mfsd_mod_realvids.txt", "msu_mfsd_mod_attackvids.txt"):
        out += [ln.strip()[2:] for ln in (MSU / name).read_text().splitlines() if ln.strip()]
    return out


def _msu_client(rel: str) -> int:
    return int(re.search(r"_client(\d+)_", rel).group(1))


@pytest.fixture(scope="module")
def msu_root(tmp_path_factory, one_frame):
    root = tmp_path_factory.mktemp("msu_public")
    for rel in _msu_files():
        _write(root, [rel], one_frame[Path(rel).suffix.lower()])
    for f in MSU.glob("*.txt"):
        (root / f.name).write_bytes(f.read_bytes())
    return root


def test_msu_mfsd_official_matches_public_subject_lists(msu_root):
    split = {}
    for s in ("train", "test"):
        for tok in (MSU / f"{s}_sub_list.txt").read_text().split():
            split[int(tok)] = s
    assert len(split) == 35 and list(split.values()).count("train") == 15  # 15 train, 20 test subjects
    files = _msu_files()
    assert len(files) == 280
    df = load_dataset("msu_mfsd", root=str(msu_root), protocol="official", frames="uniform:1")
    assert df.attrs["problems"] == []
    assert _videos(df) == {rel: split[_msu_client(rel)] for rel in files}


@pytest.mark.parametrize("fold", [1, 2, 3, 4, 5])
def test_msu_mfsd_folds_match_public_fold_files(msu_root, fold):
    split = {}
    for ln in (MSU / f"clients_fold{fold}.txt").read_text().splitlines():
        if ln.strip():
            n, s = ln.split()
            split[int(n)] = {"devel": "dev"}.get(s, s)
    # bob.db.msu_mfsd_mod 2.2.9: every fold file names 10 train, 10 devel and 15 test clients
    assert sorted(list(split.values()).count(s) for s in ("train", "dev", "test")) == [10, 10, 15]
    df = load_dataset("msu_mfsd", root=str(msu_root), protocol=f"fold{fold}", frames="uniform:1")
    assert df.attrs["problems"] == []
    assert _videos(df) == {rel: split[_msu_client(rel)] for rel in _msu_files() if _msu_client(rel) in split}
