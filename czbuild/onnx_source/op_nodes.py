"""The op registry as ONNX nodes: one builder per op of :data:`czbuild.ops.OPS`.

:func:`append_op` adds the nodes of one validated op dict to a :class:`NodeSink`, on a
channels-last tensor of known rank and channel count, for a given opset (the reductions take
their axes as an attribute before opset 18 and as an input from 18 on). Every op of the
registry has a builder (:func:`missing_builders` is empty; a test checks it) and the maths is
that of :func:`czbuild.ops.apply_numpy`, which is the verifier's reference. Pure ONNX.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from onnx import NodeProto, TensorProto, helper, numpy_helper

from czbuild import ops as czops
from czbuild.errors import ConversionError

__all__ = ["NodeSink", "append_chain", "append_op", "missing_builders"]


@dataclass
class NodeSink:
    """Nodes and initializers being added in front of / behind a model.

    Attributes:
        prefix: Prefix of every name made here (``pre`` / ``post``).
        opset: The default-domain opset the nodes must be valid in.
        nodes: The nodes, in order.
        initializers: The constants.
    """

    prefix: str
    opset: int
    nodes: list[NodeProto] = field(default_factory=list)
    initializers: list[TensorProto] = field(default_factory=list)
    _count: int = 0

    def name(self, what: str) -> str:
        """A fresh value name."""
        self._count += 1
        return f"{self.prefix}/{what}_{self._count}"

    def const(self, value: Any, dtype: Any = np.float32) -> str:
        """A constant initializer; returns its name."""
        name = self.name("const")
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(self, op_type: str, inputs: list[str], **attrs: Any) -> str:
        """Add one single-output node; returns its output name."""
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def reduce(self, op_type: str, x: str, axes: list[int]) -> str:
        """A keepdims reduction over ``axes`` in this opset's form."""
        if self.opset >= 18:
            return self.node(op_type, [x, self.const(axes, np.int64)], keepdims=1)
        return self.node(op_type, [x], axes=axes, keepdims=1)


def _floats(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float32)


def _image_axes(rank: int) -> list[int]:
    return list(range(1, rank))


def _per_image_standardization(s: NodeSink, x: str, op: Mapping[str, Any], rank: int) -> str:
    axes = _image_axes(rank)
    mean = s.reduce("ReduceMean", x, axes)
    centred = s.node("Sub", [x, mean])
    var = s.reduce("ReduceMean", s.node("Mul", [centred, centred]), axes)
    std = s.node("Sqrt", [var])
    # 1 / sqrt(number of values per image), from the runtime shape (tiles may be free-sized)
    dims = s.node("Gather", [s.node("Shape", [x]), s.const(axes, np.int64)], axis=0)
    count = s.node("Cast", [s.node("ReduceProd", [dims], keepdims=1)], to=TensorProto.FLOAT)
    floor = s.node("Reciprocal", [s.node("Sqrt", [count])])
    return s.node("Div", [centred, s.node("Max", [std, floor])])


def _min_max_normalization(s: NodeSink, x: str, op: Mapping[str, Any], rank: int) -> str:
    axes = _image_axes(rank)
    low = s.reduce("ReduceMin", x, axes)
    high = s.reduce("ReduceMax", x, axes)
    span = s.node("Add", [s.node("Sub", [high, low]), s.const(op["eps"])])
    return s.node("Div", [s.node("Sub", [x, low]), span])


def _percentile_normalization(s: NodeSink, x: str, op: Mapping[str, Any], rank: int) -> str:
    if s.opset < 10:
        raise ConversionError(
            "percentile_normalization needs opset >= 10 in an ONNX/PyTorch source (TopK with a "
            "runtime k); choose a higher opset"
        )
    # numpy's "linear" percentile: sorted values v, h = (n - 1) * q / 100,
    # v[floor(h)] + (h - floor(h)) * (v[min(floor(h) + 1, n - 1)] - v[floor(h)]).
    flat = s.node("Reshape", [x, s.const([0, -1], np.int64)])
    n = s.node("Gather", [s.node("Shape", [flat]), s.const(1, np.int64)], axis=0)
    k = s.node("Unsqueeze", [n, s.const([0], np.int64)]) if s.opset >= 13 else None
    if k is None:
        k = s.node("Reshape", [n, s.const([1], np.int64)])
    # descending sort (TopK's default, valid from opset 10): ascending index i is n - 1 - i
    sorted_desc = _topk(s, flat, k)
    last = s.node("Sub", [n, s.const(1, np.int64)])
    last_f = s.node("Cast", [last], to=TensorProto.FLOAT)
    bounds = []
    for q in (op["low"], op["high"]):
        h = s.node("Mul", [last_f, s.const(float(q) / 100.0)])
        lo_f = s.node("Floor", [h])
        frac = s.node("Sub", [h, lo_f])
        lo = s.node("Cast", [lo_f], to=TensorProto.INT64)
        hi = s.node("Min", [s.node("Add", [lo, s.const(1, np.int64)]), last])
        v_lo = s.node("Gather", [sorted_desc, s.node("Sub", [last, lo])], axis=1)
        v_hi = s.node("Gather", [sorted_desc, s.node("Sub", [last, hi])], axis=1)
        value = s.node("Add", [v_lo, s.node("Mul", [frac, s.node("Sub", [v_hi, v_lo])])])
        bounds.append(s.node("Reshape", [value, s.const([-1] + [1] * (rank - 1), np.int64)]))
    low, high = bounds
    span = s.node("Add", [s.node("Sub", [high, low]), s.const(op["eps"])])
    return s.node("Div", [s.node("Sub", [x, low]), span])


def _topk(s: NodeSink, flat: str, k: str) -> str:
    values = s.name("topk")
    indices = s.name("topk_indices")
    s.nodes.append(helper.make_node("TopK", [flat, k], [values, indices], name=values, axis=1))
    return values


def _gather_channels(s: NodeSink, x: str, order: list[int], rank: int) -> str:
    return s.node("Gather", [x, s.const(order, np.int64)], axis=rank - 1)


def _sigmoid_scores(s: NodeSink, x: str, op: Mapping[str, Any], rank: int) -> str:
    other = s.node("Sub", [s.const(1.0), x])
    scores = [x, other] if op.get("positive_channel", 0) == 0 else [other, x]
    return s.node("Concat", scores, axis=rank - 1)


_Builder = Callable[[NodeSink, str, Mapping[str, Any], int, int], str]

_BUILDERS: dict[str, _Builder] = {
    "rgb_to_bgr": lambda s, x, op, r, c: _gather_channels(s, x, list(range(c - 1, -1, -1)), r),
    "rgba_to_bgra": lambda s, x, op, r, c: _gather_channels(s, x, [2, 1, 0, 3], r),
    "transpose_channels": lambda s, x, op, r, c: _gather_channels(s, x, list(op["order"]), r),
    "per_image_standardization": lambda s, x, op, r, c: _per_image_standardization(s, x, op, r),
    "percentile_normalization": lambda s, x, op, r, c: _percentile_normalization(s, x, op, r),
    "min_max_normalization": lambda s, x, op, r, c: _min_max_normalization(s, x, op, r),
    "scale_range": lambda s, x, op, r, c: s.node(
        "Add",
        [
            s.node(
                "Mul",
                [
                    s.node("Sub", [x, s.const(op["in"][0])]),
                    s.const((op["out"][1] - op["out"][0]) / (op["in"][1] - op["in"][0])),
                ],
            ),
            s.const(op["out"][0]),
        ],
    ),
    "normalization": lambda s, x, op, r, c: s.node(
        "Div", [s.node("Sub", [x, s.const(_floats(op["mean"]))]), s.const(_floats(op["std"]))]
    ),
    "shift": lambda s, x, op, r, c: s.node("Add", [x, s.const(_floats(op["shift"]))]),
    "scale": lambda s, x, op, r, c: s.node("Mul", [x, s.const(_floats(op["scale"]))]),
    "clip": lambda s, x, op, r, c: s.node(
        "Min", [s.node("Max", [x, s.const(_floats(op["min"]))]), s.const(_floats(op["max"]))]
    ),
    "sigmoid": lambda s, x, op, r, c: s.node("Sigmoid", [x]),
    czops.SIGMOID_SCORES: lambda s, x, op, r, c: _sigmoid_scores(s, x, op, r),
}


def missing_builders() -> list[str]:
    """Ops of the registry without an ONNX builder (empty: every op is covered)."""
    return sorted(set(czops.OPS) - set(_BUILDERS))


def append_op(sink: NodeSink, x: str, op: Mapping[str, Any], *, rank: int, channels: int) -> str:
    """Add the nodes of one validated op applied to ``x``; returns the result's name.

    Args:
        sink: Where the nodes go.
        x: The channels-last float32 input value.
        op: A validated op dict (:func:`czbuild.ops.validate_op`).
        rank: Rank of ``x`` including the batch dim.
        channels: Channel count of ``x``.
    """
    return _BUILDERS[op["op"]](sink, x, op, rank, channels)


def append_chain(
    sink: NodeSink, x: str, ops: Any, *, rank: int, channels: int, where: str
) -> tuple[str, int]:
    """Add a whole chain; returns the result's name and its channel count.

    Raises:
        ValueError: An op is invalid or does not fit the channel count (names ``where[i]``).
    """
    for i, op in enumerate(ops):
        checked = czops.validate_op(op, where=f"{where}[{i}]")
        out = czops.op_out_channels(checked, channels, where=f"{where}[{i}]")
        x = append_op(sink, x, checked, rank=rank, channels=channels)
        channels = out
    return x, channels


def _self_check() -> None:  # pragma: no cover - import-time guard against registry drift
    if missing_builders():
        raise AssertionError(f"ops without an ONNX builder: {missing_builders()}")


_self_check()
