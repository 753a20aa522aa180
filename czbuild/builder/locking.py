"""One build at a time per output directory: an OS file lock on ``<out>/.czbuild/lock``.

The lock is an advisory ``flock`` (via :mod:`filelock`): the kernel releases it when the
holding process dies, so a killed build never leaves a stale lock behind. A second build
waits up to ``timeout`` seconds and then refuses with a message naming the holder.
Read-only commands (``status``, ``doit list``) never take the lock: every state file is
replaced atomically, so they always read complete files.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from czbuild.builder.stamps import state_dir
from czbuild.errors import BuildError

DEFAULT_TIMEOUT = 60.0
_held: dict[str, BuildLock] = {}
_registry_lock = threading.Lock()
_acquisitions = itertools.count(1)


class BuildLock:
    """The exclusive lock of one output directory.

    Args:
        out_dir: The build output directory.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.path = state_dir(self.out_dir) / "lock"
        self._owner_path = state_dir(self.out_dir) / "lock.owner"
        self._lock = FileLock(str(self.path), thread_local=False)
        self.tenure = 0  # which acquisition this process holds (see holding())

    @property
    def is_locked(self) -> bool:
        return self._lock.is_locked

    def acquire(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Take the lock, waiting at most ``timeout`` seconds (0: do not wait).

        Raises:
            BuildError: Another process holds the lock after the timeout.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire(timeout=max(timeout, 0.0), poll_interval=0.1)
        except Timeout:
            owner = self._owner_text()
            raise BuildError(
                f"{self.out_dir}: another czbuild build holds the lock {self.path}"
                f"{f' ({owner})' if owner else ''}; waited {timeout:g} s. Wait for it to "
                "finish, or pass --wait SECONDS to wait longer."
            ) from None
        except OSError as exc:
            raise BuildError(
                f"{self.out_dir}: cannot take the build lock {self.path}: "
                f"{exc.strerror or exc}; make the output folder writable (or free space) "
                "and build again"
            ) from exc
        self.tenure = next(_acquisitions)
        try:
            self._owner_path.write_text(
                f"pid {os.getpid()}: {' '.join(sys.argv)[:200]}\n", encoding="utf-8"
            )
        except OSError:  # informational only
            pass

    def release(self) -> None:
        """Release the lock (all nested acquisitions)."""
        if self._lock.is_locked:
            self._lock.release(force=True)

    def _owner_text(self) -> str:
        try:
            return self._owner_path.read_text(encoding="utf-8").strip()
        except OSError:
            return ""


def hold(out_dir: Path, timeout: float = DEFAULT_TIMEOUT) -> BuildLock:
    """Take the lock of ``out_dir`` for the rest of this process (idempotent, thread-safe).

    Build actions call this before writing anything, so a plain ``doit`` run is serialised
    against ``czbuild build`` exactly like two ``czbuild build`` runs are.
    """
    key = os.path.abspath(out_dir)
    with _registry_lock:
        lock = _held.get(key)
        if lock is None:
            lock = BuildLock(Path(key))
        if not lock.is_locked:
            lock.acquire(timeout)
        _held[key] = lock
        return lock


def holding(out_dir: Path) -> int | None:
    """Which tenure of the lock of ``out_dir`` this process holds now, None when not held.

    Equal numbers at two moments mean the lock was held all along in between: nobody else
    can have written the output folder's state (stamps, manifest) meanwhile.
    """
    lock = _held.get(os.path.abspath(out_dir))
    if lock is None or not lock.is_locked:
        return None
    return lock.tenure


def release(out_dir: Path) -> None:
    """Release a lock taken with :func:`hold` (no-op if not held)."""
    with _registry_lock:
        lock = _held.pop(os.path.abspath(out_dir), None)
        if lock is not None:
            lock.release()


@contextlib.contextmanager
def project_lock(project_dir: Path, timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
    """Hold the project's lock while a block reads, changes and writes ``czbuild.lock``.

    Two builds of one project into different output folders hold different build locks, but
    share the project's lock file: its read-modify-write is serialised here so neither loses
    the other's entries. The lock file lives in the temporary folder, keyed by the project's
    real path, so nothing is written into the project (builds of one project from several
    machines over a network share are not serialised; see docs/building.md).

    Raises:
        BuildError: Another process held the lock for ``timeout`` seconds.
    """
    real = os.path.realpath(project_dir)
    digest = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    path = Path(tempfile.gettempdir()) / f"czbuild-project-{digest}.lock"
    lock = FileLock(str(path), thread_local=False, mode=0o666)
    try:
        lock.acquire(timeout=max(timeout, 0.0), poll_interval=0.05)
    except Timeout:
        raise BuildError(
            f"{real}: another czbuild process has been updating czbuild.lock for {timeout:g} s "
            f"(lock {path}); wait for it to finish, or pass --wait SECONDS to wait longer"
        ) from None
    try:
        yield
    finally:
        lock.release(force=True)
