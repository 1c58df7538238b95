"""Scoring throughput on real-capture sizes: a mixed-resolution set and ID-scan-like images, generated at benchmark
time from the shared NUAA frames (nothing is committed), plus the NUAA 640x480 control.

    HARNESS_SHARED=../shared python benchmarks/bench_mixed_resolution.py --threads 2 --n 120 \
        --out results/bench_mixed_cpu.json

The mixed set: ``--n`` images (default 120) in equal counts of 4032x3024, 3024x4032, 1920x1080, 1080x1920,
1600x1200 and 800x600, JPEG quality 90; each is a NUAA frame cropped around the face so that the face width is
20-40% of the crop's short side (uniform, seeded; as near as the 640x480 frame allows) and upscaled (bicubic) to
the target size: the face region is enlarged, never a small frame padded into a big canvas. The ID-scan set:
3000x1900 card-like scans with the portrait's face at about 12% of the short side
(:func:`benchmarks.choose_max_side.id_scan`).

Printed, in images/s end to end (cache off, dlib ResNet + ``--pad``): the naive per-image loop (facenet-pytorch
example style), the batched engine at full resolution (``detector.max_side=null``, no reduced decode) and the
batched engine at the bounded settings (``--decode-long-side``, default 1600; ``--max-side`` and
``--min-face-fraction`` for the detector, default the config's), and the NUAA control at both settings (median of
``--reps`` runs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_throughput import bench_engine, bench_naive, manifest_rows  # noqa: E402
from choose_max_side import face_crop, id_scan, load, upscale  # noqa: E402
from harness.faces.detect import MTCNNDetector  # noqa: E402
from harness.faces.files import DecodeLimits  # noqa: E402
from harness.models.registry import build_embedder, build_pad  # noqa: E402
from harness.paths import shared_root  # noqa: E402

SIZES = ((4032, 3024), (3024, 4032), (1920, 1080), (1080, 1920), (1600, 1200), (800, 600))


def _rows(m: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(m)
    for c, v in (("frame", -1), ("label", "bona_fide"), ("species", "none"), ("split", "test"), ("reject_code", ""),
                 ("reject_reason", "")):
        df[c] = v
    return df


def build_sets(root: Path, out: Path, n: int, n_ids: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(mixed set, ID-scan set) written as JPEG q90 under ``out`` (module docstring)."""
    rng = np.random.default_rng(seed)
    nuaa = load_dataset_rows(root)
    det = MTCNNDetector(max_side=None)
    mixed, ids = [], []
    picks = rng.choice(len(nuaa), size=n + n_ids, replace=len(nuaa) < n + n_ids)
    frames = [load(Path(nuaa.iloc[int(i)]["path"])) for i in picks]
    boxes = [d.box if d is not None else None for d in det.detect(frames)]
    k = 0
    for j in range(n):
        while boxes[k % len(frames)] is None:
            k += 1
        img, box = frames[k % len(frames)], boxes[k % len(frames)]
        k += 1
        w, h = SIZES[j % len(SIZES)]
        crop = face_crop(img, box, w / h, float(rng.uniform(0.2, 0.4)))
        p = out / f"mixed_{j:03d}_{w}x{h}.jpg"
        Image.fromarray(upscale(crop, w, h)).save(p, "JPEG", quality=90)
        mixed.append({"sample_id": p.name, "path": str(p), "subject": f"s{j}"})
    for j in range(n_ids):
        img, box = frames[(k + j) % len(frames)], boxes[(k + j) % len(frames)]
        if box is None:
            continue
        p = out / f"idscan_{j:03d}.jpg"
        Image.fromarray(id_scan(face_crop(img, box, 3 / 4, 0.45), rng)).save(p, "JPEG", quality=90)
        ids.append({"sample_id": p.name, "path": str(p), "subject": f"id{j}"})
    return _rows(mixed), _rows(ids)


def load_dataset_rows(root: Path) -> pd.DataFrame:
    """The NUAA rows with a face-bearing frame path (the shared copy)."""
    from harness.data.registry import load_dataset

    m = load_dataset("nuaa", root=str(root / "datasets" / "nuaa"))
    return m[m["reject_code"] == ""].reset_index(drop=True)


def _engine(m, dev, det, emb, pad, args, limits, reps: int) -> dict:
    runs = [bench_engine("batched", m, dev, det, emb, pad, args, max_pixels=limits) for _ in range(reps)]
    out = dict(runs[0])
    out["runs_img_per_s"] = [r["img_per_s"] for r in runs]
    out["img_per_s"] = statistics.median(out["runs_img_per_s"])
    return out


def main(argv: list[str] | None = None) -> None:
    """Build the sets, run the three paths and the NUAA control, print the table (``argv``: the options)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--n-ids", type=int, default=24)
    ap.add_argument("--n-naive", type=int, default=12)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--max-side", default="config", help="detector.max_side for the bounded run (config | null | N)")
    ap.add_argument("--decode-long-side", type=int, default=1600)
    ap.add_argument("--min-face-fraction", type=float, default=None, help="detector.min_face_fraction (bounded run)")
    ap.add_argument("--refine-original", action="store_true",
                    help="detector.refine_original (bounded run): R/O-Net crops from the original pixels")
    ap.add_argument("--pad", default="minifasnet_ensemble")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--chunk-size", type=int, default=128)
    ap.add_argument("--detect-batch-size", type=int, default=16)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    for k, v in dict(amp=False, progress=False, workers=0, gpu_decode="off", prefetch=2, channels_last=False).items():
        setattr(args, k, v)
    torch.set_num_threads(args.threads)
    dev = torch.device("cpu")
    root = shared_root(required=True)
    from omegaconf import OmegaConf

    conf_side = OmegaConf.load(Path(__file__).resolve().parent.parent / "conf/detector/mtcnn.yaml").get("max_side")
    side = conf_side if args.max_side == "config" else (None if args.max_side == "null" else int(args.max_side))
    emb = build_embedder("dlib_resnet", device="cpu")
    pad = build_pad(args.pad, device="cpu")
    full = MTCNNDetector(batch_size=args.detect_batch_size, max_side=None)
    bounded = MTCNNDetector(batch_size=args.detect_batch_size, max_side=side, min_face_fraction=args.min_face_fraction,
                            refine_original=args.refine_original)
    limits = DecodeLimits(None, args.decode_long_side)
    r: dict = {"threads": args.threads, "torch": torch.__version__, "max_side": side,
               "min_face_fraction": args.min_face_fraction,
               "decode_long_side": args.decode_long_side, "args": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        mixed, ids = build_sets(root, Path(tmp), args.n, args.n_ids)
        r["generated_s"] = round(time.perf_counter() - t, 1)
        r["naive_mixed"] = bench_naive(mixed.head(args.n_naive), dev, full, emb, pad)
        print("naive (mixed)", r["naive_mixed"]["img_per_s"], flush=True)
        for name, m in (("mixed", mixed), ("id_scan", ids)):
            r[f"{name}_full_resolution"] = _engine(m, dev, full, emb, pad, args, None, 1)
            print(name, "full resolution", r[f"{name}_full_resolution"]["img_per_s"], flush=True)
            r[f"{name}_harness"] = _engine(m, dev, bounded, emb, pad, args, limits, 1)
            print(name, "harness settings", r[f"{name}_harness"]["img_per_s"], flush=True)
    nuaa = manifest_rows(root / "datasets" / "nuaa", args.n, "labels.csv")
    r["nuaa_before"] = _engine(nuaa, dev, full, emb, pad, args, None, args.reps)
    r["nuaa_harness"] = _engine(nuaa, dev, bounded, emb, pad, args, limits, args.reps)
    r["nuaa_change"] = round(r["nuaa_harness"]["img_per_s"] / r["nuaa_before"]["img_per_s"] - 1, 4)
    print(f"NUAA 640x480: before {r['nuaa_before']['img_per_s']}, harness settings {r['nuaa_harness']['img_per_s']} "
          f"img/s ({100 * r['nuaa_change']:+.1f}%)")
    print("\n| set | naive | full resolution | bounded settings |\n|---|---|---|---|")
    print(f"| mixed ({args.n}) | {r['naive_mixed']['img_per_s']} | {r['mixed_full_resolution']['img_per_s']} | "
          f"{r['mixed_harness']['img_per_s']} |")
    print(f"| ID scans ({len(ids)}) | | {r['id_scan_full_resolution']['img_per_s']} | {r['id_scan_harness']['img_per_s']} |")
    print(f"| NUAA 640x480 (median of {args.reps}) | | {r['nuaa_before']['img_per_s']} | {r['nuaa_harness']['img_per_s']} |")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(r, indent=2, default=str))


if __name__ == "__main__":
    main()
