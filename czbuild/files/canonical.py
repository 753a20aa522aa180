"""The two canonical JSON forms czbuild writes, and JSON state files.

Both forms sort keys and refuse NaN/Infinity, so equal values give equal bytes; they differ
in layout and must stay byte-exact, since each is pinned somewhere:

* :func:`digest_json` — compact ASCII text (``,``/``:`` separators). Its sha256 is a
  recipe variant's spec digest, recorded in stamps, manifests and ``czbuild.lock``.
* :func:`file_json` — indented (2 spaces) UTF-8 bytes with a final newline: the form of
  stamps, the manifest, the hash cache and other files people read and diff.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from czbuild.files.atomic import atomic_write

__all__ = ["digest_json", "file_json", "read_json", "write_json"]


def digest_json(value: Any) -> str:
    """Compact canonical JSON text: sorted keys, ``,``/``:`` separators, ASCII, no NaN.

    Raises:
        ValueError: ``value`` holds NaN or Infinity.
        TypeError: ``value`` is not JSON-compatible.
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def file_json(value: Any) -> bytes:
    """Canonical JSON file bytes: sorted keys, 2-space indent, UTF-8, final newline.

    Raises:
        ValueError: ``value`` holds NaN or Infinity.
        TypeError: ``value`` is not JSON-compatible.
    """
    text = json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def write_json(path: Path | str, value: Any, *, durable: bool = True) -> None:
    """Write ``value`` as :func:`file_json` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, file_json(value), durable=durable)


def read_json(path: Path | str) -> Any | None:
    """Read a JSON state file written by :func:`write_json`.

    Returns:
        The decoded value, or None when the file is missing or not valid JSON (a state file
        that cannot be read counts as absent: its owner redoes the work it records).
    """
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read())
    except (FileNotFoundError, NotADirectoryError, ValueError, UnicodeDecodeError):
        return None
