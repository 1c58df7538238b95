"""facenet-pytorch InceptionResnetV1: local-path loading, strict checks, template, golden outputs."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from harness.models import facenet as FN
from harness.models.base import Embedder
from harness.models.registry import EMBEDDERS
from harness.models.weights import WeightsError, sha256_file
from harness.paths import DataMissingError

from .conftest import aligned, pair_scores

#: mean of MTCNN landmarks in facenet-pytorch margin-0 crops over the 40 (padded) faceapi_bbt images
BBT_CROP_LANDMARKS = np.array([[40.98, 55.07], [114.94, 54.35], [75.31, 92.75], [46.96, 118.09], [112.09, 117.42]])

#: first 4 embedding values of bbt crops 0 and 5 through a torch.manual_seed(0)-initialised model (torch 2.14 CPU):
#: a regression check of alignment + preprocessing + forward, not of the (unavailable) released weights
GOLDEN = {0: [0.012106, 0.009028, -0.054506, 0.018564], 5: [0.012027, 0.009051, -0.054392, 0.018809]}


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A freshly initialised (seeded) state_dict saved like the released files, with a classifier head."""
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(0)
    sd = InceptionResnetV1(pretrained=None).eval().state_dict()
    sd["logits.weight"] = torch.zeros(8, 512)
    sd["logits.bias"] = torch.zeros(8)
    p = tmp_path_factory.mktemp("facenet") / "fresh.pt"
    torch.save(sd, p)
    return p


@pytest.fixture(scope="module")
def model(weights_file):
    return EMBEDDERS["facenet_vggface2"](weights_path=weights_file)


def test_local_path_route_and_declaration(model, weights_file):
    assert isinstance(model, Embedder) and not model.training
    assert model.name == "facenet_vggface2" and model.dim == 512 and model.metric == "cosine"
    assert model.crop_size == (160, 160)
    assert model.weights_sha256 == sha256_file(weights_file)  # the file's own hash, not the declared one
    assert "127.5" in model.preprocessing and "RGB" in model.preprocessing
    np.testing.assert_allclose(model.template, FN.TEMPLATE)
    casia = FN.build_casia_webface(weights_path=weights_file)
    assert casia.name == "facenet_casia_webface" and casia.model_id != model.model_id


def test_mismatched_or_unsafe_weights_are_refused(tmp_path, weights_file):
    sd = torch.load(weights_file, weights_only=True)
    del sd["last_linear.weight"]
    p = tmp_path / "missing.pt"
    torch.save(sd, p)
    with pytest.raises(WeightsError, match="missing"):
        FN.build_vggface2(weights_path=p)
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"x": object()}, protocol=2))  # arbitrary pickled object: weights_only must refuse it
    with pytest.raises(pickle.UnpicklingError):
        FN.build_vggface2(weights_path=evil)
    with pytest.raises(DataMissingError):
        FN.build_vggface2(weights_path=tmp_path / "nope.pt")
    with pytest.raises(TypeError):
        FN.build_vggface2(weights_path=weights_file, pretrained="vggface2")


def test_template_is_symmetric_and_margin_shrinks_it_about_the_centre():
    t = FN.TEMPLATE
    np.testing.assert_allclose(FN.symmetrise(t), t)
    np.testing.assert_allclose(FN.template_for_margin(0), t)
    t32 = FN.template_for_margin(32)
    np.testing.assert_allclose(t32 - 80, (t - 80) * 128 / 160)


def test_landmarks_in_crop_follows_extract_face():
    box = np.array([100.4, 50.9, 200.0, 180.0])
    lm = np.array([[120.0, 90.0], [180.0, 90.0], [150.0, 120.0], [125.0, 150.0], [175.0, 150.0]])
    got = FN.landmarks_in_crop(box, lm)  # int box (100, 50, 200, 180): 100 x 130 px -> 160 x 160
    np.testing.assert_allclose(got[0], [(120 - 100) * 1.6, (90 - 50) * 160 / 130])
    # margin 32 in output pixels = 32 * w / 128 in input pixels, half on each side; clamped to the frame
    got = FN.landmarks_in_crop(box, lm, margin=32, frame_hw=(170, 1000))
    mx, my = 32 * 99.6 / 128, 32 * 129.1 / 128
    x1, y1, x2 = int(100.4 - mx / 2), int(50.9 - my / 2), int(200 + mx / 2)
    np.testing.assert_allclose(got[0], [(120 - x1) * 160 / (x2 - x1), (90 - y1) * 160 / (170 - y1)])


def test_template_derivation_reproduces_on_bbt(bbt):
    _, _, det = bbt
    pts = np.array([FN.landmarks_in_crop(d[:4], d[6:16]) for d in det])
    np.testing.assert_allclose(pts.mean(0), BBT_CROP_LANDMARKS, atol=0.5)
    # the pooled (NUAA + bbt) symmetric template is within the between-dataset spread of the bbt mean
    assert np.abs(FN.symmetrise(pts.mean(0)) - FN.TEMPLATE).max() < 6.0


def test_golden_batched_and_normalised(model, bbt):
    x = aligned(model, bbt, [0, 5, 10])
    with torch.no_grad():
        e = model(x)
        single = torch.cat([model(x[i:i + 1]) for i in range(3)])
    assert e.shape == (3, 512) and e.dtype == torch.float32
    torch.testing.assert_close(e.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(e, single, atol=1e-5, rtol=0)
    for k, i in enumerate((0, 5)):
        np.testing.assert_allclose(e[k, :4].numpy(), GOLDEN[i], atol=2e-4)


def test_released_weights_rank_same_above_different(bbt):
    try:
        m = FN.build_vggface2(offline=True)
    except DataMissingError as e:
        pytest.skip(f"VGGFace2 weights not cached (GitHub release assets are unreachable here): {e}")
    df, _, _ = bbt
    with torch.no_grad():
        emb = m(aligned(m, bbt)).numpy()
    same, diff = pair_scores(m, emb, df.subject)
    assert np.median(same) > np.percentile(diff, 95)
