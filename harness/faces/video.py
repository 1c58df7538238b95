"""Video frame decoding: probe a file (frame count, fps, display size, rotation) and decode one frame, upright.

A video sample is a manifest row with ``frame >= 0``: the index of a frame in presentation order, counted
from 0. Decoding uses PyAV (FFmpeg); torchvision 0.29 no longer ships a video reader.

* Rotation: phone videos often store their frames sideways or upside down with a display matrix (the MP4
  ``rotate`` tag). Decoded frames are turned upright, as a player shows them (MSU-MFSD's
  ``real_client005_android_SD_scene01.mp4`` is stored upside down, for one).
* Frame index: the demuxer's packet timestamps, sorted, give every frame's presentation timestamp without
  decoding; frame ``i`` is found by seeking to the keyframe before it and decoding forward. Streams without
  timestamps are decoded sequentially from the start.
* Every failure is a :class:`~harness.faces.decode.DecodeError` naming the file (and the frame).

:func:`decode_frame` keeps a few open readers (keyed by path and a fingerprint of the bytes), so the scoring
engine asking for frames 0, 30, 60 ... of one video in order decodes each stretch once. Which frames of a video
become samples is the dataset's choice (:class:`harness.data.video.FrameSampling`).
"""

from __future__ import annotations

import bisect
import io
import os
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.faces.files import DecodeError, file_problem, pixel_cap

__all__ = ["VideoInfo", "VideoReader", "probe_video", "count_frames", "read_frames", "decode_frame",
           "clear_reader_cache"]


def _file_size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None  # let the open say what is wrong


def _av():
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is a dependency
        raise DecodeError(f"video support needs PyAV (pip install av): {e}") from e
    return av


def _errors():
    av = _av()
    return (av.FFmpegError, OSError, ValueError, EOFError, IndexError, RuntimeError, MemoryError)


# --------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learns about a file without decoding it all."""

    path: str
    frames: int  # number of frames (video packets) in presentation order
    fps: float
    width: int  # display size, after rotation
    height: int
    rotation: int  # clockwise degrees applied to decoded frames to show them upright (0, 90, 180, 270)
    codec: str
    duration_s: float


def _cw_rotation(frame) -> int:
    """Clockwise rotation (0/90/180/270) that makes ``frame`` upright, from its display matrix."""
    rot = getattr(frame, "rotation", 0) or 0  # PyAV: counter-clockwise degrees of the display matrix
    return int(round(-float(rot) / 90.0)) % 4 * 90


def _to_rgb(frame) -> np.ndarray:
    arr = frame.to_ndarray(format="rgb24")
    cw = _cw_rotation(frame)
    if cw:
        arr = np.rot90(arr, k=-cw // 90)
    return np.ascontiguousarray(arr)


class VideoReader:
    """Random access to the frames of one video file (path or in-memory bytes)."""

    def __init__(self, source: str | Path | bytes, path: str | None = None):
        self.path = str(path if path is not None else source)
        self._source = source
        self._container = None
        self._frames_iter = None
        self._next: int | None = None  # index of the frame the open decoder yields next, when known
        self._rotation_seen = 0
        av = _av()
        try:
            with self._open() as c:
                vs = c.streams.video
                if not vs:
                    raise DecodeError(f"empty video {self.path}: no video stream", "empty_video")
                st = vs[0]
                self.codec = st.codec_context.name
                self.coded_size = (int(st.codec_context.width or 0), int(st.codec_context.height or 0))
                self.time_base = st.time_base
                rate = st.average_rate or st.guessed_rate or st.base_rate
                pts, keys = [], []
                for pkt in c.demux(st):
                    if pkt.size == 0:
                        continue
                    t = pkt.pts if pkt.pts is not None else pkt.dts
                    pts.append(t)
                    if pkt.is_keyframe:
                        keys.append(t)
                dur = st.duration
                if dur is None and c.duration is not None:
                    dur_s = c.duration / 1e6
                else:
                    dur_s = float(dur * st.time_base) if dur is not None and st.time_base else 0.0
        except DecodeError:
            raise
        except av.FFmpegError as e:
            raise DecodeError(f"unreadable video {self.path}: {e}", "unreadable_video") from e
        except _errors() as e:
            raise DecodeError(f"unreadable video {self.path}: {type(e).__name__}: {e}", "unreadable_video") from e
        if not pts:
            raise DecodeError(f"empty video {self.path}: no video frames", "empty_video")
        self.n_frames = len(pts)
        self.has_pts = all(t is not None for t in pts) and len(set(pts)) == len(pts)
        self._pts = sorted(pts) if self.has_pts else []
        self._pts_index = {t: i for i, t in enumerate(self._pts)}
        self._keys = sorted(k for k in keys if k is not None) if self.has_pts else []
        self.fps = float(rate) if rate else (self.n_frames / dur_s if dur_s > 0 else 0.0)
        self.duration_s = dur_s if dur_s > 0 else (self.n_frames / self.fps if self.fps else 0.0)

    # -- plumbing
    def _open(self):
        av = _av()
        src = io.BytesIO(self._source) if isinstance(self._source, (bytes, bytearray, memoryview)) else str(self._source)
        if (_file_size(src) if isinstance(src, str) else len(self._source)) == 0:
            raise DecodeError(f"empty video {self.path}: the file has 0 bytes", "empty_video")
        try:
            return av.open(src, mode="r", metadata_errors="ignore")
        except av.FFmpegError as e:
            raise DecodeError(f"unreadable video {self.path}: {e}", "unreadable_video") from e
        except _errors() as e:
            raise DecodeError(f"unreadable video {self.path}: {type(e).__name__}: {e}", "unreadable_video") from e

    def close(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - closing a broken container must not mask the real error
                pass
        self._container, self._frames_iter, self._next = None, None, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _restart(self, target_pts=None) -> None:
        """Position the decoder: at the start (``target_pts`` None) or at the keyframe before ``target_pts``."""
        if target_pts is None or self._container is None:
            self.close()
            self._container = self._open()
            self._stream = self._container.streams.video[0]
            self._stream.thread_type = "AUTO"
        if target_pts is None:
            self._next = 0
        else:
            self._container.seek(int(target_pts), stream=self._stream, backward=True, any_frame=False)
            self._next = None  # position after a seek: read from the frames' timestamps
        self._frames_iter = self._container.decode(self._stream)

    def _keyframe_between(self, a: int, b: int) -> bool:
        """A keyframe with a timestamp in (pts[a], pts[b]]: seeking beats decoding forward."""
        lo, hi = self._pts[a], self._pts[b]
        j = bisect.bisect_right(self._keys, lo)
        return j < len(self._keys) and self._keys[j] <= hi

    # -- API
    def info(self) -> VideoInfo:
        first = self.frame(0)
        h, w = first.shape[:2]
        return VideoInfo(self.path, self.n_frames, self.fps, int(w), int(h), self._rotation_seen, self.codec,
                         self.duration_s)

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (presentation order) as RGB uint8 (H, W, 3), upright."""
        index = int(index)
        if not 0 <= index < self.n_frames:
            raise DecodeError(f"video {self.path}: frame {index} out of range (the file has {self.n_frames} frames)",
                              "frame_out_of_range")
        av = _av()
        try:
            return self._frame(index)
        except DecodeError:
            self.close()
            raise
        except av.FFmpegError as e:
            self.close()
            raise DecodeError(f"unreadable video {self.path} at frame {index}: {e}", "unreadable_video") from e
        except _errors() as e:
            self.close()
            raise DecodeError(f"unreadable video {self.path} at frame {index}: {type(e).__name__}: {e}",
                              "unreadable_video") from e

    def _frame(self, index: int) -> np.ndarray:
        if not self.has_pts:
            if self._frames_iter is None or self._next is None or index < self._next:
                self._restart(None)
            for fr in self._frames_iter:
                i = self._next
                self._next += 1
                if i == index:
                    return self._emit(fr)
            raise DecodeError(f"video {self.path}: frame {index} could not be decoded (the decoder stopped after "
                              f"{self._next} of {self.n_frames} frames)", "unreadable_video")
        target = self._pts[index]
        if self._frames_iter is None or self._next is None or index < self._next or (
                index > self._next and self._keyframe_between(self._next, index)):
            self._restart(target)
        last = None
        for fr in self._frames_iter:
            t = fr.pts
            if t is None:  # the decoder lost the timestamps: fall back to counting from the start
                self.has_pts = False
                self.close()
                return self._frame(index)
            i = self._pts_index.get(t)
            if i is None:  # a timestamp the demuxer did not list: place it by order
                i = bisect.bisect_left(self._pts, t)
            self._next = i + 1
            last = i
            if i < index:
                continue
            if i == index or t >= target:
                return self._emit(fr)
        raise DecodeError(f"video {self.path}: frame {index} could not be decoded (the decoder stopped at frame "
                          f"{last} of {self.n_frames})", "unreadable_video")

    def _emit(self, fr) -> np.ndarray:
        self._rotation_seen = _cw_rotation(fr)
        arr = _to_rgb(fr)
        if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 8:
            raise DecodeError(f"unusable video frame {self.path}: shape {arr.shape}", "too_small")
        return arr

    def frames(self, indices) -> list[np.ndarray]:
        return [self.frame(i) for i in sorted(int(i) for i in indices)]


# --------------------------------------------------------------------------------------------- probe cache

_PROBE_CACHE: OrderedDict = OrderedDict()
_PROBE_CACHE_MAX = 4096


def probe_video(path: str | Path) -> VideoInfo:
    """Frame count, fps, display size, rotation of a video file; decodes only its first frame.

    Raises :class:`DecodeError` naming the path for a missing or unreadable file. Cached by (path, size, mtime).
    """
    p = Path(path)
    bad = file_problem(p)  # stat only: a directory or FIFO is never opened
    if bad is not None:
        raise DecodeError(f"{bad[1]}: {p}", bad[0])
    try:
        st = p.stat()
    except OSError as e:
        raise DecodeError(f"missing file: {p}", "missing") from e
    key = (str(p), st.st_size, st.st_mtime_ns)
    hit = _PROBE_CACHE.get(key)
    if hit is not None:
        _PROBE_CACHE.move_to_end(key)
        return hit
    with VideoReader(p) as r:
        info = r.info()
    _PROBE_CACHE[key] = info
    while len(_PROBE_CACHE) > _PROBE_CACHE_MAX:
        _PROBE_CACHE.popitem(last=False)
    return info


def count_frames(path: str | Path) -> int:
    return probe_video(path).frames


def read_frames(path: str | Path, indices) -> list[np.ndarray]:
    """Decode several frames of a file (sorted by index) with one reader."""
    with VideoReader(Path(path)) as r:
        return r.frames(indices)


# --------------------------------------------------------------------------------------------- engine entry

_READERS: OrderedDict = OrderedDict()
_READERS_MAX = int(os.environ.get("HARNESS_VIDEO_READERS", "4"))
_LOCK = threading.Lock()


def _fingerprint(data: bytes) -> tuple:
    n = len(data)
    head = zlib.crc32(data[: 1 << 20])
    tail = zlib.crc32(data[-(1 << 16):]) if n > (1 << 20) else 0
    return n, head, tail


def decode_frame(data: bytes, path: str, frame: int, max_pixels: int | None = None) -> np.ndarray:
    """Frame ``frame`` of the video whose file bytes are ``data`` -> RGB uint8 (H, W, 3), upright.

    Called by :func:`harness.faces.decode.decode_sample` for manifest rows with ``frame >= 0``. Raises
    :class:`DecodeError` naming ``path`` when the file does not decode or has no such frame, or when its frames
    have more pixels than ``max_pixels`` (None: the default cap; 0: none), checked before any frame is decoded.
    """
    key = (str(path), *_fingerprint(data))
    with _LOCK:
        reader = _READERS.get(key)
        if reader is None:
            reader = VideoReader(bytes(data), path=str(path))
            _READERS[key] = reader
            while len(_READERS) > _READERS_MAX:
                _READERS.popitem(last=False)[1].close()
        else:
            _READERS.move_to_end(key)
        cap = pixel_cap(max_pixels)
        w, h = getattr(reader, "coded_size", (0, 0))
        if cap > 0 and w * h > cap:
            raise DecodeError(f"pixels over cap: {path}: video frames of {w}x{h} = {w * h / 1e6:.1f} MP exceed "
                              f"runtime.max_pixels={cap}; not decoded", "pixels_over_cap")
        return reader.frame(int(frame))


def clear_reader_cache() -> None:
    with _LOCK:
        while _READERS:
            _READERS.popitem()[1].close()
