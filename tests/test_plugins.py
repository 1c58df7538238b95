"""Plugins: a detector and a policy written OUTSIDE the package, used from the command line.

The documented mechanism (:mod:`harness.registry`): a config group yaml in a ``hydra.searchpath`` folder names its
module with ``plugin: <module>``; the module is on ``PYTHONPATH`` and registers itself on import
(``@register_detector`` / ``@register_policy``); a plugin policy declares its config keys (``keys=``), a plugin
detector's keys are its ``__init__`` parameters.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.conftest import run_smoke

PLUGIN = '''
"""A toy detector (a fixed centred box) and a toy policy (fixed thresholds) for tests/test_plugins.py."""
import numpy as np

from harness.faces.detect import Detection, Detector, register_detector
from harness.policy import register_policy
from harness.policy.select import policy_result

#: ArcFace 5-point template / 112 (harness.faces.retinaface_caffe.BOX_LANDMARKS)
LM = np.array([[38.3, 51.7], [73.5, 51.5], [56.0, 71.7], [41.5, 92.4], [70.7, 92.2]]) / 112.0


@register_detector("toy")
class ToyDetector(Detector):
    def __init__(self, box_fraction: float = 0.6, batch_size: int = 1, device: str = "cpu"):
        self.box_fraction = float(box_fraction)
        self.config = {"kind": "toy", "box_fraction": self.box_fraction}

    def detect(self, images):
        out = []
        for im in images:
            h, w = im.shape[:2]
            s = self.box_fraction * min(h, w)
            x1, y1 = (w - s) / 2, (h - s) / 2
            box = np.array([x1, y1, x1 + s, y1 + s], dtype=np.float64)
            out.append(Detection(box=box, prob=1.0, landmarks=np.c_[x1 + LM[:, 0] * s, y1 + LM[:, 1] * s], n_faces=1))
        return out


@register_policy("toy", keys=["t_match", "t_pad"])
def toy_policy(ss, pol):
    return policy_result(t_match=float(pol["t_match"]), t_pad=float(pol["t_pad"]), supported=False,
                         notes=["toy policy: fixed thresholds"])
'''

COMMON = """\
confidence: 0.95
min_subjects: 10
select_on: dev
standards: all
required_standards: []
register_as: null
register_alias: candidate
register_not_deployable: false
"""


@pytest.fixture()
def plugin_dir(tmp_path: Path, monkeypatch) -> Path:
    d = tmp_path / "plugins"
    (d / "conf" / "detector").mkdir(parents=True)
    (d / "conf" / "policy").mkdir(parents=True)
    (d / "toy_harness_plugin.py").write_text(textwrap.dedent(PLUGIN))
    (d / "conf" / "detector" / "toy.yaml").write_text("name: toy\nplugin: toy_harness_plugin\nbox_fraction: 0.6\n")
    (d / "conf" / "policy" / "toy.yaml").write_text("name: toy\nplugin: toy_harness_plugin\nt_match: 0.5\n"
                                                    "t_pad: 0.5\n" + COMMON)
    monkeypatch.setenv("PYTHONPATH", str(d))
    return d


def test_plugin_detector_and_policy_from_the_command_line(shared, plugin_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    _, summary, _ = run_smoke(run, "tracking=none", "detector=toy", "policy=toy",
                              f"hydra.searchpath=[file://{plugin_dir / 'conf'}]")
    det = summary["models"]["detector"]
    assert det["id"].startswith("toy-") and det["kind"] == "toy" and det["box_fraction"] == 0.6
    op = summary["operating_point"]
    assert op["name"] == "toy" and "toy policy: fixed thresholds" in op["notes"]


def test_plugin_detector_from_the_command_line(shared, plugin_dir, tmp_path):
    _, summary, _ = run_smoke(tmp_path, "tracking=none", "detector=toy", f"hydra.searchpath=[file://{plugin_dir / 'conf'}]")
    det = summary["models"]["detector"]
    assert det["id"].startswith("toy-") and det["kind"] == "toy" and det["box_fraction"] == 0.6


def test_plugin_keys_are_checked(shared, plugin_dir, tmp_path):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, HARNESS_RESULTS=str(tmp_path / "results"), PYTHONPATH=f"{root}{os.pathsep}{plugin_dir}")
    for bad, msg in ((["detector=toy", "+detector.box_fractoin=0.5"], "unknown config key 'detector.box_fractoin'"),
                     (["policy=toy", "+policy.t_mathc=0.5"], "unknown config key 'policy.t_mathc'")):
        r = subprocess.run([sys.executable, "-m", "harness", "experiment=smoke", "tracking=none", *bad,
                            f"hydra.searchpath=[file://{plugin_dir / 'conf'}]"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 2 and msg in r.stderr, r.stderr[-2000:]
        assert len([ln for ln in r.stderr.splitlines() if ln.startswith("error:")]) == 1
