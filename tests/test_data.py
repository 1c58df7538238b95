"""Manifests: NUAA (labels.csv and official lists), generic CSV, and the errors a user meets."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.data.registry import load_dataset
from harness.data.sample import ManifestError, validate_manifest
from harness.paths import DataMissingError

pytestmark = pytest.mark.shared


def test_nuaa_labels_csv_counts(shared):
    df = load_dataset("nuaa", root=str(shared / "datasets/nuaa"))
    assert len(df) == 2563
    assert df["subject"].nunique() == 16
    c = df.groupby(["split", "label"]).size().to_dict()
    assert c == {("test", "attack"): 1180, ("test", "bona_fide"): 676, ("train", "attack"): 353, ("train", "bona_fide"): 354}
    assert set(df.loc[df["label"] == "attack", "species"]) == {"print_photo"}
    # official protocol: train = sessions 01-02, test = session 03
    assert set(df.loc[df["split"] == "test", "session"].astype(int)) == {3}
    assert df["sample_id"].is_unique and df["path"].map(lambda p: p.startswith("/")).all()


def test_nuaa_smoke_list(shared):
    df = load_dataset("nuaa", root=str(shared / "datasets/nuaa"), list="ci_smoke.csv")
    assert len(df) == 32
    assert df.groupby("subject").size().to_dict() == {f"nuaa_{s}": 8 for s in ("0001", "0004", "0009", "0014")}


def test_nuaa_official_lists_parse_file_name_codes(shared):
    df = load_dataset("nuaa", root=str(shared / "datasets/nuaa"), list=None)
    # the lists name every file of the full database; the shared copy holds 1 in 5 frames
    row = df[df["sample_id"] == "ClientRaw/0010/0010_01_05_03_115.jpg"].iloc[0]
    assert (row["subject"], row["split"], row["glasses"], row["pos_code"], row["session"], row["frame_no"]) == (
        "nuaa_0010", "test", "no_glasses", "05", "03", 115)
    assert df["path"].map(lambda p: __import__("os").path.exists(p)).sum() == 2563


def test_missing_dataset_root_names_path_and_how_to_obtain(tmp_path):
    with pytest.raises(DataMissingError, match=str(tmp_path / "nope")) as e:
        load_dataset("nuaa", root=str(tmp_path / "nope"))
    assert "NUAA" in str(e.value) and "datasets/README.md" in str(e.value)


def test_unknown_dataset_names_config_key():
    with pytest.raises(KeyError, match="dataset.name"):
        load_dataset("no_such_db")


def test_csv_manifest_faceapi(shared):
    df = load_dataset("csv", csv=str(shared / "datasets/faceapi_bbt/labels.csv"))
    assert len(df) == 40 and df["subject"].nunique() == 8 and (df["label"] == "bona_fide").all()
    assert (df["split"] == "test").all() and (df["frame"] == -1).all()


def test_csv_manifest_errors_name_the_file(tmp_path):
    bad = tmp_path / "m.csv"
    bad.write_text("path,subject,label\na.jpg,s1,live\n")
    with pytest.raises(ManifestError, match=r"m\.csv.*unknown label"):
        load_dataset("csv", csv=str(bad))
    bad.write_text("path,label\na.jpg,bona_fide\n")
    with pytest.raises(ManifestError, match=r"m\.csv.*missing column 'subject'"):
        load_dataset("csv", csv=str(bad))
    bad.write_text("path,subject,label,attack_type\na.jpg,s1,attack,none\n")
    with pytest.raises(ManifestError, match="label and species disagree"):
        load_dataset("csv", csv=str(bad))


def test_validate_rejects_unknown_species():
    df = pd.DataFrame([dict(sample_id="a", path="/a", frame=-1, subject="s", label="attack", species="hologram", split="test")])
    with pytest.raises(ManifestError, match="hologram"):
        validate_manifest(df)
