"""JSON Schema checks of ``model.json`` (one draft 2020-12 schema per CZANN version).

The schemas are generated (:func:`czann_schema`) from the format tables the metadata rules use
— :data:`vocab.MODEL_TYPES`, :data:`czann.KEYS_BY_VERSION`, :data:`czann.REQUIRED_KEYS`,
:data:`czann.SCALING_COUNTS`, :func:`czann.spatial_ranks`, :data:`czann.MIN_CLASSES` — so they
cannot drift from them. They are strict: only the keys of that version, required keys, JSON
types, enums and array lengths. Rules across keys (``Classes`` length, ``MinOverlap`` per
spatial dim) are :meth:`CzannMetadata.validate`'s. The same text is committed as
``czbuild/schemas/czann-<version>.schema.json`` for other tools (a test keeps them equal;
:func:`write_schema_files` rewrites them). ``jsonschema`` is imported only when a
document is checked.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from czbuild.errors import MetadataError
from czbuild.formats import vocab

SCHEMA_PACKAGE = "czbuild.schemas"


def schema_name(version: str) -> str:
    """File name of the schema for a CZANN version."""
    return f"czann-{version}.schema.json"


_UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


def _counted(items: dict[str, Any], counts: tuple[int, ...]) -> dict[str, Any]:
    return {"type": "array", "items": items, "minItems": min(counts), "maxItems": max(counts)}


def czann_schema(version: str) -> dict[str, Any]:
    """The JSON Schema of ``model.json`` for CZANN ``version``, built from the format tables.

    Raises:
        MetadataError: For an unknown version (field ``FormatVersion``).
    """
    from czbuild.formats import czann

    if version not in vocab.CZANN_VERSIONS:
        raise MetadataError(
            "FormatVersion",
            f"no schema for CZANN version {version!r}; known: {', '.join(vocab.CZANN_VERSIONS)}",
        )
    ranks = czann.spatial_ranks(version)
    shape_counts = tuple(r + 1 for r in ranks)
    three_d = 3 in ranks
    positive_int = {"type": "integer", "minimum": 1}
    properties: dict[str, Any] = {
        "FormatVersion": {"description": "Format version of this file.", "const": version},
        "Id": {
            "description": "Model id: a 128-bit UUID, hyphenated (czbuild writes lower case).",
            "type": "string",
            "pattern": _UUID_PATTERN,
        },
        "Type": {"description": "Model type.", "enum": list(vocab.MODEL_TYPES)},
        "InputShape": {
            "description": "Input tile shape [H, W, C]"
            + (" or [Z, H, W, C]" if three_d else "")
            + ", channels last, no batch dim.",
            **_counted(positive_int, shape_counts),
        },
        "OutputShape": {
            "description": "Output shape [H, W, N]"
            + (" or [Z, H, W, N]" if three_d else "")
            + ", channels last, no batch dim.",
            **_counted(positive_int, shape_counts),
        },
        "MinOverlap": {
            "description": "Minimum tile overlap per spatial dim (even, >= 0).",
            **_counted({"type": "integer", "minimum": 0, "multipleOf": 2}, ranks),
        },
        "Classes": {
            "description": "Class names, one per output channel.",
            "type": "array",
            "items": {"type": "string"},
            "minItems": czann.MIN_CLASSES,
        },
        "ModelName": {"description": "Display name.", "type": "string", "minLength": 1},
    }
    scaling = czann.SCALING_COUNTS[version]
    if scaling:
        properties["Scaling"] = {
            "description": "Pixel size in metres, order " + ", ".join("xyz"[: max(scaling)]) + ".",
            **_counted({"type": "number", "exclusiveMinimum": 0}, scaling),
        }
    keys = czann.KEYS_BY_VERSION[version]
    required = [k for k in keys if k in czann.REQUIRED_KEYS or k == "FormatVersion"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:czbuild:schema:czann-{version}",
        "title": f"CZANN {version} model.json",
        "description": f"model.json of a CZANN {version} file (ZEN Intellesis), as czbuild "
        "writes and checks it. Cross-field rules (Classes length, MinOverlap per spatial dim, "
        "equal ranks) are checked by CzannMetadata.validate.",
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": {k: properties[k] for k in keys},
    }


def render_czann_schema(version: str) -> str:
    """The committed text of :func:`czann_schema` (2-space indent, final newline)."""
    return json.dumps(czann_schema(version), indent=2, ensure_ascii=False) + "\n"


def load_schema(version: str) -> dict[str, Any]:
    """The JSON Schema for ``model.json`` of CZANN ``version`` (a fresh dict).

    Raises:
        MetadataError: For an unknown version (field ``FormatVersion``).
    """
    return czann_schema(version)


def write_schema_files(folder: Path | None = None) -> list[Path]:
    """Rewrite ``czbuild/schemas/czann-<version>.schema.json`` from the tables."""
    target = folder or Path(__file__).resolve().parents[1] / "schemas"
    written = []
    for version in vocab.CZANN_VERSIONS:
        path = target / schema_name(version)
        path.write_text(render_czann_schema(version), encoding="utf-8")
        written.append(path)
    return written


def _key_of(error: Any) -> str:
    path = list(error.absolute_path)
    if path:
        key = str(path[0])
        return key + "".join(f"[{p}]" for p in path[1:])
    return ""


def validate_model_json(doc: Any, version: str) -> list[str]:
    """Check a parsed ``model.json`` against the schema of ``version``.

    Args:
        doc: The parsed JSON document.
        version: The CZANN version to check against.

    Returns:
        Messages ``"Key: problem"`` (``Key`` may carry an index, e.g. ``InputShape[1]``),
        sorted by key; empty if the document conforms.

    Raises:
        MetadataError: For an unknown version.
    """
    from jsonschema import Draft202012Validator  # lazy: ~0.1 s import

    schema = load_schema(version)
    validator = Draft202012Validator(schema)
    messages: list[str] = []
    allowed = set(schema["properties"])
    for error in validator.iter_errors(doc):
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            for key in sorted(set(error.instance) - allowed):
                messages.append(f"{key}: key is not part of CZANN {version}")
        elif error.validator == "required" and isinstance(error.instance, dict):
            for key in error.validator_value:
                if key not in error.instance:
                    messages.append(f"{key}: required key is missing (CZANN {version})")
        else:
            key = _key_of(error)
            messages.append(f"{key}: {error.message}" if key else f"(document): {error.message}")
    if isinstance(doc, dict) and isinstance(doc.get("Scaling"), list):
        for i, value in enumerate(doc["Scaling"]):
            if isinstance(value, float) and not math.isfinite(value):
                messages.append(f"Scaling[{i}]: {value} is not a finite number")
    return sorted(set(messages))
