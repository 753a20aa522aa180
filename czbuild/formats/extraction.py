"""Writing a checked container's members to disk: the one safe extractor.

:func:`extract` writes the members of a container read by
:mod:`czbuild.formats.container` (so every name already passed the name-safety rule) into a
folder, re-checking that each path stays inside it. :func:`unpack` is ``czbuild unpack``: it
extracts into a temporary folder inside the destination and moves the files into place only
once every member was written, so a failure never leaves a partial extraction behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Final

from czbuild.errors import ArchiveError
from czbuild.formats.container import ARTIFACT_LIMITS, Container, Limits, open_container

logger = logging.getLogger(__name__)

#: Longest file name component most file systems hold (bytes).
MAX_NAME_BYTES: Final = 255


def extract(container: Container, folder: Path) -> list[Path]:
    """Write every file member of ``container`` under ``folder``.

    Args:
        container: A container read without problems (names checked, contents read).
        folder: Where to write; created if missing.

    Returns:
        The written paths, in archive order.

    Raises:
        ArchiveError: The container has problems, a name is too long or would leave
            ``folder``, or a file cannot be written (the message names the member).
    """
    container.raise_problems()
    base = Path(folder).resolve()
    written = []
    for member in container.files():
        _check_length(container.label, member.name)
        target = base.joinpath(*member.name.split("/"))
        if base not in target.resolve().parents:
            raise ArchiveError(
                f"{container.label}: member {member.name!r} would be written outside {base}"
            )
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(container.read(member.name))
        except OSError as exc:
            raise ArchiveError(
                f"{container.label}: member {member.name!r} cannot be written to {base}: "
                f"{exc.strerror or exc}"
            ) from exc
        written.append(target)
    return written


def unpack(
    path: str | Path, dest: str | Path, *, max_bytes: int = ARTIFACT_LIMITS.max_bytes
) -> list[Path]:
    """Extract every file member of a model file under ``dest`` (created if missing).

    The archive must be structurally safe (:mod:`czbuild.formats.container`); metadata that
    does not parse is only a logged warning, since unpacking is how a broken file is
    examined. Existing symbolic links on the way are refused, so nothing is ever written
    outside ``dest``; existing regular files are replaced. Members are written to a temporary
    folder inside ``dest`` first and moved into place only when all were written.

    Returns:
        The written paths, in archive order.

    Raises:
        ArchiveError: The archive is unsafe or unreadable, or a target is unsafe or
            unwritable; ``dest`` is then left as it was.
    """
    from czbuild.formats.reader import artifact_from

    limits = Limits(max_bytes=max_bytes, max_members=ARTIFACT_LIMITS.max_members)
    container = open_container(Path(path), limits=limits)
    try:
        artifact_from(container)
    except ArchiveError as exc:
        logger.warning("%s; unpacking it anyway", exc)
    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArchiveError(f"{dest}: cannot create the folder: {exc.strerror or exc}") from exc
    root = dest.resolve()
    names = [m.name for m in container.files()]
    for name in names:
        _check_length(container.label, name)
    targets = [_safe_target(root, name) for name in names]
    try:
        scratch = Path(tempfile.mkdtemp(prefix=".czbuild-unpack-", dir=root))
    except OSError as exc:
        raise ArchiveError(f"{dest}: cannot write there: {exc.strerror or exc}") from exc
    try:
        staged = extract(container, scratch)
        for source, target in zip(staged, targets):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
    except OSError as exc:
        raise ArchiveError(f"{dest}: cannot unpack there: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return [dest.joinpath(*name.split("/")) for name in names]


def _check_length(label: str, name: str) -> None:
    for part in name.split("/"):
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise ArchiveError(
                f"{label}: member {name[:60]!r}...: a name component is longer than "
                f"{MAX_NAME_BYTES} bytes; no file system can hold it"
            )


def _safe_target(root: Path, name: str) -> Path:
    """``root/name`` after checking no existing symlink or non-directory lies in the way."""
    current = root
    parts = name.split("/")
    for i, part in enumerate(parts):
        current = current / part
        if current.is_symlink():
            raise ArchiveError(
                f"{current}: is a symbolic link; refusing to unpack {name!r} through it"
            )
        last = i == len(parts) - 1
        if current.exists() and (current.is_dir() if last else not current.is_dir()):
            kind = "a folder" if last else "not a folder"
            raise ArchiveError(f"{current}: is {kind}; cannot unpack {name!r} there")
    resolved = current.resolve()
    if root != resolved and root not in resolved.parents:
        raise ArchiveError(f"{name!r} would be written outside {root}; refusing")
    return current
