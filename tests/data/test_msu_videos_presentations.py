"""The two real MSU-MFSD videos as per-video presentations, reached two ways: (a) through the ``msu_mfsd`` adapter,
(b) through a CSV manifest that lists the ``.mp4`` files directly. Both give 2 presentations of 5 frames each, and
the per-video PAD scores (:mod:`harness.presentations`) are finite and the same either way. Real models on CPU
(MTCNN, dlib ResNet, MiniFASNet v2); a few seconds. Skips when the shared material is absent."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.data.registry import load_dataset
from tests.conftest import score_reference

VIDEOS = {"real_client005_android_SD_scene01.mp4": "msu_005", "real_client022_android_SD_scene01.mp4": "msu_022"}
FRAMES = {"mode": "uniform", "n": 5}


@pytest.fixture(scope="module")
def msu_dir(shared) -> Path:
    """The shared MSU-MFSD sample folder (skip when its videos are absent)."""
    d = shared / "datasets/msu_mfsd_sample"
    missing = [v for v in VIDEOS if not (d / v).is_file()]
    if missing:
        pytest.skip(f"shared MSU-MFSD sample videos absent: {missing}")
    return d


@pytest.fixture(scope="module")
def models(cpu_models):
    """(detector, embedder, pad) as conf/detector/mtcnn, embedder dlib_resnet, pad minifasnet_v2 build them, CPU."""
    return cpu_models


def _score(manifest: pd.DataFrame, models):
    """The engine's ScoreTable of ``manifest`` (no score cache)."""
    return score_reference(manifest, models)


def _adapter_manifest(msu_dir: Path) -> pd.DataFrame:
    """(a) conf/dataset/msu_mfsd_sample.yaml: the official protocol without file lists, 5 uniform frames."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the sample has no attacks: a reported, not fatal, problem
        return load_dataset("msu_mfsd", root=str(msu_dir), protocol="official", file_lists=False, frames=FRAMES,
                            on_problem="warn")


def _csv_manifest(msu_dir: Path, tmp: Path, presentation: dict[str, str] | None = None) -> pd.DataFrame:
    """(b) a CSV in ``tmp`` naming the two videos by absolute path, root = the MSU folder; with a ``presentation``
    column (file name -> cell, empty when not given) when ``presentation`` is a mapping."""
    cols = ["path", "subject", "label", "split"] + (["presentation"] if presentation is not None else [])
    lines = [",".join(cols)]
    for name, subject in VIDEOS.items():
        cells = [str(msu_dir / name), subject, "bona_fide", "train"]
        lines.append(",".join(cells + ([presentation.get(name, "")] if presentation is not None else [])))
    csv = tmp / "videos.csv"
    csv.write_text("\n".join(lines) + "\n")
    return load_dataset("csv", csv=str(csv), root=str(msu_dir), frames=FRAMES)


def _frames_by_file(manifest: pd.DataFrame) -> dict[str, list[int]]:
    """File name -> the sampled frame indices."""
    return {Path(p).name: sorted(g["frame"].tolist()) for p, g in manifest.groupby("path")}


def test_adapter_and_csv_sample_the_same_frames(msu_dir, tmp_path):
    a, b = _adapter_manifest(msu_dir), _csv_manifest(msu_dir, tmp_path)
    for m in (a, b):
        assert len(m) == 10 and set(m["reject_code"]) == {""}
        assert {Path(v).name for v in m["video"]} == set(VIDEOS)
        assert (m["fps"] > 0).all() and (m["video_frames"] > 0).all()
    assert _frames_by_file(a) == _frames_by_file(b)
    assert all(len(f) == 5 for f in _frames_by_file(a).values())


def test_csv_presentation_column_is_kept(msu_dir, tmp_path):
    assert "presentation" not in _csv_manifest(msu_dir, tmp_path).columns
    m = _csv_manifest(msu_dir, tmp_path, {"real_client005_android_SD_scene01.mp4": "p005"})  # the 2nd row: empty
    by_file = {Path(p).name: set(g["presentation"]) for p, g in m.groupby("path")}
    assert by_file == {"real_client005_android_SD_scene01.mp4": {"p005"}, "real_client022_android_SD_scene01.mp4": {""}}


def _per_video(table, dataset: str) -> tuple[dict[str, float], dict[str, int]]:
    """File name -> the pooled PAD score, and -> frames, of each presentation (:mod:`harness.presentations`)."""
    from harness.presentations import pool, presentation_ids

    samples = table.samples
    ids = presentation_ids(samples, dataset=dataset)
    assert ids.nunique() == 2
    file_of = samples.groupby(ids.to_numpy())["path"].agg(lambda s: Path(s.iloc[0]).name)
    pres, emb = pool(samples, table.embeddings, ids)
    assert len(pres) == 2 and len(emb) == 2
    pres = pres.assign(file=[file_of[i] for i in pres["sample_id"]])
    return dict(zip(pres["file"], pres["pad_score"].astype(float))), dict(zip(pres["file"], pres["n_frames"].astype(int)))


def test_per_video_pad_scores_match(msu_dir, tmp_path, models):
    ta = _score(_adapter_manifest(msu_dir), models)
    tb = _score(_csv_manifest(msu_dir, tmp_path), models)
    for t in (ta, tb):
        assert set(t.samples["status"]) == {"scored"}, t.samples[["sample_id", "status", "reason"]]
    fa = ta.samples.assign(file=[Path(p).name for p in ta.samples["path"]]).set_index(["file", "frame"])["pad_score"]
    fb = tb.samples.assign(file=[Path(p).name for p in tb.samples["path"]]).set_index(["file", "frame"])["pad_score"]
    np.testing.assert_allclose(fb.loc[fa.index].to_numpy(), fa.to_numpy(), rtol=0, atol=1e-6)  # frame by frame

    sa, na = _per_video(ta, "msu_mfsd")
    sb, nb = _per_video(tb, "csv")
    assert set(sa) == set(sb) == set(VIDEOS)
    assert na == nb == {v: 5 for v in VIDEOS}
    assert all(math.isfinite(s) for s in [*sa.values(), *sb.values()])
    for v in VIDEOS:
        assert sb[v] == pytest.approx(sa[v], abs=1e-6), v
