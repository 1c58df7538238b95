"""Video samples in a dataset: which files are videos or images, and which frames of a video become samples.

A video sample is a manifest row with ``frame >= 0``: the index of a frame in presentation order, counted
from 0 (:class:`FrameSampling` chooses them). Decoding lives in :mod:`harness.faces.video`; its names are
re-exported here for the dataset adapters and existing callers.
"""

from __future__ import annotations

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


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


# --------------------------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class FrameSampling:
    """Which frames of a video become samples.

    ``mode``: ``uniform`` (``n`` frames spread evenly: the centres of ``n`` equal stretches), ``every`` (every
    ``k``-th frame from frame 0) or ``all``. ``max_frames``: only the first ``max_frames`` frames are eligible
    (e.g. SiW protocol 1 trains on the first 60 frames). Config (``dataset.frames``): a mapping with these keys,
    or the shorthand strings ``all``, ``uniform:10``, ``every:5``.
    """

    mode: str = "uniform"
    n: int = 10
    k: int = 1
    max_frames: int | None = None

    def __post_init__(self):
        if self.mode not in ("uniform", "every", "all"):
            raise ValueError(f"dataset.frames.mode must be 'uniform', 'every' or 'all', got {self.mode!r}")
        if self.mode == "uniform" and int(self.n) < 1:
            raise ValueError(f"dataset.frames.n must be >= 1, got {self.n}")
        if self.mode == "every" and int(self.k) < 1:
            raise ValueError(f"dataset.frames.k must be >= 1, got {self.k}")
        if self.max_frames is not None and int(self.max_frames) < 1:
            raise ValueError(f"dataset.frames.max_frames must be >= 1 or null, got {self.max_frames}")

    @classmethod
    def parse(cls, spec: FrameSampling | Mapping | str | None) -> FrameSampling:
        if spec is None:
            return cls()
        if isinstance(spec, FrameSampling):
            return spec
        if isinstance(spec, str):
            mode, _, num = spec.strip().partition(":")
            if mode == "all" and not num:
                return cls(mode="all")
            if mode in ("uniform", "every") and num.strip().isdigit():
                return cls(mode=mode, n=int(num)) if mode == "uniform" else cls(mode=mode, k=int(num))
            raise ValueError(f"dataset.frames: expected 'all', 'uniform:N' or 'every:K', got {spec!r}")
        if isinstance(spec, Mapping):
            unknown = set(spec) - {"mode", "n", "k", "max_frames"}
            if unknown:
                raise ValueError(f"dataset.frames: unknown key(s) {sorted(unknown)}; allowed: mode, n, k, max_frames")
            mf, n, k = spec.get("max_frames"), spec.get("n"), spec.get("k")
            return cls(mode=str(spec.get("mode", "uniform")), n=10 if n is None else int(n), k=1 if k is None else int(k),
                       max_frames=None if mf is None else int(mf))
        raise ValueError(f"dataset.frames: expected a mapping or a string, got {type(spec).__name__}")

    def with_max_frames(self, max_frames: int | None) -> FrameSampling:
        return FrameSampling(self.mode, self.n, self.k, max_frames)

    def indices(self, n_frames: int) -> list[int]:
        """The sampled frame indices (sorted, unique) of a video with ``n_frames`` frames."""
        total = int(n_frames)
        if self.max_frames is not None:
            total = min(total, int(self.max_frames))
        if total <= 0:
            return []
        if self.mode == "all" or (self.mode == "uniform" and self.n >= total):
            return list(range(total))
        if self.mode == "every":
            return list(range(0, total, int(self.k)))
        n = int(self.n)
        return sorted({min(total - 1, int((j + 0.5) * total / n)) for j in range(n)})

    def describe(self) -> str:
        base = {"all": "all frames", "uniform": f"{self.n} uniform frames", "every": f"1 frame in {self.k}"}[self.mode]
        return base + (f" of the first {self.max_frames}" if self.max_frames else "")
