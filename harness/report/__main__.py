"""``python -m harness.report RUN_DIR [--gallery-k K] [--blur SIGMA]``: (re)build ``report.html`` of a finished run.

Reads the run's ``summary.json``, ``trials.csv``, ``scores.csv`` and ``threshold_table.csv``; the error gallery
needs the embedder's template (the embedder is built from ``summary.json``) and the scored detections (the
score cache, or a re-detection with the run's detector settings).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--gallery-k", type=int, default=4, help="cases per gallery row (default 4; 0 = no gallery)")
    ap.add_argument("--blur", type=float, default=0.0, help="Gaussian blur sigma (px) for the gallery crops")
    ap.add_argument("--cache", help="score cache sqlite (default: <results>/cache/scores.sqlite)")
    a = ap.parse_args(argv)

    import pandas as pd

    from harness.cli import load_run
    from harness.paths import results_root
    from harness.report.run_report import write_run_report

    run_dir = Path(a.run_dir)
    try:
        trials, probes, summary, config = load_run(run_dir)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    samples = pd.read_csv(run_dir / "scores.csv", keep_default_na=False, dtype={"sample_id": str, "path": str})
    template = crop_size = None
    if a.gallery_k > 0:
        from harness.models.registry import build_embedder

        emb = build_embedder(summary["models"]["embedder"]["name"], device="cpu")
        template, crop_size = emb.template, emb.crop_size
        del emb
    det_cfg = {k: v for k, v in (summary["models"].get("detector") or {}).items()
               if k in ("min_face_size", "thresholds", "factor", "min_prob")}

    def detector_factory():
        from harness.faces.detect import build_detector

        return build_detector("mtcnn", **det_cfg)

    cache = Path(a.cache) if a.cache else Path((config or {}).get("results_dir") or results_root()) / "cache" / "scores.sqlite"
    path = write_run_report(run_dir, summary, trials, probes, samples, policy=summary["operating_point"].get("policy"),
                            template=template, crop_size=crop_size, detector_factory=detector_factory,
                            cache_path=cache if cache.is_file() else None,
                            options={"gallery_k": a.gallery_k, "gallery_blur": a.blur})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
