"""Seeded subject-disjoint splits, subject-leak reports, and ``python -m harness.data.check``."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.data import check
from harness.data.splits import SubjectLeakError, check_subject_disjoint, find_subject_leaks, seeded_subject_split
from tests.data import fakes


@pytest.mark.parametrize("n,frac,seed", [(7, 0.5, 0), (10, 0.3, 4), (1, 0.5, 1), (25, 0.5, 123)])
def test_seeded_split_is_the_trials_partition(n, frac, seed):
    from harness.protocols.trials import subject_partition

    subs = [f"s{i:02d}" for i in range(n)][::-1]
    assert seeded_subject_split(subs, frac, seed) == subject_partition(subs, frac, seed)


def test_subject_leak_names_subject_splits_and_files():
    df = pd.DataFrame({"subject": ["a", "a", "a", "b"], "split": ["train", "train", "test", "test"],
                       "path": ["/d/train/a1.avi", "/d/train/a1.avi", "/d/test/a9.avi", "/d/test/b1.avi"],
                       "video": ["train/a1.avi", "train/a1.avi", "test/a9.avi", "test/b1.avi"]})
    (leak,) = find_subject_leaks(df)
    assert leak.kind == "subject_leak" and set(leak.paths) == {"/d/train/a1.avi", "/d/test/a9.avi"}
    assert leak.message == "subject a appears in splits test (1 file(s), e.g. test/a9.avi) and train (1 file(s), e.g. train/a1.avi)"
    with pytest.raises(SubjectLeakError, match="subject a appears in splits test"):
        check_subject_disjoint(df)
    check_subject_disjoint(df[df["subject"] == "b"])


def _run(capsys, *args):
    rc = check.main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_check_cli_summary_and_problems_with_paths(tree, capsys):
    root = fakes.make_oulu(tree)
    (root / "Test_files/2_1_36_5.avi").unlink()
    (root / "Dev_files/1_1_21_2.avi").write_bytes(b"\x00" * 512)
    rc, out, _ = _run(capsys, "check", "dataset=oulu_npu", f"dataset.root={root}", "dataset.frames.n=2")
    assert rc == 1
    table = out.split("samples per attack species")[0]
    assert "subjects  bona_fide  attack  samples  images  videos  video_frames  sampled_frames" in table
    lines = {ln.split()[0]: ln.split()[1:] for ln in table.splitlines()[3:] if ln.strip()}
    # split: subjects, bona fide, attack, samples, images, videos, their frames, sampled frames
    assert lines["train"] == ["1", "4", "16", "20", "0", "10", "100", "20"]
    assert lines["test"] == ["1", "4", "15", "19", "0", "10", "90", "19"]  # the missing video stays in as one row
    assert lines["all"][:2] == ["3", "12"]
    assert "print_photo" in out and "video_replay" in out and "replay2" in out
    assert "2 problem(s): missing_file 1, unreadable_video 1" in out
    assert f"{root}/Test_files/2_1_36_5.avi" in out and f"{root}/Dev_files/1_1_21_2.avi" in out


def test_check_cli_clean_tree_missing_root_and_bad_override(tree, tmp_path, capsys):
    root = fakes.make_siw(tree)
    rc, out, _ = _run(capsys, "dataset=siw", f"dataset.root={root}", "dataset.protocol=3", "dataset.fold=1")
    assert rc == 0 and "no problems found" in out
    rc, _, err = _run(capsys, "dataset=siw", f"dataset.root={tmp_path / 'absent'}")
    assert rc == 2 and f"SiW dataset not found at {tmp_path / 'absent'}" in err and "datasets/README.md" in err
    rc, _, err = _run(capsys, "dataset=no_such_db")
    assert rc == 2 and "no_such_db" in err


@pytest.mark.shared
def test_check_cli_on_shared_nuaa_and_msu(capsys):
    rc, out, _ = _run(capsys, "dataset=nuaa")
    assert rc == 0 and "no problems found" in out
    assert out.splitlines()[-1] == "no problems found"
    all_row = next(ln for ln in out.splitlines() if ln.startswith("all "))
    assert all_row.split()[1:7] == ["16", "1030", "1533", "2563", "2563", "0"]
    rc, out, _ = _run(capsys, "dataset=msu_mfsd_sample")
    assert rc == 1
    all_row = next(ln for ln in out.splitlines() if ln.startswith("all "))
    assert all_row.split()[1:] == ["2", "10", "0", "10", "0", "2", "601", "10"]
    assert "no attack samples in split 'train'" in out
