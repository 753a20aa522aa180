"""sha256 of files and directory trees.

The tree digest is what a recipe's ``model.sha256`` pins for a SavedModel folder, so its
bytes are a compatibility promise: the sha256 of the lines
``<POSIX relative path>\\0<hex sha256 of the file>\\n`` for every regular file under the root,
sorted by path. File modes, times and empty directories do not count.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Container
from pathlib import Path

__all__ = ["file_sha256", "path_sha256", "tree_files", "tree_sha256"]

_CHUNK = 1 << 20


def file_sha256(path: Path | str) -> str:
    """Hex sha256 of a file's content (read in 1 MiB chunks).

    Raises:
        OSError: The file cannot be read (``FileNotFoundError``, ``IsADirectoryError``, ...).
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tree_files(root: Path) -> list[tuple[str, Path]]:
    """Every regular file under ``root`` as ``(POSIX relative path, path)``, sorted by path."""
    root = Path(root)
    out: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in files:
            full = Path(folder, name)
            if full.is_file():
                out.append((full.relative_to(root).as_posix(), full))
    return sorted(out)


def tree_sha256(
    root: Path | str,
    *,
    file_hash: Callable[[Path], str] = file_sha256,
    exclude: Container[str] = (),
) -> str:
    """Digest of a directory tree, independent of file order, times and modes.

    Args:
        root: The directory.
        file_hash: How to get one file's hex sha256 (a cache may answer without reading).
        exclude: POSIX relative paths left out of the digest.

    Returns:
        The hex digest described in the module docstring.
    """
    digest = hashlib.sha256()
    for rel, full in tree_files(Path(root)):
        if rel not in exclude:
            digest.update(f"{rel}\0{file_hash(full)}\n".encode())
    return digest.hexdigest()


def path_sha256(path: Path | str) -> str:
    """:func:`tree_sha256` of a directory, :func:`file_sha256` of anything else."""
    return tree_sha256(path) if os.path.isdir(path) else file_sha256(path)
