"""The release folder: artifacts, ``SHA256SUMS`` and ``release.json``, written all at once.

Layout (mirrors the build folder, so sweep points of one recipe never collide)::

    dist/
      SHA256SUMS                      # `sha256sum -c SHA256SUMS` inside dist/ verifies all
      release.json                    # the release manifest (no timestamps)
      nuclei/tile=128/nuclei.czann
      legacy_seed/default/legacy_seed.czmodel

The folder is assembled next to the target under a temporary name and then swapped in, so a
reader never sees half a release. Files get mode 0644 and folders 0755 whatever the umask. An
existing target is only replaced if it is empty or a previous czbuild release (it holds
``release.json`` and ``SHA256SUMS``); anything else is refused.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from czbuild.errors import BuildError

SUMS_NAME = "SHA256SUMS"
MANIFEST_NAME = "release.json"
RELEASE_FORMAT = 1


def check_target(dist: Path) -> None:
    """Refuse a target folder that is neither missing, empty, nor a previous release.

    Raises:
        BuildError: Naming the folder and the fix.
    """
    dist = Path(dist)
    if not dist.exists():
        return
    if not dist.is_dir():
        raise BuildError(f"{dist}: exists and is not a folder; choose another --out")
    if any(dist.iterdir()) and not (
        (dist / MANIFEST_NAME).is_file() and (dist / SUMS_NAME).is_file()
    ):
        raise BuildError(
            f"{dist}: exists, is not empty and is not a czbuild release folder "
            f"(no {MANIFEST_NAME} / {SUMS_NAME}); choose another --out or remove it"
        )


def render_sums(files: Mapping[str, str]) -> bytes:
    """``SHA256SUMS`` text: ``<sha256>  <path>`` per file, sorted by path (GNU format)."""
    for path in files:
        if "\n" in path or "\\" in path:
            raise BuildError(f"{path!r}: a release file name cannot hold a newline or backslash")
    return "".join(f"{files[p]}  {p}\n" for p in sorted(files)).encode("utf-8")


def render_manifest(manifest: Mapping[str, Any]) -> bytes:
    """Canonical JSON: sorted keys, two-space indent, ASCII, final newline."""
    import json

    return (
        json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=True, allow_nan=False) + "\n"
    ).encode("ascii")


def write_dist(
    dist: Path, artifacts: Sequence[tuple[str, Path]], manifest: Mapping[str, Any]
) -> dict[str, str]:
    """Write the release folder.

    Args:
        dist: The target folder (see :func:`check_target`).
        artifacts: ``(relative POSIX path, source file)`` per artifact.
        manifest: The release manifest (written as ``release.json``).

    Returns:
        Relative path -> sha256 of every file listed in ``SHA256SUMS``.

    Raises:
        BuildError: The target is not replaceable, or a path is unsafe.
    """
    dist = Path(dist).absolute()
    check_target(dist)
    dist.parent.mkdir(parents=True, exist_ok=True)
    staging = dist.parent / f".{dist.name}.tmp-{secrets.token_hex(4)}"
    sums: dict[str, str] = {}
    try:
        staging.mkdir(mode=0o755)
        os.chmod(staging, 0o755)
        for rel, source in artifacts:
            data = Path(source).read_bytes()
            sums[rel] = _put(staging, rel, data)
        sums[MANIFEST_NAME] = _put(staging, MANIFEST_NAME, render_manifest(manifest))
        _put(staging, SUMS_NAME, render_sums(sums))
        _swap(staging, dist)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sums


def _put(root: Path, rel: str, data: bytes) -> str:
    parts = PurePosixPath(rel).parts
    if PurePosixPath(rel).is_absolute() or ".." in parts or not parts:
        raise BuildError(f"{rel!r}: release paths must be relative and stay inside the folder")
    target = root.joinpath(*parts)
    folder = root
    for part in parts[:-1]:
        folder = folder / part
        if not folder.is_dir():
            folder.mkdir()
            os.chmod(folder, 0o755)
    with open(target, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(target, 0o644)
    return hashlib.sha256(data).hexdigest()


def _swap(staging: Path, dist: Path) -> None:
    if not dist.exists():
        os.replace(staging, dist)
        return
    old = dist.parent / f".{dist.name}.old-{secrets.token_hex(4)}"
    os.replace(dist, old)
    try:
        os.replace(staging, dist)
    except BaseException:
        os.replace(old, dist)
        raise
    shutil.rmtree(old, ignore_errors=True)
