"""Ray engine scaling on one machine: 1 vs 2 CPU actors (same cores in total), with the batched engine beside them.

    python benchmarks/bench_ray.py --n 192 --chunk 32 --out results/bench_ray.json

NUAA frames (``$HARNESS_SHARED/datasets/nuaa``, the default list, the first ``--n`` rows), MTCNN + dlib ResNet +
MiniFASNet v2 on CPU, every run from an EMPTY score store (nothing reused). One local Ray cluster
(``ray.init(num_cpus=--cpus)``) serves every Ray run. Configurations, each timed end to end (wall seconds,
actor start-up and model deserialisation included, Ray start-up excluded):

* ``batched``: :func:`harness.scoring.batched.score_manifest_batched`, ``--cpus`` torch threads, in this process;
* ``ray_1x``: 1 actor with ``--cpus`` torch threads;
* ``ray_2x``: 2 actors with ``--cpus / 2`` torch threads each.

Printed and written: seconds, rows/s, rows/s after the first block (``steady``: actors up, models loaded), the
ratio ``ray_1x / ray_2x`` of the seconds and ``ray_2x / ray_1x`` of the steady rows/s (> 1: two actors faster).
One run each; on a 2-core machine shared with other work the figures are indicative only. Multi-GPU and multi-node speed
are NOT measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.data.registry import load_dataset  # noqa: E402
from harness.faces.detect import build_detector  # noqa: E402
from harness.models.registry import build_embedder, build_pad  # noqa: E402
from harness.paths import shared_root  # noqa: E402
from harness.scoring.batched import score_manifest_batched  # noqa: E402
from harness.scoring.ray_engine import ensure_ray, score_manifest_ray  # noqa: E402
from harness.scoring.store import ScoreStore  # noqa: E402


def timed(fn, tmp: Path, name: str) -> dict:
    """Run ``fn(store, profile)`` on an empty store; seconds, the table's counts and, for Ray runs, the rows/s after
    the first block (actors started, models loaded)."""
    store, profile = ScoreStore(tmp / name / "scores.sqlite"), {}
    t0 = time.perf_counter()
    try:
        table = fn(store, profile)
    finally:
        store.close()
    wall = time.perf_counter() - t0
    steady = profile.get("steady_rows_per_s")
    return {"seconds": round(wall, 2), "rows_per_s": round(len(table.samples) / wall, 2),
            "steady_rows_per_s": None if steady is None else round(steady, 2), **table.counts()}


def main() -> None:
    """Parse the arguments, run the three configurations, print and write the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=192)
    ap.add_argument("--chunk", type=int, default=32)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    root = shared_root()
    if root is None:
        sys.exit("bench_ray: $HARNESS_SHARED not found (the NUAA frames are read from it)")
    m = load_dataset("nuaa", root=str(root / "datasets" / "nuaa")).head(a.n).reset_index(drop=True)
    torch.set_num_threads(a.cpus)
    models = (build_detector("mtcnn", batch_size=16, device="cpu"), build_embedder("dlib_resnet", device="cpu"),
              build_pad("minifasnet_v2", device="cpu"))
    t0 = time.perf_counter()
    ensure_ray(num_cpus=None if os.environ.get("RAY_ADDRESS") else a.cpus)
    ray_start = time.perf_counter() - t0
    half = max(1, a.cpus // 2)
    runs = {
        "batched": lambda s, p: score_manifest_batched(m, *models, s, chunk_size=a.chunk, progress=False),
        "ray_1x": lambda s, p: score_manifest_ray(m, *models, s, chunk_size=a.chunk, progress=False, actors=1,
                                                  actor_cpus=a.cpus * 0.75, threads=a.cpus, profile=p),
        "ray_2x": lambda s, p: score_manifest_ray(m, *models, s, chunk_size=a.chunk, progress=False, actors=2,
                                                  actor_cpus=a.cpus * 0.375, threads=half, profile=p),
    }
    with tempfile.TemporaryDirectory(prefix="bench_ray_") as tmp:
        res = {name: timed(fn, Path(tmp), name) for name, fn in runs.items()}
    out = {"n": len(m), "chunk": a.chunk, "cpus": a.cpus, "ray_start_s": round(ray_start, 2),
           "host": platform.node(), "cores": os.cpu_count(), "runs": res,
           "ratio_1x_over_2x": round(res["ray_1x"]["seconds"] / res["ray_2x"]["seconds"], 3),
           "steady_ratio_2x_over_1x": round(res["ray_2x"]["steady_rows_per_s"]
                                            / res["ray_1x"]["steady_rows_per_s"], 3)}
    print(json.dumps(out, indent=2))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
