"""The release folder: artifacts, ``SHA256SUMS`` and ``release.json``, written all at once.

Layout (mirrors the build folder, so sweep points of one recipe never collide)::

    dist/
      SHA256SUMS                      # `sha256sum -c SHA256SUMS` inside dist/ verifies all
      release.json                    # the release manifest (no timestamps)
      .czbuild-release                # czbuild's marker: what it wrote here
      nuclei/tile=128/nuclei.czann
      legacy_seed/default/legacy_seed.czmodel

Guarantees (docs/reproducibility.md):

* **Only czbuild's own folders are replaced.** An existing target is replaced only if it is
  empty or a release czbuild wrote: its ``.czbuild-release`` marker names the sha256 of the
  ``release.json`` beside it and every file in the folder. A folder with any other file (or
  no marker) is refused, naming the files; nothing is removed.
* **Readers see the old release or the new one.** The new folder is assembled beside the
  target (``.dist.tmp-<pid>-<token>``), completed with its marker, then swapped in by two
  renames (old aside as ``.dist.old-<pid>-<token>``, new into place). A process killed
  between the two renames leaves no ``dist/``; the next ``czbuild release`` (or any call of
  :func:`recover`) finishes the swap when the new folder was complete, else restores the old
  one, and removes the temporaries of dead processes.

Files get mode 0644 and folders 0755 whatever the umask.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from czbuild.errors import BuildError
from czbuild.files.scratch import owner_pid, pid_alive, temp_name

SUMS_NAME = "SHA256SUMS"
MANIFEST_NAME = "release.json"
MARKER_NAME = ".czbuild-release"
RELEASE_FORMAT = 1
_MARKER_TOOL = "czbuild release folder"


def check_target(dist: Path) -> None:
    """Refuse a target folder that is neither missing, empty, nor a release czbuild wrote.

    Raises:
        BuildError: Naming the folder, what is in the way and the fix.
    """
    dist = Path(dist)
    recover(dist)
    if not dist.exists() and not dist.is_symlink():
        return
    if dist.is_symlink() or not dist.is_dir():
        raise BuildError(f"{dist}: exists and is not a folder; choose another --out")
    present = _files_in(dist)
    if not present:
        return
    written = _marker_files(dist)
    if written is None:
        raise BuildError(
            f"{dist}: exists, is not empty and is not a release czbuild wrote (no valid "
            f"{MARKER_NAME} marker); choose another --out or empty the folder yourself"
        )
    foreign = sorted(present - written - {MARKER_NAME})
    if foreign:
        shown = ", ".join(foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        raise BuildError(
            f"{dist}: holds files czbuild did not write ({shown}); move them elsewhere or "
            "choose another --out (a release never removes files it did not write)"
        )


def _files_in(folder: Path) -> set[str]:
    """Every non-folder entry below ``folder`` as a relative POSIX path."""
    out: set[str] = set()
    for root, dirs, files in os.walk(folder, followlinks=False):
        rel = Path(root).relative_to(folder)
        for name in files + [d for d in dirs if (Path(root) / d).is_symlink()]:
            out.add((rel / name).as_posix())
    return out


def _marker_files(dist: Path) -> set[str] | None:
    """The files the marker says czbuild wrote, or None if the marker is missing or foreign."""
    try:
        marker = json.loads((dist / MARKER_NAME).read_text(encoding="utf-8"))
        manifest_sha = hashlib.sha256((dist / MANIFEST_NAME).read_bytes()).hexdigest()
    except (OSError, ValueError):
        return None
    if (
        not isinstance(marker, dict)
        or marker.get("tool") != _MARKER_TOOL
        or marker.get("release_json_sha256") != manifest_sha
        or not isinstance(marker.get("files"), list)
    ):
        return None
    return {str(f) for f in marker["files"]}


def recover(dist: Path) -> list[str]:
    """Finish or undo a swap a killed release left, and remove dead processes' temporaries.

    Returns:
        What was done, one line per action (for logs and tests).
    """
    dist = Path(dist).absolute()
    parent = dist.parent
    done: list[str] = []
    if not parent.is_dir():
        return done
    old_stem, tmp_stem = f".{dist.name}.old", f".{dist.name}.tmp"
    entries = sorted(parent.iterdir())
    for old in entries:
        pid = owner_pid(old.name, old_stem)
        if pid is None or pid_alive(pid):
            continue
        if not dist.exists():
            staged = [
                e
                for e in entries
                if owner_pid(e.name, tmp_stem) == pid and (e / MARKER_NAME).is_file()
            ]
            if staged:
                os.replace(staged[0], dist)
                done.append(f"finished the interrupted swap: {staged[0].name} -> {dist.name}")
            else:
                os.replace(old, dist)
                done.append(f"restored the previous release from {old.name}")
                continue
        shutil.rmtree(old, ignore_errors=True)
        done.append(f"removed {old.name}")
    for tmp in sorted(parent.iterdir()):
        pid = owner_pid(tmp.name, tmp_stem)
        if pid is not None and not pid_alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)
            done.append(f"removed {tmp.name}")
    return done


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
    staging = dist.parent / temp_name(f".{dist.name}.tmp")
    sums: dict[str, str] = {}
    try:
        staging.mkdir(mode=0o755)
        os.chmod(staging, 0o755)
        for rel, source in artifacts:
            data = Path(source).read_bytes()
            sums[rel] = _put(staging, rel, data)
        manifest_bytes = render_manifest(manifest)
        sums[MANIFEST_NAME] = _put(staging, MANIFEST_NAME, manifest_bytes)
        _put(staging, SUMS_NAME, render_sums(sums))
        marker = {
            "tool": _MARKER_TOOL,
            "format": RELEASE_FORMAT,
            "release_json_sha256": sums[MANIFEST_NAME],
            "files": sorted([*sums, SUMS_NAME]),
        }
        # Written last: a staging folder with its marker is complete (see recover()).
        _put(staging, MARKER_NAME, render_manifest(marker))
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
    old = dist.parent / temp_name(f".{dist.name}.old")
    os.replace(dist, old)
    try:
        os.replace(staging, dist)
    except BaseException:
        os.replace(old, dist)
        raise
    shutil.rmtree(old, ignore_errors=True)
