"""A video manifest through the scoring engine: the sampled frames reach the detector, a broken or missing video
is kept as ``rejected`` with a reason naming its path (stub models: no weights needed)."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest

from harness.data.registry import load_dataset
from harness.scoring.cache import ScoreCache
from harness.scoring.engine import score_manifest
from tests.data import fakes


class _NoFaceDetector:
    detector_id = "stub-detector"

    def __init__(self):
        self.seen = []

    def detect(self, images):
        self.seen.extend(images)
        return [None] * len(images)


def test_video_rows_are_decoded_rejected_or_counted(tree):
    root = fakes.make_folder(tree)
    (root / "bob/attack/screen_replay/broken.mov").write_bytes(b"\x00" * 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = load_dataset("folder", root=str(root), frames={"mode": "every", "k": 3}, on_problem="warn")
    (root / "alice/bona_fide/selfie_1.jpg").unlink()  # vanishes after listing
    det = _NoFaceDetector()
    st = score_manifest(df, det, SimpleNamespace(dim=4, model_id="e"), SimpleNamespace(model_id="p"), ScoreCache(None),
                        chunk_size=7, progress=False)
    s = st.samples.set_index("sample_id")
    assert st.counts() == {"scored": 0, "fta": len(df) - 2, "rejected": 2, "total": len(df)}
    assert "missing file" in s.loc["alice/bona_fide/selfie_1.jpg", "reason"]
    broken = s.loc["bob/attack/screen_replay/broken.mov#0"]
    assert broken["status"] == "rejected" and str(root / "bob/attack/screen_replay/broken.mov") in broken["reason"]
    clip = s[s["video"] == "alice/bona_fide/clip.mp4"]
    assert list(clip["frame"]) == [0, 3, 6, 9] and set(clip["status"]) == {"fta"}
    greys = sorted(round(float(im[20:, 20:].mean())) for im in det.seen if im.shape == (fakes.H, fakes.W, 3))
    assert greys == pytest.approx([10, 10, 70, 70, 130, 130, 190, 190], abs=4)  # clip.mp4 and replay.mov, frames 0/3/6/9
