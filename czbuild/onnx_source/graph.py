"""An ONNX source model: read and check it, convert its opset, compose the op chains onto it.

:func:`read_source` loads and checks the model (one float32 input and one output of the same
rank, standard ops). :func:`compose` converts it to the target opset with
``onnx.version_converter``, prefixes its names (``onnx.compose.add_prefix``) and joins it to
the nodes of the preprocessing and postprocessing chains (:mod:`czbuild.onnx_source.op_nodes`)
and, for a channels-first model, to the two ``Transpose`` nodes that make the whole graph
channels-last. The result keeps the source's free dims; :func:`specialize` fixes the spatial
dims of one tile with ONNX shape inference.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import onnx
from onnx import ModelProto, TensorProto, ValueInfoProto, helper

from czbuild.errors import ConversionError, ModelError
from czbuild.onnx_graph.canonical import INPUT_NAME, OUTPUT_NAME, canonicalize_onnx
from czbuild.onnx_graph.checks import (
    check_onnx,
    custom_domain_node,
    default_opset,
    ir_version_for_opset,
    specialize_onnx,
)
from czbuild.onnx_source.op_nodes import NodeSink, append_chain

__all__ = ["SourceGraph", "compose", "convert_opset", "read_source", "specialize"]

Dims = tuple[int | None, ...]

#: Largest ONNX source read (bytes); ONNX's protobuf limit is 2 GiB.
MAX_SOURCE_BYTES = 2 * 1024**3 - 1


@dataclass(frozen=True)
class SourceGraph:
    """A checked ONNX source model.

    Attributes:
        proto: The model as read.
        origin: Where it came from (for messages).
        channels_first: Whether it takes ``[N, C, spatial...]``.
        input_dims: Its input dims as declared (with batch; None where symbolic).
        output_dims: Its output dims as declared.
        opset: Its default-domain opset.
    """

    proto: ModelProto
    origin: str
    channels_first: bool
    input_dims: Dims
    output_dims: Dims
    opset: int

    @property
    def channels(self) -> int | None:
        """Input channel count."""
        return self.input_dims[1] if self.channels_first else self.input_dims[-1]

    @property
    def spatial(self) -> Dims:
        """Input spatial dims (None where free)."""
        return self.input_dims[2:] if self.channels_first else self.input_dims[1:-1]

    @property
    def input_shape(self) -> Dims:
        """Channels-last input shape without batch."""
        return (*self.spatial, self.channels)


def _dims(value: ValueInfoProto) -> Dims:
    shape = value.type.tensor_type.shape
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in shape.dim)


def _graph_inputs(proto: ModelProto) -> list[ValueInfoProto]:
    initialized = {t.name for t in proto.graph.initializer}
    return [v for v in proto.graph.input if v.name not in initialized]


def read_source(
    source: str | os.PathLike[str] | ModelProto, *, channels_first: bool = False
) -> SourceGraph:
    """Load and check an ONNX source model.

    Raises:
        ModelError: The file cannot be read or is not an ONNX model of one float32 image
            input and one float32 image output (names the file and what to fix).
    """
    origin = "ONNX model" if isinstance(source, ModelProto) else os.fspath(source)
    if isinstance(source, ModelProto):
        proto = ModelProto()
        proto.CopyFrom(source)
    else:
        try:
            size = os.path.getsize(source)
            if size > MAX_SOURCE_BYTES:
                raise ModelError(f"{origin}: {size} bytes, more than ONNX's 2 GiB limit")
            proto = onnx.load_model(os.fspath(source), load_external_data=True)
        except ModelError:
            raise
        except FileNotFoundError:
            raise ModelError(f"{origin}: ONNX model file not found") from None
        except Exception as exc:  # DecodeError, OSError, external data problems
            raise ModelError(f"{origin}: not a readable ONNX model: {exc}") from exc
    inputs = _graph_inputs(proto)
    if len(inputs) != 1 or len(proto.graph.output) != 1:
        raise ModelError(
            f"{origin}: the model has {len(inputs)} inputs and {len(proto.graph.output)} "
            "outputs; ZEN runs models with one image input and one output"
        )
    for what, value in (("input", inputs[0]), ("output", proto.graph.output[0])):
        elem = value.type.tensor_type.elem_type
        if elem != TensorProto.FLOAT:
            raise ModelError(
                f"{origin}: the {what} {value.name!r} is {TensorProto.DataType.Name(elem)}; ZEN "
                "exchanges float32 tensors (export the model with a float32 "
                f"{what})"
            )
    in_dims, out_dims = _dims(inputs[0]), _dims(proto.graph.output[0])
    if len(in_dims) not in (4, 5):
        raise ModelError(
            f"{origin}: the input has rank {len(in_dims)}; ZEN models take 2D images "
            "(rank 4: batch, 2 spatial dims, channels) or 3D volumes (rank 5)"
        )
    if len(out_dims) != len(in_dims):
        raise ModelError(
            f"{origin}: the output has rank {len(out_dims)}, the input {len(in_dims)}; a ZEN "
            "model maps an image to an image of the same rank"
        )
    channel_axis = 1 if channels_first else len(in_dims) - 1
    if in_dims[channel_axis] is None:
        layout = "channels-first" if channels_first else "channels-last"
        raise ModelError(
            f"{origin}: the input's channel dim (axis {channel_axis}, {layout}) is not fixed; "
            "export the model with a fixed channel count"
            + ("" if channels_first else " (or set channels_first if the model is NCHW)")
        )
    opset = default_opset(proto)
    if opset is None:
        raise ModelError(f"{origin}: the model imports no default-domain ONNX opset")
    node = custom_domain_node(proto)
    if node is not None:
        raise ModelError(
            f"{origin}: node {node.name or node.op_type!r} uses the custom op domain "
            f"{node.domain!r}; ZEN runs standard ONNX ops only"
        )
    return SourceGraph(proto, origin, channels_first, in_dims, out_dims, opset)


def convert_opset(graph: SourceGraph, opset: int) -> ModelProto:
    """The source model at ``opset`` (unchanged when it already is).

    Raises:
        ConversionError: ``onnx.version_converter`` cannot convert an op (names it).
    """
    if graph.opset == opset:
        return graph.proto
    from onnx import version_converter

    try:
        converted = version_converter.convert_version(graph.proto, opset)
        onnx.checker.check_model(converted)
    except Exception as exc:
        raise ConversionError(
            f"{graph.origin}: cannot convert the model from opset {graph.opset} to opset "
            f"{opset} (onnx.version_converter: {str(exc).strip().splitlines()[0][:300]}); "
            f"export the model at opset {opset}, or choose a format version/opset that reads "
            f"opset {graph.opset}"
        ) from exc
    return converted


def _transpose(sink: NodeSink, x: str, perm: list[int]) -> str:
    return sink.node("Transpose", [x], perm=perm)


def compose(
    graph: SourceGraph, *, preprocessing: Any = (), postprocessing: Any = (), opset: int
) -> ModelProto:
    """The canonical channels-last model: preprocessing, source model, postprocessing.

    Free dims stay free (the batch dim becomes symbolic).

    Raises:
        ModelError: An op does not fit the channel counts (names ``preprocessing[i]``).
        ConversionError: The opset conversion or the ONNX checks fail.
    """
    source = convert_opset(graph, opset)
    prefixed = onnx.compose.add_prefix(source, "model/")
    rank = len(graph.input_dims)
    channels = int(graph.channels or 0)
    model_in = _graph_inputs(prefixed)[0].name
    model_out = prefixed.graph.output[0].name
    pre = NodeSink("pre", opset)
    post = NodeSink("post", opset)
    try:
        x, pre_channels = append_chain(
            pre, INPUT_NAME, preprocessing, rank=rank, channels=channels, where="preprocessing"
        )
    except ValueError as exc:
        raise ModelError(str(exc)) from exc
    if pre_channels != channels:
        raise ModelError(
            f"preprocessing: turns {channels} input channels into {pre_channels}, but "
            f"{graph.origin} takes {channels}; ZEN feeds the model's channel count"
        )
    to_first = [0, rank - 1, *range(1, rank - 1)]
    to_last = [0, *range(2, rank), 1]
    if graph.channels_first:
        x = _transpose(pre, x, to_first)
    pre.nodes.append(helper.make_node("Identity", [x], [model_in], name="pre/to_model"))
    out_dims = graph.output_dims
    out_channels = out_dims[1] if graph.channels_first else out_dims[-1]
    y = model_out
    if graph.channels_first:
        y = _transpose(post, y, to_last)
    try:
        y, _ = append_chain(
            post,
            y,
            postprocessing,
            rank=rank,
            channels=int(out_channels) if out_channels is not None else 1,
            where="postprocessing",
        )
    except ValueError as exc:
        raise ModelError(str(exc)) from exc
    post.nodes.append(helper.make_node("Identity", [y], [OUTPUT_NAME], name="post/output"))

    spatial = [f"s{i}" if d is None else d for i, d in enumerate(graph.spatial)]
    input_value = helper.make_tensor_value_info(
        INPUT_NAME, TensorProto.FLOAT, ["N", *spatial, channels]
    )
    output_value = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, None)
    body = prefixed.graph
    composed_graph = helper.make_graph(
        [*pre.nodes, *body.node, *post.nodes],
        "czbuild",
        [input_value],
        [output_value],
        initializer=[*pre.initializers, *body.initializer, *post.initializers],
        sparse_initializer=list(body.sparse_initializer),
    )
    imports = [i for i in prefixed.opset_import if i.domain not in ("", "ai.onnx")]
    model = helper.make_model(
        composed_graph, opset_imports=[helper.make_opsetid("", opset), *imports]
    )
    model.functions.extend(prefixed.functions)
    ir = ir_version_for_opset(opset)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as exc:
        raise ConversionError(f"{graph.origin}: ONNX shape inference failed: {exc}") from exc
    out = inferred.graph.output[0].type.tensor_type
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT
    if out.HasField("shape"):
        model.graph.output[0].type.tensor_type.shape.CopyFrom(out.shape)
    rank_out = len(model.graph.output[0].type.tensor_type.shape.dim)
    if rank_out != rank:
        raise ModelError(
            f"{graph.origin}: the composed model's output has rank {rank_out}, expected {rank}"
        )
    canonical = canonicalize_onnx(model)
    canonical.ir_version = ir
    check_onnx(canonical, opset=opset)
    return canonical


def specialize(
    composed: bytes, spatial_dims: tuple[int, ...]
) -> tuple[bytes, tuple[int, ...], tuple[int, ...]]:
    """Fix the spatial dims of a composed model; returns bytes and the concrete shapes.

    Raises:
        ModelError: The model's spatial rank differs, or it has a fixed size other than the
            tile, or its output size does not follow from the tile.
    """
    model = onnx.load_from_string(composed)
    in_dims = list(_dims(model.graph.input[0]))
    if len(in_dims) != len(spatial_dims) + 2:
        raise ModelError(
            f"spatial_dims {list(spatial_dims)} has {len(spatial_dims)} values but the model "
            f"has {len(in_dims) - 2} spatial dims; give one value per spatial dim"
        )
    for axis, size in enumerate(spatial_dims, start=1):
        fixed = in_dims[axis]
        if fixed is not None and fixed != size:
            raise ModelError(
                f"the model's input has the fixed size {in_dims[1:-1]}; it cannot run at "
                f"{list(spatial_dims)} (use spatial_dims {in_dims[1:-1]}, or export the model "
                "with free spatial dims)"
            )
    probe = ModelProto()
    probe.CopyFrom(model)
    dims = probe.graph.input[0].type.tensor_type.shape.dim
    for axis, size in enumerate(spatial_dims, start=1):
        dims[axis].Clear()
        dims[axis].dim_value = size
    out_dims = probe.graph.output[0].type.tensor_type.shape.dim
    for axis in range(1, len(out_dims) - 1):
        out_dims[axis].Clear()
    del probe.graph.value_info[:]
    try:
        inferred = onnx.shape_inference.infer_shapes(
            probe, check_type=True, strict_mode=True, data_prop=True
        )
    except Exception as exc:
        raise ModelError(f"the model cannot run at {list(spatial_dims)}: {exc}") from exc
    got = _dims(inferred.graph.output[0])
    if any(d is None for d in got[1:]):
        raise ModelError(
            f"at {list(spatial_dims)} ONNX shape inference cannot tell the model's output "
            f"shape ({list(got[1:])}, None = unknown); export the model with fixed dims"
        )
    out_shape = tuple(int(d or 0) for d in got[1:])
    in_shape = (*spatial_dims, int(in_dims[-1] or 0))
    try:
        payload = specialize_onnx(composed, spatial_dims, output_spatial_dims=out_shape[:-1])
    except ConversionError as exc:
        raise ModelError(f"the model cannot run at {list(spatial_dims)}: {exc}") from exc
    return payload, in_shape, out_shape
