"""Sample files: read one file's bytes safely, and the one list of reasons a sample is rejected.

:data:`REJECT_CODES` names every reason; :class:`DecodeError` carries one (``code``) with a message naming the file.
Shared by the image decoder (:mod:`harness.faces.decode`) and the video decoder (:mod:`harness.faces.video`);
both re-use these names, and :mod:`harness.faces.decode` re-exports them.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["REJECT_CODES", "DEFAULT_MAX_PIXELS", "DecodeError", "DecodeLimits", "pixel_cap", "long_side_bound",
           "reject_code", "file_problem", "read_bytes", "content_hash"]

@dataclass(frozen=True)
class DecodeLimits:
    """What a decode may produce: ``max_pixels`` (the cap, ``runtime.max_pixels``; None: :data:`DEFAULT_MAX_PIXELS`)
    and ``long_side`` (``runtime.decode_long_side``: a JPEG at least twice as long is decoded at the largest libjpeg
    DCT scale, 1/2, 1/4 or 1/8, that keeps its longer side >= ``long_side``: a 12 MP phone photo is read at
    2016x1512 when 1600 suffices; None: full resolution). Passed wherever a ``max_pixels`` argument is taken (a plain
    integer there is the cap alone)."""

    max_pixels: int | None = None
    long_side: int | None = None


def pixel_cap(limits: "DecodeLimits | int | None") -> int:
    """The pixel cap of ``limits`` (an int cap, None, or :class:`DecodeLimits`); 0 = none."""
    cap = limits.max_pixels if isinstance(limits, DecodeLimits) else limits
    return DEFAULT_MAX_PIXELS if cap is None else int(cap)


def long_side_bound(limits: "DecodeLimits | int | None") -> int | None:
    """The reduced-decode bound of ``limits`` (None: decode at full resolution)."""
    ls = limits.long_side if isinstance(limits, DecodeLimits) else None
    return None if ls is None or int(ls) <= 0 else int(ls)


#: Why a sample is rejected: code -> meaning. The only list; ``datasets/README.md`` repeats it. Rows set aside when
#: the manifest is built (never opened) carry the first five; the rest come from reading and decoding.
REJECT_CODES: dict[str, str] = {
    "outside_root": "the path resolves (symlinks followed) outside the dataset root; never opened",
    "duplicate_row": "the same sample (path and frame, or sample_id) is listed again; the first row is used",
    "missing": "no file at the path (or an empty path cell)",
    "is_directory": "the path is a directory, not a file",
    "special_file": "the path is a FIFO, socket or device, not a regular file; never opened",
    "unreadable_file": "the file exists but cannot be read (permissions, I/O error)",
    "empty_file": "the file has zero bytes",
    "not_an_image": "the bytes are no image format the decoder reads (text, HTML, a video named like an image, ...)",
    "truncated": "the image data ends early",
    "corrupt": "the image decoder rejected the data (bad checksum, broken stream, unsupported variant)",
    "decompression_bomb": "declared size over Pillow's decompression-bomb limit (2 x Image.MAX_IMAGE_PIXELS, about "
                          "179 MP); refused from the header, never decoded",
    "pixels_over_cap": "more pixels than runtime.max_pixels and no reduced decode for the format (a JPEG is decoded "
                       "at 1/2, 1/4 or 1/8 scale instead, and the sample notes it); refused from the header",
    "too_small": "under 8 pixels on a side",
    "unreadable_video": "the video container or stream cannot be decoded",
    "empty_video": "the video file is empty or has no video frames",
    "frame_out_of_range": "the manifest asks for a frame the video does not have",
    "non_finite_output": "a model produced NaN or infinity for the sample",
}
#: Default pixel cap (``runtime.max_pixels``): admits 50 MP phone photos (8160 x 6144), refuses or reduces larger.
DEFAULT_MAX_PIXELS = 64_000_000


class DecodeError(ValueError):
    """The sample could not be decoded; the message names the file and the reason, ``code`` says which reason
    (a key of :data:`REJECT_CODES`)."""

    def __init__(self, message: str, code: str = "corrupt"):
        super().__init__(message)
        self.code = code if code in REJECT_CODES else "corrupt"


def reject_code(exc: BaseException) -> str:
    """The :data:`REJECT_CODES` key of a decode/read failure."""
    return getattr(exc, "code", None) or "corrupt"


def file_problem(path: str | Path) -> tuple[str, str] | None:
    """``(code, what)`` when ``path`` is no readable regular file (missing, directory, FIFO/device), else None.

    Uses ``os.stat`` only (follows symlinks, opens nothing: a FIFO is never opened)."""
    p = os.fspath(path)
    if not p:
        return "missing", "empty path"
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return "missing", "missing file"
    except NotADirectoryError:
        return "missing", "missing file (a parent is not a folder)"
    except (OSError, ValueError) as e:
        return "unreadable_file", f"cannot stat ({type(e).__name__}: {e.strerror if isinstance(e, OSError) else e})"
    if stat.S_ISDIR(st.st_mode):
        return "is_directory", "is a directory, not a file"
    if not stat.S_ISREG(st.st_mode):
        return "special_file", "not a regular file (FIFO, socket or device); not opened"
    return None


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes, or :class:`DecodeError` (missing, is_directory, special_file, unreadable_file)."""
    p = Path(path)
    bad = file_problem(p)
    if bad is not None:
        raise DecodeError(f"{bad[1]}: {p}", bad[0])
    try:  # O_NONBLOCK: a file swapped for a FIFO after the stat cannot block the read
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise DecodeError(f"unreadable file: {p} ({e.strerror})", "unreadable_file") from e
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DecodeError(f"not a regular file (FIFO, socket or device): {p}", "special_file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    except OSError as e:
        raise DecodeError(f"unreadable file: {p} ({e.strerror})", "unreadable_file") from e
    finally:
        os.close(fd)


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
