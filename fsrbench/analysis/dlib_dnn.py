"""A reader for dlib's serialized DNN files, and the layer list of dlib's face-recognition ResNet.

dlib writes a network (``dlib::serialize(file) << net``) as a depth-first dump of its *type*: nothing in the
stream says which layer comes next, so a reader has to know the network type it is reading.  This module
knows the primitives of dlib's format and the one type fsrbench needs, ``anet_type`` of dlib's
``examples/dnn_face_recognition_ex.cpp`` (the network in ``dlib_face_recognition_resnet_model_v1.dat``):

Primitives (``dlib/serialize.h``, ``dlib/dnn/tensor.h``):

* integers: one control byte (low nibble = number of value bytes, 1..8; bit 0x80 = negative) followed by
  the magnitude's bytes, little-endian;
* ``bool``: the ASCII character ``'1'`` or ``'0'``;
* ``std::string``: its length (an integer) and the raw bytes;
* ``float``/``double``: two integers, a mantissa and a base-2 exponent (``float_details``; exponents
  32000/32001/32002 stand for +inf/-inf/NaN);
* ``resizable_tensor``: version 2, the four dimensions (num_samples, k, nr, nc) and the values as raw
  little-endian float32;
* ``alias_tensor``: version 1 and the four dimensions.

Wrappers (``dlib/dnn/core.h``), each written as its version, then its sub-network (the layer below it), then
its own fields:

* ``add_loss_layer`` v1: the loss details, then the sub-network;
* ``add_layer`` v2: sub-network, layer details, three bools (setup called, gradient stale, getters
  disabled), three tensors (x_grad, cached output, params_grad);
* ``add_layer`` on the input layer, v2 or v3: input layer, layer details, three bools, three tensors
  (x_grad, cached output, grad_final) and, in v3, the sample expansion factor;
* ``add_tag_layer`` / ``add_skip_layer`` v1: only the sub-network.

Layer details (``dlib/dnn/layers.h``, ``input.h``, ``loss.h``): each starts with a version string
(``con_4``..``con_6``, ``affine_``/``affine_2``, ``relu_``, ``max_pool_2``, ``avg_pool_2``, ``add_prev_``,
``fc_2``/``fc_3``, ``input_rgb_image_sized``, ``loss_metric_``/``loss_metric_2``) and its fields; the
reader checks every version, kernel size, stride, padding and filter count against ``anet_type``, so a
file of another network is refused instead of being misread.

:func:`read_face_resnet` returns the network as a list of operations in *forward* order (input first) with
their parameters as float32 numpy arrays; :mod:`fsrbench.analysis.dlib_resnet` runs them in PyTorch.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fsrbench.errors import DlibFormatError

__all__ = ["DlibFormatError", "Reader", "Op", "face_resnet_type", "read_face_resnet"]


class Reader:
    """Sequential reader of dlib's serialization primitives over a bytes buffer."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def _take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise DlibFormatError(f"unexpected end of data at byte {self.pos} (wanted {n} more)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self, signed: bool = True) -> int:
        """dlib's compact integer (``ser_helper::unpack_int``)."""
        at = self.pos
        ctrl = self._take(1)[0]
        size = ctrl & 0x0F
        negative = bool(ctrl & 0x80)
        if size == 0 or size > 8 or (ctrl & 0x70) or (negative and not signed):
            raise DlibFormatError(f"bad integer control byte 0x{ctrl:02x} at byte {at}")
        value = int.from_bytes(bytes(self._take(size)), "little", signed=False)
        return -value if negative else value

    def uint(self) -> int:
        return self.int(signed=False)

    def bool(self) -> bool:
        at = self.pos
        ch = self._take(1)[0]
        if ch not in (ord("0"), ord("1")):
            raise DlibFormatError(f"bad bool byte 0x{ch:02x} at byte {at}")
        return ch == ord("1")

    def string(self) -> str:
        n = self.uint()
        return bytes(self._take(n)).decode("latin-1")

    def float(self) -> float:
        """A float/double in dlib's portable form (mantissa * 2**exponent)."""
        at = self.pos
        if self.data[self.pos] & 0x70:  # dlib's pre-2013 ASCII format; never written by dnn models
            raise DlibFormatError(f"ASCII floating point value at byte {at} is not supported")
        mantissa = self.int()
        exponent = self.int()
        if exponent < 32000:
            return math.ldexp(float(mantissa), exponent)
        return {32000: math.inf, 32001: -math.inf}.get(exponent, math.nan)

    def expect(self, value: int, what: str) -> None:
        at = self.pos
        got = self.int()
        if got != value:
            raise DlibFormatError(f"{what}: expected {value}, found {got} at byte {at}")

    def expect_string(self, allowed: tuple[str, ...], what: str) -> str:
        at = self.pos
        s = self.string()
        if s not in allowed:
            raise DlibFormatError(f"{what}: expected one of {allowed}, found {s!r} at byte {at}")
        return s

    def tensor(self) -> np.ndarray:
        """A ``resizable_tensor`` as float32 [num_samples, k, nr, nc] (a copy)."""
        at = self.pos
        version = self.int()
        if version != 2:
            raise DlibFormatError(f"tensor version {version} at byte {at} (only version 2 is supported)")
        shape = tuple(self.int() for _ in range(4))
        if any(d < 0 for d in shape):
            raise DlibFormatError(f"negative tensor dimension {shape} at byte {at}")
        n = int(np.prod(shape))
        raw = self._take(4 * n)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        self.expect(1, "alias_tensor version")
        return tuple(self.int() for _ in range(4))  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------
# the network type: dlib's anet_type (examples/dnn_face_recognition_ex.cpp)
# ------------------------------------------------------------------------------------------------
@dataclass
class Node:
    """One level of the nested network type (outermost first), as the deserializer walks it."""

    kind: str  # input, con, affine, relu, max_pool, avg_pool, add_prev, tag, skip, fc_no_bias, loss_metric
    sub: "Node | None" = None
    args: dict[str, Any] = field(default_factory=dict)


def _n(kind: str, sub: Node | None = None, **args: Any) -> Node:
    return Node(kind, sub, args)


def _block(n: int, stride: int, sub: Node) -> Node:
    # block<N,BN,stride,SUBNET> = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>, BN = affine
    inner = _n("affine", _n("con", sub, filters=n, size=3, stride=stride))
    return _n("affine", _n("con", _n("relu", inner), filters=n, size=3, stride=1))


def _ares(n: int, sub: Node) -> Node:
    # relu<residual<block,N,affine,SUBNET>>, residual = add_prev1<block<N,BN,1,tag1<SUBNET>>>
    return _n("relu", _n("add_prev", _block(n, 1, _n("tag", sub, id=1)), tag=1))


def _ares_down(n: int, sub: Node) -> Node:
    # relu<residual_down<...>>, residual_down = add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,BN,2,tag1<SUBNET>>>>>>
    blk = _block(n, 2, _n("tag", sub, id=1))
    return _n("relu", _n("add_prev", _n("avg_pool", _n("skip", _n("tag", blk, id=2), id=1), size=2, stride=2),
                         tag=2))


def face_resnet_type() -> Node:
    """``anet_type``: loss_metric<fc_no_bias<128, avg_pool_everything<alevel0<...<alevel4<max_pool<3,3,2,2,
    relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>>``."""
    x = _n("input", size=150)
    x = _n("con", x, filters=32, size=7, stride=2)
    x = _n("max_pool", _n("relu", _n("affine", x)), size=3, stride=2)
    for _ in range(3):  # alevel4
        x = _ares(32, x)
    x = _ares_down(64, x)  # alevel3
    for _ in range(3):
        x = _ares(64, x)
    x = _ares_down(128, x)  # alevel2
    for _ in range(2):
        x = _ares(128, x)
    x = _ares_down(256, x)  # alevel1
    for _ in range(2):
        x = _ares(256, x)
    x = _ares_down(256, x)  # alevel0
    x = _n("avg_pool", x, size=0, stride=1)  # avg_pool_everything
    x = _n("fc_no_bias", x, outputs=128)
    return _n("loss_metric", x)


@dataclass
class Op:
    """One operation of the forward pass, with its parameters (float32 numpy arrays)."""

    kind: str
    args: dict[str, Any] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)


def _pooling_fields(r: Reader, node: Node, name: str) -> dict[str, int]:
    r.expect_string((f"{name}_2",), name)
    nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
    size, stride = node.args["size"], node.args["stride"]
    pad = 0 if stride != 1 else size // 2  # dlib's default padding for these template arguments
    if (nr, nc, sy, sx, py, px) != (size, size, stride, stride, pad, pad):
        raise DlibFormatError(f"{name}: found nr={nr} nc={nc} stride={sy}x{sx} padding={py}x{px}, expected "
                              f"{size}x{size} stride {stride} padding {pad}")
    return {"size": size, "stride": stride, "padding": pad}


def _details(r: Reader, node: Node, ops: list[Op]) -> None:
    """Read the layer details of ``node`` (its sub-network has been read) and append its operation."""
    k = node.kind
    if k == "con":
        version = r.expect_string(("con_4", "con_5", "con_6"), "con_")
        params = r.tensor()
        filters, nr, nc, sy, sx, py, px = (r.int() for _ in range(7))
        f_shape = r.alias_tensor()
        b_shape = r.alias_tensor()
        for _ in range(4):  # learning-rate / weight-decay multipliers
            r.float()
        use_bias = r.bool() if version in ("con_5", "con_6") else True
        use_relu = r.bool() if version == "con_6" else False
        a = node.args
        pad = 0 if a["stride"] != 1 else a["size"] // 2
        if (filters, nr, nc, sy, sx, py, px) != (a["filters"], a["size"], a["size"], a["stride"], a["stride"], pad, pad):
            raise DlibFormatError(f"con_: found {filters} filters {nr}x{nc} stride {sy}x{sx} padding {py}x{px}, "
                                  f"expected {a['filters']} {a['size']}x{a['size']} stride {a['stride']} padding {pad}")
        if not use_bias or use_relu:
            raise DlibFormatError("con_: expected a bias and no fused relu")
        if f_shape[0] != filters or f_shape[2:] != (nr, nc) or b_shape != (1, filters, 1, 1):
            raise DlibFormatError(f"con_: unexpected parameter layout {f_shape} / {b_shape}")
        flat = params.reshape(-1)
        nw = int(np.prod(f_shape))
        if flat.size != nw + filters:
            raise DlibFormatError(f"con_: {flat.size} parameters, expected {nw + filters}")
        ops.append(Op("con", {"stride": sy, "padding": py},
                      {"weight": flat[:nw].reshape(f_shape).copy(), "bias": flat[nw:].copy()}))
    elif k == "affine":
        version = r.expect_string(("affine_", "affine_2"), "affine_")
        params = r.tensor()
        g_shape = r.alias_tensor()
        b_shape = r.alias_tensor()
        mode = r.int()
        disabled = r.bool() if version == "affine_2" else False
        c = g_shape[1]
        if mode != 0 or g_shape != (1, c, 1, 1) or b_shape != g_shape or params.size != 2 * c or disabled:
            raise DlibFormatError(f"affine_: expected an enabled CONV_MODE affine layer, found mode {mode} "
                                  f"gamma {g_shape} beta {b_shape} ({params.size} parameters, disabled={disabled})")
        flat = params.reshape(-1)
        ops.append(Op("affine", {}, {"gamma": flat[:c].copy(), "beta": flat[c:].copy()}))
    elif k == "relu":
        r.expect_string(("relu_",), "relu_")
        ops.append(Op("relu"))
    elif k == "max_pool":
        ops.append(Op("max_pool", _pooling_fields(r, node, "max_pool")))
    elif k == "avg_pool":
        ops.append(Op("avg_pool", _pooling_fields(r, node, "avg_pool")))
    elif k == "add_prev":
        r.expect_string(("add_prev_",), "add_prev_")
        ops.append(Op("add_prev", {"tag": node.args["tag"]}))
    elif k == "fc_no_bias":
        version = r.expect_string(("fc_2", "fc_3"), "fc_")
        outputs = r.uint()
        inputs = r.uint()
        params = r.tensor()
        w_shape = r.alias_tensor()
        r.alias_tensor()  # biases (unused: no bias)
        bias_mode = r.int()
        for _ in range(4):
            r.float()
        if version == "fc_3":
            r.bool()  # use_bias (irrelevant with FC_NO_BIAS)
        if outputs != node.args["outputs"] or bias_mode != 1 or params.size != inputs * outputs \
                or w_shape != (inputs, outputs, 1, 1):
            raise DlibFormatError(f"fc_: expected fc_no_bias<{node.args['outputs']}>, found {outputs} outputs, "
                                  f"{inputs} inputs, bias mode {bias_mode}, weights {w_shape}")
        ops.append(Op("fc", {}, {"weight": params.reshape(inputs, outputs).copy()}))
    else:  # pragma: no cover - the type is ours
        raise AssertionError(k)


def _tensors(r: Reader, n: int) -> None:
    for _ in range(n):
        r.tensor()  # training-time state (gradients, cached outputs): not needed


def _walk(r: Reader, node: Node, ops: list[Op]) -> None:
    k = node.kind
    if k in ("tag", "skip"):
        r.expect(1, f"add_{k}_layer version")
        assert node.sub is not None
        _walk(r, node.sub, ops)
        ops.append(Op(k, {"id": node.args["id"]}))
        return
    assert node.sub is not None
    if node.sub.kind == "input":  # add_layer<LAYER, input_layer>
        at = r.pos
        version = r.int()
        if version not in (2, 3):
            raise DlibFormatError(f"input add_layer version {version} at byte {at}")
        r.expect_string(("input_rgb_image_sized",), "input layer")
        mean = [r.float() for _ in range(3)]
        nr, nc = r.uint(), r.uint()
        size = node.sub.args["size"]
        if (nr, nc) != (size, size):
            raise DlibFormatError(f"input_rgb_image_sized: {nr}x{nc}, expected {size}x{size}")
        ops.append(Op("input", {"size": size, "mean": tuple(np.float32(m) for m in mean)}))
        _details(r, node, ops)
        for _ in range(3):
            r.bool()
        _tensors(r, 3)
        if version == 3:
            r.uint()  # sample_expansion_factor
        return
    r.expect(2, f"add_layer<{k}> version")
    _walk(r, node.sub, ops)
    _details(r, node, ops)
    for _ in range(3):
        r.bool()
    _tensors(r, 3)


def read_face_resnet(source: bytes | str | os.PathLike[str]) -> list[Op]:
    """The operations of ``dlib_face_recognition_resnet_model_v1.dat`` in forward order (input first).

    ``source`` is the file's bytes or path.  Raises :class:`DlibFormatError` if the bytes are not a serialized
    ``anet_type`` (wrong layer, version, size, stride, padding or trailing bytes)."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    r = Reader(data)
    net = face_resnet_type()
    r.expect(1, "add_loss_layer version")
    if r.expect_string(("loss_metric_", "loss_metric_2"), "loss layer") == "loss_metric_2":
        r.float()  # margin and distance threshold (training only)
        r.float()
    ops: list[Op] = []
    assert net.sub is not None
    _walk(r, net.sub, ops)
    if r.pos != len(r.data):
        raise DlibFormatError(f"{len(r.data) - r.pos} trailing bytes after the network")
    return ops
