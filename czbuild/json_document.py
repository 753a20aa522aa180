"""Reading a JSON conversion spec document: JSON text, keys, paths (format §4).

The primitives shared by the metadata classes (:mod:`czbuild.model_metadata`) and the spec
reader (:mod:`czbuild.json_spec`). Plain data only: this module knows no metadata class, so
both can import it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from czbuild.errors import SpecError
from czbuild.formats.czann import KEYS_BY_VERSION

__all__ = [
    "CZANN_KEYS",
    "CZANN_METADATA_KEYS",
    "LEGACY_KEYS",
    "LEGACY_REQUIRED",
    "model_value",
    "parse_json_text",
    "path_value",
    "read_json_object",
    "warn_unknown",
]

logger = logging.getLogger("czbuild.json_spec")

LEGACY_KEYS = (
    "ModelPath",
    "ModelFile",
    "ColorHandling",
    "PixelType",
    "Classes",
    "BorderSize",
    "LicenseFile",
    "TestImageFile",
)
LEGACY_REQUIRED = ("ColorHandling", "PixelType", "Classes", "BorderSize")
CZANN_KEYS = ("ModelMetadata", "ModelPath", "LicenseFile", "TestImageFile")
CZANN_METADATA_KEYS = KEYS_BY_VERSION["2.1.0"]  # every key a spec's ModelMetadata may hold


def parse_json_text(text: str, where: str) -> Any:
    """Parse a JSON spec document with the format's one bounded parser.

    The same rules as a ``model.json`` (:func:`czbuild.formats.model_json.parse_model_json`):
    one object, no duplicate keys, no NaN, at most 1 MiB and 32 levels deep (counted before
    parsing, so a hostile file cannot exhaust the recursion limit).

    Raises:
        SpecError: Naming the file and what is wrong.
    """
    from czbuild.errors import MetadataError
    from czbuild.formats.model_json import parse_model_json

    try:
        return parse_model_json(text.encode("utf-8"))
    except MetadataError as exc:
        message = str(exc).removeprefix(": ").strip()
        raise SpecError(f"{where}: {message}") from exc


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
    doc = parse_json_text(text, str(path))
    if not isinstance(doc, dict):
        raise SpecError(f"{path}: must hold a JSON object, got {type(doc).__name__}")
    return doc


def warn_unknown(
    doc: Mapping[str, Any], known: Sequence[str], where: str, prefix: str = ""
) -> None:
    for key in doc:
        if key not in known:
            logger.warning(
                "%s: %s%s: unknown key ignored (known: %s)", where, prefix, key, ", ".join(known)
            )


def path_value(
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


def model_value(doc: Mapping[str, Any], where: str, base: Path) -> str:
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
            file = path_value({key: str(factory[0])}, key, where, base)
            return f"{file}:{factory[1]}"
    path = path_value(doc, key, where, base)
    assert path is not None
    return str(path)
