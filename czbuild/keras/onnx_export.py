"""Keras model -> canonical ONNX bytes with tf2onnx.

:func:`export_onnx` traces ``model`` into a ``tf.function`` whose single input is named
``input``, converts it with tf2onnx, then canonicalises and checks the result with the
framework-neutral ONNX tools of :mod:`czbuild.onnx_graph` (canonical form, ``check_onnx``,
``ir_version_for_opset``; ``specialize_onnx`` fixes the spatial dims of a model converted with
undefined height/width, so one conversion serves a whole tile sweep).

Why ``tf.function`` + tf2onnx's ``from_function`` path rather than ``from_keras``: measured on
the 7.8M-parameter U-Net at a 512 tile, both convert in ~2.3-2.9 s and both are
deterministic in fresh processes, but ``from_function`` peaked ~200 MB lower and does not
touch the model (``from_keras`` renames duplicate Keras output names in place).

Failures raise :class:`~czbuild.errors.ConversionError`; nothing here falls back to another
payload.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import onnx
from onnx import ModelProto, NodeProto

from czbuild.errors import ConversionError
from czbuild.onnx_graph.canonical import INPUT_NAME, all_nodes, canonicalize_onnx
from czbuild.onnx_graph.checks import ir_version_for_opset, serialize_checked

logger = logging.getLogger(__name__)

__all__ = ["OutputRankError", "export_onnx"]


# --- export ----------------------------------------------------------------------------------


# Held while tf2onnx runs with the stable node order patched in (see _stable_node_order).
_TF2ONNX_LOCK = threading.RLock()


class OutputRankError(ConversionError):
    """tf2onnx produced a graph whose declared output rank differs from the model's.

    A wrong graph, never a reason to try another route: callers let it propagate.
    """


def export_onnx(
    model: Any,
    *,
    opset: int,
    input_shape: Sequence[int | None],
    ir_version: int | None = None,
) -> bytes:
    """Convert a single-input Keras model to canonical, checked ONNX bytes.

    Args:
        model: A ``keras.Model`` with one float32 input and one output.
        opset: ONNX opset of the default domain.
        input_shape: The input shape *including* the batch dim, ``None`` for undefined dims,
            e.g. ``(None, 512, 512, 1)`` or ``(None, None, None, 3)``.
        ir_version: ONNX IR version to declare; default :func:`ir_version_for_opset`.

    Returns:
        Canonical serialised ``ModelProto`` (input ``input``, output ``output``).

    Raises:
        ConversionError: tf2onnx fails, produces non-standard ops, or the checker rejects it.
    """
    shape = tuple(None if d is None else int(d) for d in input_shape)
    ir = ir_version if ir_version is not None else ir_version_for_opset(opset)
    expected_rank = len(model.outputs[0].shape)
    try:
        proto = _tf2onnx_convert(model, shape, opset)
    except ConversionError:
        raise
    except Exception as exc:  # tf2onnx raises anything from ValueError to KeyError
        raise ConversionError(
            f"tf2onnx could not convert the model at input shape {shape} (opset {opset}): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    finally:
        gc.collect()
    rank = _output_rank(proto)
    if rank is not None and rank != expected_rank:
        # A wrong graph, not just a different one: never ship or specialise it. With the node
        # order made stable (_stable_node_order) this has not been seen again; should tf2onnx
        # ever produce it, the conversion fails here instead of being retried until it works.
        raise OutputRankError(
            f"model {getattr(model, 'name', '?')!r}: tf2onnx declared an output of rank {rank} "
            f"for a rank-{expected_rank} model output at input shape {shape} (opset {opset}); "
            "the converted graph is wrong. Convert at a fixed tile (spatial_dims) and report "
            "the model"
        )
    _check_converted_ops(proto, opset)
    proto = canonicalize_onnx(proto)
    proto.ir_version = ir
    return serialize_checked(proto, opset=opset)


def _tf2onnx_convert(model: Any, input_shape: tuple[int | None, ...], opset: int) -> ModelProto:
    """Run tf2onnx on ``model`` traced at ``input_shape`` (the body of ``from_function``).

    Runs with tf2onnx's node order kept stable (:func:`_stable_node_order`), which makes the
    result the same in every process. Differs from ``tf2onnx.convert.from_function`` in three
    more ways: unsupported ops fail at once (``continue_on_error=False``) instead of leaving
    TensorFlow ops in the graph; optimizer
    errors propagate instead of being swallowed (no silent, partially optimised graph, and no
    deep copy of the graph per pass); and after every optimizer pass each node's protobuf is
    compacted. tf2onnx rewrites every node's attributes into the same protobuf message on each
    pass, and with the upb protobuf runtime the old copies stay in the message's arena: a
    31 MB model then grows by ~30 MB per pass (~700 MB for a U-Net). The output is the same.
    """
    import tensorflow as tf
    from tf2onnx import optimizer, tf_loader
    from tf2onnx.convert import tensor_names_from_structed
    from tf2onnx.tfonnx import process_tf_graph

    spec = tf.TensorSpec(input_shape, tf.float32, name=INPUT_NAME)
    function = tf.function(lambda x: model(x, training=False))
    concrete = function.get_concrete_function(spec)
    input_names = [t.name for t in concrete.inputs if t.dtype != tf.dtypes.resource]
    output_names = [t.name for t in concrete.outputs if t.dtype != tf.dtypes.resource]
    if len(input_names) != 1 or len(output_names) != 1:
        raise ConversionError(
            f"the model must have exactly one input and one output, the traced function has "
            f"{len(input_names)} inputs and {len(output_names)} outputs"
        )
    renames = tensor_names_from_structed(concrete, input_names, output_names)
    with tf.device("/cpu:0"):
        frozen = tf_loader.from_function(concrete, input_names, output_names)
        del concrete, function
        with tf.Graph().as_default() as tf_graph, _stable_node_order():
            tf.import_graph_def(frozen, name="")
            del frozen
            graph = process_tf_graph(
                tf_graph,
                continue_on_error=False,
                opset=opset,
                input_names=input_names,
                output_names=output_names,
                tensors_to_rename=renames,
            )
            passes = {
                name: _CompactingOptimizer.factory(cls)
                for name, cls in optimizer._get_optimizers().items()
            }
            graph = optimizer.optimize_graph(graph, catch_errors=False, optimizers=passes)
            return graph.make_model("")


@contextlib.contextmanager
def _stable_node_order() -> Iterator[None]:
    """Make tf2onnx keep its node list in a deterministic order while converting.

    The cause of the nondeterministic conversions: ``Graph.delete_unused_nodes`` -- run by
    tf2onnx after every optimizer pass -- rebuilds the node list from
    ``extract_sub_graph_nodes``, which returns ``list(set_of_Node_objects)``. ``Node`` has no
    ``__hash__``, so the set orders nodes by ``id()``, i.e. by memory address, which differs
    from process to process (allocator state, ASLR) and is independent of ``PYTHONHASHSEED``.
    The optimizers then walk the nodes in that order and rewrite differently; one of the orders
    makes tf2onnx 1.17 drop the final ``Squeeze`` of an undefined-size graph (a rank-5 output).

    Within this context ``extract_sub_graph_nodes`` returns the same nodes in the graph's
    current list order (which starts from tf2onnx's name-sorted topological sort), so every
    pass sees the same order in every process. The patch is scoped to the conversion and
    held under a lock, so conversions in several threads run one at a time and the original
    method is always restored (tf2onnx names things from process-global counters anyway).
    """
    from tf2onnx.graph import Graph

    with _TF2ONNX_LOCK:
        original = Graph.extract_sub_graph_nodes

        def ordered(self: Any, outputs_name: Any, *args: Any, **kwargs: Any) -> list[Any]:
            found = original(self, outputs_name, *args, **kwargs)
            position = {id(node): i for i, node in enumerate(self.get_nodes())}
            # Nodes not (yet) in the list, if any, go last, ordered by their unique names.
            return sorted(found, key=lambda n: (position.get(id(n), len(position)), n.name))

        Graph.extract_sub_graph_nodes = ordered
        try:
            yield
        finally:
            Graph.extract_sub_graph_nodes = original


def _output_rank(proto: ModelProto) -> int | None:
    """Rank the graph declares for its (first) output; None when it declares no shape."""
    if not proto.graph.output:
        return None
    value_type = proto.graph.output[0].type
    if not value_type.HasField("tensor_type") or not value_type.tensor_type.HasField("shape"):
        return None
    return len(value_type.tensor_type.shape.dim)


def _check_converted_ops(proto: ModelProto, opset: int) -> None:
    """Name TensorFlow ops tf2onnx left unconverted (it keeps them as unknown ONNX ops)."""
    bad: dict[str, list[str]] = {}
    for node in all_nodes(proto.graph):
        domain = "" if node.domain == "ai.onnx" else node.domain
        if domain == "" and onnx.defs.has(node.op_type, domain):
            continue
        bad.setdefault(f"{domain + '.' if domain else ''}{node.op_type}", []).append(node.name)
    if bad:
        details = "; ".join(
            f"{op} (at {', '.join(names[:3])})" for op, names in sorted(bad.items())
        )
        raise ConversionError(
            f"tf2onnx cannot convert these TensorFlow ops to standard ONNX opset {opset}: "
            f"{details}. Replace the layers using them, or try another opset"
        )


class _CompactingOptimizer:
    """Wraps one tf2onnx optimizer; compacts node protobufs after its pass (see above)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @classmethod
    def factory(cls, optimizer_class: Any) -> Any:
        return lambda: cls(optimizer_class())

    @property
    def graph_been_opt(self) -> bool:
        return bool(self._inner.graph_been_opt)

    def optimize(self, graph: Any, iteration: int) -> Any:
        graph = self._inner.optimize(graph, iteration) or graph
        _compact_nodes(graph)
        return graph


def _compact_nodes(graph: Any) -> None:
    """Give every tf2onnx node a fresh NodeProto so superseded attribute copies are freed."""
    for node in graph.get_nodes():
        old = getattr(node, "_op", None)
        if not isinstance(old, NodeProto) or not hasattr(node, "_attr"):
            return  # a tf2onnx we do not know: skip the memory optimisation, bytes unchanged
        fresh = NodeProto()
        fresh.CopyFrom(old)
        node._op = fresh
        node._attr = {a.name: a for a in fresh.attribute}
        for body in (node.get_body_graphs() or {}).values():
            _compact_nodes(body)
