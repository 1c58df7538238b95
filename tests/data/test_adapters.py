"""Each database adapter on a tiny generated tree with the database's exact naming and protocol files, and the
errors a user meets: missing root, wrong layout, missing file, empty class, unreadable video, subject leak."""

from __future__ import annotations

import json
import re
import shutil
import warnings

import pytest

from harness.data.common import DatasetProblemsError, LayoutError, problems_of
from harness.data.lfw import lfw_pairs
from harness.data.registry import load_dataset
from harness.data.sample import SPECIES
from harness.paths import DataMissingError
from tests.data import fakes

U3 = {"mode": "uniform", "n": 3}


def _load(name, root, **kw):
    kw.setdefault("frames", U3)
    return load_dataset(name, root=str(root), **kw)


def _common_checks(df):
    assert df["sample_id"].is_unique
    assert df["path"].map(lambda p: p.startswith("/")).all()
    assert set(df["species"]) <= set(SPECIES)
    assert df.attrs["problems"] == []


def _problems(name, root, **kw):
    """Load with on_problem=error, expect DatasetProblemsError; return it."""
    with pytest.raises(DatasetProblemsError) as e:
        _load(name, root, **kw)
    return e.value


# ------------------------------------------------------------------------------------------ CASIA-FASD

def test_casia_fasd_clips_quality_species_and_protocols(tree):
    root = fakes.make_casia(tree, train=(1, 16), test=(1,))
    df = _load("casia_fasd", root)
    _common_checks(df)
    assert len(df) == 3 * 12 * 3  # 3 subjects x 12 clips x 3 frames
    assert set(df["subject"]) == {"casia_train_01", "casia_train_16", "casia_test_01"}  # releases number separately
    vid = df.drop_duplicates("video").set_index("video")
    assert vid.loc["train_release/1/1.avi", ["label", "quality"]].tolist() == ["bona_fide", "normal"]
    assert vid.loc["train_release/1/HR_1.avi", ["label", "quality", "device"]].tolist() == ["bona_fide", "high", "sony_nex5"]
    assert vid.loc["train_release/1/4.avi", ["species", "attack_type", "quality"]].tolist() == ["print_photo", "warped_photo", "low"]
    assert vid.loc["test_release/1/HR_3.avi", ["species", "attack_type", "split"]].tolist() == ["cutout", "cut_photo", "test"]
    assert vid.loc["train_release/16/8.avi", ["species", "quality"]].tolist() == ["video_replay", "low"]
    assert sorted(df["frame"].unique()) == [1, 5, 8] and (df["video_frames"] == 10).all()
    g = _load("casia_fasd", root, protocol="grandtest")  # bob.db.casia_fasd newfolds fold 1 (10, 14, 16, 20) is dev
    assert g.groupby("split")["subject"].unique().map(list).to_dict() == {
        "dev": ["casia_train_16"], "test": ["casia_test_01"], "train": ["casia_train_01"]}
    with pytest.raises(ValueError, match="official.*grandtest"):
        _load("casia_fasd", root, protocol="overall")


def test_casia_fasd_wrong_layout_and_missing_clip(tree):
    root = fakes.make_casia(tree)
    (root / "train_release/2/HR_4.avi").unlink()
    err = _problems("casia_fasd", root)
    assert any(p.kind == "missing_file" and p.paths[0].endswith("train_release/2/HR_4.avi") for p in err.problems)
    assert "train_release/2/HR_4.avi" in str(err)
    shutil.rmtree(root / "test_release")
    with pytest.raises(LayoutError, match=re.escape(str(root / "test_release")) + ".*CBSR"):
        _load("casia_fasd", root)


# ------------------------------------------------------------------------------------------ Replay-Attack

def test_replay_attack_layout_species_enrolment_and_protocols(tree):
    root = fakes.make_replay_attack(tree)
    df = _load("replay_attack", root, frames="uniform:1")
    _common_checks(df)
    vid = df.set_index("video")
    assert len(df) == 3 * 26  # per client: 4 real + 20 attacks + 2 enrolment
    assert set(df["split"]) == {"train", "dev", "test"}  # devel -> dev
    r = vid.loc["devel/real/client003_session01_webcam_authenticate_adverse_2.mov"]
    assert (r["subject"], r["split"], r["lighting"], r["purpose"], r["take"]) == ("replay_003", "dev", "adverse", "authenticate", "2")
    a = vid.loc["test/attack/hand/attack_print_client101_session01_highdef_photo_controlled.mov"]
    assert (a["species"], a["support"], a["pai"], a["attack_type"]) == ("print_photo", "hand", "print", "print_photo")
    assert vid.loc["train/attack/fixed/attack_mobile_client001_session01_mobile_photo_adverse.mov", "species"] == "screen_replay"
    assert vid.loc["train/attack/fixed/attack_highdef_client001_session01_highdef_video_adverse.mov", "species"] == "video_replay"
    e = vid.loc["enroll/test/client101_session01_webcam_enroll_controlled.mov"]
    assert (e["label"], e["purpose"], e["split"]) == ("bona_fide", "enroll", "test")
    assert df.groupby("purpose").size().to_dict() == {"attack": 60, "authenticate": 12, "enroll": 6}
    # the database's attack subsets
    counts = {p: int((_load("replay_attack", root, frames="uniform:1", protocol=p)["label"] == "attack").sum())
              for p in ("print", "mobile", "highdef", "photo", "video", "digitalphoto")}
    assert counts == {"print": 12, "mobile": 24, "highdef": 24, "photo": 36, "video": 24, "digitalphoto": 24}
    fixed = _load("replay_attack", root, frames="uniform:1", support="fixed", enrol=False)
    assert set(fixed.loc[fixed["label"] == "attack", "support"]) == {"fixed"} and "enroll" not in set(fixed["purpose"])


def test_replay_attack_missing_video_subject_leak_and_layout(tree):
    root = fakes.make_replay_attack(tree)
    gone = root / "test/attack/fixed/attack_mobile_client101_session01_mobile_video_adverse.mov"
    gone.unlink()
    # client 003 also filmed in train: a subject leak
    shutil.copy(root / "devel/real/client003_session01_webcam_authenticate_adverse_1.mov",
                root / "train/real/client003_session01_webcam_authenticate_adverse_1.mov")
    err = _problems("replay_attack", root, frames="uniform:1")
    kinds = {p.kind for p in err.problems}
    assert {"missing_file", "subject_leak"} <= kinds
    assert str(gone) in str(err)
    leak = next(p for p in err.problems if p.kind == "subject_leak")
    assert "replay_003" in leak.message and "dev" in leak.message and "train" in leak.message
    assert "client003_session01_webcam_authenticate_adverse_1.mov" in leak.message
    shutil.rmtree(root / "devel")
    with pytest.raises(LayoutError, match=r"devel/.*Idiap"):
        _load("replay_attack", root)


# ------------------------------------------------------------------------------------------ Replay-Mobile

def test_replay_mobile_names_devices_and_protocols(tree):
    root = fakes.make_replay_mobile(tree)
    df = _load("replay_mobile", root, frames="uniform:2")
    _common_checks(df)
    vid = df.drop_duplicates("video").set_index("video")
    a = vid.loc["devel/attack/attack_client005_session01_mattescreen_hand_tablet_photo_controlled.mov"]
    assert (a["species"], a["device"], a["support"], a["lighting"], a["split"]) == (
        "screen_replay", "tablet", "hand", "controlled", "dev")
    assert vid.loc["test/attack/attack_client007_session01_mattescreen_fixed_mobile_video_lightoff.mov", "species"] == "video_replay"
    assert vid.loc["enroll/train/client001_session01_enroll_tablet_lightoff.mov", "purpose"] == "enroll"
    assert len(df.drop_duplicates("video")) == 18
    p = _load("replay_mobile", root, frames="uniform:1", protocol="print", capture_device="mobile")
    assert set(p.loc[p["label"] == "attack", "species"]) == {"print_photo"} and set(p["device"]) == {"mobile"}


# ------------------------------------------------------------------------------------------ MSU-MFSD

def test_msu_mfsd_names_subject_lists_and_folds(tree):
    root = fakes.make_msu(tree)
    df = _load("msu_mfsd", root, frames="uniform:2")
    _common_checks(df)
    assert df.groupby("split")["subject"].unique().map(sorted).to_dict() == {"test": ["msu_001"], "train": ["msu_002", "msu_005"]}
    vid = df.drop_duplicates("video").set_index("video")
    a = vid.loc["attack/attack_client002_laptop_SD_printed_photo_scene01.mov"]
    assert (a["species"], a["device"], a["attack_type"], a["scenario"]) == ("print_photo", "laptop", "printed_photo", "scene01")
    assert vid.loc["attack/attack_client005_android_SD_iphone_video_scene01.mp4", "species"] == "video_replay"
    assert vid.loc["real/real_client001_android_SD_scene01.mp4", ["label", "split"]].tolist() == ["bona_fide", "test"]
    f1 = _load("msu_mfsd", root, frames="uniform:1", protocol="fold1")
    assert f1.groupby("split")["subject"].first().to_dict() == {"dev": "msu_005", "test": "msu_001", "train": "msu_002"}


def test_msu_mfsd_errors_name_files(tree):
    root = fakes.make_msu(tree)
    (root / "real/real_client005_laptop_SD_scene01.mov").unlink()  # listed in msu_mfsd_mod_realvids.txt
    (root / "test_sub_list.txt").write_text("01\r\n05")  # 05 is also a training subject
    err = _problems("msu_mfsd", root, frames="uniform:1")
    assert any(p.kind == "missing_file" and p.paths[0].endswith("real/real_client005_laptop_SD_scene01.mov")
               for p in err.problems)
    leak = next(p for p in err.problems if p.kind == "subject_leak")
    assert "subject 05" in leak.message and "train_sub_list.txt" in leak.message and "test_sub_list.txt" in leak.message
    (root / "train_sub_list.txt").unlink()
    with pytest.raises(LayoutError, match=r"train_sub_list\.txt.*MSU"):
        _load("msu_mfsd", root)


@pytest.mark.shared
def test_msu_mfsd_shared_sample(shared):
    """The two real videos of the shared copy: 5 frames each, train subjects; the missing attacks are reported."""
    root = shared / "datasets/msu_mfsd_sample"
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        df = load_dataset("msu_mfsd", root=str(root), file_lists=False, frames={"mode": "uniform", "n": 5},
                          on_problem="warn")
    assert any("no attack samples" in str(x.message) for x in w)
    assert len(df) == 10 and set(df["subject"]) == {"msu_005", "msu_022"} and set(df["split"]) == {"train"}
    assert df.groupby("video")["frame"].apply(list).to_dict() == {
        "real_client005_android_SD_scene01.mp4": [30, 90, 150, 210, 270],
        "real_client022_android_SD_scene01.mp4": [30, 90, 150, 210, 270]}
    assert sorted(df["video_frames"].unique()) == [300, 301]
    # with the full database's file lists the 278 absent videos are named
    with pytest.raises(DatasetProblemsError, match=r"(?s)281 problem\(s\).*real/real_client001_android_SD_scene01\.mp4"):
        load_dataset("msu_mfsd", root=str(root), frames="uniform:1")


# ------------------------------------------------------------------------------------------ OULU-NPU

def test_oulu_npu_protocol_files_and_codes(tree):
    root = fakes.make_oulu(tree)
    df = _load("oulu_npu", root, frames="uniform:2")
    _common_checks(df)
    assert len(df) == 30 * 2
    vid = df.drop_duplicates("video").set_index("video")
    r = vid.loc["Dev_files/2_1_21_3.avi"]
    assert (r["subject"], r["split"], r["species"], r["attack_type"], r["device"], r["session"]) == (
        "oulu_21", "dev", "print_photo", "print2", "htc_desire_eye", "1")
    assert vid.loc["Test_files/1_1_36_4.avi", ["species", "attack_type"]].tolist() == ["video_replay", "replay1"]
    assert vid.loc["Train_files/1_1_01_1.avi", "label"] == "bona_fide"
    p3 = _load("oulu_npu", root, frames="uniform:1", protocol=3, fold=1)
    assert set(p3.loc[p3["split"] == "test", "phone"]) == {"1"} and set(p3.loc[p3["split"] != "test", "phone"]) == {"2"}
    with pytest.raises(ValueError, match="dataset.fold"):
        _load("oulu_npu", root, protocol=4)


def test_oulu_npu_label_mismatch_missing_and_unreadable(tree):
    root = fakes.make_oulu(tree)
    lst = root / "Protocols/Protocol_1/Train.txt"
    lst.write_text(lst.read_text().replace("+1,1_1_01_1", "-1,1_1_01_1"))
    (root / "Test_files/2_1_36_5.avi").unlink()
    (root / "Dev_files/1_1_21_2.avi").write_bytes(b"\x00" * 4096)
    err = _problems("oulu_npu", root, frames="uniform:1")
    by = {p.kind: p for p in err.problems}
    assert set(by) == {"protocol_mismatch", "missing_file", "unreadable_video"}
    assert "1_1_01_1 is labelled -1 but file code 1" in by["protocol_mismatch"].message
    assert by["missing_file"].paths[0].endswith("Test_files/2_1_36_5.avi")
    assert "Dev_files/1_1_21_2.avi" in by["unreadable_video"].message
    # keep going: the broken files stay in as one row each (the engine rejects them, counted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = _load("oulu_npu", root, frames="uniform:1", on_problem="warn")
    assert len(df) == 30 and {p.kind for p in problems_of(df)} == set(by)
    assert df.set_index("video").loc["Dev_files/1_1_21_2.avi", "video_frames"] == 0
    shutil.rmtree(root / "Protocols")
    with pytest.raises(LayoutError, match=r"Protocols/Protocol_1.*Oulu"):
        _load("oulu_npu", root)


# ------------------------------------------------------------------------------------------ SiW

def test_siw_names_and_protocols(tree):
    root = fakes.make_siw(tree)
    df = _load("siw", root, frames="all")
    _common_checks(df)
    vid = df.drop_duplicates("video").set_index("video")
    s = vid.loc["Train/spoof/003/003-1-3-2-1.mov"]
    assert (s["subject"], s["species"], s["attack_type"], s["device"], s["medium"]) == (
        "siw_003", "video_replay", "replay2", "sensor1", "2")
    assert vid.loc["Test/spoof/090/090-1-2-1-1.mov", "species"] == "print_photo"
    # protocol 1 trains on the first 60 frames only (our clips have 10); protocol 1 test: all frames
    assert (df.groupby("split")["frame"].max() == 9).all()
    assert len(_load("siw", root, frames="all", protocol1_train_frames=4).query("split == 'train'")) == 8 * 4
    p2 = _load("siw", root, frames="uniform:1", protocol=2, fold=3)
    att = p2[p2["label"] == "attack"]
    assert set(att["species"]) == {"video_replay"}
    assert set(att.loc[att["split"] == "train", "medium"]) == {"1", "2", "4"} and set(att.loc[att["split"] == "test", "medium"]) == {"3"}
    p3 = _load("siw", root, frames="uniform:1", protocol=3, fold=2)
    assert set(p3.loc[(p3["label"] == "attack") & (p3["split"] == "train"), "species"]) == {"video_replay"}
    assert set(p3.loc[(p3["label"] == "attack") & (p3["split"] == "test"), "species"]) == {"print_photo"}


def test_siw_empty_class_and_misfiled_video(tree):
    root = fakes.make_siw(tree)
    for f in (root / "Test/live/090").iterdir():
        f.unlink()
    shutil.copy(root / "Train/spoof/003/003-1-2-1-1.mov", root / "Train/live/003/003-1-2-2-2.mov")
    err = _problems("siw", root, frames="uniform:1")
    msgs = "\n".join(str(p) for p in err.problems)
    assert "empty_class: subject folder " in msgs and "Test/live/090 holds no videos" in msgs
    assert "empty_class: no bona_fide samples in split 'test'" in msgs
    assert "protocol_mismatch: " in msgs and "Train/live/003/003-1-2-2-2.mov: type 2 (print) in the live/ folder" in msgs


# ------------------------------------------------------------------------------------------ CelebA-Spoof

def test_celeba_spoof_json_labels(tree):
    root = fakes.make_celeba_spoof(tree)
    df = _load("celeba_spoof", root)
    _common_checks(df)
    assert len(df) == 18 and (df["frame"] == -1).all()
    r = df.set_index("sample_id")
    assert r.loc["Data/train/10/spoof/000003.png", ["species", "attack_type", "lighting", "scenario"]].tolist() == [
        "paper_mask", "face_mask", "strong", "outdoor"]
    assert r.loc["Data/test/4980/spoof/000043.png", ["species", "attack_type", "lighting"]].tolist() == ["cutout", "region_mask", "dark"]
    assert r.loc["Data/train/11/spoof/000024.png", ["species", "attack_type", "lighting"]].tolist() == ["screen_replay", "pad", "back"]
    assert r.loc["Data/train/10/live/000001.jpg", ["label", "lighting", "subject"]].tolist() == ["bona_fide", "", "celeba_10"]
    assert df.groupby("split")["subject"].nunique().to_dict() == {"test": 1, "train": 2}


def test_celeba_spoof_inconsistent_label_missing_image_and_leak(tree):
    root = fakes.make_celeba_spoof(tree)
    lf = root / "metas/intra_test/test_label.json"
    lab = json.loads(lf.read_text())
    lab["Data/test/4980/live/000040.jpg"] = fakes.celeba_labels(3)  # a spoof type on a live image
    lab["Data/test/10/live/000099.jpg"] = fakes.celeba_labels(0)  # train subject 10 in test, file absent
    lf.write_text(json.dumps(lab))
    err = _problems("celeba_spoof", root)
    kinds = {p.kind for p in err.problems}
    assert kinds == {"protocol_mismatch", "missing_file", "subject_leak"}
    assert "Data/test/10/live/000099.jpg" in str(err) and "celeba_10" in str(err)


# ------------------------------------------------------------------------------------------ LFW

def test_lfw_pairs_and_folds(tree):
    root = fakes.make_lfw(tree)
    df = _load("lfw", root)
    _common_checks(df)
    assert len(df) == 6 and set(df["label"]) == {"bona_fide"}
    assert df.groupby("split")["subject"].unique().map(sorted).to_dict() == {
        "fold01": ["lfw_Alice_Smith", "lfw_Bob_Jones"], "fold02": ["lfw_Carol_King", "lfw_Dave_Lee"]}
    pairs = lfw_pairs(df)
    assert pairs.to_dict("records") == [
        {"fold": "fold01", "pair": 0, "a": "lfw/Alice_Smith/Alice_Smith_0001.jpg", "b": "lfw/Alice_Smith/Alice_Smith_0002.jpg", "same": True},
        {"fold": "fold01", "pair": 1, "a": "lfw/Alice_Smith/Alice_Smith_0001.jpg", "b": "lfw/Bob_Jones/Bob_Jones_0001.jpg", "same": False},
        {"fold": "fold02", "pair": 0, "a": "lfw/Carol_King/Carol_King_0001.jpg", "b": "lfw/Carol_King/Carol_King_0002.jpg", "same": True},
        {"fold": "fold02", "pair": 1, "a": "lfw/Carol_King/Carol_King_0002.jpg", "b": "lfw/Dave_Lee/Dave_Lee_0001.jpg", "same": False}]
    assert set(pairs["a"]) | set(pairs["b"]) == set(df["sample_id"])


def test_lfw_malformed_pairs_and_person_in_two_folds(tree):
    root = fakes.make_lfw(tree)
    (root / "pairs.txt").write_text("2\t1\nAlice_Smith\t1\t2\nAlice_Smith\t1\tBob_Jones\t1\n"
                                    "Carol_King\t1\t2\nBob_Jones\t1\tDave_Lee\t1\n")
    err = _problems("lfw", root)
    assert {p.kind for p in err.problems} == {"subject_leak"} and "Bob_Jones" in str(err)
    (root / "pairs.txt").write_text("2\t1\nAlice_Smith\t1\nAlice_Smith\t1\tBob_Jones\t1\nx\t1\t2\ny\t1\tz\t1\n")
    from harness.data.sample import ManifestError

    with pytest.raises(ManifestError, match=r"pairs\.txt: line 2 .*matched pair"):
        _load("lfw", root)


# ------------------------------------------------------------------------------------------ generic folder

def test_folder_layout_seeded_split(tree):
    from harness.data.splits import seeded_subject_split

    root = fakes.make_folder(tree)
    df = _load("folder", root, frames="uniform:2", seed=3)
    _common_checks(df)
    assert len(df) == 4 * 3 + 2 + 2  # 3 images per subject, 2 frames of each video
    part = seeded_subject_split(["alice", "bob", "carol", "dave"], 0.5, 3)
    assert dict(zip(df["subject"], df["split"])) == part and sorted(part.values()) == ["dev", "dev", "eval", "eval"]
    assert set(df.loc[df["label"] == "attack", "species"]) == {"print_photo", "screen_replay"}
    assert (df.loc[df["video"] != "", "frame"] >= 0).all()
    assert set(_load("folder", root, frames="uniform:1", split="test")["split"]) == {"test"}


def test_folder_layout_errors(tree):
    root = fakes.make_folder(tree)
    (root / "erin/bona_fide").mkdir(parents=True)  # empty class
    (root / "frank/attack/hologram").mkdir(parents=True)  # unknown species
    (root / "frank/attack/hologram/h.jpg").write_bytes(tree.media[".jpg"])
    (root / "carol/bona_fide/bad.mp4").write_bytes(b"not a video")
    err = _problems("folder", root, frames="uniform:1")
    by = {p.kind: str(p) for p in err.problems}
    assert "erin/bona_fide holds no images or videos" in by["empty_class"]
    assert "frank/attack/hologram" in by["unexpected_entry"] and "print_photo" in by["unexpected_entry"]
    assert "carol/bona_fide/bad.mp4" in by["unreadable_video"]


# ------------------------------------------------------------------------------------------ every adapter

ADAPTERS = ["casia_fasd", "replay_attack", "replay_mobile", "msu_mfsd", "oulu_npu", "siw", "celeba_spoof", "lfw", "folder"]


@pytest.mark.parametrize("name", ADAPTERS)
def test_missing_root_names_path_and_how_to_obtain(tmp_path, name):
    with pytest.raises(DataMissingError, match=re.escape(str(tmp_path / "nope"))) as e:
        load_dataset(name, root=str(tmp_path / "nope"))
    assert "datasets/README.md" in str(e.value)


@pytest.mark.parametrize("name", [a for a in ADAPTERS if a != "folder"])
def test_empty_root_is_a_layout_error(tmp_path, name):
    with pytest.raises(LayoutError, match=re.escape(str(tmp_path))):
        load_dataset(name, root=str(tmp_path))


def test_every_dataset_config_names_a_registered_adapter():
    from pathlib import Path

    import yaml

    from harness.data.registry import dataset_names

    conf = Path(__file__).resolve().parents[2] / "conf/dataset"
    names = {f.stem: yaml.safe_load(f.read_text())["name"] for f in conf.glob("*.yaml")}
    assert set(names.values()) <= set(dataset_names())
    assert {"casia_fasd", "replay_attack", "replay_mobile", "msu_mfsd", "msu_mfsd_sample", "oulu_npu", "siw",
            "celeba_spoof", "lfw", "folder"} <= set(names)
