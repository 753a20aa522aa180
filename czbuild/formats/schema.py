"""JSON Schema checks of ``model.json`` (one draft 2020-12 schema per CZANN version).

The schemas live in ``czbuild/schemas/czann-<version>.schema.json`` and are strict: only the
keys of that version, required keys, JSON types, enums and array lengths. Rules across
keys (``Classes`` length, ``MinOverlap`` per spatial dim) are :meth:`CzannMetadata.validate`'s.
``jsonschema`` is imported only when a document is checked.
"""

from __future__ import annotations

import functools
import json
import math
from importlib import resources
from typing import Any

from czbuild.errors import MetadataError
from czbuild.formats import vocab

SCHEMA_PACKAGE = "czbuild.schemas"


def schema_name(version: str) -> str:
    """File name of the schema for a CZANN version."""
    return f"czann-{version}.schema.json"


@functools.cache
def _schema_text(version: str) -> str:
    return resources.files(SCHEMA_PACKAGE).joinpath(schema_name(version)).read_text("utf-8")


def load_schema(version: str) -> dict[str, Any]:
    """The JSON Schema for ``model.json`` of CZANN ``version`` (a fresh dict).

    Raises:
        MetadataError: For an unknown version (field ``FormatVersion``).
    """
    if version not in vocab.CZANN_VERSIONS:
        raise MetadataError(
            "FormatVersion",
            f"no schema for CZANN version {version!r}; known: {', '.join(vocab.CZANN_VERSIONS)}",
        )
    return json.loads(_schema_text(version))


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
