"""Official protocol tables on synthetic per-video scores with known answers: the threshold at the equal-error point
of the threshold split, ISO rates on the test split through the one metrics function, the literature's ACER / HTER
labelled non-ISO, mean +- std over folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.protocol_tables import OFFICIAL, Database, SubProtocol, protocol_row, summarise, table_frame

DB = Database((SubProtocol("P3-1", group="P3"), SubProtocol("P3-2", group="P3")), "dev", literature="acer")


def _videos(split, bona, attacks, species="print_photo", people=4):
    """One row per video: ``bona`` bona fide scores and ``attacks`` attack scores, spread over ``people``."""
    rows = [dict(sample_id=f"{split}-b{i}", subject=f"{split}{i % people}", label="bona_fide", species="none",
                 split=split, status="scored", pad_score=float(s), n_frames=5) for i, s in enumerate(bona)]
    sp = species if isinstance(species, list) else [species] * len(attacks)
    rows += [dict(sample_id=f"{split}-a{i}", subject=f"{split}{i % people}", label="attack", species=sp[i],
                  split=split, status="scored", pad_score=float(s), n_frames=5) for i, s in enumerate(attacks)]
    return rows


def test_threshold_on_dev_rates_on_test_with_people_and_non_iso_labels():
    dev = _videos("dev", [0.6, 0.7, 0.8, 0.9], [0.1, 0.2, 0.3, 0.4])  # separable: EER 0, threshold in (0.4, 0.6]
    test = _videos("test", [0.55, 0.65, 0.75, 0.3], [0.1, 0.5, 0.2, 0.7], species=["print_photo", "print_photo",
                                                                                      "video_replay", "video_replay"])
    row = protocol_row(pd.DataFrame(dev + test), DB)
    t = row["threshold"]
    assert 0.4 < t <= 0.6
    bona_test, att_test = np.array([0.55, 0.65, 0.75, 0.3]), np.array([0.1, 0.5, 0.2, 0.7])
    assert row["bpcer"]["k"] == int((bona_test < t).sum()) and row["bpcer"]["n"] == 4
    per = row["apcer_per_species"]
    assert per["print_photo"]["k"] == int((att_test[:2] >= t).sum())
    assert per["video_replay"]["k"] == int((att_test[2:] >= t).sum())
    worst = max(per, key=lambda s: per[s]["value"])
    assert row["apcer_max"]["value"] == per[worst]["value"]
    assert row["acer"] == pytest.approx((row["apcer_max"]["value"] + row["bpcer"]["value"]) / 2)
    assert row["hter"] == pytest.approx(((att_test >= t).mean() + (bona_test < t).mean()) / 2)
    assert "not an ISO/IEC 30107-3 metric" in row["non_iso"]["acer"]
    assert row["bpcer"]["n_subjects"] == 4 and row["people"]["test"] == 4


def test_a_split_without_attacks_says_so():
    rows = _videos("dev", [0.6, 0.7], []) + _videos("test", [0.6], [0.2])
    row = protocol_row(pd.DataFrame(rows), DB)
    assert "threshold" not in row and "lacks bona fide or attack videos" in row["note"]


def test_mean_and_sample_std_over_folds():
    rows = {"P3-1": {"acer": 0.10, "apcer_max": {"k": 1, "n": 10, "value": 0.1, "lo": 0.0, "hi": 0.5}},
            "P3-2": {"acer": 0.30, "apcer_max": {"k": 3, "n": 10, "value": 0.3, "lo": 0.1, "hi": 0.7}}}
    s = summarise(rows, DB)
    assert s["P3"]["acer"] == {"mean": pytest.approx(0.2), "std": pytest.approx(np.std([0.1, 0.3], ddof=1)), "n": 2}
    assert s["P3"]["apcer_max"]["mean"] == pytest.approx(0.2)
    frame = table_frame(rows, s)
    assert frame.iloc[-1]["protocol"] == "P3 mean +- std" and "20.00 +- 14.14% (2 folds)" in frame.iloc[-1]["ACER (non-ISO)"]


def test_the_official_protocols_are_the_published_ones():
    oulu = [s.name for s in OFFICIAL["oulu_npu"].subs]
    assert oulu == ["P1", "P2", *[f"P3-{f}" for f in range(1, 7)], *[f"P4-{f}" for f in range(1, 7)]]
    assert [s.name for s in OFFICIAL["siw"].subs] == ["P1", "P2-1", "P2-2", "P2-3", "P2-4", "P3-1", "P3-2"]
    assert [s.where.get("quality") for s in OFFICIAL["casia_fasd"].subs] == [None, "low", "normal", "high"]
    assert OFFICIAL["replay_attack"].threshold_split == "dev" and OFFICIAL["msu_mfsd"].threshold_split == "train"
