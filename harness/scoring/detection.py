"""The detection stage of the batched scoring engine: MTCNN on the decoded images of a chunk, with OOM back-off;
returns one :class:`harness.faces.detect.Detection` (or None: no face) per row.

Images are grouped by :func:`harness.faces.letterbox.plan` (the detector's ``max_side``): images that need no
resize are batched by size and detected as before; larger images are downscaled, letterboxed to a common canvas,
detected together and mapped back to their original coordinates (:mod:`harness.faces.letterbox`)."""

from __future__ import annotations

import numpy as np
import torch

from harness.faces.detect import Detection
from harness.faces.letterbox import Group, face_floor, letterbox, map_back, plan
from harness.faces.mtcnn_batched import detections_from, mtcnn_detect
from harness.scoring.backoff import BackOff


def detect_stage(to_detect: list[int], where, imgs, detector, backoff: BackOff, fast: bool = True,
                 nms: str = "torchvision", mtcnn_fn=mtcnn_detect) -> dict[int, Detection | None]:
    """Detections of rows ``to_detect``; ``where[i] = (size, row)`` locates row ``i`` in ``imgs[size]``
    (uint8 ``[B, 3, H, W]`` on the device). ``fast``: the vectorised cascade ``mtcnn_fn``
    (:func:`harness.faces.mtcnn_batched.mtcnn_detect`), else facenet-pytorch's ``MTCNN.detect`` (for batches of
    one size; letterboxed batches always run ``mtcnn_fn`` with the images' sizes). A detector without
    facenet-pytorch internals runs its own ``detect`` on NumPy images."""
    mtcnn = getattr(detector, "mtcnn", None)
    if mtcnn is None:
        arrs = [imgs[where[i][0]][where[i][1]].permute(1, 2, 0).cpu().numpy() for i in to_detect]
        return dict(zip(to_detect, detector.detect(arrs)))
    found: dict[int, Detection | None] = {}
    refine = bool(getattr(detector, "refine_original", False))
    groups = plan([where[i][0] for i in to_detect], getattr(detector, "max_side", None),
                  getattr(detector, "min_face_size", mtcnn.min_face_size), getattr(detector, "factor", mtcnn.factor),
                  getattr(detector, "min_face_fraction", None))
    for group in groups:
        members = [to_detect[k] for k in group.members]

        def run(a: int, b: int, group=group, members=members) -> None:
            """Detect members ``a:b`` of ``group`` (one batch) into ``found``."""
            part = group.part(a, b)
            x = batch_input(imgs, where, members[a:b], part)
            with torch.inference_mode(), face_floor(mtcnn, part.min_face):
                if not part.exact and refine:  # P-Net on the bounded input, R/O-Net on the originals
                    originals = [imgs[where[i][0]][where[i][1]] for i in members[a:b]]
                    boxes, points = mtcnn_fn(mtcnn, x, nms=nms, sizes=list(part.inputs), originals=originals)
                elif not part.exact:  # always the vectorised cascade: it detects each image as if alone
                    boxes, points = mtcnn_fn(mtcnn, x, nms=nms, sizes=list(part.inputs))
                    boxes, points = map_all_back(boxes, points, part)
                elif fast:
                    boxes, points = mtcnn_fn(mtcnn, x, nms=nms)
                else:
                    bx, pr, pt = mtcnn.detect(x.permute(0, 2, 3, 1), landmarks=True)
                    boxes, points = facenet_rows(bx, pr, pt)
            for i, d in zip(members[a:b], detections_from(detector, boxes, points)):
                found[i] = d

        backoff.run(run, len(members))
    return found


def map_all_back(boxes: list, points: list, part: Group) -> tuple[list, list]:
    """Per-image detections of a letterboxed batch ``part`` -> its images' original coordinates
    (:func:`harness.faces.letterbox.map_back`)."""
    mapped = [map_back(bb, pp, s, hw) for bb, pp, s, hw in zip(boxes, points, part.sizes, part.inputs)]
    return [m[0] for m in mapped], [m[1] for m in mapped]


def batch_input(imgs, where, rows: list[int], part: Group) -> torch.Tensor:
    """The detector input of rows ``rows`` (a batch of ``part``): their stack as uploaded (an exact group: one
    size), or the resized images letterboxed to the batch's canvas."""
    if part.exact:
        hw = where[rows[0]][0]
        idx = torch.as_tensor([where[i][1] for i in rows], device=imgs[hw].device)
        return imgs[hw].index_select(0, idx)
    return letterbox([imgs[where[i][0]][where[i][1]] for i in rows], part)


def facenet_rows(bx, pr, pt) -> tuple[list, list]:
    """facenet-pytorch ``MTCNN.detect`` output (per image: boxes ``[n, 4]`` or None, probs, landmarks) ->
    per image boxes ``[n, 5]`` (with the probability) and landmarks ``[n, 5, 2]`` (empty: no face)."""
    boxes, points = [], []
    for b, p, q in zip(bx, pr, pt):
        if b is None or len(b) == 0:
            boxes.append(np.zeros((0, 5)))
            points.append(np.zeros((0, 5, 2)))
        else:
            boxes.append(np.column_stack([np.asarray(b), np.asarray(p)]))
            points.append(np.asarray(q).reshape(-1, 5, 2))
    return boxes, points
