"""A malformed score file stops in one line naming the file, the row (line number, header = 1) and the column."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from harness.data.score_files import ScoreFileError, load_scores

HEADER = "id,subject,ref_subject,label,species,presentation,score\n"
GOOD = ("a1,p1,,bona_fide,,,0.9\n"
        "a2,p1,,attack,print_photo,,0.1\n"
        "a1,p1,p1,bona_fide,,,-0.2\n")
STATUS_HEADER = "id,subject,ref_subject,label,species,presentation,score,status,reason\n"

CSV_CASES = {
    "missing column": ("id,subject,ref_subject,label,species,presentation\n" "a1,p1,,bona_fide,,\n", 1, "score"),
    "non-numeric score": (HEADER + GOOD + "a3,p2,,bona_fide,,,high\n", 5, "score"),
    "NaN score": (HEADER + GOOD + "a3,p2,,bona_fide,,,nan\n", 5, "score"),
    "infinite score": (HEADER + GOOD + "a3,p2,,bona_fide,,,inf\n", 5, "score"),
    "unknown label": (HEADER + GOOD + "a3,p2,,live,,,0.5\n", 5, "label"),
    "duplicate PAD id": (HEADER + GOOD + "a2,p1,,attack,print_photo,,0.2\n", 5, "id"),
    "duplicate comparison": (HEADER + GOOD + "a1,p1,p1,bona_fide,,,-0.3\n", 5, "id"),
    "misspelt species": (HEADER + GOOD + "a3,p2,,attack,prnt_photo,,0.5\n", 5, "species"),
    "short row": (HEADER + GOOD + "a3,p2,,bona_fide\n", 5, "score"),
    "empty score without status": (HEADER + GOOD + "a3,p2,,bona_fide,,,\n", 5, "score"),
    "empty score, status scored": (STATUS_HEADER + "a1,p1,,bona_fide,,,,scored,\n", 2, "score"),
    "score on an fta row": (STATUS_HEADER + "a1,p1,,bona_fide,,,0.4,fta,no face\n", 2, "score"),
    "unknown status": (STATUS_HEADER + "a1,p1,,bona_fide,,,0.4,failed,\n", 2, "status"),
    "fta PAD row, scored comparison": (STATUS_HEADER + "a1,p1,,bona_fide,,,,fta,no face\n"
                                       "a1,p1,p1,bona_fide,,,0.7,,\n", 3, "status"),
    "bad partition": ("id,subject,ref_subject,label,species,presentation,score,partition\n"
                      "a1,p1,,bona_fide,,,0.9,test\n", 2, "partition"),
}

BOB_CASES = {
    "bob line with 3 fields": ("p1 p1 s1 0.9\np1 attack s2 0.1\np1 p1 s3\n", 3, "score"),
    "bob 5 then 4 fields": ("p1 m1 p1 s1 0.9\np1 p1 s2 0.8\n", 2, "score"),
    "bob NaN score": ("p1 p1 s1 0.9\np2 p2 s2 NaN\n", 2, "score"),
    "bob duplicate test_label": ("# a comment\np1 p1 s1 0.9\n\np1 p1 s1 0.8\n", 4, "test_label"),
}


def _sha256(path) -> str:
    """sha256 of the file's bytes, computed here (the independent reference)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_malformed_csv_names_row_and_column(tmp_path, case):
    text, row, col = CSV_CASES[case]
    path = tmp_path / "vendor.csv"
    path.write_text(text)
    with pytest.raises(ScoreFileError) as e:
        load_scores(str(path))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{path}: row {row}") and f"column {col!r}" in msg, msg


@pytest.mark.parametrize("case", sorted(BOB_CASES))
def test_malformed_bob_file_names_row_and_column(tmp_path, case):
    text, row, col = BOB_CASES[case]
    path = tmp_path / "scores-dev"
    path.write_text(text)
    with pytest.raises(ScoreFileError) as e:
        load_scores(str(path))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{path}: row {row}") and f"column {col!r}" in msg, msg


def test_well_formed_files_read_as_documented(tmp_path):
    """The documented CSV and a bob PAD file: rows, kinds, species (empty attack species -> unknown), identity."""
    from harness.data.score_files import imported

    path = tmp_path / "vendor.csv"
    path.write_text(HEADER + GOOD + "a3,p2,,attack,,,0.05\n" + "a2,p1,p1,attack,print_photo,,-0.6\n")
    m = load_scores(str(path), vendor={"name": "acme"})
    assert list(m["sample_id"]) == ["a1", "a2", "a3"] and list(m["imported_pad_score"]) == [0.9, 0.1, 0.05]
    assert list(m["species"]) == ["none", "print_photo", "unknown"] and m["has_pad"].all()
    block = imported(m)
    assert list(block["trials"]["match_score"]) == [-0.2, -0.6]
    assert list(block["trials"]["label"]) == ["bona_fide", "attack"]
    assert block["files"][0]["sha256"] == _sha256(path) and block["vendor"] == {"name": "acme"}
    bob = tmp_path / "scores-pad"
    bob.write_text("p1 p1 s1 0.9\np1 attack s2 0.1\np2 attack s3 0.2\n")
    species = tmp_path / "species.csv"
    species.write_text("test_label,species\ns3,screen_replay\n")
    m = load_scores(str(bob), species_map=str(species))
    assert list(m["label"]) == ["bona_fide", "attack", "attack"]
    assert list(m["species"]) == ["none", "unknown", "screen_replay"] and list(m["subject"]) == ["p1", "p1", "p2"]


def test_failures_to_acquire_read_as_documented(tmp_path):
    """``status=fta`` rows (empty score): the sample is ``fta`` with its reason (default when none is given), its
    comparison rows are kept as ``fta`` (not comparisons); other rows stay ``scored``."""
    from harness.data.score_files import FTA_REASON, imported
    from harness.vendor_scores import vendor_scoring

    path = tmp_path / "vendor.csv"
    path.write_text(STATUS_HEADER + "a1,p1,,bona_fide,,,0.9,scored,\n" "a2,p1,,attack,print_photo,,,fta,no face found\n"
                    "a3,p2,,bona_fide,,,,fta,\n" "a1,p1,p2,bona_fide,,,-0.2,,\n" "a3,p2,p2,bona_fide,,,,fta,\n"
                    "a4,p2,p2,bona_fide,,,0.8,,\n" "a5,p1,p1,bona_fide,,,,fta,capture failed\n")
    m = load_scores(str(path))
    assert list(m["imported_status"]) == ["scored", "fta", "fta", "scored", "fta"]
    assert list(m["imported_reason"]) == ["", "no face found", FTA_REASON, "", "capture failed"]
    assert list(m["has_pad"]) == [True, True, True, False, False]
    assert list(imported(m)["trials"]["status"]) == ["scored", "fta", "scored", "fta"]
    protocol = {"partition": "subjects", "dev_fraction": 0.5, "seed": 0}
    table, tr, *_ = vendor_scoring(m, protocol)
    assert table.counts() == {"scored": 2, "fta": 3, "rejected": 0, "total": 5}
    s = table.samples.set_index("sample_id")
    assert s.loc["a2", "reason"] == "no face found" and s.loc["a2", "faces"] == 0 and pd.isna(s.loc["a2", "pad_score"])
    assert list(tr.trials["probe_id"]) == ["a1", "a4"]  # failures to acquire yield no comparison
    assert sorted(tr.probes["sample_id"]) == ["a1", "a2", "a3"]  # the samples with a PAD row, failed or not
    assert tr.counts["imported_comparisons"] == 4 and tr.counts["imported_fta_comparison_rows"] == 2
    assert tr.counts["enrolled_subjects"] == 2 and table.stats["imported_fta_samples"] == 3


@pytest.mark.parametrize("kind,text,needle", [
    ("PAD only", "id,subject,ref_subject,label,species,presentation,score\n"
                 "a1,p1,,bona_fide,,,0.9\na2,p2,,attack,print_photo,,0.1\n", "PAD scores only"),
    ("comparisons only", "id,subject,ref_subject,label,species,presentation,score\n"
                         "a1,p1,p1,bona_fide,,,0.7\na1,p1,p2,bona_fide,,,-0.2\n", "comparison scores only")])
def test_scores_of_one_kind_only_are_refused_in_one_line(tmp_path, kind, text, needle):
    from harness.vendor_scores import vendor_scoring

    path = tmp_path / "vendor.csv"
    path.write_text(text)
    with pytest.raises(ScoreFileError, match=f"^vendor.csv: {needle}") as e:
        vendor_scoring(load_scores(str(path)), {"name": "first_k", "partition": "subjects", "dev_fraction": 0.5})
    assert "\n" not in str(e.value) and "not supported yet" in str(e.value)
