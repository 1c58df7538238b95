"""Throughput of registered embedders on random uint8 crops.

    python benchmarks/bench_embedders.py --name dlib_resnet --device cpu --threads 2 --batch 32
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import harness.models.dlib_resnet  # noqa: F401  (registers dlib_resnet)
from harness.models.registry import EMBEDDERS


def bench(name: str, device: str, batch: int, iters: int, warmup: int) -> dict:
    model = EMBEDDERS[name](device=device)
    h, w = model.crop_size
    x = torch.randint(0, 256, (batch, 3, h, w), dtype=torch.uint8, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times = []
    with torch.inference_mode():
        for i in range(warmup + iters):
            sync()
            t = time.perf_counter()
            model(x)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - t)
    times.sort()
    med = times[len(times) // 2]
    return {
        "name": name,
        "device": device,
        "threads": torch.get_num_threads(),
        "batch": batch,
        "iters": iters,
        "median_s_per_batch": round(med, 4),
        "images_per_s": round(batch / med, 1),
        "best_images_per_s": round(batch / times[0], 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="dlib_resnet", choices=sorted(EMBEDDERS))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--batch", type=int, nargs="+", default=[32])
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for b in args.batch:
        print(json.dumps(bench(args.name, args.device, b, args.iters, args.warmup)))


if __name__ == "__main__":
    main()
