"""The detection stage of the batched scoring engine: MTCNN on the decoded images of a chunk, batched by image
size, with OOM back-off; returns one :class:`harness.faces.detect.Detection` (or None: no face) per row."""

from __future__ import annotations

import torch

from harness.faces.detect import Detection
from harness.faces.mtcnn_batched import detections_from, mtcnn_detect
from harness.scoring.backoff import BackOff


def detect_stage(to_detect: list[int], where, imgs, detector, backoff: BackOff, fast: bool = True,
                 nms: str = "torchvision", mtcnn_fn=mtcnn_detect) -> dict[int, Detection | None]:
    """Detections of rows ``to_detect``; ``where[i] = (size, row)`` locates row ``i`` in ``imgs[size]``
    (uint8 ``[B, 3, H, W]`` on the device). ``fast``: the vectorised cascade ``mtcnn_fn``
    (:func:`harness.faces.mtcnn_batched.mtcnn_detect`), else facenet-pytorch's ``MTCNN.detect``. A detector
    without facenet-pytorch internals runs its own ``detect`` on NumPy images."""
    mtcnn = getattr(detector, "mtcnn", None)
    if mtcnn is None:
        arrs = [imgs[where[i][0]][where[i][1]].permute(1, 2, 0).cpu().numpy() for i in to_detect]
        return dict(zip(to_detect, detector.detect(arrs)))
    found: dict[int, Detection | None] = {}
    groups: dict[tuple[int, int], list[int]] = {}
    for i in to_detect:
        groups.setdefault(where[i][0], []).append(i)
    for hw, members in groups.items():
        rows = torch.as_tensor([where[i][1] for i in members], device=imgs[hw].device)

        def run(a: int, b: int, hw=hw, members=members, rows=rows) -> None:
            x = imgs[hw].index_select(0, rows[a:b])
            with torch.inference_mode():
                if fast:
                    boxes, points = mtcnn_fn(mtcnn, x, nms=nms)
                    dets = detections_from(detector, boxes, points)
                else:
                    bx, pr, pt = mtcnn.detect(x.permute(0, 2, 3, 1), landmarks=True)
                    dets = [detector.pick(bx[j], pr[j], pt[j]) for j in range(b - a)]
            for i, d in zip(members[a:b], dets):
                found[i] = d

        backoff.run(run, len(members))
    return found
