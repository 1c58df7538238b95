"""``detector.max_side``: bounded, letterboxed MTCNN input in both engines (:mod:`harness.faces.letterbox`).

Mapping unit tests (synthetic), then real images from the shared folder upscaled here to 4032x3024 / 3024x4032
(the portrait ones decoded from EXIF-rotated JPEG copies, as phones store them): parity with full resolution at
the default settings, a batch of mixed sizes and orientations vs each image alone (batched engine's detection
stage and the reference engine's ``detector.detect``), and ``max_side: null`` = the old detections exactly.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from harness.faces.decode import decode_image
from harness.faces.detect import MTCNNDetector
from harness.faces.letterbox import Group, detector_min_face, input_size, letterbox, map_back, plan, resize_u8
from harness.faces.mtcnn_batched import detections_from, mtcnn_detect
from harness.scoring.backoff import BackOff
from harness.scoring.detection import detect_stage

CONF = Path(__file__).resolve().parents[2] / "conf" / "detector" / "mtcnn.yaml"


# ------------------------------------------------------------------------------------------------ mapping (synthetic)


def test_plan_keeps_unresized_sizes_exact_and_bands_the_resized():
    sizes = [(3024, 4032), (480, 640), (4032, 3024), (480, 640), (1900, 3000), (700, 1000)]
    groups = plan(sizes, 1024, 40)
    exact = {g.sizes[0]: g.members for g in groups if g.exact}
    assert exact == {(480, 640): (1, 3), (700, 1000): (5,)}
    big, scan = sorted((g for g in groups if not g.exact), key=lambda g: len(g.members), reverse=True)
    # 40 px x 1024/4032 = 10.2 < 12: one pyramid step up, 14.3 (both orientations); 40 x 1024/3000 = 13.7
    assert big.members == (0, 2) and big.min_face == pytest.approx(40 * 1024 / 4032 / 0.709)
    assert scan.members == (4,) and scan.min_face == pytest.approx(40 * 1024 / 3000)
    assert big.inputs == ((768, 1024), (1024, 768)) and scan.inputs == ((649, 1024),)
    assert big.canvas == (1024, 1024)
    assert detector_min_face(40, 1024 / 4032) == pytest.approx(40 * 1024 / 4032 / 0.709)
    assert all(g.exact and g.min_face is None for g in plan(sizes, None, 40))  # null: by size, as before
    assert detector_min_face(40, 1024 / 1400) == pytest.approx(40 * 1024 / 1400)  # 29.3 >= 12: as is


def test_letterbox_and_map_back_are_inverses():
    rng = np.random.default_rng(0)
    imgs = [torch.from_numpy(rng.integers(0, 256, (3, h, w), dtype=np.uint8)) for h, w in
            [(3024, 4032), (4032, 3024), (1500, 2000)]]
    sizes = tuple(tuple(t.shape[1:]) for t in imgs)
    ins = tuple(input_size(h, w, 1024) for h, w in sizes)
    group = Group((0, 1, 2), sizes, ins, 12.0, False)
    canvas = letterbox(imgs, group)
    assert canvas.shape == (3, 3, 1024, 1024) and canvas.dtype == torch.uint8
    for k, (h, w) in enumerate(ins):
        assert torch.equal(canvas[k, :, :h, :w], resize_u8(imgs[k], (h, w)))
        assert int(canvas[k, :, h:, :].sum()) == 0 and int(canvas[k, :, :, w:].sum()) == 0
    for (h, w), (ih, iw) in zip(sizes, ins):
        x1, y1 = rng.uniform(0, w * 0.7, 20), rng.uniform(0, h * 0.7, 20)
        orig = np.stack([x1, y1, x1 + rng.uniform(10, w * 0.3, 20), y1 + rng.uniform(10, h * 0.3, 20),
                         rng.uniform(0, 1, 20)], axis=1)
        pts = np.stack([rng.uniform(0, w, (20, 5)), rng.uniform(0, h, (20, 5))], axis=2)
        fwd, fpts = orig.copy(), pts.copy()
        fwd[:, [0, 2]] *= iw / w
        fwd[:, [1, 3]] *= ih / h
        fpts[:, :, 0] *= iw / w
        fpts[:, :, 1] *= ih / h
        back, bpts = map_back(fwd, fpts, (h, w), (ih, iw))
        np.testing.assert_allclose(back, orig, rtol=0, atol=1e-9)
        np.testing.assert_allclose(bpts, pts, rtol=0, atol=1e-9)


def test_detections_centred_in_the_padding_are_dropped():
    boxes = np.array([[10, 10, 50, 50, 0.9], [760, 10, 800, 50, 0.8], [10, 760, 50, 800, 0.7],
                      [740, 100, 780, 140, 0.95]])
    pts = np.zeros((4, 5, 2))
    back, bpts = map_back(boxes, pts, (1536, 1536), (768, 768))  # canvas 1024x1024, the image 768x768
    assert back.shape == (2, 5) and bpts.shape == (2, 5, 2)
    np.testing.assert_allclose(back[:, 4], [0.9, 0.95])
    np.testing.assert_allclose(back[0, :4], [20, 20, 100, 100])


# --------------------------------------------------------------------------------------------- real images (shared)


def _load(path: Path) -> np.ndarray:
    return np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))


def _crop(img: np.ndarray, box, aspect: float, frac: float = 0.3) -> np.ndarray:
    """A crop (width/height ``aspect``) centred on the face, its short side ~ face width / ``frac``."""
    h, w = img.shape[:2]
    short = (box[2] - box[0]) / frac
    cw, ch = (short * aspect, short) if aspect >= 1 else (short, short / aspect)
    k = min(1.0, w / cw, h / ch)
    cw, ch = int(cw * k), int(ch * k)
    x0 = int(min(max((box[0] + box[2]) / 2 - cw / 2, 0), w - cw))
    y0 = int(min(max((box[1] + box[3]) / 2 - ch / 2, 0), h - ch))
    return img[y0:y0 + ch, x0:x0 + cw]


def _up(img: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((w, h), Image.BICUBIC))


def _exif_portrait(img: np.ndarray) -> np.ndarray:
    """A portrait image stored as phones do (landscape pixels, EXIF orientation 6), decoded by the harness."""
    stored = Image.fromarray(img).transpose(Image.Transpose.ROTATE_90)  # undone by orientation 6 (rotate 270)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    out = decode_image(buf.getvalue(), "portrait.jpg")
    assert out.shape == img.shape
    return out


@pytest.fixture(scope="module")
def faces(shared):
    """Upscaled face images: name -> RGB uint8, 4032x3024 / 3024x4032 and other sizes (see the tests)."""
    rows = list(csv.DictReader(open(shared / "datasets/nuaa/labels.csv")))
    nuaa = [_load(shared / "datasets/nuaa" / rows[i]["path"]) for i in (0, 800)]
    silent = _load(shared / "datasets/silentface_samples/images/image_T1.jpg")  # EXIF-rotated in the file
    det = MTCNNDetector(max_side=None)
    (b0, b1, bs) = [d.box for d in det.detect([*nuaa, silent])]
    return {"land": _up(_crop(nuaa[0], b0, 4 / 3), 4032, 3024),
            "port": _exif_portrait(_up(_crop(silent, bs, 3 / 4), 3024, 4032)),
            "land_mid": _up(_crop(nuaa[1], b1, 4 / 3), 2000, 1500),
            "port_mid": _up(_crop(nuaa[1], b1, 3 / 4), 1500, 2000),
            "nuaa": nuaa[0]}


def _stage(images: list[np.ndarray], det) -> list:
    """The batched engine's detection stage on ``images`` (one call, CPU)."""
    where, parts = {}, {}
    for i, im in enumerate(images):
        hw = im.shape[:2]
        where[i] = (hw, len(parts.setdefault(hw, [])))
        parts[hw].append(torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1))
    imgs = {hw: torch.stack(p) for hw, p in parts.items()}
    found = detect_stage(list(range(len(images))), where, imgs, det, BackOff("detect", 16))
    return [found[i] for i in range(len(images))]


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h)


def _assert_close(got, ref, iou: float = 0.98, landmarks: float = 0.02, count: bool = True) -> None:
    """Same face count, IoU >= ``iou``, median landmark displacement <= ``landmarks`` x the inter-ocular
    distance (strictly below unless 0)."""
    for g, r in zip(got, ref, strict=True):
        assert g is not None and r is not None
        assert g.n_faces == r.n_faces or not count
        assert _iou(g.box, r.box) >= iou, (g.box, r.box)
        iod = np.linalg.norm(r.landmarks[0] - r.landmarks[1])
        disp = np.median(np.linalg.norm(g.landmarks - r.landmarks, axis=1))
        assert disp < landmarks * iod or disp == landmarks == 0, (disp, iod)


#: a max_side that resizes every image of these tests but the NUAA frame (the default, None, resizes none)
SIDE = 1024


@pytest.fixture(scope="module")
def full_res(faces) -> list:
    """Full-resolution detections of the 4032x3024 and 3024x4032 images (the parity reference)."""
    return _stage([faces["land"], faces["port"]], MTCNNDetector(max_side=None))


def test_shipped_settings_match_full_resolution_and_a_bounded_side_stays_near(faces, full_res):
    images = [faces["land"], faces["port"]]
    assert [im.shape[:2] for im in images] == [(3024, 4032), (4032, 3024)]
    full = full_res
    default = MTCNNDetector()
    for got in (_stage(images, default), default.detect(images)):
        _assert_close(got, full, iou=1.0, landmarks=0.0)
    # downscaled: MTCNN's boxes move with the resolution (benchmarks/choose_max_side.py: as much as by a 1 px
    # shift at full resolution on some images), so the tolerance here is wider than the letterbox's own below
    bounded = MTCNNDetector(max_side=SIDE)
    for got in (_stage(images, bounded), bounded.detect(images)):
        _assert_close(got, full, iou=0.85, landmarks=0.05, count=False)


def test_mixed_sizes_in_one_batch_match_each_image_alone(faces):
    names = ["land", "port", "land_mid", "port_mid", "nuaa"]
    images = [faces[n] for n in names]
    assert len({im.shape for im in images}) == 5
    det = MTCNNDetector(max_side=SIDE)
    alone = [_stage([im], det)[0] for im in images]
    _assert_close(_stage(images, det), alone)
    _assert_close(det.detect(images), alone)
    _assert_close([det.detect([im])[0] for im in images], alone)


def test_null_max_side_reproduces_the_old_detections_exactly(shared):
    rows = list(csv.DictReader(open(shared / "datasets/nuaa/labels.csv")))
    frames = [_load(shared / "datasets/nuaa" / rows[i]["path"]) for i in (0, 300, 900, 1500)]
    assert len({f.shape for f in frames}) == 1
    for max_side in (None, 640, 1024):
        det = MTCNNDetector(max_side=max_side)
        with torch.inference_mode():  # the old code: one stack, facenet-pytorch's detect / the vectorised cascade
            x = torch.from_numpy(np.stack(frames))
            bx, pr, pt = det.mtcnn.detect(x, landmarks=True)
            old_ref = [det.pick(bx[j], pr[j], pt[j]) for j in range(len(frames))]
            old_fast = detections_from(det, *mtcnn_detect(det.mtcnn, x.permute(0, 3, 1, 2).contiguous()))
        for got, old in ((det.detect(frames), old_ref), (_stage(frames, det), old_fast)):
            for g, o in zip(got, old, strict=True):
                assert np.array_equal(g.to_array(), o.to_array())


def test_max_side_is_a_detector_parameter_in_its_id():
    import yaml

    conf = yaml.safe_load(CONF.read_text())
    assert "max_side" in conf and conf["max_side"] == MTCNNDetector().max_side  # the yaml = the default
    ids = {MTCNNDetector(max_side=s).detector_id for s in (None, 640, 1024)}
    assert len(ids) == 3
    assert "max_side" not in MTCNNDetector(max_side=None).config  # unset: the ids of the old cached detections
    assert MTCNNDetector(max_side=1024).config["max_side"] == 1024


def test_min_face_fraction_sets_the_smallest_face_by_image_size():
    """``detector.min_face_fraction``: a 12 MP photo is searched from 5% of its short side (151 px), a 640x480
    frame from ``min_face_size`` (40 px > 24 px): NUAA detections and ids are unchanged."""
    from harness.faces.detect import MTCNNDetector
    from harness.faces.letterbox import detector_min_face, plan, smallest_face

    assert smallest_face(3024, 4032, 40, 0.05) == pytest.approx(151.2)
    assert smallest_face(480, 640, 40, 0.05) == 40.0 and smallest_face(3024, 4032, 40, None) == 40.0
    groups = plan([(480, 640), (3024, 4032), (4032, 3024)], 1024, 40, 0.709, 0.05)
    exact = [g for g in groups if g.exact]
    assert len(exact) == 1 and exact[0].min_face is None  # 640x480: min_face_size wins, detected as before
    (big,) = [g for g in groups if not g.exact]
    assert sorted(big.members) == [1, 2] and big.min_face == pytest.approx(detector_min_face(151.2, 1024 / 4032))
    tall = plan([(3024, 4032)], None, 40, 0.709, 0.05)[0]
    assert tall.exact and tall.min_face == pytest.approx(151.2)  # full resolution, still from 5% of the short side
    assert "min_face_fraction" not in MTCNNDetector().config
    d = MTCNNDetector(min_face_fraction=0.05)
    assert d.config["min_face_fraction"] == 0.05 and d.detector_id != MTCNNDetector().detector_id
    with pytest.raises(ValueError, match="min_face_fraction"):
        MTCNNDetector(min_face_fraction=1.5)


@pytest.mark.slow
def test_refine_original_crops_from_the_original_pixels_batch_independently(faces, full_res):
    """``refine_original``: P-Net on the bounded input, R/O-Net on the originals. A mixed batch (four sizes, both
    orientations and an unresized frame) detects each image as alone, and the boxes are those of full
    resolution more closely than the bounded cascade's (which crops R/O-Net from the downscaled copy)."""
    images = [faces[n] for n in ("land", "port", "land_mid", "nuaa")]
    det = MTCNNDetector(max_side=SIDE, refine_original=True)
    assert det.config["refine_original"] is True and det.detector_id != MTCNNDetector(max_side=SIDE).detector_id
    assert "refine_original" not in MTCNNDetector(refine_original=True).config  # no max_side: nothing to refine
    alone = [_stage([im], det)[0] for im in images]
    _assert_close(_stage(images, det), alone)
    _assert_close(det.detect(images), alone)
    bounded = _stage(images[:2], MTCNNDetector(max_side=SIDE))
    refined = alone[:2]
    _assert_close(refined, full_res, iou=0.97, landmarks=0.02)
    for r, b, f in zip(refined, bounded, full_res):
        assert _iou(r.box, f.box) >= _iou(b.box, f.box) - 1e-9
