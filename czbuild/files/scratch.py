"""Scratch folders and temporary names that carry their owner's PID, and the sweep of leftovers.

czbuild writes through temporary names (``.dist.tmp-<pid>-<token>``, ``czbuild-check-<pid>-…``)
so that nothing half-written ever has a final name. A process killed with SIGKILL cannot remove
its own temporaries; the next czbuild process that uses the same place removes those whose
owner is no longer running. A PID that has been reused by an unrelated process only delays the
sweep (the entry is left alone), never removes something still in use.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

__all__ = [
    "final_name",
    "make_scratch",
    "owner_pid",
    "pid_alive",
    "sweep_dead",
    "sweep_dead_temporaries",
    "temp_name",
    "temporary_owner",
]

_TAGGED = re.compile(r"-(\d+)-[0-9a-z_]+$")
# Hidden temporary files that carry their writer's PID: the atomic writer's
# ``.<name>.<pid>-<random>.tmp`` and the build's ``.<name>.verifying-<pid>.tmp``.
_TEMPORARY = re.compile(r"^\.(.+?)(?:\.(\d{1,9})-[0-9a-f]+|\.verifying-(\d{1,9}))\.tmp$")


def temp_name(stem: str) -> str:
    """``<stem>-<pid>-<random>``: a temporary name this process owns."""
    return f"{stem}-{os.getpid()}-{os.urandom(4).hex()}"


def owner_pid(name: str, stem: str) -> int | None:
    """The PID in a name made by :func:`temp_name` from ``stem``, or None for other names."""
    if not name.startswith(stem + "-"):
        return None
    match = _TAGGED.search(name[len(stem) :])
    return int(match.group(1)) if match and match.start() == 0 else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this machine."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


def sweep_dead(folder: Path, stem: str) -> list[Path]:
    """Remove the entries of ``folder`` named from ``stem`` whose owner process is gone.

    Returns:
        The paths removed.
    """
    removed: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        pid = owner_pid(entry.name, stem)
        if pid is None or pid_alive(pid):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError:
            continue
        removed.append(entry)
    return removed


def temporary_owner(name: str) -> int | None:
    """The PID in a hidden temporary file name czbuild writes through, or None for other names."""
    match = _TEMPORARY.match(name)
    if match is None:
        return None
    return int(match.group(2) or match.group(3))


def final_name(name: str) -> str:
    """The name a hidden temporary file stands for (``.x.czann.verifying-7.tmp`` -> ``x.czann``).

    Other names are returned unchanged, so a check on a file's extension can look through
    czbuild's own temporaries.
    """
    match = _TEMPORARY.match(name)
    return match.group(1) if match else name


def sweep_dead_temporaries(root: Path) -> list[Path]:
    """Remove, anywhere under ``root``, the PID-tagged temporary files of processes that are gone.

    A killed czbuild leaves ``.manifest.json.<pid>-<random>.tmp``, ``.x.verify.json.<pid>-...``
    or ``.x.czann.verifying-<pid>.tmp`` behind; the next process that works in the folder calls
    this. Files of a live process (or of a PID reused since) are left alone.

    Returns:
        The paths removed.
    """
    removed: list[Path] = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            pid = temporary_owner(name)
            if pid is None or pid_alive(pid):
                continue
            path = Path(dirpath, name)
            try:
                path.unlink()
            except OSError:
                continue
            removed.append(path)
    return removed


def make_scratch(kind: str) -> Path:
    """A new scratch folder ``$TMPDIR/czbuild-<kind>-<pid>-<random>`` (dead owners' swept)."""
    stem = f"czbuild-{kind}"
    root = Path(tempfile.gettempdir())
    sweep_dead(root, stem)
    path = root / temp_name(stem)
    path.mkdir(mode=0o700)
    return path
