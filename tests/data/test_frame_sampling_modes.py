"""Frame sampling modes ``first`` and ``seconds`` (and the existing ones with the new ``fps`` argument): indices,
string and mapping parsing, one-line errors naming ``dataset.frames.<key>``, ``describe()``; the real MSU-MFSD
video's frame count and fps through ``seconds:1``."""

from __future__ import annotations

import math

import pytest

from harness.data.video import FrameSampling, probe_video


@pytest.mark.parametrize("spec, n_frames, fps, expected", [
    ("first:8", 100, 30.0, list(range(8))),
    ("first:8", 5, 30.0, list(range(5))),  # shorter video: all of it
    ({"mode": "first", "n": 3}, 100, None, [0, 1, 2]),  # first needs no fps
    ({"mode": "first", "n": 10, "max_frames": 4}, 100, None, [0, 1, 2, 3]),
    ("seconds:2.5", 300, 30.0, list(range(75))),
    ("seconds:1", 300, 29.97, list(range(30))),  # ceil(29.97)
    ("seconds:0.1", 300, 25.0, [0, 1, 2]),  # ceil(2.5)
    ("seconds:1", 300, 30.0, list(range(30))),  # exactly 30, not 31
    ("seconds:100", 40, 30.0, list(range(40))),  # capped at the frame count
    ({"mode": "seconds", "t": 2, "max_frames": 10}, 300, 30.0, list(range(10))),  # max_frames still caps
    ({"mode": "seconds", "t": "0.5"}, 300, 30.0, list(range(15))),
    ("seconds:1", 0, 30.0, []),
    ("uniform:4", 100, 30.0, [12, 37, 62, 87]),  # the other modes ignore fps
    ("every:4", 10, 0.0, [0, 4, 8]),
    ("all", 3, None, [0, 1, 2]),
])
def test_indices(spec, n_frames, fps, expected):
    assert FrameSampling.parse(spec).indices(n_frames, fps=fps) == expected


def test_positional_compatibility():
    s = FrameSampling.parse("uniform:4")
    assert s.indices(100) == s.indices(100, None) == [12, 37, 62, 87]
    assert FrameSampling.parse("first:2").indices(10) == [0, 1]
    assert FrameSampling("every", 10, 3, 7).indices(20) == [0, 3, 6]  # the old positional fields keep their order


def test_parsing():
    assert FrameSampling.parse("first:8") == FrameSampling(mode="first", n=8)
    assert FrameSampling.parse(" first : 8 ") == FrameSampling(mode="first", n=8)
    assert FrameSampling.parse("seconds:2.5") == FrameSampling(mode="seconds", t=2.5)
    assert FrameSampling.parse("seconds:3") == FrameSampling(mode="seconds", t=3.0)
    assert FrameSampling.parse({"mode": "seconds", "t": 1}) == FrameSampling(mode="seconds", t=1.0)
    assert FrameSampling.parse({"mode": "first", "n": 8, "max_frames": 5}).max_frames == 5
    s = FrameSampling.parse("seconds:2").with_max_frames(12)
    assert (s.mode, s.t, s.max_frames) == ("seconds", 2.0, 12)


@pytest.mark.parametrize("bad, key", [
    ("first", "dataset.frames"),
    ("first:x", "dataset.frames"),
    ("first:0", "dataset.frames.n"),
    ({"mode": "first", "n": 0}, "dataset.frames.n"),
    ("seconds", "dataset.frames"),
    ("seconds:abc", "dataset.frames"),
    ("seconds:0", "dataset.frames.t"),
    ("seconds:-1", "dataset.frames.t"),
    ("seconds:nan", "dataset.frames.t"),
    ({"mode": "seconds"}, "dataset.frames.t"),
    ({"mode": "seconds", "t": 0}, "dataset.frames.t"),
    ({"mode": "seconds", "t": "soon"}, "dataset.frames.t"),
    ({"mode": "random"}, "dataset.frames.mode"),
    ({"mode": "first", "count": 3}, "dataset.frames"),
])
def test_errors(bad, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")) as e:
        FrameSampling.parse(bad)
    assert "\n" not in str(e.value)


def test_unknown_key_lists_the_allowed_keys():
    with pytest.raises(ValueError, match="allowed: mode, n, k, t, max_frames"):
        FrameSampling.parse({"mode": "seconds", "secs": 2})
    with pytest.raises(ValueError, match="'first'.*'seconds'"):
        FrameSampling.parse({"mode": "random"})


@pytest.mark.parametrize("fps", [None, 0, 0.0, float("nan")])
def test_seconds_needs_fps(fps):
    with pytest.raises(ValueError, match=r"dataset\.frames\.t.*fps.*unknown") as e:
        FrameSampling.parse("seconds:1").indices(300, fps=fps)
    assert "\n" not in str(e.value)


def test_describe():
    assert FrameSampling.parse("first:8").describe() == "first 8 frames"
    assert FrameSampling.parse("seconds:2.5").describe() == "frames of the first 2.5 s"
    assert FrameSampling.parse("seconds:3").describe() == "frames of the first 3 s"
    assert FrameSampling.parse({"mode": "first", "n": 8, "max_frames": 5}).describe() == "first 8 frames of the first 5"
    assert FrameSampling.parse("uniform:10").describe() == "10 uniform frames"
    assert FrameSampling.parse("every:5").describe() == "1 frame in 5"
    assert FrameSampling.parse("all").describe() == "all frames"


def test_real_msu_video_seconds(shared):
    path = shared / "datasets/msu_mfsd_sample/real_client005_android_SD_scene01.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not in the shared material")
    info = probe_video(path)
    assert info.frames > 0 and info.fps > 0
    idx = FrameSampling.parse("seconds:1").indices(info.frames, fps=info.fps)
    assert idx == list(range(math.ceil(info.fps)))
    assert FrameSampling.parse("first:8").indices(info.frames, fps=info.fps) == list(range(8))
    assert len(FrameSampling.parse("seconds:1000").indices(info.frames, fps=info.fps)) == info.frames
