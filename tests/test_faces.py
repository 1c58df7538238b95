"""Decode, MTCNN detection (batched, largest face, FTA) and similarity alignment on real images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.faces.align import estimate_similarity, warp_to_template
from harness.faces.decode import DecodeError, decode_image, read_bytes
from harness.faces.detect import Detection, MTCNNDetector


@pytest.fixture(scope="module")
def detector():
    return MTCNNDetector(min_face_size=40, batch_size=8)


def test_decode_applies_exif_rotation(shared):
    img = decode_image(read_bytes(shared / "datasets/silentface_samples/images/image_T1.jpg"))
    assert img.dtype == np.uint8 and img.shape == (640, 480, 3)  # stored 640x480 landscape + EXIF rotate


def test_decode_errors_name_the_file(tmp_path):
    p = tmp_path / "broken.jpg"
    p.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DecodeError, match="broken.jpg"):
        decode_image(p.read_bytes(), str(p))
    with pytest.raises(DecodeError, match="missing file: .*absent.jpg"):
        read_bytes(tmp_path / "absent.jpg")


def test_similarity_recovers_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    a, s, t = np.deg2rad(30), 1.7, np.array([12.0, -4.0])
    r = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    dst = src @ r.T + t
    m = estimate_similarity(src, dst)
    np.testing.assert_allclose(m[:, :2], r, atol=1e-10)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-9)


def test_similarity_never_reflects():
    src = np.array([[0, 0], [10, 1], [2, 10], [13, 12], [5, 3]], float)
    dst = src * np.array([-1, 1])  # a mirror image: best similarity is a rotation, not a reflection
    m = estimate_similarity(src, dst)
    assert np.linalg.det(m[:, :2]) > 0


def test_detect_nuaa_smoke_batched_equals_single(shared, detector):
    df = pd.read_csv(shared / "datasets/nuaa/ci_smoke.csv")
    imgs = [decode_image(read_bytes(shared / "datasets/nuaa" / p)) for p in df["path"][:8]]
    batched = detector.detect(imgs)
    assert all(d is not None for d in batched)
    for im, d in zip(imgs[:3], batched[:3]):
        single = detector.detect([im])[0]
        np.testing.assert_allclose(single.box, d.box, atol=0.05)
        np.testing.assert_allclose(single.landmarks, d.landmarks, atol=0.05)
    d = batched[0]
    # landmarks lie inside the box, eyes above the mouth, left eye left of right eye
    assert d.box[0] < d.landmarks[:, 0].min() and d.landmarks[:, 0].max() < d.box[2]
    assert d.landmarks[0, 0] < d.landmarks[1, 0] and d.landmarks[:2, 1].max() < d.landmarks[3:, 1].min()
    np.testing.assert_array_equal(Detection.from_array(d.to_array()).landmarks, d.landmarks)


def test_largest_face_is_kept_and_no_face_is_fta(shared, detector):
    img = decode_image(read_bytes(shared / "datasets/faceapi_bbt/images/amy/amy1.png"))
    small = img[::2, ::2]
    canvas = np.full((400, 400, 3), 127, np.uint8)
    canvas[10:160, 10:160] = img  # 150 px face
    canvas[300:375, 300:375] = small  # 75 px face
    d = detector.detect([canvas, np.full((400, 400, 3), 127, np.uint8)])
    assert d[0] is not None and d[0].n_faces == 2
    assert d[0].box[0] < 100 and d[0].box[1] < 100  # the big one
    assert d[1] is None


def test_warp_puts_landmarks_on_template(shared, detector):
    img = decode_image(read_bytes(shared / "datasets/nuaa/images/ClientRaw/0001/0001_00_00_01_0.jpg"))
    d = detector.detect([img])[0]
    template = np.array([[38.3, 51.7], [73.5, 51.5], [56.0, 71.7], [41.5, 92.4], [70.7, 92.2]])
    crop = warp_to_template(img, d.landmarks, template, (112, 112))
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    again = detector.detect([np.ascontiguousarray(np.pad(crop, ((56, 56), (56, 56), (0, 0)), constant_values=127))])[0]
    assert again is not None
    np.testing.assert_allclose(again.landmarks - 56, template, atol=4.0)


def test_padding_fixes_landmarks_on_tight_crops(shared):
    """A 150x150 crop that the face fills: padding before MTCNN gives the landmarks found in a roomy canvas."""
    img = decode_image(read_bytes(shared / "datasets/faceapi_bbt/images/amy/amy1.png"))
    canvas = np.zeros((450, 450, 3), np.uint8)
    canvas[150:300, 150:300] = img
    ref = MTCNNDetector(min_face_size=40).detect([canvas])[0]
    padded = MTCNNDetector(min_face_size=40, pad_fraction=1.0).detect([img])[0]
    assert ref is not None and padded is not None
    np.testing.assert_allclose(padded.landmarks, ref.landmarks - 150, atol=0.5)
    np.testing.assert_allclose(padded.box, ref.box - 150, atol=0.5)
