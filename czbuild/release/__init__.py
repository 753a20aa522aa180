"""Reproducible releases: the lock file, artifact diffs, lock checks and ``czbuild release``.

Public API (re-exported lazily: importing this package costs nothing, so ``czbuild build``
can refresh the lock on its no-op path; TensorFlow is imported only by a numeric payload
comparison and by verification):

* the lock file: :class:`LockFile`, :class:`LockEntry`, :class:`LockedMember`,
  :func:`read_lock`, :func:`write_lock`, :func:`update_lock`, :func:`render_lock`,
  :func:`parse_lock`, :func:`lock_path`; :func:`entries_from_build` (entries from a build
  folder's manifest) and :func:`update_lock_from_build` (what ``czbuild build`` runs);
* diffs: :func:`explain_differences` / :func:`explain_against_lock` -> [:class:`Difference`],
  :func:`format_differences`, :func:`headline`;
* checks: :func:`check_lock` -> :class:`CheckReport` of :class:`VariantCheck`;
* releases: :func:`release` -> :class:`ReleaseReport`;
* around a build: :func:`update_lock_after_build` (the lock refresh of ``czbuild build``)
  and :func:`build_locked` -> :class:`LockedBuild` (``czbuild build --locked``).

See docs/reproducibility.md ("Lock file and releases").
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "LockedBuild": "czbuild.release.build_lock",
    "build_locked": "czbuild.release.build_lock",
    "update_lock_after_build": "czbuild.release.build_lock",
    "CheckReport": "czbuild.release.check",
    "VariantCheck": "czbuild.release.check",
    "check_lock": "czbuild.release.check",
    "entries_from_build": "czbuild.release.collect",
    "explain_against_lock": "czbuild.release.diff",
    "explain_differences": "czbuild.release.diff",
    "Difference": "czbuild.release.difference",
    "format_differences": "czbuild.release.difference",
    "headline": "czbuild.release.difference",
    "LockEntry": "czbuild.release.lockfile",
    "LockFile": "czbuild.release.lockfile",
    "LockFileError": "czbuild.release.lockfile",
    "LockUpdate": "czbuild.release.lockfile",
    "LockedMember": "czbuild.release.lockfile",
    "lock_path": "czbuild.release.lockfile",
    "parse_lock": "czbuild.release.lockfile",
    "read_lock": "czbuild.release.lockfile",
    "render_lock": "czbuild.release.lockfile",
    "update_lock": "czbuild.release.lockfile",
    "write_lock": "czbuild.release.lockfile",
    "ReleaseReport": "czbuild.release.release",
    "VerifyOutcome": "czbuild.release.release",
    "release": "czbuild.release.release",
    "update_lock_from_build": "czbuild.release.updating",
}

__all__ = [
    "CheckReport",
    "Difference",
    "LockEntry",
    "LockFile",
    "LockFileError",
    "LockUpdate",
    "LockedBuild",
    "LockedMember",
    "ReleaseReport",
    "VariantCheck",
    "VerifyOutcome",
    "build_locked",
    "check_lock",
    "entries_from_build",
    "explain_against_lock",
    "explain_differences",
    "format_differences",
    "headline",
    "lock_path",
    "parse_lock",
    "read_lock",
    "release",
    "render_lock",
    "update_lock",
    "update_lock_after_build",
    "update_lock_from_build",
    "write_lock",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'czbuild.release' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
