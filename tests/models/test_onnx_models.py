"""Faceplugin ONNX models: batch-dynamic patch, onnxruntime vs onnx2torch parity, golden outputs, rankings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness.models import onnx_models as O
from harness.models.base import Embedder, PADModel
from harness.models.registry import EMBEDDERS, PAD_MODELS
from harness.models.weights import fetch, sha256_file

from .conftest import SILENTFACE, SILENTFACE_BOXES, aligned, pad_batch, pair_scores

#: fr_feature embeddings (onnxruntime CPU) of bbt crops 0 (amy1) and 5 (bernadette1): first 4 values. Computed with
#: opencv-python-headless 4.14 (pyproject pins <5): OpenCV 5's bilinear warpAffine moves them by up to 1.5e-3
GOLDEN_FEATURE = {0: [-0.102765, -0.129738, -0.136305, -0.140767], 5: [-0.273277, 0.249636, 0.268121, 0.123823]}
#: p(live) of the silentface samples with the harness MTCNN boxes, fed BGR (the shipped convention) and RGB
GOLDEN_LIVE_BGR = {"image_T1.jpg": 0.923522, "image_F1.jpg": 0.000022, "image_F2.jpg": 0.005834}
GOLDEN_LIVE_RGB = {"image_T1.jpg": 0.286454, "image_F1.jpg": 0.000421, "image_F2.jpg": 0.012625}


@pytest.fixture(scope="module")
def feature(shared):
    return EMBEDDERS["faceplugin_feature"]()


@pytest.fixture(scope="module")
def liveness(shared):
    return PAD_MODELS["faceplugin_liveness"]()


# ------------------------------------------------------------------------------------------------ files
@pytest.mark.parametrize("spec", [O.FEATURE_WEIGHTS, O.LIVENESS_WEIGHTS], ids=lambda s: s.name)
def test_batch_dynamic_copy_is_verified_and_dynamic(spec):
    import onnx

    orig = fetch(spec)
    patched = O.batch_dynamic(spec)
    assert sha256_file(orig) == spec.sha256
    assert sha256_file(patched) == spec.extra["batch_dynamic_sha256"]
    g0, g1 = onnx.load(str(orig)).graph, onnx.load(str(patched)).graph
    assert g0.input[0].type.tensor_type.shape.dim[0].dim_value == 1  # the shipped file is fixed at batch 1
    for v in list(g1.input) + list(g1.output):
        assert v.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert {t.name for t in g1.initializer} <= {t.name for t in g0.initializer} | {
        f"{n.name or n.output[0]}_folded_shape" for n in g1.node}


def test_session_options_do_not_spin(feature):
    s = feature.net.session()
    so = s.get_session_options()
    assert so.intra_op_num_threads == torch.get_num_threads()  # conftest caps torch at 2 threads
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert s.get_providers()[-1] == "CPUExecutionProvider"


# ------------------------------------------------------------------------------------------------ embedder
def test_feature_declaration(feature):
    assert isinstance(feature, Embedder) and not feature.training
    assert feature.dim == 512 and feature.metric == "cosine" and feature.crop_size == (112, 112)
    assert feature.weights_sha256 == O.FEATURE_WEIGHTS.sha256
    np.testing.assert_allclose(feature.template[0], [38.2946, 51.6963])
    assert feature.net.resolved_backend() == "onnxruntime"


def test_feature_parity_golden_and_batching(feature, bbt):
    x = aligned(feature, bbt, [0, 5, 10, 15])
    with torch.no_grad():
        ort = feature(x)
        tch = feature.net.run_torch(feature.to_input(x))
        single = torch.cat([feature(x[i:i + 1]) for i in range(len(x))])
    assert ort.shape == (4, 512)
    assert (ort - tch).abs().max() < 1e-4  # onnxruntime vs onnx2torch
    torch.testing.assert_close(ort, single, atol=1e-5, rtol=0)
    for k, i in enumerate((0, 5)):
        np.testing.assert_allclose(ort[k, :4].numpy(), GOLDEN_FEATURE[i], atol=2e-4)


def test_feature_scores_same_subject_above_different(feature, bbt):
    df, _, _ = bbt
    with torch.no_grad():
        emb = feature(aligned(feature, bbt)).numpy()
    same, diff = pair_scores(feature, emb, df.subject)
    assert len(same) == 80 and len(diff) == 700
    assert same.min() > diff.max()  # measured: perfectly separated on this small set


# ------------------------------------------------------------------------------------------------ liveness
def test_liveness_crop_rule_hand_checked():
    # box 20x20 at (90, 40): scale 2.7 -> 54x54 about (100, 50), rect (73, 23, 54, 54)
    assert O.faceplugin_liveness_box((90.7, 40.2, 110.9, 60.0), (100, 200)) == (73, 23, 54, 54)
    # clamped scale (H-1)/h = 99/80 and shifted down inside the frame
    assert O.faceplugin_liveness_box((50, 10, 130, 90), (100, 200)) == (40, 0, 99, 99)
    frame = np.random.default_rng(0).integers(0, 256, (100, 200, 3), dtype=np.uint8)
    out = O.faceplugin_liveness_crop(frame, (90.7, 40.2, 110.9, 60.0))
    import cv2

    np.testing.assert_array_equal(out, cv2.resize(frame[23:77, 73:127], (128, 128), interpolation=cv2.INTER_LINEAR))
    with pytest.raises(ValueError, match="degenerate"):
        O.faceplugin_liveness_box((10, 10, 10.5, 30), (100, 200))


def test_liveness_crop_regions_reproduce_crop(liveness, silentface):
    import cv2

    for n, frame in silentface.items():
        box = np.asarray(SILENTFACE_BOXES[n])
        (x1, y1, x2, y2), = liveness.crop_regions(frame.shape[:2], box)
        want = cv2.resize(frame[y1:y2 + 1, x1:x2 + 1], (128, 128), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(liveness.crop(frame, box), want)


def test_liveness_parity_golden_and_batching(liveness, silentface):
    x = pad_batch(liveness, silentface)
    with torch.no_grad():
        p = liveness(x)
        tch = torch.softmax(liveness.net.run_torch(liveness.to_input(x)), 1)[:, 0]
        single = torch.cat([liveness(x[i:i + 1]) for i in range(3)])
    assert isinstance(liveness, PADModel) and liveness.crop_size == (128, 128) and p.dtype == torch.float32
    assert (p - tch).abs().max() < 1e-4
    torch.testing.assert_close(p, single, atol=1e-6, rtol=0)
    np.testing.assert_allclose(p.numpy(), [GOLDEN_LIVE_BGR[n] for n in SILENTFACE], atol=1e-4)


def test_liveness_ranks_live_above_print_and_replay_only_when_fed_bgr(liveness, silentface):
    rgb = O.build_liveness(channels="RGB")
    x = pad_batch(liveness, silentface)
    with torch.no_grad():
        bgr_s = dict(zip(SILENTFACE, liveness(x).tolist()))
        rgb_s = dict(zip(SILENTFACE, rgb(x).tolist()))
    assert bgr_s["image_T1.jpg"] > 0.5 > max(bgr_s["image_F1.jpg"], bgr_s["image_F2.jpg"])
    # fed RGB (what the package's JS does) the live sample is called a spoof: the network wants BGR
    np.testing.assert_allclose([rgb_s[n] for n in SILENTFACE], [GOLDEN_LIVE_RGB[n] for n in SILENTFACE], atol=1e-4)
    assert rgb_s["image_T1.jpg"] < 0.5
    assert "BGR" in liveness.preprocessing and "RGB" in rgb.preprocessing and rgb.model_id != liveness.model_id


# ------------------------------------------------------------------------- converted copies of local files


def test_local_weights_are_converted_into_the_private_cache_and_checked_on_every_load(tmp_path, monkeypatch):
    """Audit finding: with weights_path=, the converted ONNX file sat at a predictable path in the shared temp
    directory and was used without a check while the original's sha256 was recorded."""
    import os
    import tempfile

    orig = fetch(O.LIVENESS_WEIGHTS)
    local = tmp_path / "my_liveness.onnx"
    local.write_bytes(orig.read_bytes())
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    # a file planted where the old code looked is never used
    planted = Path(tempfile.gettempdir()) / "harness-onnx" / sha256_file(local)[:16] / "my_liveness.batch-dynamic.onnx"
    path, sha = O.onnx_file(O.LIVENESS_WEIGHTS, local)
    assert sha == sha256_file(local) and path != planted
    assert path.is_relative_to(tmp_path / "cache" / "converted")
    assert os.stat(path.parent).st_mode & 0o777 == 0o700
    recorded = (path.parent / (path.name + ".sha256")).read_text().strip()
    assert recorded == sha256_file(path)
    assert O.onnx_file(O.LIVENESS_WEIGHTS, local)[0] == path  # cached, verified again
    with open(path, "ab") as f:  # swapped / modified after conversion
        f.write(b"\0")
    with pytest.raises(O.WeightsError, match="modified since"):
        O.onnx_file(O.LIVENESS_WEIGHTS, local)


def test_a_shared_or_foreign_conversion_directory_is_refused(tmp_path):
    d = tmp_path / "shared"
    d.mkdir(mode=0o777)
    os_chmod = __import__("os").chmod
    os_chmod(d, 0o777)
    with pytest.raises(O.WeightsError, match="not a private directory"):
        O.private_dir(d)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    with pytest.raises(O.WeightsError, match="not a private directory"):
        O.private_dir(link)
