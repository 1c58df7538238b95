"""The committee's decision document on real runs (the NUAA smoke sweep's children): the first page is rendered
from ``summary.json["decision"]`` only (every number Chromium shows maps to it), no number wraps, the threshold
dilemma and the policy comparison are there, and ``python -m harness.report RUN --policy min_cost`` builds the
alternative through the same function as ``python -m harness.cli export``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from harness.report.decision import ATTACK_FAMILIES, GLOSSARY

from .conftest import chromium_args

pytestmark = pytest.mark.shared
ROOT = Path(__file__).resolve().parents[2]

#: appended to a copy of the report: Chromium computes the first page's innerText and every ``.num`` element's
#: number of line boxes, and writes them into the DOM that ``--dump-dom`` prints
PROBE = """<script>window.addEventListener('load', function () {
  var out = document.createElement('pre'); out.id = '__probe';
  var rects = [];
  document.querySelectorAll('.num').forEach(function (e) { rects.push([e.textContent, e.getClientRects().length]); });
  out.textContent = JSON.stringify({text: document.getElementById('decision').innerText, rects: rects,
                                    width: window.innerWidth});
  document.body.appendChild(out);
});</script>"""

NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?!\w)")


class _Probe(HTMLParser):
    def __init__(self):
        super().__init__()
        self.inside = False
        self.text = ""

    def handle_starttag(self, tag, attrs):
        self.inside = dict(attrs).get("id") == "__probe"

    def handle_endtag(self, tag):
        self.inside = False

    def handle_data(self, data):
        if self.inside:
            self.text += data


def probe(chromium: str, report: Path, tmp: Path, width: int) -> dict:
    page = tmp / f"probe-{width}.html"
    page.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    r = subprocess.run(chromium_args(chromium, tmp / f"profile-{width}") + [f"--window-size={width},2000",
                       "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    p = _Probe()
    p.feed(r.stdout)
    assert p.text, "the probe script did not run"
    return json.loads(p.text)


def _leaves(x, nums: list[float], strings: list[str]) -> None:
    if isinstance(x, dict):
        for v in x.values():
            _leaves(v, nums, strings)
    elif isinstance(x, list):
        for v in x:
            _leaves(v, nums, strings)
    elif isinstance(x, bool) or x is None:
        pass
    elif isinstance(x, (int, float)):
        nums.append(float(x))
    elif isinstance(x, str):
        strings.append(x)


def unmapped_numbers(text: str, decision: dict) -> list[str]:
    """Numbers of ``text`` that are not a rounding (at their shown precision) of a numeric leaf of ``decision``,
    scaled as the page shows it (as is, in percent, per 10,000), and not a number written in one of its strings."""
    nums, strings = [], []
    _leaves(decision, nums, strings)
    vals = np.array(nums, dtype=float)
    string_tokens = {t.replace(",", "") for s in strings for t in NUMBER.findall(s)}
    bad = []
    for tok in NUMBER.findall(text):
        t = tok.replace(",", "")
        v = float(t)
        decimals = len(t.split(".")[1]) if "." in t else 0
        tol = 0.5 * 10.0 ** -decimals + 1e-9
        if any(np.any(np.abs(m * vals - v) <= tol) for m in (1.0, 100.0, 10_000.0)) or t in string_tokens:
            continue
        bad.append(tok)
    return bad


def test_number_mapping_can_fail():
    """The mapping used below rejects a number that is not in the block (a test that cannot fail is a defect)."""
    d = {"x": {"value": 0.0189, "n": 317}, "note": "ISO/IEC 30107-3"}
    assert unmapped_numbers("1.89% of 317, ISO/IEC 30107-3, 189 per 10,000", d | {"per": 10000}) == []
    assert unmapped_numbers("a score of 0.72 means 72% similarity", d) == ["0.72", "72"]


@pytest.fixture(scope="module")
def run_dir(sweep) -> Path:
    return sweep.job_dirs[0]


def test_first_page_numbers_all_come_from_the_decision_block(run_dir, chromium, tmp_path):
    summary = json.loads((run_dir / "summary.json").read_text())
    d = summary["decision"]
    p = probe(chromium, run_dir / "report.html", tmp_path, 1280)
    text = p["text"]
    assert "Decision" in text and "What was tested" in text and "How sure we are" in text
    assert len(NUMBER.findall(text)) > 20, text[:500]
    assert unmapped_numbers(text, d) == [], text
    # what was decided, the targets, what was not tested and the definitions, in words
    op = summary["operating_point"]
    assert f"{op['t_match']:.6g}" in text and f"{op['t_pad']:.6g}" in text
    assert "FMR ≤ 1%" in text and "APCER ≤ 5%" in text
    tested = set(d["tested"]["species_tested"])
    assert tested == {"print_photo"}
    for fam, words in ATTACK_FAMILIES.items():
        assert (words in text.split("NOT tested:")[1]) == (fam not in tested), fam
    for name in ("FMR", "FNMR", "APCER", "BPCER", "IAPAR"):
        assert f"{name}\t{GLOSSARY[name]}" in text or f"{name}\n{GLOSSARY[name]}" in text, name
    # targets supported is reconciled with the standards verdicts, and the caveats are on the page
    assert d["standards"]["reconciliation"] in text
    for preset in d["standards"]["presets"]:
        assert preset["caveat"] in text
    # evidence rule: every rate resting on fewer people than min_subjects reads "insufficient evidence: N people"
    o = d["outcomes"]
    for r in [o["honest_customers"]["rejected"], o["zero_effort_impostors"]["accepted"],
              *[a["accepted_by_system"] for a in o["attacks"]]]:
        if r and r["n_subjects"] < d["min_subjects"]:
            assert r["evidence"] == "insufficient"
            n = r["n_subjects"]
            assert f"insufficient evidence: {n} {'person' if n == 1 else 'people'}" in text


@pytest.mark.parametrize("width", [1280, 800])
def test_no_number_wraps(run_dir, chromium, tmp_path, width):
    p = probe(chromium, run_dir / "report.html", tmp_path, width)
    assert p["width"] == width
    assert len(p["rects"]) > 50
    wrapped = [t for t, n in p["rects"] if n != 1]
    assert wrapped == [], wrapped


def test_report_has_the_dilemma_and_the_options(run_dir):
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    for fig in ("tradeoff-match", "tradeoff-pad"):
        assert f'data-figure="{fig}"' in html
    d = json.loads((run_dir / "summary.json").read_text())["decision"]
    rows = d["alternatives"]["rows"]
    assert [r["policy"] for r in rows][0] == d["decision"]["policy"] and rows[0]["chosen"]
    assert {r["policy"] for r in rows} == {"eer", "target_rates", "min_cost", "bands"}
    assert 'id="alternatives-table"' in html and 'id="score-meaning"' in html
    # what a score means: the model's scale in words, and the observed range beside the possible one
    models = json.loads((run_dir / "summary.json").read_text())["models"]
    import html as html_lib

    assert models["embedder"]["score_scale"] and html_lib.escape(models["embedder"]["score_scale"]) in html
    assert d["score_meaning"]["match"]["observed"]["impostor"]["n"] > 0
    for r in rows:
        assert f"<b>{r['policy']}</b>" in html
    # "EER 0.00%" never stands alone: its FMR and FNMR come with k/n
    eer = re.search(r"<dt>EER</dt><dd>([^<]*)</dd>", html)
    assert eer and re.search(r"FMR \d+/\d+ = .*FNMR \d+/\d+ = ", eer.group(1)), eer and eer.group(1)
    # the logged figures are the report's figures
    import base64

    for fig in ("roc", "det"):
        m = re.search(rf'data-figure="{fig}" alt="{fig}" src="data:image/png;base64,([^"]+)"', html)
        assert m and base64.b64decode(m.group(1)) == (run_dir / f"{fig}.png").read_bytes(), fig


def test_report_for_an_alternative_policy(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    own = (run / "operating_point.json").read_bytes()
    own_report = (run / "report.html").read_bytes()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "harness.report", str(run), "--policy", "min_cost", "--gallery-k", "0"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    alt = run / "alternatives" / "min_cost"
    s = json.loads((alt / "summary.json").read_text())
    assert s["decision"]["decision"]["policy"] == "min_cost" and s["operating_point"]["name"] == "min_cost"
    rows = s["decision"]["alternatives"]["rows"]
    assert rows[0]["policy"] == "min_cost" and rows[0]["chosen"]
    html = (alt / "report.html").read_text(encoding="utf-8")
    assert "Policy <b>min_cost</b>" in html and 'class="chosen"' in html
    doc = json.loads((alt / "operating_point.json").read_text())
    assert doc.get("signature") is None and doc["deployable"] is False
    # the same function as `cli export`: the same thresholds
    out = tmp_path / "op.min_cost.json"
    from harness.cli import main as cli_main

    assert cli_main(["export", str(run), "--policy", "min_cost", "-o", str(out)]) == 0
    exp = json.loads(out.read_text())
    assert exp["thresholds"]["bands"] == doc["thresholds"]["bands"]
    assert s["decision"]["decision"]["t_match"] == exp["thresholds"]["t_match"]
    # the run's own signed export and report are never rewritten
    assert (run / "operating_point.json").read_bytes() == own and (run / "report.html").read_bytes() == own_report
    bad = subprocess.run([sys.executable, "-m", "harness.report", str(run), "--policy", "min_cost", "--set", "nope=1"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "nope" in bad.stderr


def test_first_page_screenshot(run_dir, chromium, tmp_path):
    from PIL import Image

    shot = tmp_path / "first_page.png"
    r = subprocess.run(chromium_args(chromium, tmp_path / "p") + ["--window-size=1280,1600", f"--screenshot={shot}",
                                                                  (run_dir / "report.html").as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (1600, 1280)
    assert (img < 200).any(axis=2).mean() > 0.02  # text, not a blank page
    keep = os.environ.get("HARNESS_ARTIFACTS_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "first_page.png")
