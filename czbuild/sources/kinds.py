"""The model-source kinds: plain data, no framework imported.

A *source* is whatever a user points czbuild at: a ``keras.Model`` or Keras file, an ONNX
file (:class:`OnnxFile`), or a PyTorch factory (:class:`TorchFactory`). Each framework has
one adapter package (``czbuild/keras/``, ``czbuild/onnx_source/``, ``czbuild/torch_source/``)
that turns a source into a :class:`Converter`: the object that makes payloads for every
variant of a sweep from one load, and hands the verifier its reference model. The layers
above (``convert``, ``builder``, ``verify``) call :func:`open_converter` /
:func:`open_reference` and never ask which framework it is.

This module imports no framework: :func:`source_family` classifies a source by its type's
module name or its file suffix, and the adapters are imported inside the functions.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FAMILIES",
    "ConvertedModel",
    "OnnxFile",
    "TorchFactory",
    "is_import_name",
    "source_family",
]

#: The source families, one adapter package each.
FAMILIES = ("keras", "onnx", "torch")

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ConvertedModel:
    """A finished payload.

    Attributes:
        payload: ONNX bytes or a zipped SavedModel.
        input_shape: Model input shape without the batch dim, all dims concrete.
        output_shape: Model output shape without the batch dim, all dims concrete.
        route: How it was made (``"specialized"``, ``"fixed"``, ``"savedmodel"``, ``"onnx"``),
            for manifests and logs.
        opset: The ONNX opset, None for a SavedModel.
    """

    payload: bytes
    input_shape: Shape
    output_shape: Shape
    route: str
    opset: int | None = None


@dataclass(frozen=True)
class OnnxFile:
    """An ONNX model file.

    Attributes:
        path: The ``.onnx`` file.
        channels_first: The model takes ``[N, C, (Z,) H, W]`` (e.g. exported from PyTorch);
            czbuild transposes around it so the artifact is channels-last as ZEN requires.
    """

    path: str
    channels_first: bool = False


@dataclass(frozen=True)
class TorchFactory:
    """A Python factory ``path/to/file.py:function`` returning a ``torch.nn.Module``.

    Attributes:
        path: The ``.py`` file.
        function: The function's name; it takes no arguments.
        channels_first: The module takes ``[N, C, (Z,) H, W]`` (PyTorch's convention, the
            default); False for a module that is already channels-last.
    """

    path: str
    function: str
    channels_first: bool = True

    def __str__(self) -> str:
        return f"{self.path}:{self.function}"


_IMPORT_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def is_import_name(text: object) -> bool:
    """Whether ``text`` is an importable ``module:attribute`` name (``keras_hub.layers:X``),
    as opposed to a path (custom objects take both)."""
    return isinstance(text, str) and _IMPORT_NAME.match(text) is not None


def _type_modules(obj: Any) -> tuple[str, ...]:
    return tuple(getattr(cls, "__module__", "") or "" for cls in type(obj).__mro__)


def source_family(source: Any) -> str:
    """``"keras"``, ``"onnx"`` or ``"torch"``: which adapter reads ``source``.

    ONNX: an :class:`OnnxFile`, a path ending in ``.onnx`` or an ``onnx.ModelProto``. PyTorch:
    a :class:`TorchFactory` or a ``torch.nn.Module``. Everything else is Keras's (a
    ``keras.Model``, a ``.keras`` / ``.h5`` file, a SavedModel directory, a factory).
    """
    if isinstance(source, OnnxFile):
        return "onnx"
    if isinstance(source, TorchFactory):
        return "torch"
    if isinstance(source, (str, os.PathLike)):
        return "onnx" if os.fspath(source).lower().endswith(".onnx") else "keras"
    modules = _type_modules(source)
    if any(m.startswith("onnx.") for m in modules) and type(source).__name__ == "ModelProto":
        return "onnx"
    if any(m.startswith("torch.nn") for m in modules):
        return "torch"
    return "keras"
