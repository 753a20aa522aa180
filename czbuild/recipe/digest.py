"""Canonical spec JSON, the spec digest, and content digests of model sources.

The digest of a :class:`RecipeSpec` is the sha256 of its canonical JSON: keys sorted, no
whitespace, ASCII only, no NaN, None values omitted, every path a POSIX path relative to the
project folder. It therefore does not change with comments, key order or whitespace in the
YAML, with where the project is checked out, or with the operating system.

:func:`source_sha256` defines what a recipe's ``model.sha256`` pin means, for a file and for a
SavedModel directory (a tree digest).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from czbuild.recipe.spec import RecipeSpec

__all__ = ["canonical_json", "file_sha256", "source_sha256", "spec_digest", "tree_sha256"]

_CHUNK = 1 << 20


def canonical_json(data: Any) -> str:
    """Canonical JSON text: sorted keys, ``,``/``:`` separators, ASCII, no NaN/Infinity."""
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def spec_digest(spec: RecipeSpec) -> str:
    """sha256 hex digest of the spec's canonical JSON (:meth:`RecipeSpec.to_plain`)."""
    return hashlib.sha256(canonical_json(spec.to_plain()).encode("ascii")).hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tree_sha256(root: Path) -> str:
    """Digest of a directory tree (a SavedModel): independent of file order, times and modes.

    The digest is the sha256 of the lines ``<posix relative path>\\0<sha256 of the file>\\n``
    for every regular file under ``root``, sorted by path. Empty directories do not count.

    Args:
        root: The directory.

    Returns:
        The hex digest.
    """
    root = Path(root)
    entries: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in files:
            full = Path(folder) / name
            if full.is_file():
                entries.append((full.relative_to(root).as_posix(), full))
    digest = hashlib.sha256()
    for rel, full in sorted(entries):
        digest.update(f"{rel}\0{file_sha256(full)}\n".encode())
    return digest.hexdigest()


def source_sha256(path: Path) -> str:
    """What ``model.sha256`` pins: :func:`file_sha256` of a file, :func:`tree_sha256` of a dir."""
    path = Path(path)
    return tree_sha256(path) if path.is_dir() else file_sha256(path)
