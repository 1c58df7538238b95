"""Privacy: no logged artifact contains a full frame. The error gallery shows only the embedder's aligned face
crop (exactly its crop size, pixel-identical to what the embedder saw); every other image is a plot."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.shared

IMG_TAG = re.compile(r'<img ([^>]*?)src="data:image/(?:png|jpeg|jpg|webp|gif);base64,([^"]+)"')
IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SIMILAR = 0.8  # normalised correlation of 64x48 grey thumbnails; plots and aligned crops score < 0.5 here


def _thumb(im, size=(64, 48)) -> np.ndarray:
    from PIL import Image

    a = np.asarray(im.convert("L").resize(size, Image.BILINEAR), dtype=np.float64).ravel()
    a -= a.mean()
    return a / (np.linalg.norm(a) + 1e-12)


@pytest.fixture(scope="module")
def frames(sweep):
    from PIL import Image

    paths = sorted(set(pd.read_csv(sweep.job_dirs[0] / "scores.csv")["path"]))
    thumbs, sizes, hashes = [], set(), set()
    for p in paths:
        data = Path(p).read_bytes()
        hashes.add(hashlib.sha256(data).hexdigest())
        with Image.open(io.BytesIO(data)) as im:
            sizes.add(im.size)
            thumbs.append(_thumb(im))
    return np.stack(thumbs), sizes, hashes, paths


def _looks_like_a_frame(im, thumbs) -> float:
    return float((thumbs @ _thumb(im)).max())


def _embedded(html: str):
    from PIL import Image

    for attrs, b64 in IMG_TAG.findall(html):
        yield attrs, Image.open(io.BytesIO(base64.b64decode(b64)))


def test_detector_positive_control(frames):
    """The similarity check does flag a frame, even re-encoded smaller as JPEG."""
    from PIL import Image

    thumbs, _, _, paths = frames
    with Image.open(paths[0]) as im:
        buf = io.BytesIO()
        im.convert("RGB").resize((320, 240)).save(buf, format="JPEG", quality=60)
    assert _looks_like_a_frame(Image.open(buf), thumbs) > 0.95


def test_no_artifact_holds_a_full_frame(sweep, frames, tmp_path):
    import mlflow
    from PIL import Image

    from harness.models.registry import build_embedder

    thumbs, sizes, hashes, _ = frames
    client = mlflow.MlflowClient(tracking_uri=sweep.uri)
    exp = client.get_experiment_by_name("face-pad-harness")
    run_ids = [r.info.run_id for r in client.search_runs([exp.experiment_id])]
    assert len(run_ids) == 5
    n_images = n_crops = 0
    crop_sizes: dict[str, tuple[int, int]] = {}
    for rid in run_ids:
        local = Path(mlflow.artifacts.download_artifacts(run_id=rid, dst_path=str(tmp_path / rid), tracking_uri=sweep.uri))
        emb = client.get_run(rid).data.tags.get("embedder")
        if emb:  # a child run: its gallery must be its embedder's aligned crop size (W, H)
            if emb not in crop_sizes:
                h, w = build_embedder(emb, device="cpu").crop_size
                crop_sizes[emb] = (w, h)
            assert json.loads((local / "report.json").read_text())["crop_size"] == list(crop_sizes[emb][::-1])
        for f in local.rglob("*"):
            if not f.is_file():
                continue
            data = f.read_bytes()
            assert hashlib.sha256(data).hexdigest() not in hashes, f"{f} is a copy of a dataset image"
            if f.suffix.lower() in IMAGE_EXT:
                n_images += 1
                with Image.open(f) as im:
                    assert _looks_like_a_frame(im, thumbs) < SIMILAR, f
            if f.suffix.lower() in (".html", ".htm"):
                text = data.decode("utf-8")
                for attrs, im in _embedded(text):
                    n_images += 1
                    assert "data-figure=" in attrs or "gallery-crop" in attrs, attrs[:80]
                    if "gallery-crop" in attrs:
                        n_crops += 1
                        assert im.size == crop_sizes[emb], (f, im.size)  # the aligned crop, never a frame
                        assert im.size not in sizes
                    assert _looks_like_a_frame(im, thumbs) < SIMILAR, (f, attrs[:80])
    assert set(crop_sizes) == {"dlib_resnet", "expo_mobilefacenet"}
    assert n_crops >= 4 * 2 and n_images > 40


def test_gallery_shows_exactly_the_aligned_crop(sweep):
    """The gallery's pixels are the embedder's aligned crop of the scored detection (and blur changes them)."""
    from PIL import Image

    from harness.faces.detect import build_detector
    from harness.models.dlib_resnet import TEMPLATE
    from harness.report.gallery import aligned_crops

    job = sweep.job_dirs[0]
    html = (job / "report.html").read_text()
    shown = {re.search(r'data-gallery="([^"]+)"', a).group(1): np.asarray(im.convert("RGB"))
             for a, im in _embedded(html) if "gallery-crop" in a}
    samples = pd.read_csv(job / "scores.csv", keep_default_na=False)
    sid = next(iter(shown))
    cache = sweep.tmp / "results" / "cache" / "scores.sqlite"
    det_id = json.loads((job / "summary.json").read_text())["models"]["detector"]["id"]
    from harness import rundir

    stored = aligned_crops(samples, [sid], TEMPLATE, (150, 150))[sid]  # landmarks from the run directory
    assert isinstance(stored, np.ndarray) and np.array_equal(stored, shown[sid])
    no_landmarks = samples.drop(columns=[c for c in rundir.LANDMARK_COLUMNS if c in samples.columns])
    from_cache = aligned_crops(no_landmarks, [sid], TEMPLATE, (150, 150), cache_path=cache, detector_id=det_id)[sid]
    assert isinstance(from_cache, np.ndarray) and np.array_equal(from_cache, shown[sid])
    detector = build_detector("mtcnn", min_face_size=40)  # conf/detector/mtcnn.yaml; no cache: re-detect
    redetected = aligned_crops(no_landmarks, [sid], TEMPLATE, (150, 150), detector=detector)[sid]
    assert isinstance(redetected, np.ndarray) and redetected.shape == (150, 150, 3)
    assert np.abs(redetected.astype(int) - from_cache.astype(int)).mean() < 2.0
    blurred = aligned_crops(samples, [sid], TEMPLATE, (150, 150), cache_path=cache, detector_id=det_id, blur=3.0)[sid]
    assert blurred.shape == (150, 150, 3) and np.abs(blurred.astype(int) - from_cache.astype(int)).mean() > 1.0
    assert Image.fromarray(blurred).size == (150, 150)


def test_cli_rebuilds_the_report_with_a_blurred_gallery(sweep, tmp_path):
    """``python -m harness.report RUN_DIR --blur 2`` on a copy of a finished run (detections from the score cache)."""
    import os
    import shutil
    import subprocess
    import sys

    run = tmp_path / "run"
    shutil.copytree(sweep.job_dirs[0], run)
    before = (run / "report.html").read_text()
    (run / "report.html").unlink()
    r = subprocess.run([sys.executable, "-m", "harness.report", str(run), "--blur", "2", "--gallery-k", "2"],
                       cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, HARNESS_RESULTS=str(sweep.tmp / "results"), HARNESS_CACHE=str(sweep.tmp / "wcache")))
    assert r.returncode == 0, r.stderr[-3000:]
    html = (run / "report.html").read_text()
    crops = [im for a, im in _embedded(html) if "gallery-crop" in a]
    assert len(crops) == 4 and all(im.size == (150, 150) for im in crops) and "crops blurred (sigma 2 px)" in html
    assert html.count('data-figure="') == before.count('data-figure="')
