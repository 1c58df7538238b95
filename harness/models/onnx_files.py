"""ONNX weight-file handling for the Faceplugin models: batch-dynamic rewriting and the private conversion cache.

* :func:`make_batch_dynamic` - a copy of an ONNX file with a symbolic batch dimension (``"batch"``), with PyTorch's
  traced ``x.view(x.size(0), -1)`` folded into a constant ``Reshape`` (:func:`_fold_flatten_reshapes`).
* :func:`batch_dynamic` - the verified batch-dynamic copy of a declared :class:`WeightFile`, cached beside it.
* :func:`private_dir` / :func:`onnx_file` - converting a local ``weights_path`` into the user's private cache,
  with the converted file's sha256 recorded and checked on every load.

Moved out of :mod:`harness.models.onnx_models`, which re-exports these names.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from harness.models.weights import WeightFile, WeightsError, fetch, sha256_file, weights_file


def make_batch_dynamic(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Write a copy of the ONNX file ``src`` whose batch dimension is symbolic (``"batch"``).

    Graph inputs' and outputs' first dimension become ``dim_param="batch"``; intermediate shape annotations are
    dropped (onnxruntime re-infers them); a ``Reshape`` whose target is a constant initializer starting with the
    file's fixed batch gets ``0`` there ("copy that dimension from the input"). The result is checked with
    ``onnx.checker``.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    g = model.graph
    fixed = [int(d.dim_value) for d in g.input[0].type.tensor_type.shape.dim][:1]
    fixed_batch = fixed[0] if fixed and fixed[0] > 0 else 1
    for v in list(g.input) + list(g.output):
        dims = v.type.tensor_type.shape.dim
        if len(dims):
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"
    del g.value_info[:]
    _fold_flatten_reshapes(g)
    inits = {t.name: t for t in g.initializer}
    for node in g.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        t = inits[node.input[1]]
        shape = numpy_helper.to_array(t).copy()
        if shape.ndim == 1 and len(shape) and shape[0] == fixed_batch:
            shape[0] = 0
            t.CopyFrom(numpy_helper.from_array(shape.astype(np.int64), t.name))
    onnx.checker.check_model(model)
    dst = Path(dst)
    with tempfile.NamedTemporaryFile(dir=dst.parent, suffix=".tmp", delete=False) as tmp:
        tmp.write(model.SerializeToString())
    os.replace(tmp.name, dst)


def _fold_flatten_reshapes(g) -> None:
    """Turn PyTorch's traced ``x.view(x.size(0), -1)`` into a constant ``Reshape(x, [0, ...])``.

    The trace computes the target as ``Concat(Unsqueeze(Gather(Shape(x), 0)), c)``; ONNX shape inference cannot
    see through it, so the rank of everything after it is unknown (onnx2torch then cannot convert a following
    BatchNormalization). ``0`` in a Reshape target copies that input dimension, so the constant form is the same
    function. The nodes left unused are removed.
    """
    from onnx import numpy_helper

    producer = {o: n for n in g.node for o in n.output}
    inits = {t.name: t for t in g.initializer}

    def const_of(name):
        if name in inits:
            return numpy_helper.to_array(inits[name])
        n = producer.get(name)
        if n is not None and n.op_type == "Constant":
            return numpy_helper.to_array(n.attribute[0].t)
        return None

    for node in g.node:
        if node.op_type != "Reshape" or node.input[1] in inits:
            continue
        cat = producer.get(node.input[1])
        if cat is None or cat.op_type != "Concat" or len(cat.input) < 2:
            continue
        unsq = producer.get(cat.input[0])
        gath = producer.get(unsq.input[0]) if unsq is not None and unsq.op_type == "Unsqueeze" else None
        shp = producer.get(gath.input[0]) if gath is not None and gath.op_type == "Gather" else None
        rest = [const_of(n) for n in cat.input[1:]]
        idx = const_of(gath.input[1]) if gath is not None else None
        if shp is None or shp.op_type != "Shape" or shp.input[0] != node.input[0] or idx is None \
                or int(np.asarray(idx).reshape(-1)[0]) != 0 or any(r is None for r in rest):
            continue
        target = np.concatenate([[0]] + [np.asarray(r).reshape(-1) for r in rest]).astype(np.int64)
        name = f"{node.name or node.output[0]}_folded_shape"
        g.initializer.append(numpy_helper.from_array(target, name))
        node.input[1] = name
    # drop nodes whose outputs nobody reads any more (repeat: chains)
    outputs = {o.name for o in g.output}
    while True:
        read = {i for n in g.node for i in n.input} | outputs
        dead = [n for n in g.node if not any(o in read for o in n.output)]
        if not dead:
            break
        for n in dead:
            g.node.remove(n)
    read = {i for n in g.node for i in n.input}
    for t in [t for t in g.initializer if t.name not in read]:
        g.initializer.remove(t)


def batch_dynamic(spec: WeightFile, original: Path | None = None) -> Path:
    """The verified batch-dynamic copy of ``spec``'s ONNX file (made on first use, cached beside the original)."""
    src = original or fetch(spec)
    want = spec.extra.get("batch_dynamic_sha256", "")
    dst = src.with_name(f"{src.stem}.batch-dynamic.onnx")
    if not (dst.is_file() and sha256_file(dst) == want):
        make_batch_dynamic(src, dst)
    got = sha256_file(dst)
    if want and got != want:
        raise WeightsError(
            f"{spec.name}: the batch-dynamic copy {dst} has sha256 {got}, expected {want} (a different onnx "
            "version may serialize differently; check the graph and update the declared sha256 if it is sound)"
        )
    return dst


def private_dir(path: Path) -> Path:
    """``path`` created (mode 700) or checked: a directory owned by this user that nobody else can write; anything
    else (a directory planted by another account, a symlink) is refused."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    import stat

    if not stat.S_ISDIR(st.st_mode) or (hasattr(os, "getuid") and st.st_uid != os.getuid()) or st.st_mode & 0o022:
        raise WeightsError(f"{path}: not a private directory of this user (owner uid {st.st_uid}, mode "
                           f"{oct(st.st_mode & 0o777)}); converted model files are only kept in one")
    return path


def onnx_file(spec: WeightFile, weights_path) -> tuple[Path, str]:
    """(batch-dynamic file to run, sha256 identifying the weights).

    A local ``weights_path`` is converted into the PRIVATE cache (``$HARNESS_CACHE/converted/<sha256 of the
    original>``, mode 700), never a shared temp directory; the converted file's sha256 is recorded beside it at
    conversion and checked on every load, so a file swapped in afterwards is refused rather than run.
    """
    if weights_path is None:
        return batch_dynamic(spec), spec.sha256
    from harness.paths import cache_root

    p, src_sha = weights_file(spec, weights_path)
    cache = private_dir(private_dir(cache_root() / "converted") / src_sha[:32])
    dst = cache / f"{p.stem}.batch-dynamic.onnx"
    record = cache / f"{dst.name}.sha256"
    if not (dst.is_file() and record.is_file()):
        make_batch_dynamic(p, dst)
        tmp = record.with_suffix(".tmp")
        tmp.write_text(sha256_file(dst) + "\n")
        os.replace(tmp, record)
    want = record.read_text().strip()
    got = sha256_file(dst)
    if got != want:
        raise WeightsError(f"{spec.name}: the converted file {dst} has sha256 {got}, but {want} was recorded when it "
                           "was converted: it was modified since; delete the directory to convert again")
    return dst, src_sha

