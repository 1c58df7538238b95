"""The detection row layout is named once (harness.faces.detect) and the scoring code reads it by those names."""

from __future__ import annotations

import pathlib
import re

import numpy as np

import harness.scoring
from harness.faces.detect import BOX, LANDMARKS, N_FACES, PROB, ROW_WIDTH, Detection


def test_row_layout_round_trips_through_named_columns():
    d = Detection(box=np.array([1.0, 2.0, 3.0, 4.0]), prob=0.9, n_faces=2,
                  landmarks=np.arange(10, dtype=float).reshape(5, 2))
    row = d.to_array()
    assert row.shape == (ROW_WIDTH,)
    assert row[BOX].tolist() == [1.0, 2.0, 3.0, 4.0] and row[PROB] == 0.9 and row[N_FACES] == 2
    assert row[LANDMARKS].tolist() == list(range(10))
    back = Detection.from_array(row)
    assert back.prob == 0.9 and back.n_faces == 2 and np.array_equal(back.landmarks, d.landmarks)


def test_scoring_indexes_detection_rows_by_name_not_by_number():
    root = pathlib.Path(harness.scoring.__file__).parent
    magic = re.compile(r"det_arr\[[^\]]*(?:,\s*|\[)(?:\d+|:\d+|\d+:\d+)\]")
    hits = [f"{p.name}:{i}" for p in root.glob("*.py") for i, line in enumerate(p.read_text().splitlines(), 1)
            if magic.search(line)]
    assert not hits, f"detection rows indexed by position (use harness.faces.detect BOX/PROB/...): {hits}"
