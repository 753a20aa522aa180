"""JSON conversion specs (czmodel-format.md §4): the legacy flat form and the CZANN nested form.

Relative paths (``ModelPath``, ``LicenseFile``, ``TestImageFile``, a string
``ModelMetadata``) resolve against the JSON file's folder, ``\\`` separators are accepted and
unknown keys are logged as warnings. Errors are :class:`~czbuild.errors.SpecError` naming the
file and the key.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from czbuild.errors import MetadataError, SpecError
from czbuild.model_metadata import (
    CzannModelMetadata,
    ModelMetadata,
    ModelSpec,
    default_model_name,
)

__all__ = ["JsonSpec", "read_json_object", "read_json_spec"]

logger = logging.getLogger(__name__)

_LEGACY_KEYS = (
    "ModelPath",
    "ModelFile",
    "ColorHandling",
    "PixelType",
    "Classes",
    "BorderSize",
    "LicenseFile",
    "TestImageFile",
)
_LEGACY_REQUIRED = ("ColorHandling", "PixelType", "Classes", "BorderSize")
_CZANN_KEYS = ("ModelMetadata", "ModelPath", "LicenseFile", "TestImageFile")
_CZANN_METADATA_KEYS = (
    "FormatVersion",
    "Id",
    "Type",
    "InputShape",
    "OutputShape",
    "MinOverlap",
    "Classes",
    "ModelName",
    "Scaling",
)


@dataclass(frozen=True)
class JsonSpec:
    """A parsed JSON conversion spec; every path is absolute.

    Attributes:
        path: The spec file.
        form: ``"legacy"`` (flat) or ``"czann"`` (nested ``ModelMetadata``).
        model_spec: The model (a path string or factory) with metadata and licence.
        test_image_file: ``TestImageFile`` if given (not embedded; not used for conversion).
    """

    path: Path
    form: str
    model_spec: ModelSpec
    test_image_file: Path | None = None


def _parse_json_text(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"{where}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc


def read_json_object(path: Path) -> dict[str, Any]:
    """Read a JSON file holding one object.

    Raises:
        SpecError: The file is missing, unreadable, not JSON or not an object (names it).
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise SpecError(f"{path}: file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot be read: {exc}") from exc
    doc = _parse_json_text(text, str(path))
    if not isinstance(doc, dict):
        raise SpecError(f"{path}: must hold a JSON object, got {type(doc).__name__}")
    return doc


def _warn_unknown(
    doc: Mapping[str, Any], known: Sequence[str], where: str, prefix: str = ""
) -> None:
    for key in doc:
        if key not in known:
            logger.warning(
                "%s: %s%s: unknown key ignored (known: %s)", where, prefix, key, ", ".join(known)
            )


def _path_value(
    doc: Mapping[str, Any], key: str, where: str, base: Path, *, must_exist: bool = True
) -> Path | None:
    """Resolve a path value against ``base`` (the spec's folder); ``\\`` separators work."""
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{where}: {key}: must be a non-empty path string, got {value!r}")
    text = value.replace("\\", "/") if os.sep == "/" else value
    path = Path(text)
    if not path.is_absolute():
        path = base / path
    if must_exist and not path.exists():
        raise SpecError(
            f"{where}: {key}: {value!r} not found (resolved to {path}; relative "
            "paths are relative to the spec file's folder)"
        )
    return path


def _model_value(doc: Mapping[str, Any], where: str, base: Path) -> str:
    key = "ModelPath" if "ModelPath" in doc or "ModelFile" not in doc else "ModelFile"
    if doc.get(key) is None:
        raise SpecError(
            f"{where}: ModelPath: required key is missing (the Keras model: a "
            ".keras / .h5 file or a SavedModel folder)"
        )
    value = doc[key]
    if isinstance(value, str):
        from czbuild.keras.sources import parse_factory

        factory = parse_factory(value.replace("\\", "/") if os.sep == "/" else value)
        if factory is not None:
            file = _path_value({key: str(factory[0])}, key, where, base)
            return f"{file}:{factory[1]}"
    path = _path_value(doc, key, where, base)
    assert path is not None
    return str(path)


def _legacy_from_doc(
    doc: Mapping[str, Any], where: str, base: Path
) -> tuple[ModelMetadata, Path | None]:
    _warn_unknown(doc, _LEGACY_KEYS, where)
    for key in _LEGACY_REQUIRED:
        if doc.get(key) is None:
            raise SpecError(f"{where}: {key}: required key is missing")
    model_path = doc.get("ModelPath", doc.get("ModelFile"))
    licence = _path_value(doc, "LicenseFile", where, base)
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
    _warn_unknown(doc, _CZANN_KEYS, where)
    raw = doc["ModelMetadata"]
    meta_where = where
    if isinstance(raw, str):
        meta_path = _path_value(doc, "ModelMetadata", where, base)
        assert meta_path is not None
        meta_where = str(meta_path)
        raw = read_json_object(meta_path)
    elif not isinstance(raw, dict):
        raise SpecError(
            f"{where}: ModelMetadata: must be an object or a path to a JSON file, "
            f"got {type(raw).__name__}"
        )
    prefix = "ModelMetadata." if meta_where == where else ""
    _warn_unknown(raw, _CZANN_METADATA_KEYS, meta_where, prefix)
    if "FormatVersion" in raw:
        logger.info(
            "%s: %sFormatVersion is ignored; the conversion target sets it", meta_where, prefix
        )
    try:
        metadata = CzannModelMetadata.from_json_dict(raw)
        metadata.to_czann().validate()
    except MetadataError as exc:
        raise SpecError(f"{meta_where}: {prefix}{exc}") from exc
    return metadata, _path_value(doc, "LicenseFile", where, base)


def read_json_spec(spec_path: str | os.PathLike[str]) -> JsonSpec:
    """Parse a JSON conversion spec of either form (format §4).

    Relative paths (``ModelPath``, ``LicenseFile``, ``TestImageFile``, a string
    ``ModelMetadata``) are resolved against the spec file's folder; ``\\`` separators are
    accepted; unknown keys are logged as warnings; ``ModelFile`` is accepted for
    ``ModelPath``.

    Raises:
        SpecError: Names the file and the key, and says how to fix it.
    """
    path = Path(spec_path)
    doc = read_json_object(path)
    where, base = str(path), path.resolve().parent
    if "ModelMetadata" in doc:
        form = "czann"
        metadata, licence = _czann_from_doc(doc, where, base)
    elif any(key in doc for key in _LEGACY_REQUIRED):
        form = "legacy"
        metadata, licence = _legacy_from_doc(doc, where, base)
    else:
        raise SpecError(
            f"{where}: neither a CZANN spec (needs ModelMetadata) nor a legacy spec "
            f"(needs {', '.join(_LEGACY_REQUIRED)}); see format §4"
        )
    model = _model_value(doc, where, base)
    test_image = _path_value(doc, "TestImageFile", where, base)
    if test_image is not None:
        logger.info("%s: TestImageFile is not embedded and not used for conversion", where)
    return JsonSpec(
        path=path,
        form=form,
        model_spec=ModelSpec(model=model, model_metadata=metadata, license_file=licence),
        test_image_file=test_image,
    )
