"""Replace a file so that readers only ever see a complete old or a complete new file."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write", "fsync_dir"]


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(6)}.tmp")


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that needs a file name (not bytes).

    The block writes the temporary file (named as :func:`atomic_write`'s); on a clean exit it
    replaces ``path``, on any exception (also ``KeyboardInterrupt``) it is removed and an
    existing ``path`` is left as it was. For outputs streamed tile by tile (``czbuild
    predict``'s OME-TIFFs), which never exist as one ``bytes`` object.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)
        raise


def atomic_write(path: Path | str, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    The temporary file is ``.<name>.<pid>-<random>.tmp`` beside ``path`` (the PID lets a later
    process remove what a killed one left: :func:`czbuild.files.scratch.sweep_dead_temporaries`);
    missing parent folders are created; the new file's mode follows the umask (like
    :func:`open`). On any failure (also ``KeyboardInterrupt``) the temporary file is removed
    and an existing ``path`` is left as it was.

    Args:
        path: The final file name.
        data: The complete new content.
        durable: fsync the file before the rename and the folder after it, so the new content
            survives a power loss, not only a killed process. Caches may skip it.

    Raises:
        OSError: The folder or file cannot be written; the exception names the path.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        fd = os.open(tmp, flags, 0o666)
        try:
            view = memoryview(bytes(data))
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
    if durable:
        fsync_dir(path.parent)


def fsync_dir(folder: Path | str) -> None:
    """Best effort: persist a rename in ``folder`` (not possible on every OS / file system)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
