"""Reduced JPEG decoding for images much larger than any model needs (``runtime.decode_long_side``): the largest
libjpeg DCT scale keeping the longer side >= the bound, EXIF orientation honoured, noted per sample, part of the
detection cache key, and read the same way by the report's gallery."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from harness.faces.decode import DecodeLimits, decode_image, decode_note, decode_sample, sample_hw
from harness.report.gallery import limits_of_note
from harness.scoring.loader import plain_jpeg
from harness.scoring.table import decode_stage_suffix

LIMITS = DecodeLimits(long_side=1600)


def _jpeg(w: int, h: int, orientation: int | None = None, fmt: str = "JPEG") -> bytes:
    """A ``w`` x ``h`` image (stored pixels) with a bright square in its top-left corner."""
    a = np.full((h, w, 3), 60, np.uint8)
    a[: h // 8, : w // 8] = 250
    im = Image.fromarray(a)
    b = io.BytesIO()
    kw = {"quality": 90} if fmt == "JPEG" else {}
    if orientation:
        ex = Image.Exif()
        ex[0x0112] = orientation
        kw["exif"] = ex
    im.save(b, fmt, **kw)
    return b.getvalue()


@pytest.mark.parametrize("w,h,want", [(4032, 3024, (1512, 2016)), (3024, 4032, (2016, 1512)),
                                      (6400, 4800, (1200, 1600)), (1920, 1080, (1080, 1920)), (800, 600, (600, 800))])
def test_the_largest_dct_scale_that_keeps_the_long_side_at_the_bound(w, h, want):
    notes: list[str] = []
    arr = decode_image(_jpeg(w, h), "x.jpg", LIMITS, notes)
    assert arr.shape[:2] == want
    assert bool(notes) == (want != (h, w))
    if notes:
        assert notes[0].startswith("decoded_bounded:") and "runtime.decode_long_side=1600" in notes[0]
    assert sample_hw(_jpeg(w, h), "x.jpg", -1, LIMITS) == want  # what cached samples report without decoding


def test_exif_rotated_phone_photo_is_upright_after_a_reduced_decode():
    """A landscape-stored 4032x3024 photo with orientation 6 (rotate 90 degrees clockwise to show) is shown
    3024 wide and 4032 tall: decoded reduced it is 1512x2016, upright, with the stored top-left corner at the top
    right."""
    data = _jpeg(4032, 3024, orientation=6)
    full = decode_image(data, "p.jpg", None)
    small = decode_image(data, "p.jpg", LIMITS)
    assert full.shape[:2] == (4032, 3024) and small.shape[:2] == (2016, 1512)
    assert small[10, -10].mean() > 200 and small[10, 10].mean() < 100  # the marker moved to the top right
    np.testing.assert_allclose(small[::8, ::8].astype(float), full[::16, ::16].astype(float), atol=12)


def test_no_reduction_without_a_bound_for_other_formats_and_for_videos_frames():
    assert decode_image(_jpeg(4032, 3024), "x.jpg", None).shape[:2] == (3024, 4032)
    assert decode_image(_jpeg(3400, 3400, fmt="PNG"), "x.png", LIMITS).shape[:2] == (3400, 3400)
    assert decode_note(_jpeg(4032, 3024), "x.jpg", LIMITS).startswith("decoded_bounded")
    assert decode_note(_jpeg(4032, 3024), "x.jpg", None) == ""
    assert decode_sample(_jpeg(640, 480), "x.jpg", -1, LIMITS).shape[:2] == (480, 640)


def test_the_bound_is_part_of_the_detection_cache_key_and_keeps_big_jpegs_off_the_raw_path():
    assert decode_stage_suffix(None) == "" and decode_stage_suffix(LIMITS) == "+ls1600"
    assert decode_stage_suffix(DecodeLimits(1000, 1600)) == "+maxpx1000+ls1600"
    assert plain_jpeg(_jpeg(640, 480), LIMITS)  # small: the exact fast path as before
    assert not plain_jpeg(_jpeg(4032, 3024), LIMITS) and plain_jpeg(_jpeg(4032, 3024), None)


def test_the_gallery_reads_a_sample_the_way_it_was_scored():
    note = decode_note(_jpeg(4032, 3024), "x.jpg", LIMITS)
    assert limits_of_note(note) == LIMITS and limits_of_note("") is None
