"""The model stages of the batched scoring engine: aligned crops -> embedder, PAD crops -> PAD model, each as
device warps and model forwards in back-off slices (:class:`harness.scoring.backoff.BackOff`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from harness.faces.align import warp_to_template
from harness.faces.detect import BOX, LANDMARKS
from harness.faces.warp import align_batch, crop_resize_batch, crop_resize_fixed, similarity_batch, to_uint8
from harness.scoring.backoff import BackOff


@dataclass
class Forward:
    """A model forward on uint8 crops: to the device, optionally channels-last and under AMP; float32 NumPy out."""

    device: torch.device
    amp: bool = False
    channels_last: bool = False

    def __call__(self, model, crops: torch.Tensor) -> np.ndarray:
        x = crops.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(self.device.type, enabled=self.amp and self.device.type == "cuda"):
            y = model(x)
        return y.float().cpu().numpy()


def embed_stage(todo, where, imgs, det_arr, embedder, forward: Forward, backoff: BackOff) -> np.ndarray:
    """Embeddings of rows ``todo``: warp + forward per slice, so that an OOM in either backs off."""
    def embed_slice(a: int, b: int) -> np.ndarray:
        return forward(embedder, aligned_crops(todo[a:b], where, imgs, det_arr, embedder))

    return np.concatenate(backoff.run(embed_slice, len(todo)))


def pad_stage(todo, where, imgs, det_arr, pad, forward: Forward, backoff: BackOff, exact: bool) -> np.ndarray:
    """PAD scores of rows ``todo`` (flat), crop + forward per slice."""
    def pad_slice(a: int, b: int) -> np.ndarray:
        return forward(pad, pad_crops(todo[a:b], where, imgs, det_arr, pad, exact=exact))

    return np.concatenate(backoff.run(pad_slice, len(todo))).reshape(-1)


def aligned_crops(todo, where, imgs, det_arr, embedder) -> torch.Tensor:
    """uint8 ``[N, 3, h, w]`` aligned crops in ``todo`` order: on a GPU one ``grid_sample`` warp per image size;
    on the CPU OpenCV's ``warpAffine`` per face (the simple engine's call: faster there than a float warp of
    whole frames, and bit-exact)."""
    h, w = embedder.crop_size
    lm = det_arr[todo, LANDMARKS].reshape(-1, 5, 2)
    dev = next(iter(imgs.values())).device
    if dev.type == "cpu":
        chips = [warp_to_template(np.ascontiguousarray(imgs[where[i][0]][where[i][1]].permute(1, 2, 0).numpy()),
                                  lm[k], embedder.template, (h, w)) for k, i in enumerate(todo)]
        return torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).contiguous()
    mats = similarity_batch(lm, embedder.template)
    out = torch.empty((len(todo), 3, h, w), dtype=torch.uint8, device=dev)
    by_size: dict[tuple[int, int], list[int]] = {}
    for k, i in enumerate(todo):
        by_size.setdefault(where[i][0], []).append(k)
    for hw, part in by_size.items():
        rows = torch.as_tensor([where[todo[k]][1] for k in part], device=dev)
        src = imgs[hw].index_select(0, rows).float()
        out[torch.as_tensor(part, device=dev)] = to_uint8(align_batch(src, np.arange(len(part)), mats[part], (h, w)))
        del src
    return out


def _device_regions(todo, where, det_arr, pad, w: int):
    """Split ``todo`` positions into those whose PAD crop is expressible as in-frame rectangles (by image size,
    with their rectangles) and those cropped on the CPU by ``pad.crop``."""
    by_size: dict[tuple[int, int], list[tuple[int, list]]] = {}
    cpu_side: list[int] = []
    for k, i in enumerate(todo):
        hw = where[i][0]
        regions = pad.crop_regions(hw, det_arr[i, BOX])
        ok = regions is not None and len(regions) > 0 and w % len(regions) == 0 and all(
            0 <= x1 <= x2 <= hw[1] - 1 and 0 <= y1 <= y2 <= hw[0] - 1 for x1, y1, x2, y2 in regions)
        if ok:
            by_size.setdefault(hw, []).append((k, regions))
        else:
            cpu_side.append(k)
    return by_size, cpu_side


def pad_crops(todo, where, imgs, det_arr, pad, exact: bool = True) -> torch.Tensor:
    """uint8 ``[N, 3, h, w]`` PAD crops in ``todo`` order: device warps from ``crop_regions``, else ``crop``."""
    h, w = pad.crop_size
    dev = next(iter(imgs.values())).device
    out = torch.empty((len(todo), 3, h, w), dtype=torch.uint8, device=dev)
    by_size, cpu_side = _device_regions(todo, where, det_arr, pad, w)
    for hw, part in by_size.items():
        ks = [k for k, _ in part]
        rects = np.asarray([r for _, r in part], dtype=np.int64)
        rows = [where[todo[k]][1] for k in ks]
        size = (h, w // rects.shape[1])
        if exact:  # OpenCV's fixed-point bilinear: the simple engine's crops bit for bit
            crops = crop_resize_fixed(imgs[hw], rows, rects, size)
        else:
            src = imgs[hw].index_select(0, torch.as_tensor(rows, device=dev)).float()
            crops = to_uint8(crop_resize_batch(src, np.arange(len(ks)), rects, size))
        out[torch.as_tensor(ks, device=dev)] = crops
    for k in cpu_side:
        hw, r = where[todo[k]]
        frame = imgs[hw][r].permute(1, 2, 0).cpu().numpy()
        out[k] = torch.from_numpy(np.ascontiguousarray(pad.crop(frame, det_arr[todo[k], BOX]))).permute(2, 0, 1).to(dev)
    return out
