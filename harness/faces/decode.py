"""Decode one sample into an RGB ``uint8`` HxWx3 array (EXIF orientation applied), or say why not."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


class DecodeError(ValueError):
    """The sample could not be decoded; the message names the file and the reason."""


def read_bytes(path: str | Path) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise DecodeError(f"missing file: {p}")
    return p.read_bytes()


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_image(data: bytes, path: str = "<bytes>") -> np.ndarray:
    """JPEG/PNG/... bytes -> RGB uint8 (H, W, 3), EXIF-transposed. Raises :class:`DecodeError`."""
    import io

    try:
        with Image.open(io.BytesIO(data)) as im:
            im = ImageOps.exif_transpose(im)
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DecodeError(f"unreadable image {path}: {e}") from e
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 8:
        raise DecodeError(f"unusable image {path}: shape {arr.shape}")
    return np.ascontiguousarray(arr)


def decode_sample(data: bytes, path: str, frame: int = -1) -> np.ndarray:
    """One sample's RGB uint8 image: a still image (``frame == -1``) or frame ``frame`` of a video file."""
    if frame is None or int(frame) < 0:
        return decode_image(data, path)
    from harness.data.video import decode_frame  # video support lives with the dataset adapters

    return decode_frame(data, path, int(frame))
