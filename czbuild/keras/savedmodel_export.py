"""Keras model -> zipped TensorFlow SavedModel, the payload of legacy CZMODEL 3.0.0.

The SavedModel is written by ``tf.saved_model.save`` from a ``tf.Module`` holding the model
and one ``serving_default`` signature (input ``input``, output ``output``), then packed with
the deterministic :func:`czbuild.formats.ziputil.zip_directory`.

A plain save is not byte-stable: Keras names layers and variables from process-global
counters (``conv2d_7``), TensorFlow names traced functions from a global uid
(``__inference_serve_271``) and captured inputs by uid (``_user_specified_name: "164"``), and
``fingerprint.pb`` holds a random UUID. This module normalises all of that:

1. the model is cloned with canonical layer names (``layer_<k>``, models ``model_<k>``) and
   the source weights (layers that cannot be re-created from their config are reused as
   they are, keeping their own names);
2. function names are renumbered by creation order and the library sorted by name;
   captured-resource arguments named after a uid (``<scope>_233``) and numeric
   ``_user_specified_name`` values are renumbered by rank;
3. ``fingerprint.pb`` is omitted: TensorFlow loads SavedModels without it (it is optional,
   and TensorFlow 2.0 does not know it).

What remains process-dependent is documented in ``docs/reproducibility.md``.
"""

from __future__ import annotations

import itertools
import logging
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from czbuild.errors import ConversionError
from czbuild.formats.ziputil import zip_directory

logger = logging.getLogger(__name__)

INPUT_KEY = "input"
OUTPUT_KEY = "output"
SIGNATURE = "serving_default"
FINGERPRINT_FILE = "fingerprint.pb"

_FUNCTION_NAME = re.compile(r"^(?P<stem>__inference_.*)_(?P<uid>\d+)$")
_UID_SUFFIX = re.compile(r"^(?P<stem>.+)_(?P<uid>\d+)$")

__all__ = ["INPUT_KEY", "OUTPUT_KEY", "SIGNATURE", "export_savedmodel_zip", "write_savedmodel"]


def export_savedmodel_zip(model: Any, *, custom_objects: Mapping[str, Any] | None = None) -> bytes:
    """Save ``model`` as a normalised SavedModel and return it as a deterministic zip.

    Args:
        model: A ``keras.Model`` with one float32 input and one output.
        custom_objects: Custom classes/functions needed to re-create layers from their config.

    Returns:
        Zip bytes: ``saved_model.pb``, ``variables/variables.data-00000-of-00001``,
        ``variables/variables.index`` (sorted, stored, fixed timestamps).

    Raises:
        ConversionError: TensorFlow cannot save the model.
    """
    with tempfile.TemporaryDirectory(prefix="czbuild-savedmodel-") as tmp:
        root = Path(tmp) / "saved_model"
        write_savedmodel(model, root, custom_objects=custom_objects)
        return zip_directory(root)


def write_savedmodel(
    model: Any, root: Path, *, custom_objects: Mapping[str, Any] | None = None
) -> None:
    """Write the normalised SavedModel directory ``root`` (see the module docstring).

    Raises:
        ConversionError: TensorFlow cannot save the model.
    """
    import tensorflow as tf

    canonical = canonical_clone(model, custom_objects=custom_objects)
    shape = tuple(canonical.inputs[0].shape)
    spec = tf.TensorSpec(shape, tf.float32, name=INPUT_KEY)

    @tf.function(input_signature=[spec])
    def serve(x: Any) -> dict[str, Any]:
        return {OUTPUT_KEY: canonical(x, training=False)}

    module = tf.Module()
    module.model = canonical
    module.serve = serve
    try:
        tf.saved_model.save(module, str(root), signatures={SIGNATURE: serve})
    except Exception as exc:
        raise ConversionError(
            f"TensorFlow cannot save the model as a SavedModel: {type(exc).__name__}: {exc}"
        ) from exc
    normalize_saved_model(root)


def canonical_clone(model: Any, *, custom_objects: Mapping[str, Any] | None = None) -> Any:
    """A copy of ``model`` whose layer and model names do not depend on process history.

    Leaf layers are re-created from their config as ``layer_<k>`` (k in graph order) and get
    the source weights; nested and outer models are named ``model_<k>``. A layer that cannot
    be re-created (no ``get_config``, e.g. a SavedModel signature layer) is reused as is.
    If the model cannot be cloned at all it is returned unchanged (logged): its SavedModel
    then carries its own, possibly counter-based, names.
    """
    import keras

    counter = itertools.count()

    def clone_layer(layer: Any) -> Any:
        try:
            config = layer.get_config()
            config["name"] = f"layer_{next(counter)}"
            return layer.__class__.from_config(config)
        except Exception as exc:
            logger.info(
                "layer %r cannot be re-created from its config (%s); reused", layer.name, exc
            )
            return layer

    try:
        with keras.saving.custom_object_scope(dict(custom_objects or {})):
            clone = keras.models.clone_model(model, clone_function=clone_layer, recursive=True)
        clone.set_weights(model.get_weights())
    except Exception as exc:
        logger.warning(
            "model %r cannot be cloned with canonical names (%s: %s); the SavedModel keeps its "
            "layer names and may differ between processes",
            getattr(model, "name", "?"),
            type(exc).__name__,
            exc,
        )
        return model
    _rename_models(clone, itertools.count())
    return clone


def _rename_models(model: Any, counter: Any) -> None:
    import keras

    model.name = f"model_{next(counter)}"
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _rename_models(layer, counter)


# --- normalising the written files --------------------------------------------------------------


def normalize_saved_model(root: Path) -> None:
    """Rewrite ``saved_model.pb`` canonically and drop ``fingerprint.pb`` (in place)."""
    from tensorflow.core.protobuf import saved_model_pb2

    fingerprint = root / FINGERPRINT_FILE
    if fingerprint.exists():
        fingerprint.unlink()
    pb = root / "saved_model.pb"
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString(pb.read_bytes())
    mapping: dict[str, str] = {}
    for meta in saved.meta_graphs:
        mapping.update(_function_renames(meta.graph_def.library))
    _replace_strings(saved, mapping)
    for meta in saved.meta_graphs:
        _sort_library(meta.graph_def.library)
        for function in meta.graph_def.library.function:
            _renumber_resource_args(function)
        _renumber_user_specified_names(meta.graph_def)
    data = saved.SerializeToString(deterministic=True)
    leftover = [old for old in mapping if old.encode() in data]
    if leftover:  # a reference we did not rewrite: the SavedModel would be broken
        raise ConversionError(f"SavedModel normalisation missed function references: {leftover}")
    pb.write_bytes(data)


def _function_renames(library: Any) -> dict[str, str]:
    """``__inference_<name>_<uid>`` -> ``__inference_<name>_<rank>`` (rank by uid)."""
    found = []
    for function in library.function:
        match = _FUNCTION_NAME.match(function.signature.name)
        if match:
            found.append((int(match.group("uid")), match.group("stem"), function.signature.name))
    found.sort()
    return {old: f"{stem}_{rank}" for rank, (_, stem, old) in enumerate(found)}


def _replace_strings(message: Any, mapping: Mapping[str, str]) -> None:
    """Replace every string field (and string map key) equal to a key of ``mapping``."""
    from google.protobuf.descriptor import FieldDescriptor

    if not mapping:
        return
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                _replace_in_map(value, field, mapping)
            elif field.is_repeated:
                for item in value:
                    _replace_strings(item, mapping)
            else:
                _replace_strings(value, mapping)
        elif field.type == FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                for i, item in enumerate(value):
                    if item in mapping:
                        value[i] = mapping[item]
            elif value in mapping:
                setattr(message, field.name, mapping[value])


def _replace_in_map(container: Any, field: Any, mapping: Mapping[str, str]) -> None:
    from google.protobuf.descriptor import FieldDescriptor

    key_field = field.message_type.fields_by_name["key"]
    value_field = field.message_type.fields_by_name["value"]
    is_message = value_field.type == FieldDescriptor.TYPE_MESSAGE
    if key_field.type == FieldDescriptor.TYPE_STRING and any(k in mapping for k in container):
        items = []
        for key in list(container):
            if is_message:
                copy = type(container[key])()
                copy.CopyFrom(container[key])
                items.append((mapping.get(key, key), copy))
            else:
                items.append((mapping.get(key, key), container[key]))
        container.clear()
        for key, item in items:
            if is_message:
                container[key].CopyFrom(item)
            else:
                container[key] = item
    if is_message:
        for key in list(container):
            _replace_strings(container[key], mapping)
    elif value_field.type == FieldDescriptor.TYPE_STRING:
        for key in list(container):
            if container[key] in mapping:
                container[key] = mapping[container[key]]


def _sort_library(library: Any) -> None:
    functions = sorted(library.function, key=lambda f: f.signature.name)
    copies = []
    for function in functions:
        copy = type(function)()
        copy.CopyFrom(function)
        copies.append(copy)
    del library.function[:]
    library.function.extend(copies)


def _renumber_resource_args(function: Any) -> None:
    """Rename captured-resource arguments ``<scope>_<uid>`` to ``<scope>_<rank>``.

    TensorFlow names the arguments that carry captured variables after a global uid when
    the capture has no stable name (e.g. variables of a loaded SavedModel). Argument names
    are local to the function (callers pass arguments by position), so renaming them --
    and every reference inside the function -- is safe. Skipped if a new name would collide.
    """
    from tensorflow.core.framework import types_pb2

    args = function.signature.input_arg
    found = []
    for index, arg in enumerate(args):
        match = _UID_SUFFIX.match(arg.name)
        if arg.type == types_pb2.DT_RESOURCE and match:
            found.append((int(match.group("uid")), index, match.group("stem")))
    if not found:
        return
    mapping = {
        args[index].name: f"{stem}_{rank}" for rank, (_, index, stem) in enumerate(sorted(found))
    }
    untouched = {a.name for a in args if a.name not in mapping}
    if len(set(mapping.values())) != len(mapping) or untouched & set(mapping.values()):
        return
    for arg in args:
        arg.name = mapping.get(arg.name, arg.name)
    for node in function.node_def:
        for i, ref in enumerate(node.input):
            base, sep, rest = ref.partition(":")
            if base in mapping:
                node.input[i] = mapping[base] + sep + rest
    for key in list(function.ret):
        base, sep, rest = function.ret[key].partition(":")
        if base in mapping:
            function.ret[key] = mapping[base] + sep + rest
    for attrs in function.arg_attr.values():
        value = attrs.attr.get("_user_specified_name")
        if value is not None and value.s.decode() in mapping:
            value.s = mapping[value.s.decode()].encode()


def _renumber_user_specified_names(graph_def: Any) -> None:
    """Numeric ``_user_specified_name`` attrs (uids of captured inputs) -> their rank.

    Ranked per function (and once for the top-level graph): the values of one function come
    from one tracing, while different functions may come from different processes (a loaded
    SavedModel keeps the numbers of the process that wrote it).
    """
    scopes = [[n.attr.get("_user_specified_name") for n in graph_def.node]]
    for function in graph_def.library.function:
        scopes.append(
            [n.attr.get("_user_specified_name") for n in function.node_def]
            + [a.attr.get("_user_specified_name") for a in function.arg_attr.values()]
        )
    for holders in scopes:
        numeric = [h for h in holders if h is not None and h.s.isdigit()]
        rank = {uid: str(i).encode() for i, uid in enumerate(sorted({int(h.s) for h in numeric}))}
        for holder in numeric:
            holder.s = rank[int(holder.s)]
