"""Checks and tile specialisation of ONNX models, whatever framework made them.

* :func:`check_onnx` -- ``onnx.checker`` (full check), the declared opset, standard-domain
  ops only; :func:`serialize_checked` serialises a checked model and remembers its digest, so
  the verifier's ``payload.model`` does not run the checker again on the same bytes
  (:func:`passed_checker`);
* :func:`ir_version_for_opset` -- the IR version czbuild writes for an opset, from the
  targets' limits (:mod:`czbuild.formats.vocab`);
* :func:`specialize_onnx` -- fix the spatial dims of a model made with undefined
  height/width (one conversion serves a whole tile sweep).

Used by every adapter (``czbuild/keras/``, ``czbuild/onnx_source/``,
``czbuild/torch_source/``). Pure ONNX: no TensorFlow is imported here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import onnx
from onnx import ModelProto, NodeProto

from czbuild.errors import ConversionError
from czbuild.formats import vocab
from czbuild.onnx_graph.canonical import all_nodes, canonicalize_onnx, serialize_onnx

__all__ = [
    "check_onnx",
    "custom_domain_node",
    "default_opset",
    "ir_version_for_opset",
    "passed_checker",
    "serialize_checked",
    "specialize_onnx",
]

#: sha256 of the serialised models this process has run ``onnx.checker`` (full check) on and
#: found valid (:func:`serialize_checked`). The checker is a pure function of the bytes and
#: the onnx version, so the verifier skips it for these bytes (:func:`passed_checker`); a
#: build then runs it once per artifact. Bounded: a long-lived worker keeps the latest ones.
_CHECKED: dict[str, None] = {}
_CHECKED_MAX = 256


def serialize_checked(proto: ModelProto, *, opset: int | None = None) -> bytes:
    """:func:`check_onnx`, then the deterministic bytes (``serialize_onnx``), remembered as valid.

    Raises:
        ConversionError: as :func:`check_onnx`.
    """
    check_onnx(proto, opset=opset)
    data = serialize_onnx(proto)
    _CHECKED[hashlib.sha256(data).hexdigest()] = None
    while len(_CHECKED) > _CHECKED_MAX:
        del _CHECKED[next(iter(_CHECKED))]
    return data


def passed_checker(data: bytes) -> bool:
    """Whether this process made ``data`` with :func:`serialize_checked` (checker passed)."""
    return hashlib.sha256(data).hexdigest() in _CHECKED


def ir_version_for_opset(opset: int) -> int:
    """The ONNX IR version czbuild writes for ``opset``.

    The highest IR version every format version that accepts ``opset`` can read
    (``vocab.MAX_IR_VERSION``): 7 for opset <= 12 (ONNX Runtime 1.4.0 in old ZEN releases),
    the 2.1.0 limit for newer opsets. Never below what the opset itself requires.

    Raises:
        ConversionError: when no known target reads ``opset``.
    """
    caps = [
        vocab.MAX_IR_VERSION[v]
        for v, max_opset in vocab.MAX_OPSET.items()
        if max_opset is not None and max_opset >= opset and v in vocab.MAX_IR_VERSION
    ]
    minimum = onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", opset)])
    if not caps:
        raise ConversionError(
            f"opset {opset} is above what any ZEN format version reads "
            f"(highest: {max(o for o in vocab.MAX_OPSET.values() if o)}); choose a lower opset"
        )
    ir = min(caps)
    if ir < minimum:
        raise ConversionError(
            f"opset {opset} needs ONNX IR version >= {minimum}, targets read {ir}"
        )
    return ir


def check_onnx(proto: ModelProto, *, opset: int | None = None) -> None:
    """Run ``onnx.checker`` (full check) and require standard-domain ops only.

    Raises:
        ConversionError: naming the offending op or the checker's message.
    """
    domains = {o.domain: o.version for o in proto.opset_import}
    if opset is not None and domains.get("", domains.get("ai.onnx")) != opset:
        raise ConversionError(f"ONNX model declares opset {domains.get('')}, expected {opset}")
    node = custom_domain_node(proto)
    if node is not None:
        raise ConversionError(
            f"ONNX node {node.name} ({node.op_type}) uses the non-standard domain "
            f"{node.domain!r}; ZEN runs standard ONNX ops only"
        )
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ConversionError(f"the converted ONNX model fails onnx.checker: {exc}") from exc


# --- specialisation --------------------------------------------------------------------------


def specialize_onnx(
    onnx_bytes: bytes,
    spatial_dims: Sequence[int],
    *,
    output_spatial_dims: Sequence[int] | None = None,
) -> bytes:
    """Fix the spatial dims of a model converted with undefined height/width.

    Sets the input's spatial dims, runs ONNX shape inference (strict, with data propagation)
    and requires the output's spatial dims to come out concrete and equal to
    ``output_spatial_dims`` (default: ``spatial_dims``). The batch dim and the channel dims are
    kept. The result is canonical and deterministic: the same bytes and dims always give the
    same output, and no inferred intermediate shapes are stored.

    Args:
        onnx_bytes: A canonical single-input, single-output NHWC model.
        spatial_dims: The tile, e.g. ``(512, 512)``.
        output_spatial_dims: The expected output spatial dims.

    Raises:
        ConversionError: the input dims conflict, inference fails, or the output spatial dims
            are not concrete / not the expected ones.
    """
    tile = tuple(int(d) for d in spatial_dims)
    expected = tuple(int(d) for d in (output_spatial_dims or tile))
    model = onnx.load_from_string(onnx_bytes)
    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ConversionError("specialize_onnx needs a model with exactly one input and one output")
    in_dims = graph.input[0].type.tensor_type.shape.dim
    out_dims = graph.output[0].type.tensor_type.shape.dim
    if len(in_dims) != len(tile) + 2 or len(out_dims) != len(expected) + 2:
        raise ConversionError(
            f"cannot set spatial dims {tile}: the model input has rank {len(in_dims)} and the "
            f"output rank {len(out_dims)}, expected {len(tile) + 2}"
        )
    for axis, size in enumerate(tile, start=1):
        dim = in_dims[axis]
        if dim.HasField("dim_value") and dim.dim_value != size:
            raise ConversionError(
                f"the model input has fixed size {dim.dim_value} on axis {axis}; cannot set {size}"
            )
        dim.Clear()
        dim.dim_value = size
    for axis in range(1, len(expected) + 1):
        out_dims[axis].Clear()
    del graph.value_info[:]
    try:
        inferred = onnx.shape_inference.infer_shapes(
            model, check_type=True, strict_mode=True, data_prop=True
        )
    except Exception as exc:  # InferenceError, ValidationError
        raise ConversionError(f"ONNX shape inference failed at tile {tile}: {exc}") from exc
    got_dims = inferred.graph.output[0].type.tensor_type.shape.dim
    got = tuple(d.dim_value if d.HasField("dim_value") else None for d in got_dims[1:-1])
    if got != expected:
        raise ConversionError(
            f"after setting the input to {tile}, ONNX shape inference gives output spatial dims "
            f"{got} (None = unknown), expected {expected}; convert at fixed dims instead"
        )
    for axis, size in enumerate(expected, start=1):
        out_dims[axis].dim_value = size
    ir, opset = model.ir_version, default_opset(model)
    canonical = canonicalize_onnx(model)
    canonical.ir_version = ir
    return serialize_checked(canonical, opset=opset)


def default_opset(proto: ModelProto) -> int | None:
    """The default-domain opset a model imports (None: none)."""
    for imp in proto.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return None


def custom_domain_node(proto: ModelProto) -> NodeProto | None:
    """The first node (subgraphs included) outside the standard ONNX domain, if any."""
    return next((n for n in all_nodes(proto.graph) if n.domain not in ("", "ai.onnx")), None)
