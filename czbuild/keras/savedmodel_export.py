"""Keras model -> zipped, frozen TensorFlow SavedModel: the payload of legacy CZMODEL 3.0.0.

3.0.0 targets (ZEN Blue 3.2 / Core 3.1) load the payload with TensorFlow 2.0.0, which refuses
a graph naming an op or an attr it does not know. A ``tf.saved_model.save`` of today's
TensorFlow is full of both (``DisableCopyOnRead`` in the save/restore functions, ``debug_name``
on ``VarHandleOp``), so the payload is written differently:

1. **Freeze.** The model is traced at its fixed input shape (batch undefined) and its
   variables are folded into constants (``convert_variables_to_constants_v2``, which also
   inlines the function calls): one plain ``GraphDef``, no variables, no resource ops, no
   function library, so no save/restore functions either.
2. **Strip.** Attrs equal to their op's default value are removed (TensorFlow 2.0.0 fills in
   its own defaults; attrs added since 2.0.0 have defaults that keep the old behaviour),
   and attrs starting with ``_`` (internal annotations such as ``_user_specified_name``) are
   removed.
3. **Check.** Every node must use a TensorFlow 2.0.0 op and only attrs that op had
   (:func:`czbuild.formats.runtime.tf_node_problems`); otherwise the export fails naming the
   ops and nodes -- a payload ZEN would refuse is never written.
4. **Canonical names.** The placeholder is ``input``, the output an ``Identity`` named
   ``output`` (added unless the output already is one); every other node is renamed
   ``<Op>_<k>`` in the order of a depth-first walk from the output (inputs in slot order),
   so names never depend on Keras's process-global layer counters; nodes that do not
   contribute to the output are dropped.
5. **Write** a TF1-style SavedModel (``tf.compat.v1.saved_model.Builder``, tag ``serve``) with
   the ``serving_default`` predict signature (input ``input``, output ``output``), then
   re-serialise ``saved_model.pb`` deterministically and drop ``fingerprint.pb`` (optional;
   unknown to TensorFlow 2.0). With no variables the zip holds ``saved_model.pb`` only.

Everything left in the bytes is a function of the model's structure, weights and the
toolchain (``meta_info_def`` records the TensorFlow version that wrote it).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from czbuild.errors import ConversionError
from czbuild.formats import runtime
from czbuild.formats.ziputil import zip_directory

logger = logging.getLogger(__name__)

INPUT_KEY = "input"
OUTPUT_KEY = "output"
SIGNATURE = "serving_default"
SERVE_TAG = "serve"
FINGERPRINT_FILE = "fingerprint.pb"

__all__ = [
    "INPUT_KEY",
    "OUTPUT_KEY",
    "SIGNATURE",
    "export_savedmodel_zip",
    "frozen_graph_def",
    "write_savedmodel",
]


def export_savedmodel_zip(model: Any, *, custom_objects: Mapping[str, Any] | None = None) -> bytes:
    """Write ``model`` as a frozen, TensorFlow-2.0-loadable SavedModel; return it zipped.

    Args:
        model: A ``keras.Model`` with one float32 input of fixed height, width and channels
            and one output.
        custom_objects: Unused (kept for callers of the earlier clone-based export): freezing
            needs no re-creation of layers.

    Returns:
        Zip bytes holding ``saved_model.pb`` (stored, fixed timestamps).

    Raises:
        ConversionError: the model cannot be traced or frozen, or its graph needs ops or
            attrs TensorFlow 2.0.0 does not have.
    """
    del custom_objects
    with tempfile.TemporaryDirectory(prefix="czbuild-savedmodel-") as tmp:
        root = Path(tmp) / "saved_model"
        write_savedmodel(model, root)
        return zip_directory(root)


def write_savedmodel(model: Any, root: Path) -> None:
    """Write the SavedModel directory ``root`` (see the module docstring).

    Raises:
        ConversionError: as :func:`export_savedmodel_zip`.
    """
    graph_def = frozen_graph_def(model)
    _write_v1(graph_def, root)
    _normalize(root)


# --- freezing ----------------------------------------------------------------------------------


def frozen_graph_def(model: Any) -> Any:
    """The canonical, frozen, TensorFlow-2.0-compatible ``GraphDef`` of ``model``.

    Raises:
        ConversionError: see :func:`export_savedmodel_zip`.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    name = getattr(model, "name", "?")
    shape = tuple(model.inputs[0].shape)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ConversionError(f"model {name!r}: the SavedModel payload needs one input and output")
    if any(d is None for d in shape[1:]):
        raise ConversionError(
            f"model {name!r}: legacy 3.0.0 payloads need a fixed input size, got {shape}"
        )
    spec = tf.TensorSpec((None, *shape[1:]), tf.float32, name=INPUT_KEY)
    try:
        concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
        frozen = convert_variables_to_constants_v2(concrete)
    except Exception as exc:
        raise ConversionError(
            f"model {name!r}: TensorFlow cannot freeze the model: {type(exc).__name__}: {exc}"
        ) from exc
    graph_def = frozen.graph.as_graph_def()
    (placeholder,) = [t.op.name for t in frozen.inputs if t.dtype != tf.dtypes.resource]
    (result,) = [t.name for t in frozen.outputs]
    if len(graph_def.library.function):
        functions = sorted(f.signature.name for f in graph_def.library.function)
        raise ConversionError(
            f"model {name!r}: the frozen graph still calls functions {functions[:3]}; "
            "legacy 3.0.0 payloads need a plain graph"
        )
    _strip_attrs(graph_def)
    problems = runtime.tf_node_problems(
        runtime.TfNode("graph", n.name, n.op, tuple(sorted(n.attr))) for n in graph_def.node
    )
    if problems:
        raise ConversionError(
            f"model {name!r}: the legacy 3.0.0 payload must load in TensorFlow "
            f"{runtime.TF_RUNTIME_VERSION} (ZEN Blue 3.2), but its graph needs: "
            + "; ".join(problems)
            + ". Replace the layers using them, or target format version 3.1.0 / CZANN (ONNX)"
        )
    return _canonical(graph_def, placeholder, result)


def _strip_attrs(graph_def: Any) -> None:
    """Remove attrs equal to their op's default and internal ``_`` attrs (in place)."""
    from tensorflow.python.framework import op_def_registry

    for node in graph_def.node:
        op_def = op_def_registry.get(node.op)
        defaults = {a.name: a.default_value for a in op_def.attr if a.HasField("default_value")}
        for key in list(node.attr):
            if key.startswith("_") or (key in defaults and node.attr[key] == defaults[key]):
                del node.attr[key]
        node.ClearField("device")


def _canonical(graph_def: Any, placeholder: str, result: str) -> Any:
    """Rename and reorder ``graph_def`` (see the module docstring); return a new GraphDef.

    Raises:
        ConversionError: the graph has a cycle or references a node that does not exist.
    """
    from tensorflow.core.framework import graph_pb2

    by_name = {n.name: n for n in graph_def.node}
    out_node, _, out_index = result.partition(":")

    def deps(node: Any) -> list[str]:
        return [ref.lstrip("^").partition(":")[0] for ref in node.input]

    order: list[str] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack = [(out_node, iter(deps(by_name[out_node])))]
    state[out_node] = 1
    while stack:
        current, pending = stack[-1]
        for dep in pending:
            if dep not in by_name:
                raise ConversionError(f"frozen graph references a missing node {dep!r}")
            if state.get(dep) == 2:
                continue
            if state.get(dep) == 1:
                raise ConversionError(f"frozen graph has a cycle through {dep!r}")
            state[dep] = 1
            stack.append((dep, iter(deps(by_name[dep]))))
            break
        else:
            stack.pop()
            state[current] = 2
            order.append(current)
    if placeholder not in state:
        raise ConversionError("the model output does not depend on its input")
    names: dict[str, str] = {}
    counter = 0
    reuse_output = by_name[out_node].op == "Identity" and out_index in ("", "0")
    for old in order:
        if old == placeholder:
            names[old] = INPUT_KEY
        elif old == out_node and reuse_output:
            names[old] = OUTPUT_KEY
        else:
            names[old] = f"{by_name[old].op}_{counter}"
            counter += 1

    def rename(ref: str) -> str:
        control = ref.startswith("^")
        base, sep, index = ref.lstrip("^").partition(":")
        return ("^" if control else "") + names[base] + sep + index

    canonical = graph_pb2.GraphDef()
    canonical.versions.CopyFrom(graph_def.versions)
    for old in order:
        node = canonical.node.add()
        node.CopyFrom(by_name[old])
        node.name = names[old]
        inputs = [rename(ref) for ref in node.input]
        del node.input[:]
        node.input.extend(inputs)
    if reuse_output:
        return canonical
    output = canonical.node.add()
    output.name = OUTPUT_KEY
    output.op = "Identity"
    output.input.append(names[out_node] + ("" if out_index in ("", "0") else f":{out_index}"))
    output.attr["T"].CopyFrom(by_name[out_node].attr.get("T") or _dtype_attr(graph_def, result))
    return canonical


def _dtype_attr(graph_def: Any, result: str) -> Any:
    """The ``T`` attr value for an Identity of ``result`` when its producer has no ``T``."""
    import tensorflow as tf
    from tensorflow.core.framework import attr_value_pb2

    with tf.Graph().as_default() as graph:
        tf.import_graph_def(graph_def, name="")
        dtype = graph.get_tensor_by_name(result).dtype
    return attr_value_pb2.AttrValue(type=dtype.as_datatype_enum)


# --- writing -----------------------------------------------------------------------------------


def _write_v1(graph_def: Any, root: Path) -> None:
    """Write ``graph_def`` as a TF1-style SavedModel with the ``serving_default`` signature."""
    import tensorflow as tf

    v1 = tf.compat.v1
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(graph_def, name="")
        x = graph.get_tensor_by_name(f"{INPUT_KEY}:0")
        y = graph.get_tensor_by_name(f"{OUTPUT_KEY}:0")
        signature = v1.saved_model.signature_def_utils.predict_signature_def(
            inputs={INPUT_KEY: x}, outputs={OUTPUT_KEY: y}
        )
        with v1.Session(graph=graph) as session:
            builder = v1.saved_model.Builder(str(root))
            builder.add_meta_graph_and_variables(
                session,
                [SERVE_TAG],
                signature_def_map={SIGNATURE: signature},
                strip_default_attrs=True,
                clear_devices=True,
            )
            builder.save()


def _normalize(root: Path) -> None:
    """Drop ``fingerprint.pb`` and empty folders; re-serialise ``saved_model.pb`` canonically.

    Raises:
        ConversionError: the written graph differs from the checked one (a TensorFlow change
            re-added something TensorFlow 2.0.0 lacks).
    """
    from tensorflow.core.protobuf import saved_model_pb2

    fingerprint = root / FINGERPRINT_FILE
    if fingerprint.exists():
        fingerprint.unlink()
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    pb = root / "saved_model.pb"
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString(pb.read_bytes())
    for meta in saved.meta_graphs:
        _strip_attrs(meta.graph_def)
        problems = runtime.tf_node_problems(
            runtime.TfNode("graph", n.name, n.op, tuple(sorted(n.attr)))
            for n in meta.graph_def.node
        )
        if problems or len(meta.graph_def.library.function):
            raise ConversionError(
                "the written SavedModel is not TensorFlow "
                f"{runtime.TF_RUNTIME_VERSION}-compatible: {problems or 'function library'}"
            )
    pb.write_bytes(saved.SerializeToString(deterministic=True))
