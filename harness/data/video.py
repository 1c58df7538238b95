"""Video samples in a dataset: which files are videos or images, and which frames of a video become samples.

A video sample is a manifest row with ``frame >= 0``: the index of a frame in presentation order, counted
from 0 (:class:`FrameSampling` chooses them). Decoding lives in :mod:`harness.faces.video`; its names are
re-exported here for the dataset adapters and existing callers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.faces.video import (  # noqa: F401  (re-exported: decoding lives in harness.faces.video)
    VideoInfo,
    VideoReader,
    clear_reader_cache,
    count_frames,
    decode_frame,
    probe_video,
    read_frames,
)

__all__ = ["VIDEO_EXTENSIONS", "IMAGE_EXTENSIONS", "is_video", "is_image", "FrameSampling", "VideoInfo", "VideoReader",
           "probe_video", "count_frames", "read_frames", "decode_frame", "clear_reader_cache"]

#: File extensions treated as video (case-insensitive).
VIDEO_EXTENSIONS = frozenset({".avi", ".mov", ".mp4", ".m4v", ".mkv", ".webm", ".wmv", ".flv", ".mpg", ".mpeg",
                              ".3gp", ".mts", ".m2ts"})
#: File extensions treated as still images.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
#: The frame sampling modes (``dataset.frames.mode``).
MODES = ("uniform", "every", "first", "seconds", "all")


def is_video(path: str | Path) -> bool:
    """Whether ``path`` has a video file extension."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def is_image(path: str | Path) -> bool:
    """Whether ``path`` has a still image file extension."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


# --------------------------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class FrameSampling:
    """Which frames of a video become samples.

    ``mode``: ``uniform`` (``n`` frames spread evenly: the centres of ``n`` equal stretches), ``every`` (every
    ``k``-th frame from frame 0), ``first`` (the first ``n`` frames), ``seconds`` (the frames of the first ``t``
    seconds: ``ceil(t * fps)`` frames, which needs the video's fps) or ``all``. ``max_frames``: only the first
    ``max_frames`` frames are eligible (e.g. SiW protocol 1 trains on the first 60 frames). Config
    (``dataset.frames``): a mapping with these keys, or the shorthand strings ``all``, ``uniform:10``, ``every:5``,
    ``first:8``, ``seconds:2.5``.
    """

    mode: str = "uniform"
    n: int = 10
    k: int = 1
    max_frames: int | None = None
    t: float | None = None

    def __post_init__(self):
        """Check the mode and the keys it uses; a bad one is a one-line ValueError naming ``dataset.frames.<key>``."""
        if self.mode not in MODES:
            raise ValueError(f"dataset.frames.mode must be one of {', '.join(repr(m) for m in MODES)}, got {self.mode!r}")
        if self.mode in ("uniform", "first") and int(self.n) < 1:
            raise ValueError(f"dataset.frames.n must be >= 1 for mode {self.mode!r}, got {self.n}")
        if self.mode == "every" and int(self.k) < 1:
            raise ValueError(f"dataset.frames.k must be >= 1, got {self.k}")
        if self.mode == "seconds":
            t = self.t
            if t is None or isinstance(t, bool) or not math.isfinite(float(t)) or float(t) <= 0:
                raise ValueError(f"dataset.frames.t must be a number of seconds > 0 for mode 'seconds', got {t}")
        if self.max_frames is not None and int(self.max_frames) < 1:
            raise ValueError(f"dataset.frames.max_frames must be >= 1 or null, got {self.max_frames}")

    @classmethod
    def _parse_string(cls, spec: str) -> FrameSampling:
        """``all``, ``uniform:N``, ``every:K``, ``first:N`` or ``seconds:T``."""
        mode, _, num = spec.strip().partition(":")
        mode, num = mode.strip(), num.strip()
        if mode == "all" and not num:
            return cls(mode="all")
        if mode in ("uniform", "every", "first") and num.isdigit():
            return cls(mode=mode, k=int(num)) if mode == "every" else cls(mode=mode, n=int(num))
        if mode == "seconds" and num:
            try:
                t = float(num)
            except ValueError:
                t = None
            if t is not None:
                return cls(mode="seconds", t=t)
        raise ValueError(f"dataset.frames: expected 'all', 'uniform:N', 'every:K', 'first:N' or 'seconds:T', "
                         f"got {spec!r}")

    @classmethod
    def parse(cls, spec: FrameSampling | Mapping | str | None) -> FrameSampling:
        """The sampling of a ``dataset.frames`` value: None (default), a mapping or a shorthand string."""
        if spec is None:
            return cls()
        if isinstance(spec, FrameSampling):
            return spec
        if isinstance(spec, str):
            return cls._parse_string(spec)
        if isinstance(spec, Mapping):
            unknown = set(spec) - {"mode", "n", "k", "t", "max_frames"}
            if unknown:
                raise ValueError(f"dataset.frames: unknown key(s) {sorted(unknown)}; allowed: mode, n, k, t, max_frames")
            mf, n, k, t = spec.get("max_frames"), spec.get("n"), spec.get("k"), spec.get("t")
            try:
                t = None if t is None else float(t)
            except (TypeError, ValueError):
                raise ValueError(f"dataset.frames.t must be a number of seconds > 0, got {t!r}") from None
            return cls(mode=str(spec.get("mode", "uniform")), n=10 if n is None else int(n), k=1 if k is None else int(k),
                       max_frames=None if mf is None else int(mf), t=t)
        raise ValueError(f"dataset.frames: expected a mapping or a string, got {type(spec).__name__}")

    def with_max_frames(self, max_frames: int | None) -> FrameSampling:
        """This sampling with another ``max_frames``."""
        return FrameSampling(self.mode, self.n, self.k, max_frames, self.t)

    def indices(self, n_frames: int, fps: float | None = None) -> list[int]:
        """The sampled frame indices (sorted, unique) of a video with ``n_frames`` frames at ``fps`` frames per
        second (needed by mode ``seconds`` only: unknown or 0 is a ValueError there)."""
        total = int(n_frames)
        if self.max_frames is not None:
            total = min(total, int(self.max_frames))
        if self.mode == "seconds":
            rate = float(fps) if fps is not None else 0.0
            if not math.isfinite(rate) or rate <= 0:
                raise ValueError(f"dataset.frames.t: mode 'seconds' needs the video's fps, which is unknown "
                                 f"(fps={fps}); use another dataset.frames.mode for this video")
            total = min(total, math.ceil(round(float(self.t) * rate, 6)))
        if total <= 0:
            return []
        if self.mode == "first":
            return list(range(min(total, int(self.n))))
        if self.mode in ("all", "seconds") or (self.mode == "uniform" and self.n >= total):
            return list(range(total))
        if self.mode == "every":
            return list(range(0, total, int(self.k)))
        n = int(self.n)
        return sorted({min(total - 1, int((j + 0.5) * total / n)) for j in range(n)})

    def describe(self) -> str:
        """A short phrase for reports: ``10 uniform frames``, ``first 8 frames``, ``frames of the first 2.5 s``..."""
        base = {"all": "all frames", "uniform": f"{self.n} uniform frames", "every": f"1 frame in {self.k}",
                "first": f"first {self.n} frames",
                "seconds": f"frames of the first {self.t:g} s" if self.t is not None else ""}[self.mode]
        return base + (f" of the first {self.max_frames}" if self.max_frames else "")
