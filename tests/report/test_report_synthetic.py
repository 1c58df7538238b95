"""The report from synthetic trials (no shared material, no models): every section and figure, the per-condition
breakdown, the expected cost, and a gallery that shows only aligned crops (fake detector, synthetic frames)."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from harness.cli import load_policy
from harness.partition_metrics import partition_metrics
from harness.faces.detect import Detection
from harness.policy import choose_thresholds
from harness.report.run_report import FIGURES, write_run_report

TEMPLATE = np.array([[38.0, 52.0], [74.0, 52.0], [56.0, 72.0], [42.0, 92.0], [70.0, 92.0]])
CROP = (112, 112)
FRAME_HW = (240, 320)
LANDMARKS = np.array([[130.0, 100.0], [190.0, 100.0], [160.0, 135.0], [137.0, 165.0], [183.0, 165.0]])
BOX = np.array([110.0, 60.0, 210.0, 190.0])


def _synthetic(tmp: Path, seed: int = 0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    samples, trials = [], []
    subjects = [f"s{i:02d}" for i in range(12)]
    part = {s: ("dev" if i < 6 else "eval") for i, s in enumerate(subjects)}
    img_dir = tmp / "frames"
    img_dir.mkdir()
    for s in subjects:
        for j in range(6):
            label = "bona_fide" if j < 3 else "attack"
            sid = f"{s}_{j}"
            path = img_dir / f"{sid}.png"
            frame = rng.integers(0, 255, size=(*FRAME_HW, 3), dtype=np.uint8)
            Image.fromarray(frame).save(path)
            pad = float(rng.beta(8, 2) if label == "bona_fide" else rng.beta(2, 6))
            samples.append({"sample_id": sid, "subject": s, "label": label, "species": "none" if label == "bona_fide"
                            else ("print_photo" if j % 2 else "replay"), "session": str(1 + j % 2),
                            "glasses": "yes" if j == 1 else "no", "status": "scored", "partition": part[s],
                            "pad_score": pad, "path": str(path), "frame": -1, "det_prob": 0.99, "n_faces": 1,
                            **dict(zip(("box_x1", "box_y1", "box_x2", "box_y2"), BOX))})
            kind = "genuine" if label == "bona_fide" else "attack"
            trials.append({"kind": kind, "partition": part[s], "probe_id": sid, "probe_subject": s, "ref_subject": s,
                           "species": samples[-1]["species"], "match_score": float(rng.normal(0.8, 0.1)), "pad_score": pad})
            if label == "bona_fide":
                for other in rng.choice([o for o in subjects if part[o] == part[s] and o != s], 2, replace=False):
                    trials.append({"kind": "impostor", "partition": part[s], "probe_id": sid, "probe_subject": s,
                                   "ref_subject": str(other), "species": "none",
                                   "match_score": float(rng.normal(0.3, 0.12)), "pad_score": pad})
    samples.append({"sample_id": "s00_fta", "subject": "s00", "label": "bona_fide", "species": "none", "session": "1",
                    "glasses": "no", "status": "fta", "partition": "dev", "pad_score": np.nan, "path": "", "frame": -1})
    return pd.DataFrame(trials), pd.DataFrame(samples)


def _summary(trials, probes):
    policy = load_policy("target_rates")
    op = choose_thresholds(trials, probes, policy, standards="all")
    metrics = partition_metrics(trials, probes, op)
    return policy, {
        "run": {"name": "synthetic", "report_partition": "eval", "harness_version": "test", "git_sha": "0" * 40,
                "wall_time_s": 0.0},
        "dataset": {"name": "synthetic", "samples": len(probes), "subjects": 12, "manifest_sha256": "f" * 64,
                    "partitions": {"dev": [f"s{i:02d}" for i in range(6)], "eval": [f"s{i:02d}" for i in range(6, 12)]}},
        "models": {"detector": {"id": "fake-detector"}, "embedder": {"name": "fake", "metric": "cosine", "dim": 4},
                   "pad": {"name": "fake-pad"}},
        "accounting": {"input_samples": len(probes), "scored": len(probes) - 1, "fta": 1, "rejected": 0},
        "rejected_samples": [],
        "operating_point": op,
        "metrics": json.loads(json.dumps(metrics, default=float)),
    }


class FakeDetector:
    calls = 0

    def detect(self, images):
        FakeDetector.calls += len(images)
        return [Detection(box=BOX.copy(), prob=0.99, landmarks=LANDMARKS.copy(), n_faces=1) for _ in images]


def test_synthetic_report(tmp_path):
    trials, probes = _synthetic(tmp_path)
    policy, summary = _summary(trials, probes)
    out = tmp_path / "run"
    out.mkdir()
    path = write_run_report(out, summary, trials, probes, probes, policy=policy, template=TEMPLATE, crop_size=CROP,
                            detector=FakeDetector(), options={"gallery_k": 3})
    html = path.read_text()
    for fig in FIGURES:
        assert f'data-figure="{fig}"' in html, fig
    for sec in ("summary", "standards", "threshold-table", "accounting", "conditions", "gallery"):
        assert f'id="{sec}"' in html
    # self-contained: nothing is fetched (cited sources of the standards are plain text, not links)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", html) and "<link" not in html
    assert "url(" not in html and "@import" not in html
    data = json.loads((out / "report.json").read_text())
    assert data["metrics"]["system_level/eval/expected_cost/value"] >= 0
    cond = pd.read_csv(out / "conditions.csv")
    assert {"session", "glasses"} <= set(cond["condition"]) and {"FNMR", "FMR", "BPCER", "APCER_max", "FTA"} <= set(cond["metric"])
    # gallery: 3 + 3 tiles, all aligned crops of the embedder's size, none the 320x240 frame
    from PIL import Image

    crops = re.findall(r'<img class="gallery-crop"[^>]*src="data:image/png;base64,([^"]+)"', html)
    assert len(crops) == 6 and FakeDetector.calls == 6
    for b in crops:
        assert Image.open(io.BytesIO(base64.b64decode(b))).size == CROP[::-1]
    assert all(g.get("crop_hw") == list(CROP) for g in data["gallery"])


def test_gallery_refuses_a_detection_that_disagrees_with_the_scored_box(tmp_path):
    from harness.report.gallery import aligned_crops

    _, probes = _synthetic(tmp_path)
    moved = probes.copy()
    moved["box_x1"] = moved["box_x1"] + 25
    got = aligned_crops(moved, ["s00_0"], TEMPLATE, CROP, detector=FakeDetector())
    assert isinstance(got["s00_0"], str) and "differs" in got["s00_0"]
    assert aligned_crops(probes, ["nope"], TEMPLATE, CROP, detector=FakeDetector())["nope"] == "sample not in scores.csv"


def test_report_failure_does_not_stop_the_run(tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    from harness.report import run_report

    monkeypatch.delenv("HARNESS_DEBUG", raising=False)
    cfg = OmegaConf.create({"results_dir": str(tmp_path), "runtime": {"cache": False}, "policy": {"name": "x"}})
    assert run_report.report_for_run(cfg, tmp_path, {"run": {}}, pd.DataFrame(), pd.DataFrame(), pd.DataFrame()) is None
    assert "Traceback" in (tmp_path / "report_error.txt").read_text()
    cfg.report = {"enabled": False}
    assert run_report.report_for_run(cfg, tmp_path, {}, None, None, None) is None


def test_plots_public_functions_still_work(tmp_path):
    from harness.report.plots import histogram, roc_det_plots

    rng = np.random.default_rng(1)
    paths = roc_det_plots({"v": (rng.normal(0, 1, 50), rng.normal(2, 1, 50))}, tmp_path, "t")
    assert all(p.is_file() for p in paths)
    assert histogram({"a": rng.normal(size=20)}, {"t": 0.1}, tmp_path / "h.png", "x").is_file()
