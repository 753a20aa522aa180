"""Model sources: turn whatever the user points at into one ``keras.Model``.

Supported sources (see :func:`source_kind`):

* ``"memory"`` -- a ``keras.Model`` object, returned as is;
* ``"keras"`` -- a Keras 3 ``.keras`` file;
* ``"h5"`` -- a legacy HDF5 ``.h5`` / ``.hdf5`` file;
* ``"saved_model"`` -- a TensorFlow SavedModel directory (from Keras ``model.export()`` or
  ``tf.saved_model.save``), wrapped into a functional model around its serving signature;
* ``"factory"`` -- ``"path/to/file.py:function"``: the file is executed and ``function()``
  must return a ``keras.Model``.

TensorFlow and Keras are imported lazily inside the functions that need them, so
:func:`source_kind` (used by the recipe layer) stays cheap.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
import sys
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from czbuild.errors import ModelError
from czbuild.sources.kinds import is_import_name

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["SOURCE_KINDS", "load_custom_objects", "load_model", "parse_factory", "source_kind"]

SOURCE_KINDS = ("memory", "keras", "h5", "saved_model", "factory")
_KERAS_SUFFIXES = (".keras",)
_H5_SUFFIXES = (".h5", ".hdf5")
_SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
_FACTORY_RE = re.compile(r"^(?P<file>.+\.py):(?P<func>[A-Za-z_][A-Za-z0-9_]*)$")
_MISSING_CLASS_RES = (
    re.compile(r"Could not locate (?:class|function) '([^']+)'"),
    re.compile(r"Unknown (?:layer|object|class|activation|loss|metric|function)[^:]*: '?([\w>.]+)"),
)
_CUSTOM_OBJECTS_HINT = (
    "pass custom_objects={{'{name}': {short}}} to the library call, or list the Python file "
    "defining it under model.custom_objects: [file.py] in the recipe"
)


# --- classification (no TensorFlow) -----------------------------------------------------------


def parse_factory(source: str) -> tuple[Path, str] | None:
    """Split ``"path/to/file.py:function"`` into ``(Path, "function")``; None if not that form.

    The split is at the last colon, so Windows drive letters (``C:\\m\\f.py:build``) work.
    """
    match = _FACTORY_RE.match(source.strip())
    if match is None:
        return None
    return Path(match.group("file")), match.group("func")


def _is_keras_model(obj: Any) -> bool:
    keras_module = sys.modules.get("keras")
    if keras_module is None:  # nothing can be a keras.Model before keras was imported
        return False
    return isinstance(obj, keras_module.Model)


def source_kind(source: Any, *, must_exist: bool = True) -> str:
    """Classify a model source without importing TensorFlow.

    Args:
        source: A ``keras.Model``, a path (``str`` / ``os.PathLike``) or a factory string
            ``"file.py:function"``.
        must_exist: If True, the path (or the factory's file) must exist; if False, the kind
            is decided from the syntax alone (paths without a known suffix are SavedModel
            directories).

    Returns:
        One of :data:`SOURCE_KINDS`.

    Raises:
        ModelError: Unsupported object type, missing path, a directory that is not a
            SavedModel, or an unknown file extension. The message names the path.
    """
    if _is_keras_model(source):
        return "memory"
    if not isinstance(source, (str, os.PathLike)):
        raise ModelError(
            f"model source: unsupported type {type(source).__name__}; pass a keras.Model, a path "
            "to a .keras / .h5 file or SavedModel directory, or 'file.py:function'"
        )
    text = os.fspath(source)
    if isinstance(text, bytes):  # pragma: no cover - bytes paths are unusual
        text = os.fsdecode(text)
    factory = parse_factory(text) if isinstance(source, str) else None
    if factory is not None:
        if must_exist and not factory[0].is_file():
            raise ModelError(f"model source {text!r}: factory file {str(factory[0])!r} not found")
        return "factory"
    path = Path(text)
    suffix = path.suffix.lower()
    if must_exist and not path.exists():
        raise ModelError(f"model source {text!r}: no such file or directory")
    if path.is_dir() or (not must_exist and suffix == ""):
        if must_exist and not any((path / name).is_file() for name in _SAVED_MODEL_FILES):
            raise ModelError(
                f"model source {text!r}: directory is not a TensorFlow SavedModel "
                "(no saved_model.pb); point at a .keras / .h5 file or a SavedModel directory"
            )
        return "saved_model"
    if suffix in _KERAS_SUFFIXES:
        return "keras"
    if suffix in _H5_SUFFIXES:
        return "h5"
    if suffix == ".py":
        raise ModelError(
            f"model source {text!r}: a Python file needs the factory function too, "
            f"e.g. '{text}:build_model'"
        )
    raise ModelError(
        f"model source {text!r}: unknown extension {suffix or '(none)'!r}; supported: .keras, "
        ".h5/.hdf5, a SavedModel directory, or 'file.py:function'"
    )


# --- executing user Python files ----------------------------------------------------------------

_MODULES: dict[str, ModuleType] = {}


def _exec_python_file(path: Path, *, what: str) -> ModuleType:
    """Execute a Python file under a unique module name and return the module.

    The same file with the same content is executed only once per process (the module is
    reused), so classes keep their identity and Keras registrations are not repeated. While
    it runs, the file's folder is on ``sys.path`` so that it can import sibling modules.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{what} {str(path)!r}: file not found")
    if path.suffix != ".py":
        raise ModelError(f"{what} {str(path)!r}: must be a Python file ending in .py")
    resolved = path.resolve()
    digest = hashlib.sha256(str(resolved).encode() + b"\0" + resolved.read_bytes()).hexdigest()
    cached = _MODULES.get(digest)
    if cached is not None:
        return cached
    stem = re.sub(r"\W", "_", resolved.stem)
    name = f"_czbuild_user_{stem}_{digest[:16]}"
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:  # pragma: no cover - .py files always have a loader
        raise ModelError(f"{what} {str(path)!r}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses, pickling etc. look modules up by name
    folder = str(resolved.parent)
    sys.path.insert(0, folder)  # like running the file: its sibling modules are importable
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ModelError(
            f"{what} {str(path)!r}: executing the file failed: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:  # pragma: no cover - the file removed it itself
            pass
    _MODULES[digest] = module
    return module


def import_framework() -> None:
    """Import Keras (and with it TensorFlow) now.

    The conversion worker calls this before it records what a model source reads
    (:mod:`czbuild.builder.reads`): Keras' own start-up reads (``~/.keras/keras.json``) are
    not inputs of the model.
    """
    import keras  # noqa: F401


def forget_user_modules(files: Iterable[str | os.PathLike[str]] = ()) -> None:
    """Forget every user file executed so far and the modules loaded from ``files``.

    The next load of a factory or custom-object file then executes it (and imports its
    local modules) afresh, so what it reads and imports can be recorded again
    (:mod:`czbuild.builder.reads`). Classes from the forgotten modules stay valid for models
    already loaded.
    """
    _MODULES.clear()
    paths = {os.path.abspath(p) for p in files}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if name.startswith("_czbuild_user_") or (
            isinstance(file, str) and os.path.abspath(file) in paths
        ):
            del sys.modules[name]


def _custom_objects_of(module: ModuleType, path: Path) -> dict[str, Any]:
    import keras

    found: dict[str, Any] = {}
    for value in vars(module).values():
        if getattr(value, "__module__", None) != module.__name__:
            continue
        registered = keras.saving.get_registered_name(value) if callable(value) else None
        is_layer = isinstance(value, type) and issubclass(value, keras.layers.Layer)
        is_registered = (
            registered is not None and keras.saving.get_registered_object(registered) is value
        )
        if is_layer or is_registered:
            found[value.__name__] = value
            if registered and registered != value.__name__:
                found[registered] = value
    extra = vars(module).get("CUSTOM_OBJECTS")
    if extra is not None:
        if not isinstance(extra, Mapping) or not all(isinstance(k, str) for k in extra):
            raise ModelError(
                f"custom objects file {str(path)!r}: CUSTOM_OBJECTS must be a dict mapping "
                f"names to classes or functions, got {type(extra).__name__}"
            )
        found.update(extra)
    return found


def _imported_objects(name: str) -> dict[str, Any]:
    """The custom objects an importable ``module:attribute`` names.

    The attribute may be a class or function (collected under its ``__name__`` and its Keras
    registered name), a dict of them, or a module (collected like a file).

    Raises:
        ModelError: The module cannot be imported or has no such attribute.
    """
    import importlib

    import keras

    module_name, _, attribute = name.partition(":")
    try:
        value: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ModelError(
            f"custom objects {name!r}: cannot import {module_name!r} "
            f"({type(exc).__name__}: {exc}); install the package that provides it"
        ) from exc
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise ModelError(f"custom objects {name!r}: {module_name} has no attribute {part!r}")
        value = getattr(value, part)
    if isinstance(value, ModuleType):
        return _custom_objects_of(value, Path(str(getattr(value, "__file__", name))))
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise ModelError(f"custom objects {name!r}: a dict of them must have string keys")
        return dict(value)
    if not callable(value):
        raise ModelError(
            f"custom objects {name!r}: is a {type(value).__name__}; name a class, a function, "
            "a dict of them or a module"
        )
    found = {getattr(value, "__name__", attribute.rsplit(".", 1)[-1]): value}
    registered = keras.saving.get_registered_name(value)
    if registered:
        found[registered] = value
    return found


def load_custom_objects(files: Iterable[str | os.PathLike[str]]) -> dict[str, Any]:
    """Execute Python files (or import ``module:attribute`` names) and collect the custom
    Keras objects they define.

    Collected: every ``keras.layers.Layer`` subclass defined in a file, everything a file
    registered with ``keras.saving.register_keras_serializable`` (under its class name and
    its registered name ``"package>Name"``), and the entries of a module-level
    ``CUSTOM_OBJECTS`` dict. An importable ``"module:attribute"`` (e.g.
    ``"keras_hub.layers:ReversibleEmbedding"``, ``"csbdeep.internals.nets:custom_objects"``)
    contributes that class or function, that dict, or that module's objects.

    Args:
        files: Paths of ``.py`` files, or ``module:attribute`` names.

    Returns:
        A dict suitable for ``custom_objects=`` of :func:`load_model`.

    Raises:
        ModelError: A file is missing, not a ``.py`` file, fails to execute, has a malformed
            ``CUSTOM_OBJECTS``, or two files define different objects under the same name.
    """
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for file in files:
        if is_import_name(file):
            objects, path = _imported_objects(str(file)), Path(str(file))
        else:
            path = Path(file)
            module = _exec_python_file(path, what="custom objects file")
            objects = _custom_objects_of(module, path)
        for name, obj in objects.items():
            if name in merged and merged[name] is not obj:
                raise ModelError(
                    f"custom objects file {str(path)!r}: {name!r} is also defined in "
                    f"{origin[name]!r}; rename one of them"
                )
            merged[name] = obj
            origin[name] = str(path)
    return merged


# --- loading ------------------------------------------------------------------------------------


def _missing_class(message: str) -> str | None:
    for pattern in _MISSING_CLASS_RES:
        match = pattern.search(message)
        if match:
            return match.group(1)
    return None


def _load_keras_file(path: Path, custom_objects: Mapping[str, Any] | None) -> keras.Model:
    import keras

    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ModelError(
            f"model source {str(path)!r}: not a readable .keras file (a .keras file is a zip "
            "archive; this one is not: truncated, corrupt, or saved in another format?); "
            "save the model again with model.save('name.keras')"
        )
    try:
        model = keras.models.load_model(path, custom_objects=custom_objects, compile=False)
    except Exception as exc:
        message = str(exc)
        missing = _missing_class(message)
        if missing is not None:
            short = missing.split(">")[-1]
            raise ModelError(
                f"model source {str(path)!r}: needs the custom class {missing!r}, which is not "
                "registered; " + _CUSTOM_OBJECTS_HINT.format(name=missing, short=short)
            ) from exc
        if "safe_mode" in message or "Lambda" in message:
            raise ModelError(
                f"model source {str(path)!r}: contains a Lambda layer, which Keras refuses to "
                "deserialise in safe mode; replace it by a registered custom layer, or load the "
                "model yourself in a factory ('file.py:function') with safe_mode=False if you "
                "trust the file"
            ) from exc
        first = message.strip().splitlines()[0] if message.strip() else ""
        raise ModelError(
            f"model source {str(path)!r}: cannot be loaded by Keras: {type(exc).__name__}: {first}"
        ) from exc
    if not isinstance(model, keras.Model):
        raise ModelError(
            f"model source {str(path)!r}: holds a {type(model).__name__}, not a keras.Model"
        )
    return model


def _single_spec(structure: Any, what: str, path: Path, signature: str) -> tuple[Any, Any]:
    """Return ``(key, TensorSpec/Tensor)`` of the only tensor in ``structure``."""
    import tensorflow as tf

    if isinstance(structure, Mapping):
        items = list(structure.items())
    else:
        items = [(None, t) for t in tf.nest.flatten(structure)]
    if len(items) != 1:
        names = ", ".join(sorted(str(k) for k, _ in items)) if items else "none"
        raise ModelError(
            f"model source {str(path)!r}: signature {signature!r} has {len(items)} {what}s "
            f"({names}); czbuild needs exactly one input and one output"
        )
    return items[0]


def _load_saved_model(path: Path) -> keras.Model:
    import keras
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:
        raise ModelError(
            f"model source {str(path)!r}: cannot be loaded as a SavedModel: "
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        ) from exc
    signatures = dict(loaded.signatures)
    if "serving_default" in signatures:
        name = "serving_default"
    elif len(signatures) == 1:
        (name,) = signatures
    else:
        found = ", ".join(sorted(signatures)) or "none"
        raise ModelError(
            f"model source {str(path)!r}: SavedModel has no 'serving_default' signature "
            f"(signatures: {found}); export it with Keras model.export(path) or "
            "tf.saved_model.save(obj, path, signatures=...)"
        )
    function = signatures[name]
    args, kwargs = function.structured_input_signature
    if args and kwargs:  # pragma: no cover - signatures take keyword arguments only
        raise ModelError(f"model source {str(path)!r}: signature {name!r} mixes argument kinds")
    input_key, input_spec = _single_spec(kwargs or args, "input", path, name)
    output_key, _ = _single_spec(function.structured_outputs, "output", path, name)
    shape = input_spec.shape
    if shape.rank is None or shape.rank < 2:
        raise ModelError(
            f"model source {str(path)!r}: signature {name!r} input has shape {shape}; "
            "czbuild needs a batch axis and a channel axis (NHWC)"
        )
    layer = _saved_model_layer_class()(
        loaded, name, input_key, output_key, name=f"saved_model_{_layer_safe(path.name)}"
    )
    inputs = keras.Input(
        batch_shape=tuple(shape.as_list()),
        dtype=input_spec.dtype.name,
        name=_layer_safe(str(input_key)) if input_key else "input",
    )
    try:
        outputs = layer(inputs)
    except Exception as exc:
        raise ModelError(
            f"model source {str(path)!r}: cannot call signature {name!r} on its own input "
            f"spec {shape}: {type(exc).__name__}: {exc}"
        ) from exc
    return keras.Model(inputs, outputs, name=_layer_safe(path.name) or "saved_model")


def _layer_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text).strip("_")


@functools.cache
def _saved_model_layer_class() -> type:
    """The Keras layer class calling a SavedModel signature (created on first use)."""
    import keras

    class SavedModelSignature(keras.layers.Layer):
        """Calls one signature of a loaded SavedModel; not serialisable (reload the source)."""

        def __init__(
            self, loaded: Any, signature: str, input_key: Any, output_key: Any, **kwargs: Any
        ) -> None:
            super().__init__(trainable=False, **kwargs)
            self._loaded = loaded  # keeps the variables alive and trackable for export
            self._signature = signature
            self._input_key = input_key
            self._output_key = output_key

        def call(self, inputs: Any) -> Any:
            function = self._loaded.signatures[self._signature]
            if self._input_key is None:
                result = function(inputs)
            else:
                result = function(**{self._input_key: inputs})
            if self._output_key is None:
                import tensorflow as tf

                return tf.nest.flatten(result)[0]
            return result[self._output_key]

    return SavedModelSignature


def _call_factory(source: str, custom_objects: Mapping[str, Any] | None) -> keras.Model:
    import keras

    parsed = parse_factory(source)
    assert parsed is not None  # guaranteed by source_kind
    file, func_name = parsed
    module = _exec_python_file(file, what="model factory file")
    func = getattr(module, func_name, None)
    if func is None:
        available = sorted(
            k
            for k, v in vars(module).items()
            if callable(v)
            and not k.startswith("_")
            and getattr(v, "__module__", None) == module.__name__
        )
        raise ModelError(
            f"model source {source!r}: {str(file)!r} defines no {func_name!r}; "
            f"callables defined there: {', '.join(available) or 'none'}"
        )
    if not callable(func):
        raise ModelError(f"model source {source!r}: {func_name!r} is not callable")
    try:
        with keras.saving.custom_object_scope(dict(custom_objects or {})):
            model = func()
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(
            f"model source {source!r}: {func_name}() raised {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(model, keras.Model):
        raise ModelError(
            f"model source {source!r}: {func_name}() returned {type(model).__name__}, "
            "but a factory must return a keras.Model"
        )
    return model


def load_model(source: Any, *, custom_objects: Mapping[str, Any] | None = None) -> keras.Model:
    """Load a model from any supported source (see :func:`source_kind`).

    Args:
        source: A ``keras.Model`` (returned as is), a ``.keras`` / ``.h5`` path, a SavedModel
            directory, or ``"path/to/file.py:function"``.
        custom_objects: Name -> class/function for custom layers the saved model uses (see
            :func:`load_custom_objects`); also active while a factory runs.

    Returns:
        A ``keras.Model`` with one or more inputs (callers check the count). A channels-first
        image model (saved after ``keras.config.set_image_data_format("channels_first")``,
        e.g. under the PyTorch backend) comes back channels-last
        (:func:`czbuild.keras.wrap.channels_last`); any other model as it is.

    Raises:
        ModelError: The source is missing or unsupported, cannot be loaded, needs a custom
            class that was not given (the message names it and says how to pass it), is a
            SavedModel without a single-input single-output signature, or a factory fails.
    """
    if custom_objects is not None and (
        not isinstance(custom_objects, Mapping)
        or not all(isinstance(k, str) for k in custom_objects)
    ):
        raise ModelError(
            "custom_objects: must be a dict mapping class names to classes, e.g. "
            "{'MyLayer': MyLayer}"
        )
    from czbuild.keras.wrap import channels_last

    kind = source_kind(source)
    if kind == "memory":
        return channels_last(source)
    if kind in ("keras", "h5"):
        model = _load_keras_file(Path(os.fspath(source)), custom_objects)
    elif kind == "saved_model":
        model = _load_saved_model(Path(os.fspath(source)))
    else:
        model = _call_factory(os.fspath(source), custom_objects)
    return channels_last(model)
