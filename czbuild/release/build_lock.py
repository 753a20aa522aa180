"""The lock file side of ``czbuild build``: the lock refresh after a build, and ``--locked``.

Two library workflows that the CLI (and any other caller) runs around a build:

* :func:`update_lock_after_build` refreshes ``czbuild.lock`` from the build folder after a
  normal build (rules in :mod:`czbuild.release.updating`); a build with command-line
  overrides never touches the lock, because it builds variants the committed recipes do not
  define;
* :func:`build_locked` rebuilds in a scratch folder, compares with the lock, and only if
  every variant matches installs the checked artifacts in the build folder.

Neither prints: they return data that the caller renders. Neither imports TensorFlow unless
a numeric payload comparison runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from czbuild.errors import BuildError
from czbuild.files.scratch import make_scratch

__all__ = ["LockedBuild", "build_locked", "update_lock_after_build"]


def update_lock_after_build(
    report: Any,
    variants: Sequence[Any],
    *,
    project_dir: Path,
    out_dir: Path,
    names: Sequence[str],
    overrides: Sequence[str],
    lock_timeout: float = 60.0,
) -> Any:
    """Refresh ``czbuild.lock`` after a build of ``variants`` into ``out_dir``.

    Args:
        report: The :class:`czbuild.builder.BuildReport` of the build.
        variants: The variants of the build.
        project_dir: The project folder (``czbuild.lock`` lives there).
        out_dir: The build folder.
        names: The recipe names the build was asked for (empty: all recipes).
        overrides: The command-line overrides of the build.
        lock_timeout: Seconds to wait for another build of ``out_dir``.

    Returns:
        The :class:`czbuild.release.LockUpdate`, or None when the lock was not touched
        because of command-line overrides.
    """
    from czbuild.release.updating import update_lock_from_build

    if overrides:
        return None
    full = not names and not report.summary.failed and report.exit_code == 0
    return update_lock_from_build(
        project_dir, out_dir, variants, full=full, lock_timeout=lock_timeout
    )


@dataclass(frozen=True)
class LockedBuild:
    """What ``build --locked`` did.

    Attributes:
        check: The :class:`czbuild.release.CheckReport` of the scratch rebuild.
        out_dir: The build folder.
        installed: Whether the checked artifacts are now in ``out_dir`` (only when every
            variant matched the lock; otherwise neither ``out_dir`` nor the lock changed).
        rebuilt: Variants the build layer did not accept from the scratch folder and that
            were built normally into ``out_dir`` instead.
    """

    check: Any
    out_dir: Path
    installed: bool
    rebuilt: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Every variant matched the lock and is installed."""
        return bool(self.check.ok) and self.installed


def build_locked(
    variants: Sequence[Any],
    options: Any,
    *,
    project_dir: Path,
    full: bool,
    stream: TextIO | None = None,
    verbose: bool = False,
) -> LockedBuild:
    """Rebuild ``variants`` in a scratch folder, compare them with the lock, install if equal.

    Args:
        variants: The variants (as the committed recipes define them: no overrides).
        options: The :class:`czbuild.builder.BuildOptions` of the build; ``out_dir`` is the
            build folder the checked artifacts are installed in.
        project_dir: The project folder (holds ``czbuild.lock``).
        full: ``variants`` are every variant the recipes define.
        stream: Where the scratch build's progress lines go (default: discarded).
        verbose: Verbose progress of a normal build of variants not adopted.

    Returns:
        A :class:`LockedBuild`; when ``check.ok`` is False nothing was installed.

    Raises:
        BuildError: A variant that had to be built normally after the check failed.
    """
    from czbuild.builder import build
    from czbuild.release.adopt import adopt
    from czbuild.release.check import check_lock

    out_dir = Path(options.out_dir).absolute()
    scratch = make_scratch("locked")
    try:
        report = check_lock(
            variants,
            project_dir=project_dir,
            options=options,
            reference_dirs=[out_dir],
            scratch_dir=scratch,
            full=full,
            stream=stream,
        )
        if not report.ok:
            return LockedBuild(check=report, out_dir=out_dir, installed=False)
        remaining = adopt(scratch, out_dir, variants, lock_timeout=options.lock_timeout)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if remaining:  # the build layer disagreed with a copied stamp: build those normally
        todo = [v for v in variants if v.name in remaining]
        result = build(todo, options, verbose=verbose)
        if not result.ok:
            raise BuildError(
                f"{len(result.summary.failed)} variants failed: "
                f"{', '.join(sorted(result.summary.failed))}"
            )
    return LockedBuild(check=report, out_dir=out_dir, installed=True, rebuilt=tuple(remaining))
