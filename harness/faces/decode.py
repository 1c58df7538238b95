"""Decode one sample into an RGB ``uint8`` HxWx3 array (EXIF orientation applied), or say why not.

Every failure is a :class:`DecodeError` whose message names the file and whose ``code`` is one of
:data:`REJECT_CODES`, the one list of reasons a sample is rejected (``datasets/README.md`` shows it).

Limits: the image's declared size is read from its header before any pixel is decoded. Over Pillow's
decompression-bomb limit (``2 x Image.MAX_IMAGE_PIXELS``, about 179 MP) it is ``decompression_bomb``; over
``max_pixels`` (``runtime.max_pixels``, default :data:`DEFAULT_MAX_PIXELS`) a JPEG is decoded reduced
(libjpeg's DCT scaling, ``Image.draft``: 1/2, 1/4 or 1/8) and the reduction is noted; any other format is
``pixels_over_cap``. Modes: 16-bit greyscale (``I;16``...) and 32-bit (``I``, ``F``) are scaled to 8 bits, not
clipped; alpha (``RGBA``, ``LA``, ``PA``, palette with transparency) is composited over white; CMYK, palette,
1-bit and YCbCr are converted by Pillow.
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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
_MIN_SIDE = 8


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


def _video_kind(data: bytes) -> str | None:
    """A video container's name when ``data`` starts like one (for the not_an_image message)."""
    head = data[:16]
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free"):
        return "MP4/QuickTime"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska/WebM"
    if head[:3] == b"FLV":
        return "FLV"
    if head[:4] == b"\x30\x26\xb2\x75":
        return "ASF/WMV"
    if len(data) > 188 and data[0] == 0x47 and data[188] == 0x47:
        return "MPEG-TS"
    return None


def _fmt_px(n: int) -> str:
    return f"{n / 1e6:.1f} MP"


def _open_checked(data: bytes, path: str, max_pixels: int | None, notes: list | None):
    """Open the image header, refuse bombs and (non-JPEG) images over the cap, set a JPEG's reduced decode."""
    import io

    if not data:
        raise DecodeError(f"empty file (0 bytes): {path}", "empty_file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the cap below decides
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise DecodeError(f"decompression bomb: {path}: {e}", "decompression_bomb") from e
    except UnidentifiedImageError as e:
        kind = _video_kind(data)
        why = (f"a {kind} video, not an image (give it a video extension, or a frame column)" if kind
               else "no image format the decoder reads")
        raise DecodeError(f"not an image: {path}: {why}", "not_an_image") from e
    except Exception as e:  # noqa: BLE001 - Pillow's plugins raise many types (struct.error, ...) on bad headers
        raise DecodeError(f"corrupt image header: {path}: {type(e).__name__}: {e}", "corrupt") from e
    w, h = im.size
    px = int(w) * int(h)
    if min(w, h) < _MIN_SIDE:
        im.close()
        raise DecodeError(f"image too small: {path}: {w}x{h} (under {_MIN_SIDE} px on a side)", "too_small")
    cap = DEFAULT_MAX_PIXELS if max_pixels is None else int(max_pixels)
    if cap > 0 and px > cap:
        if im.format in ("JPEG", "MPO"):
            d = next((d for d in (2, 4, 8) if math.ceil(w / d) * math.ceil(h / d) <= cap), None)
            if d is not None:
                im.draft(im.mode, (w // d, h // d))
            if d is not None and im.size[0] * im.size[1] <= cap:
                if notes is not None:
                    notes.append(f"pixels_over_cap: {w}x{h} ({_fmt_px(px)}) over runtime.max_pixels={cap}: JPEG "
                                 f"decoded at 1/{round(w / im.size[0])} scale ({im.size[0]}x{im.size[1]})")
                return im
        im.close()
        raise DecodeError(f"pixels over cap: {path}: {w}x{h} = {_fmt_px(px)} exceeds runtime.max_pixels={cap} "
                          f"({_fmt_px(cap)}); not decoded", "pixels_over_cap")
    return im


def decode_note(data: bytes, path: str, max_pixels: int | None = None) -> str:
    """The note :func:`decode_image` would record for ``data`` (a JPEG over the cap: decoded reduced), from the
    header only; ``""`` when none or when the header does not open. For samples whose scores come from the cache."""
    notes: list[str] = []
    try:
        _open_checked(data, path, max_pixels, notes).close()
    except DecodeError:
        return ""
    return "; ".join(notes)


def _to_rgb8(im: Image.Image) -> np.ndarray:
    """RGB uint8 pixels of ``im``: high bit depths scaled (not clipped), alpha composited over white."""
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        a = np.asarray(im)
        if mode == "F":
            a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
            a = np.clip(np.rint(a * 255.0 if a.size and a.max() <= 1.0 else a), 0, 255)
        else:
            a = a.astype(np.int64)
            top = int(a.max()) if a.size else 0
            if mode.startswith("I;16") or 255 < top <= 65535:
                a = (a + 128) // 257  # 16 bits -> 8 bits, rounded: 257 * k -> k
            elif top > 65535:
                a = a * 255 // top
            a = np.clip(a, 0, 255)
        g = a.astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode in ("P", "L", "RGB", "1") and "transparency" in im.info):
        rgba = im.convert("RGBA")
        out = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    else:
        out = im if mode == "RGB" else im.convert("RGB")
    return np.asarray(out, dtype=np.uint8)


def decode_image(data: bytes, path: str = "<bytes>", max_pixels: int | None = None,
                 notes: list | None = None) -> np.ndarray:
    """JPEG/PNG/... bytes -> RGB uint8 (H, W, 3), EXIF-transposed. Raises :class:`DecodeError` with a code.

    ``max_pixels``: the pixel cap (None: :data:`DEFAULT_MAX_PIXELS`; 0: none beyond Pillow's bomb limit); a JPEG
    over it is decoded reduced and ``notes`` (a list, when given) gets one line saying so."""
    im = _open_checked(data, path, max_pixels, notes)
    try:
        with im:
            try:
                im.load()
            except Image.DecompressionBombError as e:
                raise DecodeError(f"decompression bomb: {path}: {e}", "decompression_bomb") from e
            except OSError as e:
                trunc = "truncat" in str(e).lower()
                raise DecodeError(f"{'truncated' if trunc else 'corrupt'} image {path}: {e}",
                                  "truncated" if trunc else "corrupt") from e
            except MemoryError:
                raise
            except Exception as e:  # noqa: BLE001 - any other decoder failure is this file's, not the run's
                raise DecodeError(f"corrupt image {path}: {type(e).__name__}: {e}", "corrupt") from e
            try:
                shown = ImageOps.exif_transpose(im)
            except Exception as e:  # noqa: BLE001 - a broken EXIF block must not lose the pixels
                shown = im
                if notes is not None:
                    notes.append(f"exif orientation unreadable ({type(e).__name__}); decoded as stored")
            try:
                arr = _to_rgb8(shown)
            except MemoryError:
                raise
            except Exception as e:  # noqa: BLE001 - e.g. a mode with no RGB conversion
                raise DecodeError(f"corrupt image {path}: mode {shown.mode}: {type(e).__name__}: {e}", "corrupt") from e
    except MemoryError as e:
        raise DecodeError(f"pixels over cap: {path}: out of memory decoding {im.size[0]}x{im.size[1]}",
                          "pixels_over_cap") from e
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < _MIN_SIDE:
        raise DecodeError(f"image too small: {path}: shape {arr.shape}", "too_small")
    return np.ascontiguousarray(arr)


def decode_sample(data: bytes, path: str, frame: int = -1, max_pixels: int | None = None,
                  notes: list | None = None) -> np.ndarray:
    """One sample's RGB uint8 image: a still image (``frame == -1``) or frame ``frame`` of a video file; the
    same pixel cap for both (see :func:`decode_image`)."""
    if frame is None or int(frame) < 0:
        return decode_image(data, path, max_pixels=max_pixels, notes=notes)
    from harness.data.video import decode_frame  # video support lives with the dataset adapters

    return decode_frame(data, path, int(frame), max_pixels=max_pixels)
