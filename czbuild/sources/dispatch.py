"""Open a model source's adapter: :func:`open_converter` and :func:`open_reference`.

The seam between the layers above (``convert``, ``builder``, ``verify``) and the framework
adapters: they call these two functions with any source and get a :class:`Converter`, never
asking which framework it is. The adapters are imported inside the functions.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from czbuild.errors import ModelError
from czbuild.sources.kinds import ConvertedModel, source_family

__all__ = [
    "Converter",
    "forget_user_modules",
    "import_framework",
    "load_custom_objects",
    "open_converter",
    "open_reference",
]


class Converter(Protocol):
    """What every adapter's converter offers (the adapters implement it on
    :class:`czbuild.sources.base.CachingConverter`; test fakes may implement it directly)."""

    @property
    def name(self) -> str:
        """The model's name, for messages."""
        ...  # pragma: no cover

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """The source model's input shape without batch, channels-last, None where free."""
        ...  # pragma: no cover

    @property
    def model(self) -> Any:
        """The verifier's reference model for this source (loaded once)."""
        ...  # pragma: no cover

    def onnx(
        self,
        *,
        preprocessing: Any = (),
        postprocessing: Any = (),
        spatial_dims: Sequence[int] | None = None,
        opset: int,
    ) -> ConvertedModel:
        """Canonical ONNX bytes of one variant."""
        ...  # pragma: no cover

    def savedmodel_zip(
        self,
        *,
        preprocessing: Any = (),
        postprocessing: Any = (),
        spatial_dims: Sequence[int] | None = None,
    ) -> ConvertedModel:
        """A zipped SavedModel (legacy 3.0.0) of one variant."""
        ...  # pragma: no cover


def open_converter(
    source: Any, *, custom_objects: Mapping[str, Any] | None = None, max_cached: int = 8
) -> Converter:
    """The converter of ``source``'s adapter (nothing is loaded yet).

    Raises:
        ModelError: ``custom_objects`` given for a source that has none (ONNX, PyTorch).
    """
    family = source_family(source)
    if family != "keras" and custom_objects:
        raise ModelError(
            f"custom_objects apply to Keras models only; the {family} source {source!s} "
            "takes none (remove model.custom_objects)"
        )
    if family == "onnx":
        from czbuild.onnx_source.converter import OnnxConverter

        return OnnxConverter(source, max_cached=max_cached)
    if family == "torch":
        from czbuild.torch_source.converter import TorchConverter

        return TorchConverter(source, max_cached=max_cached)
    from czbuild.keras.converter import ModelConverter

    return ModelConverter(source, custom_objects=custom_objects, max_cached=max_cached)


def open_reference(source: Any, *, custom_objects: Mapping[str, Any] | None = None) -> Any:
    """The verifier's reference model of ``source`` (a ``keras.Model`` for Keras sources;
    for ONNX and PyTorch an object with ``input_shape``, ``at(spatial)`` and
    ``__call__(x, training=False)``)."""
    return open_converter(source, custom_objects=custom_objects).model


def import_framework(source: Any) -> None:
    """Import now the one framework ``source`` needs: Keras (with TensorFlow), ``onnx``, or
    PyTorch (and ``onnx``). The worker calls it before recording what a model reads
    (:mod:`czbuild.builder.reads`): the framework's own start-up reads are not inputs.

    Raises:
        ModelError: A PyTorch source without PyTorch installed.
    """
    family = source_family(source)
    if family == "keras":
        from czbuild.keras.sources import import_framework as import_keras

        import_keras()
        return
    if family == "torch":
        from czbuild.torch_source.module import import_torch

        import_torch()
    import onnx  # noqa: F401 - the ONNX and PyTorch paths read ONNX graphs


def load_custom_objects(files: Iterable[str | os.PathLike[str]]) -> dict[str, Any]:
    """A Keras source's custom objects (:func:`czbuild.keras.sources.load_custom_objects`)."""
    from czbuild.keras.sources import load_custom_objects as load_keras_objects

    return load_keras_objects(files)


def forget_user_modules(files: Iterable[str | os.PathLike[str]] = ()) -> None:
    """Forget the user Python files run so far and the modules loaded from ``files``
    (:func:`czbuild.keras.sources.forget_user_modules`): the next load records them again."""
    from czbuild.keras.sources import forget_user_modules as forget

    forget(files)
