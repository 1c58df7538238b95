"""``python -m harness.report RUN_DIR [--policy NAME [--set KEY=VALUE ...]] [--gallery-k K] [--blur SIGMA]``:
(re)build ``report.html`` of a finished run, or the report of an alternative operating point.

Reads the run directory (:mod:`harness.rundir`: summary, trials, probes, scores) and ``threshold_table.csv``; the
error gallery needs the embedder's template (the embedder is built from ``summary.json``) and the scored detections:
the run directory's landmarks, or for a run written before them the score cache or a re-detection with the run's
detector settings.

With ``--policy`` the thresholds are re-selected with ``conf/policy/<NAME>.yaml`` (and ``--set`` overrides) through
:func:`harness.export.reselect.reselect`, the function behind ``python -m harness.cli export``, and written to
``RUN_DIR/alternatives/<NAME>/``: ``report.html``, ``summary.json`` (with its ``decision`` block) and an UNSIGNED
``operating_point.json`` (analysis only: sign it with ``python -m harness.cli sign`` once approved). The run's own
report and signed export are never rewritten.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _alternative(run_dir: Path, name: str, sets: list[str]) -> tuple[Path, dict, object]:
    """Re-select with policy ``name``; write the unsigned export and the alternative's summary.json."""
    from harness.data.registry import capture_conditions
    from harness.jsonsafe import finite, json_default
    from harness.partition_metrics import partition_metrics, unmeasurable
    from harness.export.operating_point import write_operating_point
    from harness.export.reselect import reselect
    from harness.report.decision import decision_for_run

    r = reselect(run_dir, name, sets, key=None)
    out = run_dir / "alternatives" / name
    out.mkdir(parents=True, exist_ok=True)
    write_operating_point(r.doc, out / "operating_point.json")
    s = dict(r.summary)
    metrics = partition_metrics(r.trials, r.probes, r.op)
    s.update(operating_point=r.op, metrics=metrics, unmeasurable=unmeasurable(metrics, r.op),
             run=dict(r.summary["run"]) | {"alternative_of": str(run_dir.resolve()), "policy_overrides": list(sets)})
    s["decision"] = finite(decision_for_run(s, r.trials, r.probes, r.policy,
                                             capture=capture_conditions(s["dataset"].get("name"))))
    (out / "summary.json").write_text(json.dumps(finite(s), indent=2, default=json_default))
    return out, s, r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--policy", help="build the report of this alternative policy (conf/policy/ name) into "
                                     "RUN_DIR/alternatives/<policy>/")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a policy input")
    ap.add_argument("--gallery-k", type=int, default=4, help="cases per gallery row (default 4; 0 = no gallery)")
    ap.add_argument("--blur", type=float, default=0.0, help="Gaussian blur sigma (px) for the gallery crops")
    ap.add_argument("--cache", help="score cache sqlite (default: <results>/cache/scores.sqlite)")
    a = ap.parse_args(argv)

    import pandas as pd

    from harness import rundir
    from harness.export.reselect import load_run
    from harness.paths import results_root
    from harness.report.run_report import write_run_report

    run_dir = Path(a.run_dir)
    try:
        trials, probes, summary, config = load_run(run_dir)
        out, policy = run_dir, summary["operating_point"].get("policy")
        if a.policy:
            out, summary, r = _alternative(run_dir, a.policy, a.set)
            policy = r.policy
        elif a.set:
            raise ValueError("--set needs --policy")
        if rundir.has_manifest(run_dir):  # verified against run_manifest.json (a changed file: one line, exit 2)
            samples = rundir.read_table(run_dir, "scores")
        else:  # a run written before harness.rundir: scores.csv as it was read then
            samples = pd.read_csv(run_dir / "scores.csv", keep_default_na=False, dtype={"sample_id": str, "path": str})
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    template = crop_size = None
    if a.gallery_k > 0:
        from harness.models.registry import build_embedder

        emb = build_embedder(summary["models"]["embedder"]["name"], device="cpu")
        template, crop_size = emb.template, emb.crop_size
        del emb
    det = summary["models"].get("detector") or {}

    def detector_factory():  # the run's own detector and settings (only for crops the run directory lacks)
        import inspect

        from harness.faces.detect import DETECTORS, build_detector

        name = det.get("kind", "mtcnn")
        params = inspect.signature(DETECTORS.get(name)).parameters
        return build_detector(name, **{k: v for k, v in det.items() if k in params})

    cache = Path(a.cache) if a.cache else Path((config or {}).get("results_dir") or results_root()) / "cache" / "scores.sqlite"
    path = write_run_report(out, summary, trials, probes, samples, policy=policy,
                            template=template, crop_size=crop_size, detector_factory=detector_factory,
                            cache_path=cache if cache.is_file() else None,
                            options={"gallery_k": a.gallery_k, "gallery_blur": a.blur},
                            threshold_table=run_dir / "threshold_table.csv")
    print(f"wrote {path}")
    if a.policy:
        print(f"wrote {out / 'operating_point.json'} (unsigned: analysis only) and {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
