"""Batched warps on the device: the tensor counterparts of the per-image OpenCV calls the simple engine makes.

* :func:`similarity_batch` - :func:`harness.faces.align.estimate_similarity` for N landmark sets at once.
* :func:`align_batch` - ``cv2.warpAffine(INTER_LINEAR, BORDER_CONSTANT=0)`` of N faces as one
  ``affine_grid`` + ``grid_sample`` call (pixel centres at integer coordinates, as OpenCV does).
* :func:`crop_resize_batch` - ``cv2.resize(frame[y1:y2+1, x1:x2+1], (w, h))`` (INTER_LINEAR, half-pixel centres,
  edge clamped inside the rectangle) for N faces and K rectangles each, placed side by side, as one
  ``grid_sample`` call: the axis-aligned affine warp behind :meth:`PADModel.crop_regions`.
  :func:`crop_resize_fixed` samples the same points with OpenCV's fixed-point weights and rounding, and equals
  ``cv2.resize`` bit for bit (the engine's default for PAD crops).
* :func:`roi_area_resize` - ``F.interpolate(img[..., y0:y1, x0:x1], size, mode="area")`` for many boxes of a
  batch at once, from an integer summed-area table (exact sums; the same ``sum / kh / kw`` division as the
  adaptive average pooling ``interpolate`` runs), used by the vectorised MTCNN refinement stages.

OpenCV computes bilinear weights in fixed point (5 fractional bits for warp coordinates, 11 bits for resize
weights) and rounds; these functions work in float32 and round to ``uint8`` at the end (:func:`to_uint8`), so
single pixels can differ by one or two grey levels from the OpenCV crop. ``tests/scoring`` measures it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def similarity_batch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``[N, 2, 3]`` least-squares similarities (no reflection) mapping each ``src[n]`` (P x 2) onto ``dst``."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.ndim != 3 or src.shape[1:] != dst.shape or src.shape[2] != 2:
        raise ValueError(f"landmarks must be [N, P, 2] matching the template {dst.shape}, got {src.shape}")
    n, p = src.shape[:2]
    mu_s = src.mean(1, keepdims=True)
    mu_d = dst.mean(0)
    s = src - mu_s
    d = dst - mu_d
    cov = np.einsum("pi,npj->nij", d, s) / p  # d^T s
    u, sig, vt = np.linalg.svd(cov)
    sign = np.where(np.linalg.det(u) * np.linalg.det(vt) < 0, -1.0, 1.0)
    e = np.stack([np.ones(n), sign], axis=1)  # diagonal of E
    r = u @ (e[:, :, None] * vt)
    var_s = (s ** 2).sum(axis=(1, 2)) / p
    scale = (sig * e).sum(1) / var_s
    t = mu_d[None, :] - scale[:, None] * np.einsum("nij,nj->ni", r, mu_s[:, 0, :])
    return np.concatenate([scale[:, None, None] * r, t[:, :, None]], axis=2)


def _invert_affine(m: np.ndarray) -> np.ndarray:
    """``[N, 2, 3]`` forward maps -> their inverses (float64)."""
    a = m[:, :, :2]
    ai = np.linalg.inv(a)
    return np.concatenate([ai, -np.einsum("nij,nj->ni", ai, m[:, :, 2])[:, :, None]], axis=2)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float pixel values -> ``uint8`` (rounded, saturated), like OpenCV's ``saturate_cast``."""
    return x.round_().clamp_(0, 255).to(torch.uint8)


def align_batch(images: torch.Tensor, rows: torch.Tensor | np.ndarray, m: np.ndarray,
                out_hw: tuple[int, int]) -> torch.Tensor:
    """Warp face ``n`` of ``images[rows[n]]`` (float ``[B, C, H, W]``) by the forward map ``m[n]`` (2x3, source
    pixel -> output pixel, as given to ``cv2.warpAffine``) into ``[N, C, h, w]`` float, bilinear, zero outside."""
    h, w = out_hw
    hs, ws = images.shape[-2:]
    m = np.asarray(m, dtype=np.float64).reshape(-1, 2, 3)
    inv = np.concatenate([_invert_affine(m), np.tile([[[0.0, 0.0, 1.0]]], (len(m), 1, 1))], axis=1)  # out -> src
    # affine_grid works in normalised coordinates; with align_corners=True, -1/1 are the centres of the corner pixels
    to_norm = np.array([[2.0 / max(ws - 1, 1), 0, -1], [0, 2.0 / max(hs - 1, 1), -1], [0, 0, 1]])
    from_norm = np.array([[(w - 1) / 2.0, 0, (w - 1) / 2.0], [0, (h - 1) / 2.0, (h - 1) / 2.0], [0, 0, 1]])
    theta = (to_norm @ inv @ from_norm)[:, :2]
    theta_t = torch.as_tensor(theta, dtype=torch.float32).to(images.device, non_blocking=True)
    grid = F.affine_grid(theta_t, [len(m), images.shape[1], h, w], align_corners=True)
    src = images.index_select(0, torch.as_tensor(rows, dtype=torch.long).to(images.device))
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def _resize_axis(lo: torch.Tensor, hi: torch.Tensor, n_out: int) -> torch.Tensor:
    """Source coordinates of ``n_out`` output samples over the inclusive pixel range ``[lo, hi]`` (per row):
    OpenCV INTER_LINEAR: ``(i + 0.5) * len / n_out - 0.5``, clamped into the range."""
    length = (hi - lo + 1).to(torch.float64)
    i = torch.arange(n_out, dtype=torch.float64, device=lo.device)
    f = (i[None, :] + 0.5) * (length[:, None] / n_out) - 0.5
    f = torch.minimum(f.clamp_min(0.0), (length - 1)[:, None])
    return lo.to(torch.float64)[:, None] + f


def crop_resize_batch(images: torch.Tensor, rows: torch.Tensor | np.ndarray, rects: np.ndarray,
                      out_hw: tuple[int, int]) -> torch.Tensor:
    """Crop inclusive rectangles ``rects[n, k] = (x1, y1, x2, y2)`` from ``images[rows[n]]`` (float
    ``[B, C, H, W]``) and resize each to ``out_hw`` (bilinear, OpenCV's ``cv2.resize`` sampling); the K crops of
    one face are placed side by side: ``[N, C, h, K * w]`` float."""
    h, w = out_hw
    hs, ws = images.shape[-2:]
    dev = images.device
    r = torch.as_tensor(np.asarray(rects, dtype=np.int64).reshape(len(rects), -1, 4))
    n, k = r.shape[:2]
    flat = r.reshape(n * k, 4)
    xs = _resize_axis(flat[:, 0], flat[:, 2], w)  # [N*K, w] source x (pixels)
    ys = _resize_axis(flat[:, 1], flat[:, 3], h)  # [N*K, h]
    gx = xs * (2.0 / max(ws - 1, 1)) - 1.0
    gy = ys * (2.0 / max(hs - 1, 1)) - 1.0
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)  # [N*K, h, w, 2]
    grid = grid.reshape(n, k, h, w, 2).permute(0, 2, 1, 3, 4).reshape(n, h, k * w, 2)
    grid = grid.to(torch.float32).to(dev, non_blocking=True)
    src = images.index_select(0, torch.as_tensor(rows, dtype=torch.long).to(dev))
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def _cv2_linear_coeffs(lo: np.ndarray, hi: np.ndarray, n_out: int, clamp: bool):
    """OpenCV's INTER_LINEAR source index and 11-bit weights along one axis of inclusive ranges ``[lo, hi]``:
    ``f = float32((i + 0.5) * len / n_out - 0.5)``, ``s = floor(f)``, weights ``rint((1 - frac) * 2048)`` and
    ``rint(frac * 2048)``; along x (``clamp``) an index left of the range or at its last pixel gets weight
    (2048, 0), along y it does not (OpenCV clamps only the row index there). Returns absolute indices of both
    taps (clipped into the range) and both weights, each ``[N, n_out]`` int64."""
    length = (hi - lo + 1).astype(np.int64)
    scale = length.astype(np.float64)[:, None] / n_out
    f = ((np.arange(n_out)[None, :] + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = (f - s.astype(np.float32)).astype(np.float32)
    if clamp:
        low = s < 0
        f[low], s[low] = 0, 0
        high = s >= (length - 1)[:, None]
        f[high] = 0
        s = np.where(high, (length - 1)[:, None], s)
    w0 = np.rint((np.float32(1) - f) * np.float32(2048)).astype(np.int64)
    w1 = np.rint(f * np.float32(2048)).astype(np.int64)
    last = (length - 1)[:, None]
    i0 = np.clip(s, 0, last) + lo[:, None]
    i1 = np.clip(s + 1, 0, last) + lo[:, None]
    return i0, i1, w0, w1


def crop_resize_fixed(images_u8: torch.Tensor, rows: torch.Tensor | np.ndarray, rects: np.ndarray,
                      out_hw: tuple[int, int]) -> torch.Tensor:
    """:func:`crop_resize_batch` in OpenCV's own fixed-point arithmetic: ``uint8 [N, C, h, K * w]`` equal to
    ``cv2.resize(frame[y1:y2+1, x1:x2+1], (w, h))`` (INTER_LINEAR) bit for bit (OpenCV 4.x/5.0 8-bit path:
    11-bit weights, horizontal pass in int, vertical pass ``((b0*(S0>>4))>>16) + ((b1*(S1>>4))>>16) + 2 >> 2``),
    computed with integer gathers on the images' device. ``images_u8``: ``uint8 [B, C, H, W]``."""
    h, w = out_hw
    b, c, hs, ws = images_u8.shape
    dev = images_u8.device
    r = np.asarray(rects, dtype=np.int64).reshape(len(rects), -1, 4)
    n, k = r.shape[:2]
    flat = r.reshape(n * k, 4)
    x0, x1, a0, a1 = _cv2_linear_coeffs(flat[:, 0], flat[:, 2], w, clamp=True)  # [NK, w]
    y0, y1, b0, b1 = _cv2_linear_coeffs(flat[:, 1], flat[:, 3], h, clamp=False)  # [NK, h]
    img = np.repeat(np.asarray(torch.as_tensor(rows).cpu(), dtype=np.int64), k)  # [NK]

    def t(a):
        return torch.as_tensor(a).to(dev, non_blocking=True)

    img_t, x0, x1, y0, y1 = t(img), t(x0), t(x1), t(y0), t(y1)
    a0, a1, b0, b1 = (t(v).to(torch.int32) for v in (a0, a1, b0, b1))
    plane = (img_t[:, None] * c + torch.arange(c, device=dev)[None, :]) * (hs * ws)  # [NK, C]
    src = images_u8.reshape(-1)

    def tap(yy, xx):  # [NK, C, h, w] int32
        pix = yy[:, :, None] * ws + xx[:, None, :]
        return src[plane[:, :, None, None] + pix[:, None, :, :]].to(torch.int32)

    a0, a1 = a0[:, None, None, :], a1[:, None, None, :]
    s0 = tap(y0, x0) * a0 + tap(y0, x1) * a1
    s1 = tap(y1, x0) * a0 + tap(y1, x1) * a1
    out = (((b0[:, None, :, None] * (s0 >> 4)) >> 16) + ((b1[:, None, :, None] * (s1 >> 4)) >> 16) + 2) >> 2
    out = out.clamp_(0, 255).to(torch.uint8)  # [NK, C, h, w]
    return out.reshape(n, k, c, h, w).permute(0, 2, 3, 1, 4).reshape(n, c, h, k * w)


def summed_area(images_u8: torch.Tensor) -> torch.Tensor:
    """Integer summed-area table ``S[b, c, i, j] = sum(img[b, c, :i, :j])`` of ``uint8`` images ``[B, C, H, W]``,
    as ``int32`` ``[B, C, H+1, W+1]`` (exact: 255 * H * W fits for any frame up to ~8 megapixels)."""
    if images_u8.shape[-2] * images_u8.shape[-1] * 255 >= 2 ** 31:
        s = images_u8.to(torch.int64)
    else:
        s = images_u8.to(torch.int32)
    s = s.cumsum(2).cumsum(3)
    return F.pad(s, (1, 0, 1, 0))


def _pool_bounds(length: torch.Tensor, n_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive pooling cell bounds ``[start, end)`` for each of ``n_out`` cells over ``length`` inputs (per row),
    PyTorch's integer rule: ``start = floor(i*L/n)``, ``end = ceil((i+1)*L/n)``."""
    i = torch.arange(n_out, device=length.device, dtype=torch.int64)
    start = (i[None, :] * length[:, None]) // n_out
    end = ((i[None, :] + 1) * length[:, None] + n_out - 1) // n_out
    return start, end


def roi_area_resize(images, img_idx, y0, y1, x0, x1, size: int,
                    table: torch.Tensor | None = None) -> torch.Tensor:
    """``interpolate(images[img_idx[k], :, y0[k]:y1[k], x0[k]:x1[k]], (size, size), mode="area")`` for every box
    ``k`` (half-open, in-image bounds); float32 ``[K, C, size, size]``. ``images``: a float batch ``[B, C, H, W]``,
    or (no table) a list of ``[C, H, W]`` images of any sizes and dtypes (uint8 crops are pooled in float32).

    With a :func:`summed_area` ``table`` (the device path) all boxes are pooled at once from exact integer sums,
    divided as PyTorch's pooling kernel for contiguous input divides (``sum / kh / kw``; its CUDA kernel for
    channels-last input multiplies by ``1 / (kh * kw)`` instead, which can differ in the last bit); without a
    table, box by box (the CPU path: on a CPU a summed-area table of a whole batch costs more than the per-box
    pooling it replaces).
    """
    if table is None:
        return _roi_area_loop(images, img_idx, y0, y1, x0, x1, size)
    dev = table.device
    img_idx, y0, y1, x0, x1 = (torch.as_tensor(v, dtype=torch.int64).to(dev) for v in (img_idx, y0, y1, x0, x1))
    ys, ye = _pool_bounds(y1 - y0, size)  # [K, s]
    xs, xe = _pool_bounds(x1 - x0, size)
    ys, ye = ys + y0[:, None], ye + y0[:, None]
    xs, xe = xs + x0[:, None], xe + x0[:, None]
    b, c, hp, wp = table.shape
    flat = table.reshape(-1)
    plane = (img_idx[:, None] * c + torch.arange(c, device=dev)[None, :]) * (hp * wp)  # [K, C] plane offsets

    def corner(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        pix = yy[:, :, None] * wp + xx[:, None, :]  # [K, s, s]
        return flat[plane[:, :, None, None] + pix[:, None, :, :]]  # [K, C, s, s]

    total = corner(ye, xe) - corner(ys, xe) - corner(ye, xs) + corner(ys, xs)
    kh = (ye - ys).to(torch.float32)[:, None, :, None]
    kw = (xe - xs).to(torch.float32)[:, None, None, :]
    return total.to(torch.float32) / kh / kw


def _roi_area_loop(images, img_idx, y0, y1, x0, x1, size: int) -> torch.Tensor:
    img_idx, y0, y1, x0, x1 = (np.asarray(torch.as_tensor(v).cpu(), dtype=np.int64) for v in (img_idx, y0, y1, x0, x1))
    first = images[0]
    dtype = torch.float32 if first.dtype == torch.uint8 else first.dtype
    out = torch.empty((len(img_idx), first.shape[0], size, size), dtype=dtype, device=first.device)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny kernels: a thread pool's wake-up costs more than the work
    try:
        for k in range(len(img_idx)):
            crop = images[int(img_idx[k])][:, int(y0[k]):int(y1[k]), int(x0[k]):int(x1[k])].unsqueeze(0)
            out[k] = F.interpolate(crop.to(dtype), size=(size, size), mode="area")[0]
    finally:
        torch.set_num_threads(threads)
    return out
