"""Scoring throughput: images/s per stage and end to end, naive per-image loop vs the harness pipelines.

    python benchmarks/bench_throughput.py --device cpu --threads 2 --n 48 --out results/bench_throughput_cpu.json
    python benchmarks/bench_throughput.py --device cuda --n 6000 --workers 12 --out results/bench_throughput_cuda.json

Measured on NUAA frames (640x480 JPEG, ``$HARNESS_SHARED/datasets/nuaa``; rows repeat when ``--n`` exceeds the
list), cache off, dlib ResNet + MiniFASNet ensemble (``--pad``):

* **decode** (the ceiling): the batched engine's loader alone (read, sha256, decode, stack; ``--workers``
  processes), and on CUDA the nvjpeg batch decode it uses.
* **raw stages** on pre-decoded data already on the device: MTCNN detect (the harness's vectorised cascade and
  facenet-pytorch's ``MTCNN.detect``), alignment warps, embedding forward, PAD crops, PAD forward.
* **naive**: facenet-pytorch's example style, one image at a time: ``PIL.Image.open``, ``mtcnn.detect(img)``,
  one ``cv2.warpAffine`` + embedder forward, one PAD crop + forward.
* **simple**: :func:`harness.scoring.engine.score_manifest` (the per-chunk engine).
* **batched**: :func:`harness.scoring.batched.score_manifest_batched` with its per-stage profile.

Overhead (the CPU goal "< 20 % over the slowest stage"): ``e2e time / slowest raw model stage time - 1``, and
what the harness adds beyond the models: ``e2e time / sum of raw model stage times (detect, embed, PAD) - 1``.
``--amp-check`` (CUDA) measures AMP / channels-last parity and speed of the two model forwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.data.registry import load_dataset  # noqa: E402
from harness.faces.align import warp_to_template  # noqa: E402
from harness.faces.detect import MTCNNDetector  # noqa: E402
from harness.faces.warp import align_batch, crop_resize_fixed, similarity_batch, to_uint8  # noqa: E402
from harness.models.registry import build_embedder, build_pad  # noqa: E402
from harness.paths import shared_root  # noqa: E402
from harness.scoring import batched as B  # noqa: E402
from harness.scoring.loader import ChunkSource, collate_identity, gpu_decode  # noqa: E402
from harness.faces.mtcnn_batched import triton_nms_kernel  # noqa: E402
from harness.scoring.cache import ScoreCache  # noqa: E402
from harness.scoring.engine import score_manifest  # noqa: E402


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, dev: torch.device, reps: int = 3, warmup: int = 1) -> float:
    """Best of ``reps`` wall times of ``fn()`` after ``warmup`` calls (synchronised)."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(reps):
        _sync(dev)
        t = time.perf_counter()
        fn()
        _sync(dev)
        best = min(best, time.perf_counter() - t)
    return best


def _ips(n: int, s: float) -> float:
    return round(n / s, 2) if s > 0 else float("inf")


def manifest_rows(root: Path, n: int, list_name: str) -> pd.DataFrame:
    m = load_dataset("nuaa", root=str(root), list=list_name)
    step = max(1, len(m) // n)
    m = m.iloc[::step]
    reps = -(-n // len(m))
    return pd.concat([m] * reps, ignore_index=True).head(n).reset_index(drop=True)


def bench_decode(m: pd.DataFrame, dev: torch.device, workers: int, chunk: int, gpu: bool) -> dict:
    src = ChunkSource(list(m["path"]), list(m["frame"]), chunk, ("d", "e", "p"), None, gpu_jpeg=gpu)
    loader = torch.utils.data.DataLoader(src, batch_size=None, num_workers=workers, collate_fn=collate_identity,
                                         pin_memory=dev.type == "cuda", prefetch_factor=4 if workers else None)
    _sync(dev)
    t = time.perf_counter()
    n = 0
    for ch in loader:
        if gpu and ch.get("jpeg_idx"):
            got = []
            gpu_decode(ch, list(m["path"]), dev, lambda i, hw, x: got.append(x), {})
            n += len(got)
        for rows, x in ch["groups"].values():
            x.to(dev, non_blocking=True)
            n += len(rows)
    _sync(dev)
    s = time.perf_counter() - t
    return {"images": n, "s": round(s, 3), "img_per_s": _ips(n, s)}


def bench_raw_stages(m: pd.DataFrame, dev: torch.device, det: MTCNNDetector, emb, pad, det_bs: int, bs: int,
                     n_facenet: int) -> tuple[dict, dict]:
    from harness.faces.decode import decode_image, read_bytes

    k = min(len(m), max(det_bs, bs))
    imgs = np.stack([decode_image(read_bytes(p)) for p in m["path"][:k]])
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous().to(dev)
    xd = x[:det_bs]
    out = {}
    nms_impls = ["torchvision"] + (["triton"] if dev.type == "cuda" and triton_nms_kernel() else [])
    with torch.inference_mode():
        for impl in nms_impls:
            try:
                s = _timed(lambda: B.mtcnn_detect(det.mtcnn, xd, nms=impl), dev)
            except Exception as e:  # noqa: BLE001 - report, keep measuring
                out[f"detect_nms_{impl}_error"] = {"batch": 0, "img_per_s": 0.0, "error": repr(e)}
                continue
            steps: dict = {}
            B.mtcnn_detect(det.mtcnn, xd, nms=impl, timings=steps)
            key = "detect" if impl == nms_impls[-1] else f"detect_nms_{impl}"
            out[key] = {"batch": len(xd), "img_per_s": _ips(len(xd), s), "impl": f"harness mtcnn_detect, nms={impl}",
                        "steps_ms_per_batch": {k: round(v * 1000, 2) for k, v in steps.items()}}
        xf = xd[:n_facenet].permute(0, 2, 3, 1)
        s = _timed(lambda: det.mtcnn.detect(xf, landmarks=True), dev, reps=1)
        out["detect_facenet"] = {"batch": len(xf), "img_per_s": _ips(len(xf), s),
                                 "impl": "facenet-pytorch MTCNN.detect"}
        dets = B.detections_from(det, *B.mtcnn_detect(det.mtcnn, x))
        keep = [i for i, d in enumerate(dets) if d is not None]
        rows = torch.as_tensor(keep, device=dev)
        lms = np.stack([dets[i].landmarks for i in keep])
        boxes = np.stack([dets[i].box for i in keep])

        def align():  # what the engine runs: one grid_sample warp on a GPU, cv2.warpAffine per face on the CPU
            if dev.type == "cpu":
                return torch.from_numpy(np.stack([warp_to_template(imgs[i], lm, emb.template, emb.crop_size)
                                                  for i, lm in zip(keep, lms)])).permute(0, 3, 1, 2).contiguous()
            mats = similarity_batch(lms, emb.template)
            return to_uint8(align_batch(x.index_select(0, rows).float(), np.arange(len(keep)), mats, emb.crop_size))

        s = _timed(align, dev)
        out["align"] = {"batch": len(keep), "img_per_s": _ips(len(keep), s)}
        chips = align()
        s = _timed(lambda: emb(chips[:bs]), dev)
        out["embed"] = {"batch": min(bs, len(keep)), "img_per_s": _ips(min(bs, len(keep)), s)}
        hw = tuple(x.shape[-2:])

        def crops():
            rects = np.asarray([pad.crop_regions(hw, b) for b in boxes])
            return crop_resize_fixed(x, keep, rects, (pad.crop_size[0], pad.crop_size[1] // rects.shape[1]))

        s = _timed(crops, dev)
        out["pad_crop"] = {"batch": len(keep), "img_per_s": _ips(len(keep), s)}
        pc = crops()
        s = _timed(lambda: pad(pc[:bs]), dev)
        out["pad"] = {"batch": min(bs, len(keep)), "img_per_s": _ips(min(bs, len(keep)), s)}
    return out, {"chips": chips, "pad_crops": pc}


def bench_naive(m: pd.DataFrame, dev: torch.device, det: MTCNNDetector, emb, pad) -> dict:
    from PIL import Image

    t = dict(decode=0.0, detect=0.0, align=0.0, embed=0.0, pad=0.0)
    n = len(m)
    with torch.inference_mode():
        for i, p in enumerate(m["path"]):
            t0 = time.perf_counter()
            img = Image.open(p).convert("RGB")
            t1 = time.perf_counter()
            boxes, probs, points = det.mtcnn.detect(img, landmarks=True)
            d = det.pick(boxes, probs, points)
            t2 = time.perf_counter()
            if d is None:
                t["decode"] += t1 - t0
                t["detect"] += t2 - t1
                continue
            arr = np.asarray(img)
            chip = warp_to_template(arr, d.landmarks, emb.template, emb.crop_size)
            t3 = time.perf_counter()
            emb(torch.from_numpy(chip).permute(2, 0, 1)[None].to(dev)).cpu()
            t4 = time.perf_counter()
            pad(torch.from_numpy(pad.crop(arr, d.box)).permute(2, 0, 1)[None].to(dev)).cpu()
            t5 = time.perf_counter()
            for k, a, b in (("decode", t0, t1), ("detect", t1, t2), ("align", t2, t3), ("embed", t3, t4),
                            ("pad", t4, t5)):
                t[k] += b - a
    total = sum(t.values())
    return {"images": n, "s": round(total, 3), "img_per_s": _ips(n, total),
            "stages_img_per_s": {k: _ips(n, v) for k, v in t.items()}}


def bench_engine(kind: str, m: pd.DataFrame, dev: torch.device, det, emb, pad, args, profile: bool = False,
                 **over) -> dict:
    """One engine run over ``m``, cache off; ``profile``: per-stage seconds (synchronises between stages);
    ``over``: overrides of the batched engine's arguments (gpu_decode, detect_batch_size, workers, ...)."""
    prof: dict | None = {} if profile else None
    _sync(dev)
    t = time.perf_counter()
    if kind == "simple":
        table = score_manifest(m, det, emb, pad, ScoreCache(None), batch_size=args.batch_size,
                               chunk_size=args.chunk_size, amp=args.amp, progress=False)
    else:
        kw = dict(batch_size=args.batch_size, chunk_size=args.chunk_size, amp=args.amp, progress=args.progress,
                  workers=args.workers, device=dev, detect_batch_size=args.detect_batch_size,
                  gpu_decode={"auto": None, "on": True, "off": False}[args.gpu_decode],
                  prefetch_factor=args.prefetch, channels_last=args.channels_last)
        kw.update(over)
        table = B.score_manifest_batched(m, det, emb, pad, ScoreCache(None), profile=prof, **kw)
    _sync(dev)
    s = time.perf_counter() - t
    out = {"images": len(m), "s": round(s, 3), "img_per_s": _ips(len(m), s), "counts": table.counts()}
    if prof:
        out["profile_s"] = {k: round(v, 3) for k, v in prof.items() if k.endswith("_s")}
        out["gpu_decode"] = prof.get("gpu_decode")
        out["backoff"] = prof.get("backoff")
    return out


def amp_check(dev: torch.device, emb, pad, arrays: dict, bs: int) -> dict:
    """Parity (max |diff| vs fp32 / contiguous) and speed of the two forwards under AMP and channels-last."""
    res = {}
    for name, model, x in (("embed", emb, arrays["chips"][:bs]), ("pad", pad, arrays["pad_crops"][:bs])):
        ref = None
        res[name] = {}
        for amp in (False, True):
            for cl in (False, True):
                model.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
                xx = x.contiguous(memory_format=torch.channels_last) if cl else x.contiguous()

                def fwd():
                    with torch.inference_mode(), torch.autocast("cuda", enabled=amp):
                        return model(xx).float()

                y = fwd()
                s = _timed(fwd, dev, reps=5, warmup=2)
                if ref is None:
                    ref = y
                res[name][f"amp={amp},channels_last={cl}"] = {
                    "img_per_s": _ips(len(x), s), "max_abs_diff_vs_fp32": float((y - ref).abs().max())}
        model.to(memory_format=torch.contiguous_format)
    return res


def goals(r: dict) -> dict:
    g = {}
    raw = r["raw_stages"]
    e2e = r["batched"]["img_per_s"]
    models = {k: raw[k]["img_per_s"] for k in ("detect", "embed", "pad")}  # the implementations the engine runs
    slowest = min(models, key=models.get)
    g["slowest_raw_stage"] = {"stage": slowest, "img_per_s": models[slowest]}
    g["overhead_vs_slowest_stage_pct"] = round((models[slowest] / e2e - 1) * 100, 1)
    per_img = sum(1 / v for v in models.values())
    g["raw_models_serial_img_per_s"] = round(1 / per_img, 2)
    g["overhead_vs_sum_of_model_stages_pct"] = round((1 / per_img / e2e - 1) * 100, 1)
    if "naive" in r:
        g["speedup_vs_naive"] = round(e2e / r["naive"]["img_per_s"], 1)
    if "simple" in r:
        g["speedup_vs_simple"] = round(e2e / r["simple"]["img_per_s"], 2)
    ceiling = max(v["img_per_s"] for k, v in r["decode"].items())
    g["fraction_of_decode_ceiling"] = round(e2e / ceiling, 3)
    if r["device"] == "cuda":
        g["met"] = {"gpu_10x_naive": g.get("speedup_vs_naive", 0) >= 10,
                    "gpu_50pct_of_decode_ceiling": g["fraction_of_decode_ceiling"] >= 0.5,
                    "gpu_3000_img_per_s": e2e >= 3000}
    else:
        g["met"] = {"cpu_overhead_lt_20pct_over_slowest_stage": g["overhead_vs_slowest_stage_pct"] < 20,
                    "cpu_harness_adds_lt_20pct_over_model_stages": g["overhead_vs_sum_of_model_stages_pct"] < 20}
    return g


def print_table(r: dict) -> None:
    print(f"\n== {r['device']} ({r['device_name']}), threads={r['threads']}, workers={r['args']['workers']}, "
          f"images={r['args']['n']} ==")
    print(f"{'what':40s} {'img/s':>10s}")
    rows = [(f"decode: {k}", v["img_per_s"]) for k, v in r["decode"].items()]
    rows += [(f"raw stage: {k} (batch {v['batch']})", v["img_per_s"]) for k, v in r["raw_stages"].items()]
    if "naive" in r:
        rows.append((f"naive per-image loop e2e ({r['naive']['images']} img)", r["naive"]["img_per_s"]))
        rows += [(f"  naive stage: {k}", v) for k, v in r["naive"]["stages_img_per_s"].items()]
    if "simple" in r:
        rows.append((f"simple engine e2e ({r['simple']['images']} img)", r["simple"]["img_per_s"]))
    rows.append((f"batched engine e2e ({r['batched']['images']} img)", r["batched"]["img_per_s"]))
    for v in r.get("batched_variants", []):
        rows.append((f"  variant {json.dumps(v['overrides'])}", v["img_per_s"]))
    n = r["batched_profiled"]["images"]
    rows.append(("batched engine e2e, profiled (synced)", r["batched_profiled"]["img_per_s"]))
    for k, v in r["batched_profiled"].get("profile_s", {}).items():
        if k != "total_s" and v > 0:
            rows.append((f"  batched stage: {k[:-2]} (in-pipeline)", _ips(n, v)))
    for name, v in rows:
        print(f"{name:40s} {v:>10.1f}")
    print(json.dumps(r["goals"], indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=48, help="images for the engines (rows repeat past the list)")
    ap.add_argument("--n-naive", type=int, default=16)
    ap.add_argument("--n-simple", type=int, default=None, help="images for the simple engine (default --n)")
    ap.add_argument("--n-facenet", type=int, default=16, help="batch for the facenet MTCNN.detect raw stage")
    ap.add_argument("--list", default="labels.csv")
    ap.add_argument("--pad", default="minifasnet_ensemble")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--prefetch", type=int, default=2)
    ap.add_argument("--chunk-size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--detect-batch-size", type=int, default=16)
    ap.add_argument("--gpu-decode", choices=("auto", "on", "off"), default="auto")
    ap.add_argument("--amp", action="store_true", help="AMP in the engines' model forwards")
    ap.add_argument("--channels-last", action="store_true", help="channels-last model forwards in the engine")
    ap.add_argument("--amp-check", action="store_true")
    ap.add_argument("--variants", default="", help='JSON list of engine overrides, e.g. [{"gpu_decode": false}]')
    ap.add_argument("--skip", default="", help="comma list of: naive,simple")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--mixed", nargs=argparse.REMAINDER, default=None,
                    help="the mixed-resolution and ID-scan cases instead (benchmarks/bench_mixed_resolution.py; "
                         "the options after --mixed are its own)")
    args = ap.parse_args()
    if args.mixed is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_mixed_resolution import main as mixed_main

        mixed_main(args.mixed)
        return
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    root = shared_root(required=True) / "datasets" / "nuaa"
    m = manifest_rows(root, args.n, args.list)
    skip = set(filter(None, args.skip.split(",")))
    det = MTCNNDetector(batch_size=args.detect_batch_size, device=str(dev))
    emb = build_embedder("dlib_resnet", device=str(dev))
    pad = build_pad(args.pad, device=str(dev))
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine()
    r: dict = {"device": dev.type, "device_name": name,
               "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
               "args": vars(args), "image_size": "640x480 (NUAA)"}
    r["decode"] = {"loader_cpu_decode": bench_decode(m, dev, args.workers, args.chunk_size, gpu=False)}
    if dev.type == "cuda":
        r["decode"]["loader_nvjpeg_decode"] = bench_decode(m, dev, args.workers, args.chunk_size, gpu=True)
    print("decode", r["decode"], flush=True)
    r["raw_stages"], arrays = bench_raw_stages(m, dev, det, emb, pad, args.detect_batch_size, args.batch_size,
                                               args.n_facenet)
    print("raw", r["raw_stages"], flush=True)
    if "naive" not in skip:
        r["naive"] = bench_naive(m.head(args.n_naive), dev, det, emb, pad)
        print("naive", r["naive"], flush=True)
    warm = m.head(min(len(m), 2 * args.detect_batch_size))
    B.score_manifest_batched(warm, det, emb, pad, ScoreCache(None), batch_size=args.batch_size,
                             chunk_size=args.chunk_size, progress=False, device=dev)
    if "simple" not in skip:
        r["simple"] = bench_engine("simple", m.head(args.n_simple or args.n), dev, det, emb, pad, args)
        print("simple", r["simple"], flush=True)
    runs = [bench_engine("batched", m, dev, det, emb, pad, args) for _ in range(2)]
    r["batched"] = max(runs, key=lambda v: v["img_per_s"])
    r["batched"]["runs_img_per_s"] = [v["img_per_s"] for v in runs]
    print("batched", r["batched"], flush=True)
    r["batched_profiled"] = bench_engine("batched", m, dev, det, emb, pad, args, profile=True)
    print("batched (profiled)", r["batched_profiled"], flush=True)
    if args.variants:
        r["batched_variants"] = []
        for over in json.loads(args.variants):
            v = bench_engine("batched", m, dev, det, emb, pad, args, **over)
            r["batched_variants"].append({"overrides": over, **v})
            print("variant", over, v["img_per_s"], flush=True)
    if args.amp_check and dev.type == "cuda":
        r["amp_check"] = amp_check(dev, emb, pad, arrays, args.batch_size)
        print("amp", json.dumps(r["amp_check"], indent=1), flush=True)
    r["goals"] = goals(r)
    print_table(r)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
