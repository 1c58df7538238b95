"""The loader of the batched scoring engine (:mod:`harness.scoring.batched`): read, hash, probe the score store
and decode each chunk of the manifest (:class:`ChunkSource`, run in DataLoader workers), the plain-JPEG test and
torchvision CPU decode that match the Pillow path, and the nvjpeg batch decode on the device (:func:`gpu_decode`).
The store is read through :class:`harness.scoring.store.StoreReader` (no SQL here)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch

from harness.faces.decode import (DecodeError, content_hash, decode_image, decode_note, long_side_bound, pixel_cap,
                                  decode_sample, read_bytes, reject_code, sample_hw)
from harness.scoring.store import StoreReader, cache_key

_JPEG_MAGIC = b"\xff\xd8\xff"


def plain_jpeg(data: bytes, max_pixels: int | None = None) -> bool:
    """A JPEG that torchvision decodes exactly like the Pillow path: YCbCr/grey, no EXIF rotation, within the pixel
    cap (a larger one goes to Pillow, which refuses or reduces it)."""
    if not data.startswith(_JPEG_MAGIC):
        return False
    try:
        from PIL import Image

        cap = pixel_cap(max_pixels)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))  # header only
        with im:
            if im.format != "JPEG" or im.mode not in ("RGB", "L"):
                return False
            if cap > 0 and im.size[0] * im.size[1] > cap:
                return False
            bound = long_side_bound(max_pixels)
            if bound is not None and max(im.size) >= 2 * bound:  # Pillow reads it reduced (DCT scaling)
                return False
            return int(im.getexif().get(0x0112, 1) or 1) == 1
    except Exception:  # noqa: BLE001 - let the full decode report the problem
        return False


def decode_jpeg_cpu(data: bytes) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision >= 0.29 flags its image codecs as deprecated
        return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)


def check_shape(img: torch.Tensor) -> bool:
    return img.ndim == 3 and img.shape[0] == 3 and min(img.shape[1:]) >= 8


class ChunkSource(torch.utils.data.Dataset):
    """Item ``c`` = chunk ``c`` of the manifest, read, hashed, probed against the cache and decoded."""

    def __init__(self, paths, frames, chunk_size: int, stage_ids: tuple[str, str, str], cache_path, gpu_jpeg: bool,
                 max_pixels: int | None = None, skip=(), read=None):
        self.paths, self.frames = list(paths), [int(f) for f in frames]
        self.max_pixels = max_pixels
        self.skip = frozenset(int(i) for i in skip)  # rows the manifest set aside: never opened
        self.chunk_size = int(chunk_size)
        self.stage_ids = stage_ids
        self.cache_path = str(cache_path) if cache_path else None
        self.store = StoreReader(self.cache_path)
        self.gpu_jpeg = gpu_jpeg
        self.read = read_bytes if read is None else read  # the engine passes its own (patchable) reference

    def __len__(self) -> int:
        return (len(self.paths) + self.chunk_size - 1) // self.chunk_size

    def __getitem__(self, c: int) -> dict:
        idx = list(range(c * self.chunk_size, min(len(self.paths), (c + 1) * self.chunk_size)))
        det_id, emb_id, pad_id = self.stage_ids
        hashes: dict[int, str] = {}
        read_err: dict[int, tuple[str, str]] = {}  # row -> (code, reason)
        blobs: dict[int, bytes] = {}
        notes: dict[int, str] = {}
        by_path: dict[str, tuple[bytes, str] | tuple[str, str]] = {}  # video frames share one read + hash
        for i in idx:
            if i in self.skip:
                continue
            p = self.paths[i]
            if p not in by_path:
                try:
                    data = self.read(p)
                    by_path[p] = (data, content_hash(data))
                except DecodeError as e:
                    by_path[p] = (reject_code(e), str(e))
            got = by_path[p]
            if isinstance(got[0], str):
                read_err[i] = got
            else:
                blobs[i], hashes[i] = got
        keys = {i: (cache_key(h, self.frames[i], det_id), cache_key(h, self.frames[i], det_id, emb_id),
                    cache_key(h, self.frames[i], det_id, pad_id)) for i, h in hashes.items()}
        hit = self.store.get_many([k for ks in keys.values() for k in ks])
        groups: dict[tuple[int, int], tuple[list[int], list[torch.Tensor]]] = {}
        jpeg_idx, jpeg_blobs = [], []
        dec_err: dict[int, tuple[str, str]] = {}  # row -> (code, reason)
        sizes: dict[int, tuple[int, int]] = {}  # cached faces: row -> decoded (H, W)
        hw_of: dict[str, tuple[int, int] | None] = {}
        for i in hashes:
            kd, ke, kp = keys[i]
            data = blobs[i]
            if kd in hit and (np.isnan(hit[kd][0]) or (ke in hit and kp in hit)):
                if self.frames[i] < 0 and (note := decode_note(data, self.paths[i], self.max_pixels)):
                    notes[i] = note
                if not np.isnan(hit[kd][0]):  # a cached face: its frame size for pad_context_clamped
                    p = self.paths[i]
                    hw_of[p] = hw_of[p] if p in hw_of else sample_hw(data, p, self.frames[i], self.max_pixels)
                    if hw_of[p] is not None:
                        sizes[i] = hw_of[p]
                continue  # nothing left to compute for this sample
            try:
                img = None
                if self.frames[i] < 0 and plain_jpeg(data, self.max_pixels):
                    if self.gpu_jpeg:
                        jpeg_idx.append(i)
                        jpeg_blobs.append(data)
                        continue
                    try:
                        img = decode_jpeg_cpu(data)
                    except RuntimeError:
                        img = None  # fall back to Pillow, which names the problem
                    if img is not None and not check_shape(img):
                        img = None
                if img is None:
                    note: list[str] = []
                    arr = decode_sample(data, self.paths[i], self.frames[i], max_pixels=self.max_pixels, notes=note)
                    img = torch.from_numpy(arr if arr.flags.writeable else arr.copy()).permute(2, 0, 1)
                    if note:
                        notes[i] = "; ".join(note)
            except DecodeError as e:
                dec_err[i] = (reject_code(e), str(e))
                continue
            g = groups.setdefault((int(img.shape[1]), int(img.shape[2])), ([], []))
            g[0].append(i)
            g[1].append(img)
        out = {
            "idx": idx, "hash": hashes, "read_err": read_err, "dec_err": dec_err, "notes": notes,
            "groups": {hw: (rows, torch.stack(ims).contiguous()) for hw, (rows, ims) in groups.items()},
            "jpeg_idx": jpeg_idx, "sizes": sizes,
        }
        if jpeg_blobs:
            lens = [len(b) for b in jpeg_blobs]
            out["jpeg"] = torch.frombuffer(bytearray(b"".join(jpeg_blobs)), dtype=torch.uint8)
            out["jpeg_len"] = lens
        return out


def collate_identity(x):
    return x


def gpu_decode(chunk: dict, paths: list[str], dev: torch.device, add, dec_err: dict, max_pixels=None) -> None:
    """nvjpeg batch decode of the chunk's plain JPEGs; a batch failure falls back to one-by-one, then to Pillow."""
    from torchvision.io import ImageReadMode, decode_jpeg

    flat, lens, idx = chunk["jpeg"], chunk["jpeg_len"], chunk["jpeg_idx"]
    offs = np.concatenate([[0], np.cumsum(lens)])
    blobs = [flat[offs[k]:offs[k + 1]] for k in range(len(idx))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            decoded = decode_jpeg(blobs, mode=ImageReadMode.RGB, device=dev)
        except RuntimeError:
            decoded = []
            for b in blobs:
                try:
                    decoded.append(decode_jpeg(b, mode=ImageReadMode.RGB, device=dev))
                except RuntimeError:
                    decoded.append(None)
    for i, b, img in zip(idx, blobs, decoded):
        if img is None or not check_shape(img):
            try:  # what the simple engine does, error message included
                arr = decode_image(b.numpy().tobytes(), paths[i], max_pixels=max_pixels)
                img = torch.from_numpy(arr.copy()).permute(2, 0, 1).to(dev)
            except DecodeError as e:
                dec_err[i] = (reject_code(e), str(e))
                continue
        add(i, (int(img.shape[1]), int(img.shape[2])), img[None])
