"""Refresh ``czbuild.lock`` after ``czbuild build``.

Rules:

* only the variants of this run are touched: each one the build folder's manifest vouches for
  (built now or already up to date) gets its entry added or refreshed; a variant that failed
  keeps its old entry;
* entries of variants that no longer exist are removed only after a *full* build (all
  recipes, no command-line overrides) in which no variant failed;
* builds with command-line overrides never touch the lock: they build variants that the
  committed recipes do not define (:func:`czbuild.release.build_lock.update_lock_after_build`);
* the file is rewritten only when its text changes, under the project's lock
  (:func:`czbuild.builder.locking.project_lock`), so two builds of one project, into the same
  or different build folders, cannot lose each other's entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from czbuild.release.collect import entries_from_build
from czbuild.release.lockfile import LockUpdate, lock_path, read_lock, update_lock


def update_lock_from_build(
    project_dir: Path,
    out_dir: Path,
    variants: Sequence[Any],
    *,
    full: bool = False,
    lock_file: Path | None = None,
    lock_timeout: float = 60.0,
) -> LockUpdate:
    """Merge the entries of ``variants`` as built in ``out_dir`` into the lock file.

    Args:
        project_dir: The project folder (``czbuild.lock`` lives there).
        out_dir: The build folder the variants were built into.
        variants: The variants of the run.
        full: The run covered every recipe and every one of its variants succeeded: entries
            of other variants are removed.
        lock_file: The lock file (default ``<project>/czbuild.lock``).
        lock_timeout: Seconds to wait for another build of ``out_dir``.

    Returns:
        What changed.
    """
    from czbuild.builder import locking

    path = Path(lock_file) if lock_file else lock_path(project_dir)
    out_dir = Path(out_dir).absolute()
    locking.hold(out_dir, lock_timeout)
    try:
        with locking.project_lock(path.parent, lock_timeout):
            previous = read_lock(path)
            names = [v.name for v in variants]
            entries = entries_from_build(out_dir, names, previous=previous)
            keep = names if full and len(entries) == len(names) else None
            return update_lock(path, [entries[n] for n in names if n in entries], keep=keep)
    finally:
        locking.release(out_dir)
