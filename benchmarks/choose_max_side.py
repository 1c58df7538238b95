"""Choose MTCNN's ``detector.max_side``: detection speed and parity with full resolution on large images.

Cases (built from the shared material, ``HARNESS_SHARED``; faces are upscaled, never a small frame padded):

* ``landscape``: NUAA frames cropped (4:3) around the face so the face width is ~30% of the short side (as near
  as the frame allows), upscaled to 4032x3024;
* ``portrait``: the EXIF-rotated silentface photos and NUAA frames cropped 3:4 the same way, upscaled to 3024x4032;
* ``id_scan``: an ID-card-like scan, 3000x1900, a light textured card with a portrait photo (a NUAA face crop,
  upscaled) whose face width is ~12% of the short side, and grey text bars;
* ``mixed``: all of the above in one detection call (letterboxed together: both orientations and the scans).

For each ``max_side`` (640, 800, 1024, 1280, null) the batched engine's detection stage
(:func:`harness.scoring.detection.detect_stage`, CPU) runs on each case; parity is against ``null``: the same face
count, IoU of the kept box, and the median over the five landmarks of the displacement as % of the inter-ocular
distance (full-resolution landmarks). The default is the smallest ``max_side`` with, on every image, the same face
count, IoU >= 0.98 and median landmark displacement < 2%.

Run: ``HARNESS_SHARED=/work/shared .venv/bin/python benchmarks/choose_max_side.py [--repeat N]``
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from harness.faces.detect import Detection, MTCNNDetector
from harness.paths import shared_root
from harness.scoring.backoff import BackOff
from harness.scoring.detection import detect_stage

SIDES = (640, 800, 1024, 1280, None)
NUAA_ROWS = (0, 400, 800, 1200, 1600, 2000)


def load(path: Path) -> np.ndarray:
    """An RGB uint8 image, EXIF orientation applied."""
    return np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))


def face_crop(img: np.ndarray, box, aspect: float, frac: float) -> np.ndarray:
    """A crop of ``img`` with width/height ``aspect`` centred on ``box`` (clamped to the frame) whose short side
    is the face width / ``frac`` (or the largest that fits)."""
    h, w = img.shape[:2]
    fw = box[2] - box[0]
    short = fw / frac
    cw, ch = (short * aspect, short) if aspect >= 1 else (short, short / aspect)
    k = min(1.0, w / cw, h / ch)
    cw, ch = int(cw * k), int(ch * k)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0 = int(min(max(cx - cw / 2, 0), w - cw))
    y0 = int(min(max(cy - ch / 2, 0), h - ch))
    return img[y0:y0 + ch, x0:x0 + cw]


def upscale(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """``img`` resized (bicubic) to ``w x h``."""
    return np.asarray(Image.fromarray(img).resize((w, h), Image.BICUBIC))


def id_scan(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 3000x1900 card-like scan with ``photo`` (3:4, face ~45% of its width) at ~12% face width."""
    hh, ww = 1900, 3000
    base = np.array([228, 222, 205], dtype=np.float32)
    grad = np.linspace(0, 18, ww, dtype=np.float32)[None, :, None]
    card = base[None, None] - grad + rng.normal(0, 6, (hh, ww, 3)).astype(np.float32)
    pw = int(0.12 * hh / 0.45)
    ph = int(pw * 4 / 3)
    y0 = (hh - ph) // 2
    card[y0:y0 + ph, 150:150 + pw] = upscale(photo, pw, ph)
    for k in range(8):  # text lines
        y = 300 + k * 160
        card[y:y + 50, 150 + pw + 150:150 + pw + 150 + int(rng.integers(600, 1900))] = 90
    return np.clip(card, 0, 255).astype(np.uint8)


def build_cases(root: Path) -> dict[str, list[np.ndarray]]:
    """The benchmark's images by case (see the module docstring)."""
    rows = list(csv.DictReader(open(root / "datasets/nuaa/labels.csv")))
    det = MTCNNDetector(max_side=None)
    nuaa = [load(root / "datasets/nuaa" / rows[i]["path"]) for i in NUAA_ROWS]
    boxes = [d.box for d in det.detect(nuaa)]
    silent = [load(p) for p in sorted((root / "datasets/silentface_samples/images").glob("*.jpg"))]
    sboxes = [d.box for d in det.detect(silent)]
    rng = np.random.default_rng(0)
    land = [upscale(face_crop(im, b, 4 / 3, 0.3), 4032, 3024) for im, b in zip(nuaa[:4], boxes[:4])]
    port = [upscale(face_crop(im, b, 3 / 4, 0.3), 3024, 4032) for im, b in zip(silent, sboxes)]
    port += [upscale(face_crop(im, b, 3 / 4, 0.3), 3024, 4032) for im, b in zip(nuaa[4:], boxes[4:])]
    ids = [id_scan(face_crop(im, b, 3 / 4, 0.45), rng) for im, b in zip(nuaa[:4], boxes[:4])]
    return {"landscape": land, "portrait": port, "id_scan": ids}


def detect(images: list[np.ndarray], max_side, **detector) -> tuple[list, float]:
    """The batched engine's detections of ``images`` (one detect_stage call) and its seconds (``detector``:
    further MTCNNDetector settings, e.g. ``refine_original``, ``min_face_fraction``)."""
    det = MTCNNDetector(max_side=max_side, batch_size=16, **(detector if max_side is not None else {}))
    where, parts = {}, {}
    for i, im in enumerate(images):
        hw = im.shape[:2]
        where[i] = (hw, len(parts.setdefault(hw, [])))
        parts[hw].append(torch.from_numpy(np.array(im)).permute(2, 0, 1))
    imgs = {hw: torch.stack(p) for hw, p in parts.items()}
    t = time.perf_counter()
    found = detect_stage(list(range(len(images))), where, imgs, det, BackOff("detect", 16))
    return [found[i] for i in range(len(images))], time.perf_counter() - t


def iou(a, b) -> float:
    """IoU of two x1, y1, x2, y2 boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def parity(got, ref) -> tuple[int, float, float, float, float]:
    """(face-count mismatches, worst and median IoU, worst and median of the per-image median landmark
    displacement in % of the inter-ocular distance)."""
    bad, ious, disp = 0, [], []
    for g, r in zip(got, ref):
        if (g is None) != (r is None) or (g is not None and g.n_faces != r.n_faces):
            bad += 1
        if g is None or r is None:
            continue
        ious.append(iou(g.box, r.box))
        iod = float(np.linalg.norm(r.landmarks[0] - r.landmarks[1]))
        disp.append(100 * float(np.median(np.linalg.norm(g.landmarks - r.landmarks, axis=1))) / iod)
    nan = float("nan")
    return (bad, min(ious, default=nan), float(np.median(ious)) if ious else nan, max(disp, default=nan),
            float(np.median(disp)) if disp else nan)


def shifted(images: list[np.ndarray], dets: list, px: int) -> tuple[list, list]:
    """MTCNN's own noise floor: ``images`` without their first ``px`` rows and columns, and ``dets`` (found on
    those) moved back to the original images' coordinates."""
    cut = [np.ascontiguousarray(im[px:, px:]) for im in images]
    back = [None if d is None else Detection(box=d.box + px, prob=d.prob, landmarks=d.landmarks + px,
                                             n_faces=d.n_faces) for d in dets]
    return cut, back


def main() -> None:
    """Print the table and the chosen default."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per setting (the fastest is kept)")
    ap.add_argument("--refine-original", action="store_true", help="detector.refine_original for the bounded sides")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    cases = build_cases(shared_root())
    cases["mixed"] = [im for v in list(cases.values()) for im in v]
    res: dict = {}
    for side in SIDES:
        for name, ims in cases.items():
            best, dets = float("inf"), None
            for _ in range(max(1, args.repeat)):
                dets, sec = detect(ims, side, refine_original=args.refine_original)
                best = min(best, sec)
            res[side, name] = (dets, len(ims) / best)
    for name, ims in cases.items():  # the noise floor: full resolution, the image shifted by 1 px
        if name != "mixed":
            cut, _ = shifted(ims, [], 1)
            dets, sec = detect(cut, None)
            res["null+1px", name] = (shifted(ims, dets, 1)[1], len(ims) / sec)
    print(f"{'max_side':>8} {'case':>10} {'n':>3} {'img/s':>6} {'count!=':>7} {'IoU min':>7} {'IoU med':>7} "
          f"{'lm%IOD max':>10} {'lm%IOD med':>10}")
    ok = {}
    for (side, name), (dets, ips) in res.items():
        bad, lo, mid, hi, hmid = parity(dets, res[None, name][0])
        ok[side] = ok.get(side, True) and bad == 0 and lo >= 0.98 and hi < 2.0
        print(f"{str(side):>8} {name:>10} {len(dets):>3} {ips:6.2f} {bad:7d} {lo:7.3f} {mid:7.3f} {hi:10.2f} "
              f"{hmid:10.2f}")
    chosen = next((s for s in SIDES if ok[s]), None)
    print("meets IoU >= 0.98, landmarks < 2% IOD, same face count on all cases:",
          ", ".join(str(s) for s in ok if ok[s]))
    print(f"smallest such max_side: {chosen}")


if __name__ == "__main__":
    main()
