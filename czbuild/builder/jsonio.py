"""Canonical JSON and crash-safe file replacement for the build state.

Every file the build layer writes (stamps, the hash cache, the manifest) goes through
:func:`atomic_write_bytes`: the bytes land in a temporary file in the same directory, are
flushed to disk, and are renamed over the final name. A reader therefore sees either the old
complete file or the new complete file, never a torn one, even after SIGKILL.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from czbuild.formats.ziputil import fsync_dir


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` as canonical JSON: sorted keys, 2-space indent, UTF-8, final newline.

    Args:
        value: A JSON-compatible value.

    Returns:
        The encoded bytes; equal values always give equal bytes.
    """
    text = json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically (temporary file + rename).

    Args:
        path: Final file name; its parent directory is created if needed.
        data: The complete new content.
        durable: fsync the file before the rename (and the directory after it), so the
            new content survives a power loss, not only a killed process.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    if durable:
        fsync_dir(path.parent)


def write_json(path: Path, value: Any, *, durable: bool = True) -> None:
    """Write ``value`` as canonical JSON to ``path`` atomically."""
    atomic_write_bytes(path, canonical_json(value), durable=durable)


def read_json(path: Path) -> Any | None:
    """Read a JSON file written by :func:`write_json`.

    Returns:
        The decoded value, or None when the file is missing or not valid JSON (a state file
        that cannot be read is treated as absent: the build then redoes the work it records).
    """
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read())
    except (FileNotFoundError, NotADirectoryError, ValueError, UnicodeDecodeError):
        return None
