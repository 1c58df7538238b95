"""Reader for dlib's serialized ``loss_metric`` networks (``dlib_face_recognition_resnet_model_v1.dat``).

:class:`Reader` decodes dlib's serialization primitives (integers, bools, strings, floats, tensors),
:func:`read_details` / :func:`read_add_layer_tail` one layer each, and :func:`parse_dlib_network` the whole file
into its layer sequence (:class:`Layer`). Moved out of :mod:`harness.models.dlib_resnet`, which re-exports these
names and builds the torch module from the parsed layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.models.weights import WeightsError


class Reader:
    """Cursor over dlib's serialization: integers are 1 control byte (low nibble = byte count, 0x80 = negative)
    followed by that many little-endian bytes; bools are the characters '1'/'0'; strings are an integer length
    and the bytes; floats are (mantissa, exponent) integers, value = mantissa * 2**exponent; tensors are
    version 2, (n, k, nr, nc) and n*k*nr*nc little-endian float32."""

    def __init__(self, data: bytes, what: str):
        self.buf = memoryview(data)
        self.pos = 0
        self.what = what

    def fail(self, msg: str) -> WeightsError:
        return WeightsError(f"{self.what}: not a dlib network file of the expected kind at byte {self.pos}: {msg}")

    def _take(self, n: int) -> memoryview:
        if self.pos + n > len(self.buf):
            raise self.fail("unexpected end of file")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        ctrl = self._take(1)[0]
        n = ctrl & 0x0F
        if ctrl & 0x70 or n == 0 or n > 8:
            raise self.fail(f"bad integer control byte 0x{ctrl:02x}")
        v = int.from_bytes(self._take(n), "little")
        return -v if ctrl & 0x80 else v

    def bool(self) -> bool:
        c = self._take(1)[0]
        if c not in (ord("0"), ord("1")):
            raise self.fail(f"bad bool byte 0x{c:02x}")
        return c == ord("1")

    def str(self) -> str:
        n = self.int()
        if not 0 <= n < 256:
            raise self.fail(f"implausible string length {n}")
        return bytes(self._take(n)).decode("ascii", errors="replace")

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        if exponent >= 32000:  # dlib's markers for inf / -inf / nan
            raise self.fail("non-finite float")
        return float(mantissa) * 2.0**exponent if mantissa else 0.0

    def tensor(self) -> np.ndarray:
        if (v := self.int()) != 2:
            raise self.fail(f"tensor version {v}, expected 2")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        data = np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32)
        return data.reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        if (v := self.int()) != 1:
            raise self.fail(f"alias_tensor version {v}, expected 1")
        return tuple(self.int() for _ in range(4))

    def expect(self, name: str) -> None:
        got = self.str()
        if got != name:
            raise self.fail(f"expected {name!r}, found {got!r}")


@dataclass
class Layer:
    """One parsed computational layer (tag/skip layers carry no data and are only counted)."""

    kind: str  # con | affine | relu | max_pool | avg_pool | add_prev | fc
    hp: dict = field(default_factory=dict)  # hyper-parameters
    tensors: dict = field(default_factory=dict)


def read_details(r: Reader) -> Layer:
    name = r.str()
    if name == "con_4":
        params = r.tensor()
        nf, nr, nc, sy, sx, py, px = (r.int() for _ in range(7))
        fshape, bshape = r.alias(), r.alias()
        for _ in range(4):  # learning-rate / weight-decay multipliers
            r.float()
        nw = int(np.prod(fshape))
        if fshape[0] != nf or bshape != (1, nf, 1, 1) or params.size != nw + nf:
            raise r.fail(f"inconsistent con_ shapes {fshape} {bshape} {params.shape}")
        flat = params.reshape(-1)
        return Layer(
            "con",
            dict(out=nf, inp=fshape[1], kernel=(nr, nc), stride=(sy, sx), padding=(py, px)),
            dict(weight=flat[:nw].reshape(fshape), bias=flat[nw:].copy()),
        )
    if name == "affine_":
        params = r.tensor()
        g, b = r.alias(), r.alias()
        mode = r.int()
        n = g[1]
        if mode != 0 or g != b or g != (1, n, 1, 1) or params.size != 2 * n:
            raise r.fail(f"unsupported affine_ layer (mode {mode}, shapes {g} {b})")
        flat = params.reshape(-1)
        return Layer("affine", dict(channels=n), dict(gamma=flat[:n].copy(), beta=flat[n:].copy()))
    if name == "relu_":
        return Layer("relu")
    if name in ("max_pool_2", "avg_pool_2"):
        nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
        return Layer(name[:-2], dict(kernel=(nr, nc), stride=(sy, sx), padding=(py, px)))
    if name == "add_prev_":
        return Layer("add_prev")
    if name == "fc_2":
        nout, nin = r.int(), r.int()
        params = r.tensor()
        w, b = r.alias(), r.alias()
        bias_mode = r.int()
        for _ in range(4):
            r.float()
        if bias_mode != 1 or w != (nin, nout, 1, 1) or params.size != nin * nout:
            raise r.fail(f"expected fc_no_bias, got bias mode {bias_mode}, shapes {w} {b}")
        # dlib computes out = in (N x nin) * W (nin x nout)
        return Layer("fc", dict(out=nout, inp=nin), dict(weight=params.reshape(nin, nout).T.copy()))
    raise r.fail(f"unsupported layer {name!r}")


def read_add_layer_tail(r: Reader) -> None:
    # this_layer_setup_called, gradient_input_is_stale, get_output_and_gradient_input_disabled,
    # then x_grad, cached_output and params_grad/grad_final (normally empty)
    for _ in range(3):
        r.bool()
    for _ in range(3):
        r.tensor()


def parse_dlib_network(data: bytes, what: str = "dlib network") -> dict:
    """Parse a serialized dlib ``loss_metric`` network into its layer sequence (input to output).

    Returns ``dict(input=dict(mean=(r, g, b), size=(nr, nc)), loss=dict(margin, distance_threshold),
    nesting=[...], layers=[Layer, ...])`` where ``nesting`` lists, innermost first, ``"layer"`` for each
    computational layer and ``"tag_or_skip"`` for each tag/skip layer.
    """
    r = Reader(data, what)
    if (v := r.int()) != 1:
        raise r.fail(f"add_loss_layer version {v}, expected 1")
    r.expect("loss_metric_2")
    loss = dict(margin=r.float(), distance_threshold=r.float())
    # the file nests outermost first: one version number per layer down to the one over the input layer (3)
    outer: list[int] = []
    while (v := r.int()) != 3:
        if v not in (1, 2) or len(outer) > 10_000:
            raise r.fail(f"unexpected layer version {v}")
        outer.append(v)  # 2 = add_layer, 1 = add_tag_layer / add_skip_layer
    r.expect("input_rgb_image_sized")
    mean = (r.float(), r.float(), r.float())
    size = (r.int(), r.int())
    layers = [read_details(r)]
    read_add_layer_tail(r)
    if (v := r.int()) != 1:  # version 3 also stores the input layer's sample expansion factor
        raise r.fail(f"sample expansion factor {v}, expected 1")
    nesting = ["layer"]
    for v in reversed(outer):
        if v == 2:
            layers.append(read_details(r))
            read_add_layer_tail(r)
            nesting.append("layer")
        else:
            nesting.append("tag_or_skip")
    if r.pos != len(r.buf):
        raise r.fail(f"{len(r.buf) - r.pos} trailing bytes")
    return dict(input=dict(mean=mean, size=size), loss=loss, nesting=nesting, layers=layers)
