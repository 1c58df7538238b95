"""The registries (:mod:`harness.registry`): duplicates refused, unknown names listed, lazy discovery, every
built-in member resolves, and the RetinaFace detector finds a face on a real image."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.registry import DuplicateNameError, Registry, UnknownNameError

ROOT = Path(__file__).resolve().parents[1]


def first():
    return 1


def second():
    return 2


def test_duplicate_name_is_refused_naming_both_definitions():
    reg = Registry("thing")
    reg.register("a")(first)
    reg.register("a")(first)  # the same definition again (a re-import) is fine
    with pytest.raises(DuplicateNameError) as e:
        reg.register("a")(second)
    msg = str(e.value)
    assert "\n" not in msg and "test_registry.first" in msg and "test_registry.second" in msg
    assert reg.get("a") is first


def test_unknown_name_lists_the_known_ones():
    reg = Registry("thing", config_key="thing.name")
    reg.register("b")(first)
    reg.register("a")(second)
    with pytest.raises(KeyError) as e:
        reg.get("c")
    assert str(e.value) == "unknown thing 'c'; known: ['a', 'b'] (config key thing.name)"
    with pytest.raises(ValueError):
        reg["c"]
    assert reg.names() == ["a", "b"] and list(reg) == ["a", "b"] and "a" in reg and "c" not in reg


def test_discovery_is_lazy():
    code = ("import sys, harness.registry, harness.data.registry, harness.models.registry, harness.faces.detect, "
            "harness.policy.select\n"
            "members = ['harness.data.nuaa', 'harness.data.csv_manifest', 'harness.models.dlib_resnet', "
            "'harness.models.minifasnet', 'harness.faces.retinaface_caffe', 'harness.policy.target_rates', "
            "'harness.policy.bands', 'harness.policy.eer']\n"
            "print([m for m in members if m in sys.modules])\n"
            "from harness.data.registry import DATASETS\n"
            "'nuaa' in DATASETS\n"
            "print('harness.data.nuaa' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["[]", "True"]
    # importing the bare registry module imports no member of any kind
    out = subprocess.run([sys.executable, "-c", "import sys, harness.registry; print(sorted(m for m in sys.modules "
                          "if m.startswith(('harness.data', 'harness.models', 'harness.faces', 'harness.policy'))))"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_builtin_name_resolves():
    from harness.data.registry import DATASETS, dataset_names
    from harness.faces.detect import DETECTORS
    from harness.models.registry import EMBEDDERS, PAD_MODELS
    from harness.policy.select import POLICIES
    import yaml

    def conf_names(group: str) -> set[str]:
        return {yaml.safe_load(p.read_text())["name"] for p in (ROOT / "conf" / group).glob("*.yaml")}

    expected = {
        DATASETS: conf_names("dataset"),
        DETECTORS: {"mtcnn", "retinaface"},
        EMBEDDERS: {p.stem for p in (ROOT / "conf" / "embedder").glob("*.yaml")},
        PAD_MODELS: {p.stem for p in (ROOT / "conf" / "pad").glob("*.yaml")},
        POLICIES: {"target_rates", "eer", "min_cost", "bands", "joint"},
    }
    for reg, names in expected.items():
        assert names <= set(reg.names()), (reg.kind, names - set(reg.names()))
        for n in reg.names():
            assert callable(reg.get(n))
    assert dataset_names() == DATASETS.names()


def test_conf_files_name_registered_members():
    import yaml

    from harness.faces.detect import DETECTORS
    from harness.policy.select import POLICIES

    for group, reg in (("detector", DETECTORS), ("policy", POLICIES)):
        for p in (ROOT / "conf" / group).glob("*.yaml"):
            assert yaml.safe_load(p.read_text())["name"] in reg, p


def test_retinaface_detector_finds_a_face(shared):
    from PIL import Image

    from harness.faces.detect import Detection, build_detector

    det = build_detector("retinaface", batch_size=4, device="cpu")
    paths = sorted((shared / "datasets" / "faceapi_bbt" / "images").rglob("*.png"))[:2]
    assert paths, "no faceapi_bbt image"
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    found = det.detect(images)
    assert len(found) == len(images)
    for im, d in zip(images, found):
        assert isinstance(d, Detection) and d.prob > 0.5
        h, w = im.shape[:2]
        x1, y1, x2, y2 = d.box
        assert x1 < w / 2 < x2 and y1 < h / 2 < y2 and (x2 - x1) * (y2 - y1) > 0.05 * w * h  # a face near the centre
        assert d.landmarks.shape == (5, 2) and (d.landmarks[:, 0] >= x1).all() and (d.landmarks[:, 0] <= x2).all()
    assert det.detector_id.startswith("retinaface-") and det.config["kind"] == "retinaface"
