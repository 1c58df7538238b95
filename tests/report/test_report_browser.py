"""The per-run report renders in headless Chromium: the summary, every figure (decoded by the browser) and the
gallery are there, and a screenshot of the page is not blank."""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from harness.report.run_report import FIGURES

from .conftest import chromium_args

pytestmark = pytest.mark.shared


class _DOM(HTMLParser):
    def __init__(self):
        super().__init__()
        self.figures: dict[str, dict] = {}
        self.ids: set[str] = set()
        self.gallery: list[dict] = []
        self.check: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img" and "data-figure" in a:
            self.figures[a["data-figure"]] = a
        if tag == "img" and "gallery-crop" in (a.get("class") or ""):
            self.gallery.append(a)
        if a.get("id") == "render-check":
            self.check = a


def test_report_renders_in_chromium(sweep, chromium, tmp_path):
    from PIL import Image

    report = sweep.job_dirs[0] / "report.html"
    assert report.is_file()
    dom = subprocess.run(chromium_args(chromium, tmp_path / "p1") + ["--virtual-time-budget=5000", "--dump-dom",
                                                                     report.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    d = _DOM()
    d.feed(dom.stdout)
    for sec in ("summary", "standards", "curves", "histograms", "pad-species", "threshold-table", "cost", "calibration",
                "accounting", "conditions", "gallery"):
        assert sec in d.ids, sec
    assert set(d.figures) == set(FIGURES)
    assert all(a.get("data-ok") == "1" for a in d.figures.values()), {k: a.get("data-ok") for k, a in d.figures.items()}
    assert d.check is not None and d.check["data-figures-ok"] == d.check["data-figures-total"] == str(len(FIGURES))
    assert "Rates on eval at the operating point" in dom.stdout and "target_rates" in dom.stdout
    assert len(d.gallery) >= 2 and all((a["width"], a["height"]) == ("150", "150") for a in d.gallery)

    shot = tmp_path / "report.png"
    r = subprocess.run(chromium_args(chromium, tmp_path / "p2") + ["--window-size=1280,7200", f"--screenshot={shot}",
                                                                   report.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (7200, 1280)
    colours = np.unique(img.reshape(-1, 3), axis=0)
    flat = img.reshape(-1, 3)
    background = np.bincount((flat[:, 0].astype(np.int64) << 16) | (flat[:, 1].astype(np.int64) << 8) | flat[:, 2]).argmax()
    not_bg = ((flat[:, 0].astype(np.int64) << 16) | (flat[:, 1].astype(np.int64) << 8) | flat[:, 2]) != background
    not_white = (flat < 240).any(axis=1)
    assert len(colours) > 2000, len(colours)  # photos (gallery crops) and plots, not a blank or error page
    assert not_bg.mean() > 0.1 and not_white.mean() > 0.05, (not_bg.mean(), not_white.mean())
    keep = os.environ.get("HARNESS_ARTIFACTS_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report_screenshot.png")
        shutil.copy(report, Path(keep) / "report.html")
    print(f"screenshot {shot}: {len(colours)} colours, {100 * not_white.mean():.1f}% non-white pixels")
