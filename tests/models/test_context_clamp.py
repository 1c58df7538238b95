"""The PAD context check (``PADModel.context_clamped`` and the ``pad_context_clamped`` column): per model, a box well
inside a large frame is not clamped and a tight crop is; the flag agrees with each model's own crop arithmetic; scoring
the faceapi_bbt tight crops flags (nearly) all of them, a handful of NUAA frames none, and no score changes.

Measured (CPU, MTCNN + dlib_resnet + minifasnet_v2, mtcnn_to_retinaface box mapping): faceapi_bbt 38/38 scored
crops clamped (2 of the 40 are FTA); the 15 NUAA frames below 13/15; the whole NUAA set, from a run's boxes,
2027/2563 = 79.1% (NUAA faces are large in the frame, so the 2.7x crop is shifted or shrunk on most frames)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.models.base import PADModel, box_off_image, scaled_box_off_image
from harness.models.minifasnet import BOX_MAPPINGS, CROP_SCALE, enlarge_within, get_new_box, xyxy_to_xywh
from harness.models.onnx_models import faceplugin_liveness_box, faceplugin_liveness_xywh
from harness.models.tflite_models import expo_square, expo_square_box
from tests.conftest import score_reference

BIG = (480, 640)  # (H, W), the NUAA frame size
INSIDE = (280.0, 200.0, 360.0, 290.0)  # a small face in the middle of a 640x480 frame
TIGHT = (5.0, 8.0, 145.0, 148.0)  # a face filling a 150x150 crop (faceapi_bbt)
TIGHT_HW = (150, 150)


class _Stub(PADModel):
    """A PAD model without a context expansion (the base class default)."""

    name = "stub"

    def crop(self, frame, box):
        """The box itself (no expansion)."""
        return frame

    def forward(self, crops):
        """Zeros."""
        return crops.float().mean(dim=(1, 2, 3)) * 0


class _MiniFAS:
    """The MiniFASNet context check without weights: the same method body on a bare object."""

    def __init__(self, arch: str, box_mapping: str = "mtcnn_to_retinaface"):
        self.scale, self.box_mapping = CROP_SCALE[arch], box_mapping

    def context_clamped(self, box_xyxy, image_hw):
        """:meth:`harness.models.minifasnet.MiniFASNetPAD.context_clamped` (bound to this object)."""
        from harness.models.minifasnet import MiniFASNetPAD

        return MiniFASNetPAD.context_clamped(self, box_xyxy, image_hw)


def _boxes(n: int = 400, seed: int = 0, hw=BIG) -> np.ndarray:
    """Random face boxes of 5..60% of the frame's shorter side, some crossing its borders."""
    rng = np.random.default_rng(seed)
    h, w = hw
    s = rng.uniform(0.05, 0.6, n) * min(h, w)
    cx, cy = rng.uniform(0, w, n), rng.uniform(0, h, n)
    return np.stack([cx - s / 2, cy - s * 0.6, cx + s / 2, cy + s * 0.6], axis=1)


def test_default_is_not_clamped():
    assert _Stub().context_clamped(TIGHT, TIGHT_HW) is False


def test_scaled_box_helper():
    assert not scaled_box_off_image(BIG, (300, 200, 40, 40), 2.7)
    assert scaled_box_off_image(BIG, (0, 200, 40, 40), 2.7)  # runs off the left border: shifted
    assert scaled_box_off_image(BIG, (100, 50, 300, 300), 2.7)  # taller than the frame: shrunk
    assert not box_off_image(BIG, 0, 0, 639, 479) and box_off_image(BIG, 0, 0, 640, 479)


def _shrunk_or_moved(hw, xywh, scale: float) -> bool:
    """Whether Silent-Face's enlargement (:func:`enlarge_within`) reduced the scale or shifted the box."""
    (h, w), (x, y, bw, bh) = hw, xywh
    eff = min((h - 1) / bh, (w - 1) / bw, scale)
    got = enlarge_within(w, h, x, y, bw, bh, scale)
    cx, cy = x + bw / 2, y + bh / 2
    centred = [cx - bw * eff / 2, cy - bh * eff / 2, cx + bw * eff / 2, cy + bh * eff / 2]
    return eff < scale or not np.allclose(got, centred)


@pytest.mark.parametrize("arch", ["MiniFASNetV2", "MiniFASNetV1SE"])
@pytest.mark.parametrize("mapping", ["mtcnn_to_retinaface", "none"])
def test_minifasnet_flag_matches_crop_arithmetic(arch, mapping):
    """Flag == get_new_box shrank the scale or shifted the box; a flagged crop box touches the frame border."""
    m = _MiniFAS(arch, mapping)
    assert m.context_clamped(INSIDE, BIG) is False
    assert m.context_clamped(TIGHT, TIGHT_HW) is True
    h, w = BIG
    n_flag = 0
    for box in _boxes():
        xywh = xyxy_to_xywh(BOX_MAPPINGS[mapping](box))
        if xywh[2] <= 0 or xywh[3] <= 0:
            continue
        flag = m.context_clamped(box, BIG)
        assert flag == _shrunk_or_moved(BIG, xywh, m.scale), box
        x1, y1, x2, y2 = get_new_box(w, h, xywh, m.scale)
        if flag:
            assert x1 == 0 or y1 == 0 or x2 == w - 1 or y2 == h - 1, box
        n_flag += flag
    assert 0 < n_flag < 400


def test_ensemble_is_either_member():
    from harness.models.minifasnet import MiniFASNetEnsemble

    v2, v1se = _MiniFAS("MiniFASNetV2"), _MiniFAS("MiniFASNetV1SE")
    ens = type("E", (), {"v2": v2, "v1se": v1se})()
    seen = set()
    for box in _boxes(seed=1):
        got = MiniFASNetEnsemble.context_clamped(ens, box, BIG)
        assert got == (v2.context_clamped(box, BIG) or v1se.context_clamped(box, BIG))
        seen.add((v2.context_clamped(box, BIG), v1se.context_clamped(box, BIG)))
    assert (False, True) in seen  # the 4.0 crop clamps first


def test_faceplugin_flag_matches_crop_arithmetic():
    from harness.models.onnx_models import FacepluginLiveness

    fn = FacepluginLiveness.context_clamped
    assert fn(None, INSIDE, BIG) is False and fn(None, TIGHT, TIGHT_HW) is True
    h, w = BIG
    for box in _boxes(seed=2):
        flag = fn(None, box, BIG)
        assert flag == _shrunk_or_moved(BIG, faceplugin_liveness_xywh(box), 2.7), box
        if flag:  # its rectangle reaches a border (within the int() truncation of the width)
            fx, fy, fw, fh = faceplugin_liveness_box(box, BIG)
            assert fx == 0 or fy == 0 or fx + fw >= w - 2 or fy + fh >= h - 2, box


def test_expo_flag_matches_crop_arithmetic():
    from harness.models.tflite_models import FaceAntiSpoofingTFLite

    fn = FaceAntiSpoofingTFLite.context_clamped
    assert fn(None, INSIDE, BIG) is False
    assert fn(None, (-3.0, 10.0, 140.0, 148.0), TIGHT_HW) is True  # square runs off the left border
    h, w = BIG
    for box in _boxes(seed=3):
        if min(box[2] - box[0], box[3] - box[1]) < 2:
            continue
        flag = fn(None, box, BIG)
        assert flag == (expo_square(box) != expo_square_box(box, BIG)), box


# ---- scoring ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def models(cpu_models):
    """(detector, embedder, pad) as the default config builds them on CPU: MTCNN, dlib ResNet, MiniFASNet v2."""
    return cpu_models


def _score(manifest: pd.DataFrame, models, cache_path=None):
    """The reference engine's ScoreTable of ``manifest``."""
    return score_reference(manifest, models, cache_path)


def _nuaa_manifest(shared) -> pd.DataFrame:
    """15 NUAA frames from labels.csv (every 150th row of each label, at most 8: 7 bona fide, 8 attacks)."""
    from harness.data.registry import load_dataset

    m = load_dataset("csv", csv=str(shared / "datasets/nuaa/labels.csv"))
    pick = pd.concat([g.iloc[::150].head(8) for _, g in m.groupby("label")])
    return pick.reset_index(drop=True)


def test_faceapi_bbt_tight_crops_are_clamped(shared, models, tmp_path):
    from harness.data.registry import load_dataset
    from harness.scoring.batched import score_manifest_batched
    from harness.scoring.cache import ScoreCache

    m = load_dataset("csv", csv=str(shared / "datasets/faceapi_bbt/labels.csv"))
    t = _score(m, models, tmp_path / "c.sqlite")
    ok = t.samples["status"] == "scored"
    flags = t.samples.loc[ok, "pad_context_clamped"]
    assert str(t.samples["pad_context_clamped"].dtype) == "boolean" and flags.notna().all()
    assert int(ok.sum()) >= 35 and int(flags.sum()) >= 0.9 * int(ok.sum())
    assert t.samples.loc[~ok, "pad_context_clamped"].isna().all()
    # recomputed from the box + size, never cached: a fully cached rerun (both engines) gives the same flags
    again = _score(m, models, tmp_path / "c.sqlite")
    assert again.stats["pad_cached"] == int(ok.sum())
    pd.testing.assert_series_equal(again.samples["pad_context_clamped"], t.samples["pad_context_clamped"])
    detector, embedder, pad = models
    cache = ScoreCache(tmp_path / "c.sqlite")
    try:
        b = score_manifest_batched(m, detector, embedder, pad, cache, progress=False)
    finally:
        cache.close()
    pd.testing.assert_series_equal(b.samples["pad_context_clamped"], t.samples["pad_context_clamped"])


def test_nuaa_frames_are_not_clamped_and_scores_unchanged(shared, models):
    from harness.scoring.table import finish_table

    m = _nuaa_manifest(shared)
    t = _score(m, models)
    ok = t.samples["status"] == "scored"
    assert int(ok.sum()) >= 14
    # NUAA faces fill much of the 640x480 frame (MTCNN box height median 195 px): the 2.7x crop of the mapped box
    # (~175 px tall) is ~473 px, so it is shifted or shrunk on most frames - measured 13 of 15 here
    n = int(t.samples.loc[ok, "pad_context_clamped"].sum())
    assert 0.6 * int(ok.sum()) <= n < int(ok.sum())
    # the same table without the flags: pad_context_clamped is the only new column and pad_score is untouched
    s = t.samples
    bare = finish_table(m, s["status"].to_numpy(object), s["reason"].to_numpy(object), t.detections,
                        s["pad_score"].to_numpy(), t.embeddings, t.stats, code=s["code"].to_numpy(object))
    before = [*m.columns, "status", "code", "reason", "det_prob", "n_faces", "faces", "box_x1", "box_y1", "box_x2",
              "box_y2", "pad_score", "decode_note"]  # the ScoreTable columns before this change
    assert [c for c in s.columns if c not in before] == ["pad_context_clamped"] and set(before) <= set(s.columns)
    assert bare.samples["pad_context_clamped"].isna().all()
    np.testing.assert_array_equal(bare.samples["pad_score"].to_numpy(), s["pad_score"].to_numpy())
    # the scores equal the PAD model run on its own crops (the flag is computed beside them, not in their path)
    from harness.faces.decode import decode_sample, read_bytes
    from harness.scoring.reference import run_model

    pad = models[2]
    rows = np.flatnonzero(ok.to_numpy())
    frames = [decode_sample(read_bytes(m.at[i, "path"]), m.at[i, "path"]) for i in rows]
    direct = run_model(pad, [pad.crop(f, t.detections[i, :4]) for f, i in zip(frames, rows)], 32, False)
    np.testing.assert_array_equal(direct.reshape(-1).astype(np.float64), s["pad_score"].to_numpy()[rows])
    assert [bool(pad.context_clamped(t.detections[i, :4], f.shape[:2])) for f, i in zip(frames, rows)] == \
        s["pad_context_clamped"].to_numpy(bool)[rows].tolist()
