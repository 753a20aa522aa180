"""The seed-compatible metadata API: what to write next to a model, and which model.

* :class:`ModelMetadata` -- the legacy ``.czmodel`` metadata, with the seed's
  ``ModelMetadata.from_params(name=, color_handling=, pixel_type=, classes=, border_size=,
  license_file=)``;
* :class:`CzannModelMetadata` -- the ``.czann`` metadata (``Type``, ``Classes``,
  ``InputShape``/``OutputShape`` -- derived from the model when left out -- ``MinOverlap``,
  ``Scaling``, ``ModelName``, ``Id``) and the target ``format_version``;
* :class:`ModelSpec` -- a model (``keras.Model``, a path or a ``"file.py:function"``
  factory) with its metadata and an optional licence file.

Both metadata classes turn into the format layer's objects (:meth:`ModelMetadata.to_legacy`,
:meth:`CzannModelMetadata.to_czann`); the class decides the file family. No TensorFlow here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from czbuild.errors import MetadataError, SpecError
from czbuild.formats import vocab
from czbuild.formats.czann import CzannMetadata
from czbuild.formats.legacy import LegacyMetadata
from czbuild.json_document import (
    CZANN_KEYS,
    CZANN_METADATA_KEYS,
    LEGACY_KEYS,
    LEGACY_REQUIRED,
    model_value,
    parse_json_text,
    path_value,
    read_json_object,
    warn_unknown,
)

__all__ = [
    "CzannModelMetadata",
    "ModelMetadata",
    "ModelSpec",
    "default_model_name",
]

logger = logging.getLogger(__name__)
_spec_logger = logging.getLogger("czbuild.json_spec")

DEFAULT_LEGACY_NAME = "DNN model"


def default_model_name(model_path: str | os.PathLike[str] | None) -> str:
    """The legacy ``ModelName`` derived from ``ModelPath``: its basename.

    Trailing separators are stripped and both ``/`` and ``\\`` separate, so
    ``"models\\\\nuclei\\\\"`` gives ``"nuclei"`` on any OS; an empty result gives
    ``"DNN model"`` (the reference's default).
    """
    if model_path is None:
        return DEFAULT_LEGACY_NAME
    text = os.fspath(model_path).replace("\\", "/").rstrip("/")
    name = text.rsplit("/", 1)[-1] if text else ""
    return name or DEFAULT_LEGACY_NAME


def _tuple_of(value: Any, field: str, kind: type) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise MetadataError(field, f"must be a list, got {type(value).__name__} {value!r}")
    items = tuple(value)
    if not all(isinstance(v, kind) and not isinstance(v, bool) for v in items):
        raise MetadataError(field, f"must be a list of {kind.__name__}, got {list(items)!r}")
    return items


@dataclass(frozen=True)
class ModelMetadata:
    """Legacy ``.czmodel`` metadata (the seed's ``ModelMetadata``).

    Attributes:
        name: Display name (``ModelName``).
        color_handling: ``ConvertToMonochrome`` or ``SplitRgb``.
        pixel_types: One pixel type per input channel entry (``Gray16``, ``Bgr24``, ...).
        classes: Class names in label order.
        border_size: Per-side margin in pixels hiding border effects.
        license_file: Licence to embed (read when converting).
        id: UUID to write; None derives it from the content.
        format_version: ``"3.1.0"`` (ONNX payload) or ``"3.0.0"`` (zipped SavedModel).
    """

    name: str
    color_handling: str
    pixel_types: tuple[str, ...]
    classes: tuple[str, ...]
    border_size: int
    license_file: Path | None = None
    id: str | None = None
    format_version: str = vocab.DEFAULT_LEGACY_VERSION

    @classmethod
    def from_params(
        cls,
        name: str,
        color_handling: str,
        pixel_type: str | Sequence[str],
        classes: Sequence[str],
        border_size: int,
        license_file: str | os.PathLike[str] | None = None,
        *,
        id: str | None = None,
        format_version: str = vocab.DEFAULT_LEGACY_VERSION,
    ) -> ModelMetadata:
        """Create and validate legacy metadata (the seed's signature, plus ``id`` / version).

        Args:
            name: Display name.
            color_handling: ``ConvertToMonochrome`` or ``SplitRgb``.
            pixel_type: One pixel type, or a list (one per channel entry; 3.1.0 only).
            classes: Class names.
            border_size: Per-side border in pixels (>= 0).
            license_file: Optional licence file.
            id: Optional UUID.
            format_version: ``"3.1.0"`` (default) or ``"3.0.0"``.

        Raises:
            MetadataError: A value is invalid; names the field (``PixelType``, ...).
        """
        types = (
            (pixel_type,)
            if isinstance(pixel_type, str)
            else _tuple_of(pixel_type, "PixelType", str)
        )
        metadata = cls(
            name=name,
            color_handling=color_handling,
            pixel_types=types,
            classes=_tuple_of(classes, "Classes", str),
            border_size=border_size,
            license_file=Path(license_file) if license_file is not None else None,
            id=id,
            format_version=format_version,
        )
        metadata.to_legacy().validate()
        return metadata

    @classmethod
    def from_json(cls, spec: str | os.PathLike[str] | Mapping[str, Any]) -> ModelMetadata:
        """Legacy metadata from a flat JSON spec (a file path, JSON text or a dict).

        ``ModelName`` comes from the ``ModelPath`` basename; ``LicenseFile`` is resolved
        against the spec file's folder when a path is given. Use
        :func:`czbuild.convert.convert_from_json_spec` for the full spec (model included).

        Raises:
            SpecError: The JSON is invalid or a key is missing (names the file and key).
        """
        if isinstance(spec, Mapping):
            doc, where, base = dict(spec), "<dict>", Path.cwd()
        elif isinstance(spec, str) and spec.lstrip().startswith("{"):
            doc, where, base = parse_json_text(spec, "<json text>"), "<json text>", Path.cwd()
        else:
            path = Path(spec)
            doc, where, base = read_json_object(path), str(path), path.resolve().parent
        metadata, _ = _legacy_from_doc(doc, where, base)
        return metadata

    @property
    def pixel_type(self) -> str:
        """The first pixel type (the seed's singular attribute)."""
        return self.pixel_types[0]

    def to_legacy(self, format_version: str | None = None) -> LegacyMetadata:
        """The format layer's :class:`~czbuild.formats.legacy.LegacyMetadata`."""
        return LegacyMetadata(
            name=self.name,
            color_handling=self.color_handling,
            pixel_types=tuple(self.pixel_types),
            classes=tuple(self.classes),
            border_size=self.border_size,
            id=self.id,
            version=format_version or self.format_version,
        )


@dataclass(frozen=True)
class CzannModelMetadata:
    """``.czann`` metadata; shapes left out are derived from the (wrapped) model.

    Attributes:
        type: ``Type``, e.g. ``SingleClassSemanticSegmentation`` or ``Regression``.
        classes: Class names, one per output channel (absent for ``Regression``).
        input_shape: ``[H, W, C]``; None: from the model (its H/W, or ``spatial_dims``).
        output_shape: ``[H, W, N]``; None: from the model.
        min_overlap: Minimum tile overlap per spatial dim (even values).
        scaling: Pixel size in metres, order x, y(, z).
        model_name: Display name.
        id: UUID; None derives it from the content.
        format_version: ``2.1.0`` (default), ``2.0.0``, ``1.1.0`` or ``1.0.0``.
    """

    type: str
    classes: tuple[str, ...] | None = None
    input_shape: tuple[int, ...] | None = None
    output_shape: tuple[int, ...] | None = None
    min_overlap: tuple[int, ...] | None = None
    scaling: tuple[float, ...] | None = None
    model_name: str | None = None
    id: str | None = None
    format_version: str = vocab.DEFAULT_CZANN_VERSION

    def __post_init__(self) -> None:
        for name in ("classes", "input_shape", "output_shape", "min_overlap", "scaling"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))

    @classmethod
    def from_params(cls, **kwargs: Any) -> CzannModelMetadata:
        """Create and validate (everything that needs no model); keyword arguments only.

        Raises:
            MetadataError: A value is invalid; names the JSON key (``MinOverlap``, ...).
        """
        metadata = cls(**kwargs)
        metadata.to_czann().validate()
        return metadata

    @classmethod
    def from_json_dict(
        cls, d: Mapping[str, Any], *, format_version: str | None = None
    ) -> CzannModelMetadata:
        """From a ``ModelMetadata`` JSON object (``Type``, ``Classes``, ``InputShape``, ...).

        An input ``FormatVersion`` is ignored: the target version is ``format_version``.

        Raises:
            MetadataError: A value has the wrong type (names the key).
        """
        return _czann_from_json_dict(cls, d, format_version or vocab.DEFAULT_CZANN_VERSION)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> CzannModelMetadata:
        """From a JSON file holding a ``ModelMetadata`` object.

        Raises:
            SpecError: The file is unreadable or not a JSON object (names the file).
            MetadataError: A value has the wrong type (names the key).
        """
        return cls.from_json_dict(read_json_object(Path(path)))

    def to_czann(
        self,
        format_version: str | None = None,
        *,
        input_shape: Sequence[int] | None = None,
        output_shape: Sequence[int] | None = None,
    ) -> CzannMetadata:
        """The format layer's :class:`~czbuild.formats.czann.CzannMetadata`.

        Args:
            format_version: Overrides :attr:`format_version`.
            input_shape: Used when :attr:`input_shape` is None.
            output_shape: Used when :attr:`output_shape` is None.
        """
        return CzannMetadata(
            type=self.type,
            input_shape=self.input_shape or (tuple(input_shape) if input_shape else None),
            output_shape=self.output_shape or (tuple(output_shape) if output_shape else None),
            classes=self.classes,
            min_overlap=self.min_overlap,
            model_name=self.model_name,
            scaling=self.scaling,
            id=self.id,
            format_version=format_version or self.format_version,
        )


def _czann_from_json_dict(cls: type, d: Mapping[str, Any], version: str) -> CzannModelMetadata:
    if not isinstance(d, Mapping):
        raise MetadataError("ModelMetadata", f"must be a JSON object, got {type(d).__name__}")
    if "Type" not in d:
        raise MetadataError("Type", "is required (e.g. SingleClassSemanticSegmentation)")
    doc = dict(d)
    doc.pop("FormatVersion", None)
    # Reuse the format layer's typed parsing (it names the keys), with placeholder shapes
    # when they are left out for derivation from the model.
    probe = dict(doc)
    for key in ("InputShape", "OutputShape"):
        probe.setdefault(key, [1, 1, 1])
    probe.setdefault("Id", None)
    if probe["Id"] is None:
        probe.pop("Id")
    parsed = CzannMetadata.from_json_dict(probe, format_version=version)
    return cls(
        type=parsed.type,
        classes=parsed.classes,
        input_shape=parsed.input_shape if "InputShape" in doc else None,
        output_shape=parsed.output_shape if "OutputShape" in doc else None,
        min_overlap=parsed.min_overlap,
        scaling=parsed.scaling,
        model_name=parsed.model_name,
        id=parsed.id,
        format_version=version,
    )


@dataclass(frozen=True)
class ModelSpec:
    """A model and what to write with it (the seed's ``ModelSpec``).

    Attributes:
        model: A ``keras.Model``, a path (``.keras``, ``.h5``, SavedModel directory) or a
            ``"file.py:function"`` factory.
        model_metadata: :class:`ModelMetadata` (-> ``.czmodel``) or
            :class:`CzannModelMetadata` (-> ``.czann``).
        license_file: Licence to embed; for legacy metadata, its own ``license_file`` is
            used when this is None.
    """

    model: Any
    model_metadata: ModelMetadata | CzannModelMetadata
    license_file: str | os.PathLike[str] | None = None

    @property
    def licence_path(self) -> Path | None:
        """The licence file to embed, if any."""
        if self.license_file is not None:
            return Path(self.license_file)
        if isinstance(self.model_metadata, ModelMetadata):
            return self.model_metadata.license_file
        return None

    @classmethod
    def from_json(cls, spec_path: str | os.PathLike[str]) -> ModelSpec:
        """Read a JSON conversion spec (legacy flat or CZANN nested, format §4).

        Raises:
            SpecError: Names the file and the key.
        """
        return read_model_spec(Path(spec_path))[1]


# --- JSON conversion specs (format §4) ------------------------------------------------------


def _legacy_from_doc(
    doc: Mapping[str, Any], where: str, base: Path
) -> tuple[ModelMetadata, Path | None]:
    warn_unknown(doc, LEGACY_KEYS, where)
    for key in LEGACY_REQUIRED:
        if doc.get(key) is None:
            raise SpecError(f"{where}: {key}: required key is missing")
    model_path = doc.get("ModelPath", doc.get("ModelFile"))
    licence = path_value(doc, "LicenseFile", where, base)
    border = doc["BorderSize"]
    if isinstance(border, bool) or not isinstance(border, int):
        raise SpecError(f"{where}: BorderSize: must be an integer number of pixels, got {border!r}")
    try:
        metadata = ModelMetadata.from_params(
            name=default_model_name(model_path if isinstance(model_path, str) else None),
            color_handling=doc["ColorHandling"],
            pixel_type=doc["PixelType"],
            classes=doc["Classes"],
            border_size=border,
            license_file=licence,
        )
    except MetadataError as exc:
        raise SpecError(f"{where}: {exc}") from exc
    return metadata, licence


def _czann_from_doc(
    doc: Mapping[str, Any], where: str, base: Path
) -> tuple[CzannModelMetadata, Path | None]:
    warn_unknown(doc, CZANN_KEYS, where)
    raw = doc["ModelMetadata"]
    meta_where = where
    if isinstance(raw, str):
        meta_path = path_value(doc, "ModelMetadata", where, base)
        assert meta_path is not None
        meta_where = str(meta_path)
        raw = read_json_object(meta_path)
    elif not isinstance(raw, dict):
        raise SpecError(
            f"{where}: ModelMetadata: must be an object or a path to a JSON file, "
            f"got {type(raw).__name__}"
        )
    prefix = "ModelMetadata." if meta_where == where else ""
    warn_unknown(raw, CZANN_METADATA_KEYS, meta_where, prefix)
    if "FormatVersion" in raw:
        _spec_logger.info(
            "%s: %sFormatVersion is ignored; the conversion target sets it", meta_where, prefix
        )
    try:
        metadata = CzannModelMetadata.from_json_dict(raw)
        metadata.to_czann().validate()
    except MetadataError as exc:
        raise SpecError(f"{meta_where}: {prefix}{exc}") from exc
    return metadata, path_value(doc, "LicenseFile", where, base)


def read_model_spec(path: Path) -> tuple[str, ModelSpec, Path | None]:
    """Parse a JSON conversion spec file: ``(form, model spec, TestImageFile or None)``.

    See :func:`czbuild.json_spec.read_json_spec` (the public entry point).

    Raises:
        SpecError: Names the file and the key, and says how to fix it.
    """
    path = Path(path)
    doc = read_json_object(path)
    where, base = str(path), path.resolve().parent
    metadata: CzannModelMetadata | ModelMetadata
    if "ModelMetadata" in doc:
        form = "czann"
        metadata, licence = _czann_from_doc(doc, where, base)
    elif any(key in doc for key in LEGACY_REQUIRED):
        form = "legacy"
        metadata, licence = _legacy_from_doc(doc, where, base)
    else:
        raise SpecError(
            f"{where}: neither a CZANN spec (needs ModelMetadata) nor a legacy spec "
            f"(needs {', '.join(LEGACY_REQUIRED)}); see format §4"
        )
    model = model_value(doc, where, base)
    test_image = path_value(doc, "TestImageFile", where, base)
    if test_image is not None:
        _spec_logger.info("%s: TestImageFile is not embedded and not used for conversion", where)
    return form, ModelSpec(model=model, model_metadata=metadata, license_file=licence), test_image
