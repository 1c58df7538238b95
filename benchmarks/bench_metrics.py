"""Time and memory of the exact ROC: ``harness.metrics.roc`` vs ``sklearn.metrics.roc_curve(drop_intermediate=False)``.

Not a test. Each (implementation, size) runs in a fresh subprocess so peaks do not leak between cases.
Scores: float32, 90 % negatives ~ N(0, 1), 10 % positives ~ N(2, 1) (seeded). Reported:

* time: best of a few runs (one at 1e8), wall clock, with the CPU threads the machine has;
* peak: extra memory allocated during the call as seen by ``tracemalloc`` (numpy reports its buffers to it),
  i.e. above the inputs; RSS: the process's resident high-water mark (inputs included).

sklearn at 1e8 runs only if its 1e7 peak scaled by 10 fits in 75 % of the available memory.
With ``--cuda`` (or when CUDA is available) adds ``roc_torch`` on the GPU, data already resident.

    python benchmarks/bench_metrics.py [--sizes 1e6 1e7 1e8] [--cuda-only]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    nn = int(round(0.9 * n))
    neg = rng.standard_normal(nn, dtype=np.float32)
    pos = rng.standard_normal(n - nn, dtype=np.float32)
    pos += 2
    return neg, pos


def _rss_gib() -> float:
    """Resident high-water mark. VmHWM belongs to this address space (ru_maxrss survives fork+exec on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def run_case(impl: str, n: int) -> dict:
    neg, pos = make_data(n)
    reps = 3 if n <= 10**6 else 2 if n <= 10**7 else 1
    if impl == "harness":
        from harness.metrics.verification import roc

        def f():
            return roc(neg, pos)
    elif impl == "sklearn":
        from sklearn.metrics import roc_curve

        y = np.zeros(n, dtype=np.int8)
        y[neg.size:] = 1
        s = np.concatenate((neg, pos))

        def f():
            return roc_curve(y, s, drop_intermediate=False)
    elif impl == "cuda":
        import torch

        from harness.metrics.torch_backend import roc_torch

        gneg, gpos = torch.from_numpy(neg).cuda(), torch.from_numpy(pos).cuda()
        roc_torch(gneg[:1000], gpos[:1000])  # warm-up (kernels, allocator)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            out = roc_torch(gneg, gpos)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            n_points = int(out[0].numel())
            del out
        peak = torch.cuda.max_memory_allocated() - base
        return {"impl": impl, "n": n, "time_s": min(times), "peak_gib": peak / 2**30, "rss_gib": _rss_gib(),
                "points": n_points, "device": torch.cuda.get_device_name()}
    else:
        raise ValueError(impl)
    rss0 = _rss_gib()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    out = f()
    t_traced = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    n_points = int(out[0].size if impl == "harness" else out[2].size)
    del out
    times = [t_traced]
    for _ in range(reps - 1):
        t0 = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t0)
        del out
    return {"impl": impl, "n": n, "time_s": min(times), "peak_gib": peak / 2**30, "rss_gib": _rss_gib(),
            "rss_inputs_gib": rss0, "points": n_points}


def sub(impl: str, n: int) -> dict:
    cmd = [sys.executable, __file__, "--case", impl, str(n)]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if r.returncode != 0:
        return {"impl": impl, "n": n, "error": (r.stderr or r.stdout).strip().splitlines()[-1:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def mem_available_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def check_agreement(n: int = 10**6) -> str:
    from sklearn.metrics import roc_curve

    from harness.metrics.verification import roc

    neg, pos = make_data(n, seed=1)
    thr, fmr, fnmr = roc(neg, pos)
    y = np.r_[np.zeros(neg.size, np.int8), np.ones(pos.size, np.int8)]
    fpr, tpr, th = roc_curve(y, np.r_[neg, pos], drop_intermediate=False)
    ok = np.array_equal(thr, th) and np.array_equal(fmr, fpr) and np.max(np.abs(fnmr - (1 - tpr))) < 1e-12
    return f"agreement with sklearn at n={n:.0e}: {'identical thresholds and rates' if ok else 'MISMATCH'}"


def fmt(x: float | None, unit: str) -> str:
    if x is None:
        return "—"
    if unit == "s" and x < 0.1:
        return f"{1000 * x:.1f} ms"
    return f"{x:.2f} {unit}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="*", type=float, default=[1e6, 1e7, 1e8])
    ap.add_argument("--case", nargs=2, metavar=("IMPL", "N"))
    ap.add_argument("--cuda-only", action="store_true")
    ap.add_argument("--no-sklearn", action="store_true")
    a = ap.parse_args()
    if a.case:
        print(json.dumps(run_case(a.case[0], int(a.case[1]))))
        return
    sizes = [int(s) for s in a.sizes]
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    print(f"CPU threads: {os.cpu_count()}, MemAvailable: {mem_available_gib():.1f} GiB, numpy {np.__version__}, "
          f"CUDA: {cuda}")
    if not a.cuda_only:
        print(check_agreement())
    rows = []
    sk_peak_1e7 = None
    for n in sizes:
        row = {"n": n}
        if not a.cuda_only:
            row["harness"] = sub("harness", n)
            if a.no_sklearn:
                row["sklearn"] = {"skipped": "--no-sklearn"}
            elif n > 10**7 and sk_peak_1e7 is not None and sk_peak_1e7 * n / 10**7 > 0.75 * mem_available_gib():
                row["sklearn"] = {"skipped": f"predicted peak {sk_peak_1e7 * n / 1e7:.1f} GiB > 75% of available"}
            else:
                row["sklearn"] = sub("sklearn", n)
                if n == 10**7 and "peak_gib" in row["sklearn"]:
                    sk_peak_1e7 = row["sklearn"]["peak_gib"]
        if cuda:
            row["cuda"] = sub("cuda", n)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    head = f"| {'n scores':>9} | {'harness roc':>12} | {'peak':>9} | {'sklearn roc_curve':>17} | {'peak':>9} | {'speed-up':>8} |"
    if cuda:
        head += f" {'roc_torch CUDA':>14} | {'GPU peak':>9} |"
    print()
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    notes = []
    for row in rows:
        h, s, c = row.get("harness", {}), row.get("sklearn", {}), row.get("cuda", {})
        ht, hp = h.get("time_s"), h.get("peak_gib")
        st, sp = s.get("time_s"), s.get("peak_gib")
        if "skipped" in s:
            notes.append(f"sklearn at n={row['n']:.0e} skipped: {s['skipped']}")
        for k, v in (("harness", h), ("sklearn", s), ("cuda", c)):
            if "error" in v:
                notes.append(f"{k} at n={row['n']:.0e} failed: {v['error']}")
        ratio = f"{st / ht:.1f}x" if ht and st else "—"
        line = (f"| {row['n']:>9.0e} | {fmt(ht, 's'):>12} | {fmt(hp, 'GiB'):>9} | {fmt(st, 's'):>17} | "
                f"{fmt(sp, 'GiB'):>9} | {ratio:>8} |")
        if cuda:
            line += f" {fmt(c.get('time_s'), 's'):>14} | {fmt(c.get('peak_gib'), 'GiB'):>9} |"
        print(line)
    if rows and "harness" in rows[-1]:
        h = rows[-1]["harness"]
        if "rss_gib" in h:
            notes.append(f"harness at n={rows[-1]['n']:.0e}: process RSS high-water {h['rss_gib']:.2f} GiB "
                         f"(inputs {h['rss_inputs_gib']:.2f} GiB), {h['points']} ROC points")
    for r in rows:
        if "cuda" in r and "device" in r["cuda"]:
            notes.append(f"CUDA device: {r['cuda']['device']}")
            break
    for n_ in notes:
        print("note:", n_)


if __name__ == "__main__":
    main()
