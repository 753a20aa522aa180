"""Deterministic ZIP writing and atomic file replacement (czmodel-format.md 7.1).

Every archive czbuild writes has: the member order the caller gives, stored (uncompressed)
entries, one fixed date/time (``SOURCE_DATE_EPOCH`` or 1980-01-01 00:00:00),
``external_attr = 0o100644 << 16``, ``create_system = 3`` (Unix), no directory entries,
no extra fields, no archive comment, no data descriptors, ZIP64 records only when sizes
need them and ASCII member names. The same members therefore give the same bytes on any
host, in any time zone and under any umask.
"""

from __future__ import annotations

import io
import os
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from czbuild.errors import ArchiveError
from czbuild.files.atomic import atomic_write as _atomic_write

#: 1980-01-01 00:00:00 UTC, the earliest time a ZIP entry can carry.
ZIP_EPOCH: Final = 315532800
#: 2107-12-31 23:59:58 UTC, the latest (even) time a ZIP entry can carry.
ZIP_LATEST: Final = 4354819198
EXTERNAL_ATTR: Final = 0o100644 << 16
CREATE_SYSTEM_UNIX: Final = 3


def zip_date_time() -> tuple[int, int, int, int, int, int]:
    """The date/time of every entry, from ``SOURCE_DATE_EPOCH`` (reproducible-builds.org).

    The value is read as UTC seconds, clamped to the range a ZIP entry can hold
    (1980-01-01 00:00:00 .. 2107-12-31 23:59:58) and rounded down to even seconds (DOS time
    has 2-second resolution). Unset or empty: 1980-01-01 00:00:00.

    Returns:
        ``(year, month, day, hour, minute, second)`` for :class:`zipfile.ZipInfo`.

    Raises:
        ArchiveError: If ``SOURCE_DATE_EPOCH`` is set but not an integer.
    """
    raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        seconds = ZIP_EPOCH
    else:
        try:
            seconds = int(raw)
        except ValueError:
            raise ArchiveError(
                f"SOURCE_DATE_EPOCH: must be an integer number of seconds since 1970, got {raw!r}"
            ) from None
    seconds = min(max(seconds, ZIP_EPOCH), ZIP_LATEST)
    seconds -= seconds % 2
    t = time.gmtime(seconds)
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)


def check_member_name(name: object) -> str:
    """Return ``name`` if it is an acceptable member name for czbuild to write.

    Raises:
        ArchiveError: For non-strings, empty or non-ASCII names, directory names, absolute
            paths, backslashes, ``.``/``..`` or empty path components.
    """
    if not isinstance(name, str) or not name:
        raise ArchiveError(f"zip member name must be a non-empty string, got {name!r}")
    if not name.isascii() or not name.isprintable():
        raise ArchiveError(f"zip member {name!r}: names must be printable ASCII")
    if "\\" in name or name.startswith("/") or name.endswith("/"):
        raise ArchiveError(f"zip member {name!r}: use relative '/'-separated file names")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise ArchiveError(f"zip member {name!r}: empty, '.' or '..' path components")
    return name


def zip_bytes(members: Sequence[tuple[str, bytes]]) -> bytes:
    """Build a deterministic stored ZIP archive in memory.

    Args:
        members: ``(name, data)`` pairs, written in exactly this order.

    Returns:
        The archive bytes.

    Raises:
        ArchiveError: For an invalid or duplicate member name (see :func:`check_member_name`)
            or a bad ``SOURCE_DATE_EPOCH``.
    """
    date_time = zip_date_time()
    seen: set[str] = set()
    buffer = io.BytesIO()  # seekable: zipfile then writes sizes in the local header, no descriptor
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, data in members:
            check_member_name(name)
            if name in seen:
                raise ArchiveError(
                    f"zip member {name!r} appears twice; member names must be unique"
                )
            seen.add(name)
            info = zipfile.ZipInfo(name, date_time=date_time)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = EXTERNAL_ATTR
            info.create_system = CREATE_SYSTEM_UNIX
            zf.writestr(info, bytes(data))
    return buffer.getvalue()


def zip_directory(root: Path) -> bytes:
    """Zip the regular files under ``root`` (e.g. a SavedModel) deterministically.

    Members are the files' POSIX paths relative to ``root``, sorted; directories are not
    stored (empty ones vanish). Symbolic links are refused, not followed.

    Args:
        root: The directory to pack.

    Returns:
        The archive bytes (see :func:`zip_bytes`).

    Raises:
        ArchiveError: If ``root`` is not a directory, contains a symlink or something other
            than files and directories, or a name that is not ASCII.
    """
    root = Path(root)
    if not root.is_dir():
        raise ArchiveError(f"{root}: not a directory; expected e.g. a SavedModel folder")
    files: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in dirnames + filenames:
            path = base / name
            if path.is_symlink():
                raise ArchiveError(f"{path}: symbolic links are not packed; replace it by the file")
        for name in filenames:
            path = base / name
            if not path.is_file():
                raise ArchiveError(f"{path}: not a regular file; only files can be packed")
            files.append((path.relative_to(root).as_posix(), path))
    files.sort(key=lambda item: item[0])
    return zip_bytes([(name, path.read_bytes()) for name, path in files])


def atomic_write(path: Path, data: bytes) -> None:
    """Write an artifact atomically and durably (:func:`czbuild.files.atomic_write`).

    Args:
        path: The final file name.
        data: The complete content.

    Raises:
        ArchiveError: If the file cannot be written (the message names the path).
    """
    try:
        _atomic_write(path, data, durable=True)
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot write: {exc.strerror or exc}") from exc
