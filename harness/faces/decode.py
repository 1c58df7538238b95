"""Decode one sample into an RGB ``uint8`` HxWx3 array (EXIF orientation applied), or say why not.

Every failure is a :class:`DecodeError` whose message names the file and whose ``code`` is one of
:data:`REJECT_CODES`, the one list of reasons a sample is rejected (``datasets/README.md`` shows it).

Limits: the image's declared size is read from its header before any pixel is decoded. Over Pillow's
decompression-bomb limit (``2 x Image.MAX_IMAGE_PIXELS``, about 179 MP) it is ``decompression_bomb``; over
``max_pixels`` (``runtime.max_pixels``, default :data:`DEFAULT_MAX_PIXELS`) a JPEG is decoded reduced
(libjpeg's DCT scaling, ``Image.draft``: 1/2, 1/4 or 1/8) and the reduction is noted; any other format is
``pixels_over_cap``. With a reduced-decode bound (:class:`harness.faces.files.DecodeLimits`,
``runtime.decode_long_side``) a JPEG at least twice that long is read at the largest DCT scale keeping its
longer side >= the bound, and the sample notes it (``decoded_bounded``). Modes: 16-bit greyscale (``I;16``...) and 32-bit (``I``, ``F``) are scaled to 8 bits, not
clipped; alpha (``RGBA``, ``LA``, ``PA``, palette with transparency) is composited over white; CMYK, palette,
1-bit and YCbCr are converted by Pillow.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from harness.faces.files import (  # noqa: F401  (re-exported: the reject reasons and file reading)
    DEFAULT_MAX_PIXELS,
    REJECT_CODES,
    DecodeError,
    DecodeLimits,
    long_side_bound,
    pixel_cap,
    content_hash,
    file_problem,
    read_bytes,
    reject_code,
)

_MIN_SIDE = 8


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
    cap = pixel_cap(max_pixels)
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
    _bounded(im, long_side_bound(max_pixels), notes)
    return im


def _bounded(im, long_side: int | None, notes: list | None) -> None:
    """Set a JPEG's reduced decode (libjpeg DCT scaling) when it is at least twice ``long_side`` on its longer side:
    the largest of 1/2, 1/4, 1/8 that keeps the longer side >= ``long_side`` (see :class:`DecodeLimits`)."""
    if long_side is None or im.format not in ("JPEG", "MPO"):
        return
    w, h = im.size
    d = next((d for d in (8, 4, 2) if max(w, h) // d >= long_side), 1)
    if d == 1:
        return
    im.draft(im.mode, (math.ceil(w / d), math.ceil(h / d)))
    if notes is not None and im.size != (w, h):
        notes.append(f"decoded_bounded: {w}x{h} JPEG decoded at 1/{round(w / im.size[0])} scale "
                     f"({im.size[0]}x{im.size[1]}) for runtime.decode_long_side={long_side}")


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
    from harness.faces.video import decode_frame  # PyAV only when a video is decoded

    return decode_frame(data, path, int(frame), max_pixels=max_pixels)


def sample_hw(data: bytes, path: str, frame: int = -1, max_pixels: int | None = None) -> tuple[int, int] | None:
    """``(H, W)`` of the array :func:`decode_sample` returns, without decoding a still image's pixels (its header,
    the reduced JPEG size over ``max_pixels``, EXIF orientation 5-8 swapping the sides); a video's size from its
    first frame (decoded, upright). ``None`` when the sample does not open. For samples whose scores are cached."""
    try:
        if frame is not None and int(frame) >= 0:
            return tuple(int(v) for v in decode_sample(data, path, 0, max_pixels=max_pixels).shape[:2])
        with _open_checked(data, path, max_pixels, None) as im:
            w, h = im.size
            try:
                turned = int(im.getexif().get(0x0112, 1) or 1) in (5, 6, 7, 8)
            except Exception:  # noqa: BLE001 - an unreadable EXIF block: decoded as stored
                turned = False
    except DecodeError:
        return None
    return (int(w), int(h)) if turned else (int(h), int(w))
