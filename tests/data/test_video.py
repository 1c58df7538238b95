"""Video decoding: frame sampling, random access, rotation, unreadable files; the two real MSU-MFSD videos."""

from __future__ import annotations

import numpy as np
import pytest

from harness.data.video import FrameSampling, clear_reader_cache, decode_frame, probe_video, read_frames
from harness.faces.decode import DecodeError, decode_sample
from tests.data.fakes import H, N_FRAMES, W, encode_video, frame_pattern


def _grey(img: np.ndarray) -> float:
    return float(img[20:, 20:].mean())  # away from the marker


# ------------------------------------------------------------------------------------------ sampling

def test_frame_sampling_modes():
    assert FrameSampling.parse({"mode": "uniform", "n": 4}).indices(100) == [12, 37, 62, 87]
    assert FrameSampling.parse("uniform:20").indices(10) == list(range(10))  # fewer frames than asked: all
    assert FrameSampling.parse("every:4").indices(10) == [0, 4, 8]
    assert FrameSampling.parse("all").indices(3) == [0, 1, 2]
    assert FrameSampling.parse({"mode": "every", "k": 10, "max_frames": 25}).indices(300) == [0, 10, 20]
    assert FrameSampling.parse(None).indices(0) == []
    for bad in ("uniform", "some:3", {"mode": "random"}, {"mode": "uniform", "n": 0}, {"mode": "every", "kk": 2}):
        with pytest.raises(ValueError, match="dataset.frames"):
            FrameSampling.parse(bad)


# ------------------------------------------------------------------------------------------ generated videos

@pytest.mark.parametrize("ext", [".avi", ".mov", ".mp4", "h264.mp4"])
def test_probe_and_random_access(tmp_path, media, ext):
    if ext == "h264.mp4":  # B-frames: decode order differs from presentation order
        p = encode_video(tmp_path / "clip_h264.mp4", codec="libx264")
    else:
        p = tmp_path / f"clip{ext}"
        p.write_bytes(media[ext])
    info = probe_video(p)
    assert (info.frames, info.width, info.height, info.rotation) == (N_FRAMES, W, H, 0)
    assert info.fps == pytest.approx(10, rel=0.01)
    data = p.read_bytes()
    for i in (7, 2, 9, 0, 3, 3, 4):  # backwards, forwards, repeated
        img = decode_frame(data, str(p), i)
        assert img.shape == (H, W, 3) and img.dtype == np.uint8
        assert _grey(img) == pytest.approx(20 * i + 10, abs=4)
    # the engine's entry point
    assert _grey(decode_sample(data, str(p), 5)) == pytest.approx(110, abs=4)
    assert [round(_grey(f)) // 20 for f in read_frames(p, [8, 1])] == [1, 8]  # in frame order


def test_rotation_metadata_is_applied(tmp_path):
    """A clip stored landscape with a 90-degree display matrix comes out portrait, as a player (OpenCV) shows it."""
    cv2 = pytest.importorskip("cv2")
    p = encode_video(tmp_path / "rot.mp4", n_frames=4, rotation=90)
    info = probe_video(p)
    assert (info.width, info.height, info.rotation) == (H, W, 270)
    ours = read_frames(p, [2])[0]
    cap = cv2.VideoCapture(str(p))
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    for _ in range(3):
        ok, ref = cap.read()
    cap.release()
    assert ok and ref.shape == ours.shape
    assert np.abs(ours.astype(int) - ref[:, :, ::-1].astype(int)).mean() < 3
    # the marker, top-left in the stored frame, is bottom-left after a 90-degree counter-clockwise turn
    assert ours[-6, 5].mean() > 200 and ours[5, 5].mean() < 150
    raw = frame_pattern(2)
    assert np.abs(np.rot90(raw).astype(int) - ours.astype(int)).mean() < 4


def test_unreadable_and_truncated_videos_name_the_path(tmp_path, media):
    garbage = tmp_path / "broken.avi"
    garbage.write_bytes(b"RIFF\x00\x00\x00\x00AVI garbage" * 50)
    with pytest.raises(DecodeError, match=r"broken\.avi"):
        probe_video(garbage)
    with pytest.raises(DecodeError, match=r"broken\.avi"):
        decode_frame(garbage.read_bytes(), str(garbage), 0)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(media[".mp4"][: len(media[".mp4"]) // 3])  # moov atom lost: not decodable
    with pytest.raises(DecodeError, match=r"cut\.mp4"):
        probe_video(cut)
    with pytest.raises(DecodeError, match=r"missing file: .*nope\.mov"):
        probe_video(tmp_path / "nope.mov")
    ok = tmp_path / "ok.avi"
    ok.write_bytes(media[".avi"])
    with pytest.raises(DecodeError, match=r"ok\.avi: frame 10 out of range \(the file has 10 frames\)"):
        decode_frame(ok.read_bytes(), str(ok), 10)
    clear_reader_cache()


# ------------------------------------------------------------------------------------------ real MSU-MFSD videos

MSU = {  # name: (frames, fps, stored rotation)
    "real_client005_android_SD_scene01.mp4": (301, 29.645, 180),
    "real_client022_android_SD_scene01.mp4": (300, 29.949, 0),
}


@pytest.mark.shared
@pytest.mark.parametrize("name", sorted(MSU))
def test_msu_videos_decode_upright_like_opencv(shared, name):
    cv2 = pytest.importorskip("cv2")
    path = shared / "datasets/msu_mfsd_sample" / name
    frames, fps, rot = MSU[name]
    info = probe_video(path)
    assert (info.frames, info.width, info.height, info.rotation, info.codec) == (frames, 720, 480, rot, "h264")
    assert info.fps == pytest.approx(fps, abs=0.01)
    picks = [0, 150, frames - 1]
    data = path.read_bytes()
    ours = [decode_frame(data, str(path), i) for i in picks]
    cap = cv2.VideoCapture(str(path))
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)  # OpenCV applies the display matrix, as players do
    ref, i = {}, 0
    while len(ref) < len(picks):
        ok, im = cap.read()
        assert ok, f"OpenCV stopped at frame {i}"
        if i in picks:
            ref[i] = im[:, :, ::-1]
        i += 1
    cap.release()
    for k, img in zip(picks, ours):
        assert img.shape == (480, 720, 3)
        assert np.abs(img.astype(int) - ref[k].astype(int)).mean() < 1.0
    if rot:  # stored upside down: the decoded frame is the stored one turned 180 degrees
        import av

        with av.open(str(path)) as c:
            raw = next(c.decode(video=0)).to_ndarray(format="rgb24")
        assert np.abs(np.rot90(raw, 2).astype(int) - ours[0].astype(int)).mean() < 1.0
        assert np.abs(raw.astype(int) - ours[0].astype(int)).mean() > 10
    clear_reader_cache()
