"""Bounded detector input for MTCNN (``detector.max_side``), shared by both scoring engines.

Before detection, an image whose longer side exceeds ``max_side`` is downscaled (aspect kept) so that its longer
side is ``max_side``: antialiased bilinear interpolation (:func:`resize_u8`; on the uint8 tensor on the CPU, ~3x
faster there than ``mode="area"``, with similar parity at max_side 1024). The images of a batch are then
zero-padded at the right and bottom to a common canvas (the batch's largest height and width,
:func:`letterbox`) and detected in one MTCNN call; :func:`map_back` divides boxes and landmarks by the per-axis
scale (the padding at the right/bottom needs no offset) and drops detections whose box centre lies in the padding.

:func:`plan` splits the images of a detection call into groups:

* an image that needs no resize is grouped with the images of its own size and detected exactly as before
  (``exact``: no resize, no canvas; ``max_side=None`` makes every group exact, which is the old behaviour);
* the resized images are grouped by the MTCNN ``min_face_size`` they need so that ``min_face_size`` keeps its
  meaning "smallest face in ORIGINAL pixels": an image downscaled by ``s`` needs ``min_face_size * s`` in the
  detector input; where that is below ``min(12, min_face_size)`` (12 px is P-Net's input: a smaller value would
  upsample the image) it is divided by whole pyramid steps instead (:func:`detector_min_face`), so the pyramid
  keeps full resolution's scales (measured: closer boxes than a plain floor at 12). Only images with the same
  need share a batch (the need depends on the longer side only: photos of one resolution share a group whatever
  their orientation), so an image's detections never depend on its batch mates: the letterboxed cascade
  (:func:`harness.faces.mtcnn_batched.mtcnn_detect` with ``sizes``) detects each image as if alone.
  The smallest face found, in original pixels, is ``min_face_size / factor**j`` for the fewest steps ``j`` that
  reach the floor; for a 4032x3024 photo and ``min_face_size`` 40: 40 px at ``max_side`` 1280, 40 / 0.709 =
  56 px at 1024, 40 / 0.709**2 = 80 px at 640 or 800 (images not resized: ``min_face_size``).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Group", "plan", "smallest_face", "scale_for", "input_size", "resize_u8", "letterbox", "map_back", "face_floor",
           "detector_min_face", "MTCNN_NET_SIZE"]

#: P-Net's input size: MTCNN's smallest face at pyramid scale 1
MTCNN_NET_SIZE = 12


@dataclass(frozen=True)
class Group:
    """Images detected together: ``members`` (indices into :func:`plan`'s ``sizes``), their original ``sizes``
    and detector-input ``inputs`` ((h, w) each), the MTCNN ``min_face`` (detector-input pixels; None: the
    detector's own) and ``exact`` (one size, no resize: detected as before, without a canvas)."""

    members: tuple[int, ...]
    sizes: tuple[tuple[int, int], ...]
    inputs: tuple[tuple[int, int], ...]
    min_face: float | None
    exact: bool

    def part(self, a: int, b: int) -> "Group":
        """Members ``a:b`` of this group (a detection batch), with the group's ``min_face``."""
        return Group(self.members[a:b], self.sizes[a:b], self.inputs[a:b], self.min_face, self.exact)

    @property
    def canvas(self) -> tuple[int, int]:
        """The letterbox canvas (h, w): the largest input height and width of the members."""
        return max(h for h, _ in self.inputs), max(w for _, w in self.inputs)


def scale_for(h: int, w: int, max_side: int | None) -> float:
    """Detector-input pixels per original pixel: ``max_side / max(h, w)`` for a larger image, else 1."""
    if max_side is None or max(h, w) <= max_side:
        return 1.0
    return float(max_side) / max(h, w)


def input_size(h: int, w: int, max_side: int | None) -> tuple[int, int]:
    """The detector-input (h, w) of an ``h x w`` image: unchanged, or the longer side ``max_side`` (aspect kept)."""
    s = scale_for(h, w, max_side)
    if s == 1.0:
        return int(h), int(w)
    return (int(max_side), max(1, round(w * s))) if h >= w else (max(1, round(h * s)), int(max_side))


def detector_min_face(min_face_size: float, scale: float, factor: float = 0.709) -> float:
    """The MTCNN ``min_face_size`` for an image downscaled by ``scale``: ``min_face_size * scale``, divided by
    the pyramid ``factor`` as often as needed to reach ``min(12, min_face_size)`` (P-Net's input size; a smaller
    value would upsample the image). Dividing by whole pyramid steps keeps the pyramid's scales (in original
    pixels) those of full-resolution detection: its finest levels are left out instead of all levels shifting,
    which keeps the boxes closer to full resolution's (measured: ``benchmarks/choose_max_side.py``)."""
    floor = min(float(MTCNN_NET_SIZE), float(min_face_size))
    need = float(min_face_size) * scale
    while need < floor * (1 - 1e-9):
        need /= factor
    return need


def smallest_face(h: int, w: int, min_face_size: float, min_face_fraction: float | None = None) -> float:
    """The smallest face searched for in an ``h x w`` image, in its own pixels: ``min_face_size``, or
    ``min_face_fraction`` of its shorter side where that is larger (``detector.min_face_fraction``: a face in a
    12 MP photo is not searched for at 40 px)."""
    if not min_face_fraction:
        return float(min_face_size)
    return max(float(min_face_size), float(min_face_fraction) * min(int(h), int(w)))


def plan(sizes: list[tuple[int, int]], max_side: int | None, min_face_size: float,
         factor: float = 0.709, min_face_fraction: float | None = None) -> list[Group]:
    """Groups of the images of sizes ``sizes`` ((h, w) each) to detect together (see the module docstring):
    one per size needing no resize, one per ``min_face`` need of the resized (their members ordered by
    orientation and size: less padding within a batch). ``min_face_fraction``: :func:`smallest_face`."""
    exact: dict[tuple[int, int], list[int]] = {}
    bands: dict[float, list[int]] = {}
    for i, (h, w) in enumerate(sizes):
        s = scale_for(h, w, max_side)
        if s == 1.0:
            exact.setdefault((int(h), int(w)), []).append(i)
        else:
            need = detector_min_face(smallest_face(h, w, min_face_size, min_face_fraction), s, factor)
            bands.setdefault(round(need, 9), []).append(i)
    groups = []
    for (h, w), m in exact.items():
        face = smallest_face(h, w, min_face_size, min_face_fraction)
        groups.append(Group(tuple(m), tuple(sizes[i] for i in m), tuple(sizes[i] for i in m),
                            None if face == float(min_face_size) else face, True))
    for band in sorted(bands):
        m = sorted(bands[band], key=lambda i: (sizes[i][0] > sizes[i][1], sizes[i], i))
        ins = tuple(input_size(*sizes[i], max_side) for i in m)
        groups.append(Group(tuple(m), tuple(tuple(sizes[i]) for i in m), ins, band, False))
    return groups


def resize_u8(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 ``[3, h, w]`` (or ``[B, 3, h, w]``) -> uint8 at ``size`` (h, w) by antialiased bilinear
    interpolation (:func:`torch.nn.functional.interpolate`, ``antialias=True``): on the uint8 tensor on the CPU,
    in float32 (rounded back) elsewhere; returned unchanged when the size is already ``size``."""
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    x = img[None] if img.dim() == 3 else img
    if x.device.type == "cpu":
        y = torch.nn.functional.interpolate(x, size=tuple(size), mode="bilinear", antialias=True)
    else:
        y = torch.nn.functional.interpolate(x.to(torch.float32), size=tuple(size), mode="bilinear", antialias=True)
        y = y.round_().clamp_(0, 255).to(torch.uint8)
    return y[0] if img.dim() == 3 else y


def letterbox(images: list[torch.Tensor], group: Group) -> torch.Tensor:
    """uint8 ``[3, h, w]`` images (the members of ``group``, original sizes) -> one uint8 ``[B, 3, H, W]``
    canvas: each resized to its input size and placed at the top left, zeros to the right and bottom."""
    hh, ww = group.canvas
    dev = images[0].device if images else None
    out = torch.zeros((len(images), 3, hh, ww), dtype=torch.uint8, device=dev)
    for k, (img, (h, w)) in enumerate(zip(images, group.inputs)):
        out[k, :, :h, :w] = resize_u8(img, (h, w))
    return out


def map_back(boxes: np.ndarray, points: np.ndarray, size: tuple[int, int],
             input_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Detections on a letterboxed input (boxes ``[n, >=4]`` x1, y1, x2, y2, ...; landmarks ``[n, 5, 2]``) ->
    the original image's coordinates (``size``: original (h, w); ``input_hw``: the image's (h, w) in the canvas).
    Detections whose box centre lies outside the image (in the padding) are dropped; columns past 4 are kept."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(len(boxes), -1)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 5, 2)
    ih, iw = input_hw
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    keep = (cx < iw) & (cy < ih)
    boxes, points = boxes[keep].copy(), points[keep].copy()
    sx, sy = iw / float(size[1]), ih / float(size[0])
    boxes[:, [0, 2]] /= sx
    boxes[:, [1, 3]] /= sy
    points[:, :, 0] /= sx
    points[:, :, 1] /= sy
    return boxes, points


@contextmanager
def face_floor(mtcnn, min_face: float | None):
    """Runs the block with ``mtcnn.min_face_size = min_face`` (None: unchanged), restoring it afterwards."""
    if min_face is None:
        yield mtcnn
        return
    old = mtcnn.min_face_size
    mtcnn.min_face_size = min_face
    try:
        yield mtcnn
    finally:
        mtcnn.min_face_size = old
