"""Harness logic of the transfer on small hand-made tables (no models): run specs, the score-range and clamped-crop
context check, the cost column and the relabelling of a run's partition (people prefixed, species dropped)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.transfer import parse_args
from harness.transfer_context import clamped_count, context_check, score_range_check
from harness.transfer_eval import cost
from harness.transfer_runs import ScoredRun, TransferInputError, parse_spec, rows_of


def _tables(match: list[tuple[str, float]], pad: list[tuple[str, float]]):
    trials = pd.DataFrame({"kind": [k for k, _ in match], "match_score": [s for _, s in match],
                           "partition": "eval", "probe_subject": "a", "ref_subject": "b", "species": "none",
                           "pad_score": 0.5})
    probes = pd.DataFrame({"label": [k for k, _ in pad], "pad_score": [s for _, s in pad], "status": "scored",
                           "partition": "eval", "subject": "a", "species": "print_photo"})
    return trials, probes


def test_parse_spec_and_args():
    assert parse_spec("/runs/x:dev", "all") == (Path("/runs/x"), "dev")
    assert parse_spec("/runs/x", "all") == (Path("/runs/x"), "all")
    with pytest.raises(TransferInputError, match="unknown partition 'test'"):
        parse_spec("/runs/x:test", "all")
    assert parse_args(["select=a", "policy.target_fmr=0.1"]) == ({"select": "a"}, ["target_fmr=0.1"])
    with pytest.raises(TransferInputError, match="unknown key 'evl'"):
        parse_args(["evl=b"])


def test_score_range_counts_what_lies_outside_the_selection():
    """Selection match scores in [0, 1], PAD in [0.2, 0.9]; the target has 2 of 3 match scores and 1 of 2 PAD
    scores outside: counted per class, one note per score."""
    st, sp = _tables([("genuine", 1.0), ("impostor", 0.0)], [("bona_fide", 0.9), ("attack", 0.2)])
    tt, tp = _tables([("genuine", 1.5), ("impostor", -0.5), ("impostor", 0.5)], [("bona_fide", 0.95),
                                                                                  ("attack", 0.5)])
    r = score_range_check(st, sp, tt, tp)
    assert r["match"]["selection_range"] == [0.0, 1.0]
    assert r["match"]["per_class"]["genuine"] == {"n": 1, "k_below": 0, "k_above": 1, "min": 1.5, "max": 1.5}
    assert (r["match"]["k_outside"], r["match"]["n"]) == (2, 3)
    assert (r["pad"]["k_outside"], r["pad"]["n"]) == (1, 2) and "1/2" in r["pad"]["note"]
    ctx = context_check(st, sp, tt, tp, None, {"k": 3, "n": 10, "share": 0.3})
    assert not ctx["ok"] and any("3/10 scored frames (above the 5% warning level)" in n for n in ctx["notes"])
    assert context_check(st, sp, st, sp, None, {"k": 0, "n": 2, "share": 0.0})["ok"]


def test_clamped_count_reads_the_scores_column():
    scores = pd.DataFrame({"status": ["scored", "scored", "fta"], "subject": ["a", "b", "a"],
                           "pad_context_clamped": [True, False, True]})
    assert clamped_count(scores) == {"k": 1, "n": 2, "share": 0.5}
    assert clamped_count(scores, {"L/b"}, "L/") == {"k": 0, "n": 1, "share": 0.0}
    assert clamped_count(scores.drop(columns="pad_context_clamped")) is None


def test_cost_is_transferred_minus_own():
    a = {"k": 3, "n": 10, "value": 0.3}
    b = {"k": 1, "n": 10, "value": 0.1}
    c = cost({"verif": {"fmr": a}, "pad": {"apcer_per_species": {"print": a}}},
             {"verif": {"fmr": b}, "pad": {"apcer_per_species": {"print": b}}})
    assert c["verif.fmr"]["transferred"] == "3/10" and c["verif.fmr"]["own"] == "1/10"
    assert c["verif.fmr"]["delta"] == pytest.approx(0.2) and c["pad.apcer[print]"]["delta"] == pytest.approx(0.2)


def test_rows_of_relabels_prefixes_people_and_drops_a_species():
    trials = pd.DataFrame({"kind": ["attack", "attack", "genuine"], "partition": ["dev", "dev", "eval"],
                           "probe_subject": ["p", "q", "p"], "ref_subject": ["p", "q", "p"],
                           "species": ["print", "replay", "none"], "match_score": 0.0, "pad_score": 0.0})
    probes = pd.DataFrame({"label": ["attack", "attack"], "partition": ["dev", "dev"], "subject": ["p", "q"],
                           "species": ["print", "replay"], "status": "scored", "pad_score": 0.0})
    run = ScoredRun(Path("/r"), "X", trials, probes, {}, None)
    t, p = rows_of(run, "dev", "eval", drop_species=("replay",))
    assert list(t["probe_subject"]) == ["X/p"] and list(t["partition"]) == ["eval"]
    assert list(p["species"]) == ["print"]
    with pytest.raises(TransferInputError, match="has no 'train' partition"):
        rows_of(run, "train", "dev")
