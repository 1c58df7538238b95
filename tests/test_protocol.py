"""Trials from a scored table: hand-countable cases (synthetic embeddings; the logic under test is the protocol)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.protocols.trials import build_trials, split_enrol_probe, subject_partition


def _table(subjects=("a", "b", "c", "d"), n_bona=4, n_attack=2):
    rows, emb = [], []
    rng = np.random.default_rng(1)
    centres = {s: rng.normal(size=8) for s in subjects}
    for s in subjects:
        for i in range(n_bona):
            rows.append(dict(sample_id=f"{s}/b{i}", subject=s, label="bona_fide", species="none",
                             split="train" if i < 2 else "test", status="scored", pad_score=0.9))
            emb.append(centres[s] + 0.01 * rng.normal(size=8))
        for i in range(n_attack):
            rows.append(dict(sample_id=f"{s}/x{i}", subject=s, label="attack", species="print_photo",
                             split="test", status="scored", pad_score=0.1))
            emb.append(centres[s] + 0.05 * rng.normal(size=8))
    return pd.DataFrame(rows), np.array(emb, dtype=np.float32)


def test_partition_is_seeded_and_disjoint():
    p1 = subject_partition(list("abcdefgh"), 0.5, seed=3)
    assert p1 == subject_partition(list("hgfedcba"), 0.5, seed=3)
    assert sorted(p1.values()).count("dev") == 4
    assert set(p1) == set("abcdefgh")


def test_field_protocol_counts_by_hand():
    df, emb = _table()
    proto = {"enrol": {"mode": "field", "field": "split", "enrol_in": ["train"], "probe_in": ["test"]},
             "dev_fraction": 0.5, "seed": 0}
    tr = build_trials(df, emb, "cosine", proto)
    t = tr.trials
    # 4 subjects, 2 per partition; each has 2 test bona fide probes and 2 attacks
    for part in ("dev", "eval"):
        tp = t[t["partition"] == part]
        assert (tp["kind"] == "genuine").sum() == 2 * 2
        assert (tp["kind"] == "impostor").sum() == 2 * 2 * 1  # vs the one other subject of the partition
        assert (tp["kind"] == "attack").sum() == 2 * 2
    att = t[t["kind"] == "attack"]
    assert (att["probe_subject"] == att["ref_subject"]).all()
    imp = t[t["kind"] == "impostor"]
    assert (imp["probe_subject"] != imp["ref_subject"]).all()
    part = dict(zip(tr.probes["subject"], tr.probes["partition"]))
    assert all(part[a] == part[b] for a, b in zip(imp["probe_subject"], imp["ref_subject"]))
    # the embeddings were built so that genuine > impostor
    assert t.loc[t["kind"] == "genuine", "match_score"].min() > t.loc[t["kind"] == "impostor", "match_score"].max()
    assert tr.counts["enrolled_subjects"] == 4 and tr.counts["probe_samples"] == 16


def test_failed_enrolment_and_fta_probes_are_counted():
    df, emb = _table()
    df.loc[(df["subject"] == "a") & (df["split"] == "train"), "status"] = "fta"  # a cannot enrol
    df.loc[df["sample_id"] == "b/b2", "status"] = "fta"
    proto = {"enrol": {"mode": "field", "field": "split", "enrol_in": ["train"], "probe_in": ["test"]}, "seed": 0}
    tr = build_trials(df, emb, "euclidean", proto)
    assert tr.counts["failure_to_enrol_subjects"] == 1 and tr.counts["enrolled_subjects"] == 3
    assert tr.counts["attack_probes_without_enrolment"] == 2
    assert "b/b2" not in set(tr.trials["probe_id"])
    assert not ((tr.trials["ref_subject"] == "a")).any()


def test_first_k_protocol():
    df, _ = _table(n_bona=5)
    enrol, probe = split_enrol_probe(df, {"mode": "first_k", "k": 2})
    assert enrol.sum() == 4 * 2 and probe.sum() == len(df) - 8
    assert set(df.loc[enrol, "sample_id"].str[-2:]) == {"b0", "b1"}


def test_bad_protocol_names_the_key():
    df, emb = _table()
    with pytest.raises(KeyError, match="protocol.enrol.field"):
        split_enrol_probe(df, {"mode": "field", "field": "session", "enrol_in": ["1"]})
    with pytest.raises(ValueError, match="protocol.enrol.mode"):
        split_enrol_probe(df, {"mode": "random"})


def test_official_split_partition_and_leak():
    df, emb = _table()
    df["path"] = "/x/" + df["sample_id"]
    df["split"] = df["subject"].map({"a": "dev", "b": "dev", "c": "test", "d": "train"})
    df["purpose"] = np.where(df["label"] == "attack", "attack", np.where(df["sample_id"].str.endswith(("b0", "b1")), "enroll", "authenticate"))
    proto = {"enrol": {"mode": "field", "field": "purpose", "enrol_in": ["enroll"], "probe_in": ["authenticate", "attack"]},
             "partition": "split", "dev_splits": ["dev"], "eval_splits": ["test"]}
    tr = build_trials(df, emb, "cosine", proto)
    assert tr.partitions == {"dev": ["a", "b"], "eval": ["c"]}
    assert tr.counts["probe_samples_outside_partitions"] == 4  # subject d (train split) is neither dev nor eval
    assert tr.counts["eval_impostor_trials"] == 0 and tr.counts["eval_genuine_trials"] == 2
    assert tr.counts["dev_impostor_trials"] == 2 * 2 * 1
    df.loc[df["sample_id"] == "a/x0", "split"] = "test"  # subject a now in dev and test
    with pytest.raises(ValueError, match="subject 'a' appears in both.*a/x0"):
        build_trials(df, emb, "cosine", proto)


def test_all_pairs_mode_and_cap():
    df, emb = _table(n_bona=4)
    proto = {"enrol": {"mode": "field", "field": "split", "enrol_in": ["train"], "probe_in": ["test"]},
             "dev_fraction": 0.5, "seed": 0, "trials": "pairs"}
    tr = build_trials(df, emb, "cosine", proto)
    t = tr.trials
    for part in ("dev", "eval"):
        tp = t[t["partition"] == part]
        # 2 subjects x 2 bona fide probes = 4 samples -> 6 pairs: 2 genuine, 4 impostor; attacks unchanged
        assert (tp["kind"] == "genuine").sum() == 2 and (tp["kind"] == "impostor").sum() == 4
        assert (tp["kind"] == "attack").sum() == 4
    capped = build_trials(df, emb, "cosine", proto | {"max_impostor_pairs": 3})
    assert (capped.trials["kind"] == "impostor").sum() == 6 and capped.counts["impostor_pairs_not_sampled"] == 2
    again = build_trials(df, emb, "cosine", proto | {"max_impostor_pairs": 3})
    pd.testing.assert_frame_equal(capped.trials, again.trials)  # seeded
    with pytest.raises(ValueError, match="protocol.trials"):
        build_trials(df, emb, "cosine", proto | {"trials": "everything"})
