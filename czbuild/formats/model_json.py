"""The one parser of ``model.json`` bytes (czmodel-format.md 2.2), used by every reader.

Strict where JSON itself is ambiguous: a key given twice is refused (parsers disagree on which
one wins), ``NaN`` / ``Infinity`` are refused (not JSON), the document must be an object, at most
:data:`MAX_METADATA_BYTES` long and nested at most :data:`MAX_DEPTH` deep (a real one is 2 deep;
the depth is counted before parsing, so a hostile file cannot exhaust the recursion limit).
A UTF-8 byte-order mark is tolerated (the hygiene check reports it as non-canonical).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from czbuild.errors import MetadataError

#: Largest metadata member read (``model.json`` / ``<id>.xml``; real ones are about 1 KB).
MAX_METADATA_BYTES: Final = 1024**2
#: Deepest nesting of arrays and objects accepted in ``model.json``.
MAX_DEPTH: Final = 32
_STRING_OR_BRACKET: Final = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def parse_model_json(data: bytes) -> dict[str, Any]:
    """Parse ``model.json`` bytes into a dict.

    Raises:
        MetadataError: Too large, too deep, not UTF-8 JSON, a duplicate key, a non-finite
            number, or not an object (the message says which).
    """
    if len(data) > MAX_METADATA_BYTES:
        raise MetadataError("", f"{len(data)} bytes, over the {MAX_METADATA_BYTES}-byte limit")
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                raise MetadataError("", f"nested more than {MAX_DEPTH} levels deep")
        elif token in (b"]", b"}"):
            depth -= 1
    try:
        doc = json.loads(
            data.decode("utf-8-sig"),
            object_pairs_hook=_unique_keys,
            parse_constant=_no_constant,
        )
    except UnicodeDecodeError as exc:
        raise MetadataError("", f"not UTF-8 text: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise MetadataError(
            "", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    except (ValueError, RecursionError) as exc:  # a duplicate key or a non-finite number
        raise MetadataError("", f"not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise MetadataError("", f"must hold a JSON object, got {type(doc).__name__}")
    return doc


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice")
        out[key] = value
    return out


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")
