"""Presentations: grouping frames, capture order, windows, pooling (aggregation, FTA, templates) and presentation
trials that reuse the frame-level enrolment templates; ``evaluate(unit=...)``; the aggregation rules against
independent references (numpy, scipy)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from harness.aggregation import AggregationError, aggregate, check_aggregation
from harness.evaluate import evaluate
from harness.presentations import (capture_order, grouping_text, pool, presentation_ids, presentation_trials,
                                   window_ids)
from harness.protocols.trials import build_trials


def _frames(n_people=4, per=6, seed=0):
    """Bona fide and attack frames of ``n_people``, ``per`` frames per presentation, 2 presentations each."""
    rng = np.random.default_rng(seed)
    rows, embs = [], []
    for p in range(n_people):
        base = rng.normal(size=8)
        for label in ("bona_fide", "attack"):
            for pres in range(2):
                for f in range(per):
                    split = "train" if (label == "bona_fide" and pres == 0) else "test"
                    rows.append(dict(sample_id=f"s{p}_{label}_{pres}_{f}", subject=f"p{p}", label=label,
                                     species="none" if label == "bona_fide" else "print_photo", split=split,
                                     presentation=f"p{p}/{label}/{pres}", frame=-1, frame_no=per - f,
                                     status="scored", reason="", pad_score=float(rng.random()),
                                     det_prob=float(rng.random())))
                    embs.append(base + 0.1 * rng.normal(size=8))
    return pd.DataFrame(rows), np.asarray(embs)


PROTOCOL = {"enrol": {"mode": "field", "field": "split", "enrol_in": ["train"], "probe_in": ["test"]},
            "partition": "subjects", "dev_fraction": 0.5, "seed": 0}


def test_nuaa_groups_frames_by_subject_label_glasses_pose_and_session(shared):
    """NUAA's 2,563 shared frames are 143 presentations; its test session holds 9 bona fide and 73 attack ones."""
    from harness.data.registry import load_dataset

    m = load_dataset("nuaa", root=str(shared / "datasets" / "nuaa"))
    ids = presentation_ids(m, "nuaa")
    assert ids.nunique() == 143
    test = m["split"] == "test"
    per_label = m[test].assign(pid=ids[test]).groupby("label")["pid"].nunique().to_dict()
    assert per_label == {"attack": 73, "bona_fide": 9}
    assert "glasses + pos_code + session" in grouping_text(m, "nuaa")


def test_presentation_column_then_video_then_dataset_rule_then_the_sample():
    df = pd.DataFrame({"sample_id": ["a", "b", "c", "d"], "subject": ["s"] * 4, "label": ["bona_fide"] * 4,
                       "presentation": ["P", "", "", ""], "video": ["", "v.mp4", "v.mp4", ""]})
    assert presentation_ids(df).tolist() == ["P", "video:v.mp4", "video:v.mp4", "d"]
    assert "presentation column" in grouping_text(df) and "video" in grouping_text(df)


def test_capture_order_uses_frame_then_frame_no_then_rows():
    df = pd.DataFrame({"frame": [-1, -1, -1], "frame_no": [30, 10, 20]})
    assert capture_order(df).tolist() == [2, 0, 1]
    assert capture_order(pd.DataFrame({"frame": [5, 2, 9]})).tolist() == [1, 0, 2]
    assert capture_order(pd.DataFrame({"x": [1, 1]})).tolist() == [0, 1]


def test_windows_of_n_frames_drop_a_short_last_window():
    ids = pd.Series(["A"] * 7 + ["B"] * 2)
    w = window_ids(ids, pd.Series(range(9)), 3)
    assert w.tolist() == ["A#w0"] * 3 + ["A#w1"] * 3 + [""] + [""] * 2
    with pytest.raises(ValueError, match="flow.window_frames"):
        window_ids(ids, pd.Series(range(9)), 0)


def test_pool_aggregates_in_capture_order_and_accounts_for_every_frame():
    df = pd.DataFrame({"sample_id": list("abcdefg"), "subject": ["s"] * 7, "label": ["bona_fide"] * 7,
                       "species": ["none"] * 7, "split": ["test"] * 7, "frame": [2, 0, 1, 0, 1, 0, 1],
                       "status": ["scored", "scored", "fta", "fta", "fta", "rejected", "rejected"],
                       "reason": ["", "", "", "", "", "corrupt", "corrupt"],
                       "pad_score": [0.2, 0.8, np.nan, np.nan, np.nan, np.nan, np.nan],
                       "det_prob": [0.9, 0.5, np.nan, np.nan, np.nan, np.nan, np.nan]})
    ids = pd.Series(["A", "A", "A", "F", "F", "R", "R"])
    emb = np.eye(7, 4)
    out, pe = pool(df, emb, ids, {"rule": "first_n_mean", "n": 1})
    a, f, r = (out.set_index("sample_id").loc[k] for k in ("A", "F", "R"))
    assert a["status"] == "scored" and a["pad_score"] == 0.8  # frame 0 (sample b) comes first in capture order
    assert (a["n_frames"], a["frames_scored"], a["frames_fta"], a["frames_used"]) == (3, 2, 1, 1)
    assert f["status"] == "fta" and np.isnan(f["pad_score"]) and f["reason"] == "no face in any of 2 frames"
    assert r["status"] == "rejected" and r["frames_rejected"] == 2
    assert np.isnan(pe[1]).all()
    best, pb = pool(df, emb, ids, None, template="best_quality")
    assert np.array_equal(pb[0], emb[0])  # sample a has the highest detector probability
    assert best.set_index("sample_id").loc["A", "pad_score"] == pytest.approx(0.5)


def test_one_frame_presentations_give_the_frame_level_trials_exactly():
    """Presentation trials reuse the frame-level enrolment templates: with one frame per presentation they are the
    frame trials, score for score."""
    df, emb = _frames()
    frame = build_trials(df, emb, "cosine", PROTOCOL)
    pres = presentation_trials(df, emb, df["sample_id"], PROTOCOL, "cosine")
    key = ["kind", "probe_id", "ref_subject"]
    a = frame.trials.sort_values(key).reset_index(drop=True)
    b = pres.trials.sort_values(key).reset_index(drop=True)
    assert a[key].equals(b[key])
    np.testing.assert_allclose(b["match_score"], a["match_score"], rtol=0, atol=1e-12)
    assert frame.partitions == pres.partitions


def test_presentation_trials_score_the_pooled_template_against_the_same_references():
    df, emb = _frames()
    ids = presentation_ids(df)
    tr = presentation_trials(df, emb, ids, PROTOCOL, "cosine", {"rule": "median"})
    assert set(tr.probes["sample_id"]) == set(ids[df["split"] == "test"])
    assert (tr.probes["n_frames"] == 6).all()
    g = tr.probes.set_index("sample_id")
    pid = "p0/attack/1"
    want = np.median(df.loc[ids == pid, "pad_score"])
    assert g.loc[pid, "pad_score"] == pytest.approx(want, abs=1e-15)
    e = emb[(ids == pid).to_numpy()]
    e = (e / np.linalg.norm(e, axis=1, keepdims=True)).mean(0)
    enrol = emb[((df["subject"] == "p0") & (df["split"] == "train")).to_numpy()]
    t = (enrol / np.linalg.norm(enrol, axis=1, keepdims=True)).mean(0)
    want_m = float(e @ t / np.linalg.norm(e) / np.linalg.norm(t))
    got_m = tr.trials.set_index("probe_id").loc[pid, "match_score"]
    assert got_m == pytest.approx(want_m, abs=1e-9)


def test_evaluate_labels_the_unit_and_refuses_frame_rows_as_presentations():
    df, emb = _frames()
    bands = {"match": {"accept_at_or_above": 0.5, "reject_below": 0.5},
             "pad": {"accept_at_or_above": 0.5, "reject_below": 0.5}}
    frame = build_trials(df, emb, "cosine", PROTOCOL)
    part = frame.probes["partition"].iloc[0]
    with pytest.raises(ValueError, match="needs pooled probes"):
        evaluate(frame.trials, frame.probes, part, bands, unit="presentation")
    with pytest.raises(ValueError, match="unit must be one of"):
        evaluate(frame.trials, frame.probes, part, bands, unit="video")
    pres = presentation_trials(df, emb, presentation_ids(df), PROTOCOL, "cosine")
    rates, _ = evaluate(pres.trials, pres.probes, part, bands, unit="presentation")
    assert rates["unit"] == "presentation"
    assert rates["counts"]["attack_presentations"] == int(((pres.probes["partition"] == part)
                                                           & (pres.probes["label"] == "attack")).sum())
    assert "unit" not in evaluate(frame.trials, frame.probes, part, bands)[0]  # frame results keep their shape


@pytest.mark.parametrize("m", [1, 2, 5, 10, 11])
def test_every_aggregation_rule_matches_an_independent_reference(m):
    rng = np.random.default_rng(m)
    s, w = rng.normal(size=m), rng.random(m)
    ref = {"mean": np.mean(s), "median": np.median(s), "min": s.min(), "max": s.max(),
           "trimmed_mean": scipy.stats.trim_mean(s, 0.2), "quantile": np.quantile(s, 0.3),
           "first_n_mean": np.mean(s[:3]), "prob_weighted_mean": np.average(s, weights=w)}
    for rule, want in ref.items():
        got, used = aggregate(list(s), list(w), {"rule": rule, "trim": 0.2, "q": 0.3, "n": 3})
        assert got == pytest.approx(want, rel=0, abs=1e-12), rule
        assert used == (min(3, m) if rule == "first_n_mean" else m)


def test_aggregation_drops_faceless_frames_and_refuses_bad_rules():
    assert aggregate([None, float("nan"), 0.5, 0.7]) == (pytest.approx(0.6), 2)
    assert aggregate([None, None]) == (None, 0)
    assert aggregate([0.2, 0.8], [0, 0], {"rule": "prob_weighted_mean"})[0] == pytest.approx(0.5)
    for bad, key in (({"rule": "mode"}, "rule"), ({"trim": 0.5}, "trim"), ({"q": 2}, "q"), ({"n": 0}, "n"),
                     ({"typo": 1}, "unknown")):
        with pytest.raises(AggregationError, match=key):
            check_aggregation(bad)
    with pytest.raises(AggregationError, match="paired"):
        aggregate([0.1, 0.2], [1.0])


def test_numpy_scores_are_scores_not_missing_frames():
    """A float32 PAD score (what torch models return) counts as a score: it was once dropped as 'no face'."""
    assert aggregate([np.float32(0.5), np.float64(0.7), None]) == (pytest.approx(0.6), 2)
