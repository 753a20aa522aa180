"""What git says about the project: commit, tag, and uncommitted release inputs.

Everything goes through the ``git`` command line (``rev-parse``, ``describe``, ``status``), with
``GIT_OPTIONAL_LOCKS=0`` so that asking never takes the index lock. No git, or a project that
is not in a git work tree, is not an error: the state then says so and records no commit.

Dirty scope (what ``czbuild release`` refuses to release uncommitted): the paths given by
the caller, i.e. ``recipes/``, ``configs/``, ``czbuild.lock`` and every input file of every
variant (model sources, licences, custom-object files) inside the project. A path counts as
dirty when it has staged or unstaged changes, is deleted, or is untracked; inputs that git
*ignores* are treated as external inputs (not dirty: their sha256 is pinned in the lock and
recorded in the release manifest). Changes anywhere else (README, CI files) do not matter.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from czbuild.errors import BuildError


class DirtyTreeError(BuildError):
    """Release inputs have uncommitted changes (names the files and ``--allow-dirty``)."""


@dataclass(frozen=True)
class GitState:
    """The git state of a project.

    Attributes:
        available: The project is inside a git work tree (and git runs).
        commit: ``HEAD``'s full hash (None without commits or git).
        tag: A tag pointing exactly at ``HEAD``, or None.
        commit_time: ``HEAD``'s committer time (Unix seconds), or None.
        dirty: Project-relative paths in scope with uncommitted changes or untracked.
        ignored: Project-relative paths in scope that git ignores (external inputs).
        problem: Why git information is unavailable, when it is.
    """

    available: bool
    commit: str | None = None
    tag: str | None = None
    commit_time: int | None = None
    dirty: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    problem: str = ""

    def to_json(self) -> dict[str, object] | None:
        if not self.available:
            return None
        return {
            "commit": self.commit,
            "tag": self.tag,
            "dirty": bool(self.dirty),
            "dirty_files": list(self.dirty),
        }


def _git(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, check=False, timeout=60
    )


def _text(proc: subprocess.CompletedProcess[bytes]) -> str | None:
    return proc.stdout.decode("utf-8", "replace").strip() if proc.returncode == 0 else None


def git_state(project_dir: Path, scope: Sequence[str]) -> GitState:
    """The git state of ``project_dir``; ``scope`` are project-relative paths (see module doc)."""
    project = Path(project_dir).absolute()
    try:
        top = _text(_git(["rev-parse", "--show-toplevel"], project))
    except (OSError, subprocess.SubprocessError) as exc:
        return GitState(False, problem=f"git is not available ({exc})")
    if top is None:
        return GitState(False, problem=f"{project} is not in a git work tree")
    commit = _text(_git(["rev-parse", "--verify", "-q", "HEAD"], project)) or None
    tag = _text(_git(["describe", "--tags", "--exact-match", "HEAD"], project)) if commit else None
    time_text = _text(_git(["log", "-1", "--format=%ct", "HEAD"], project)) if commit else None
    dirty, ignored = _status(project, Path(top), scope)
    return GitState(
        True,
        commit=commit,
        tag=tag or None,
        commit_time=int(time_text) if time_text and time_text.isdigit() else None,
        dirty=dirty,
        ignored=ignored,
    )


def _status(
    project: Path, top: Path, scope: Sequence[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if not scope:
        return (), ()
    specs = [f":(literal){p}" for p in scope]
    proc = _git(
        [
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--ignored=matching",
            "--",
            *specs,
        ],
        project,
    )
    if proc.returncode != 0:
        raise BuildError(
            f"{project}: `git status` failed: {proc.stderr.decode('utf-8', 'replace').strip()}"
        )
    dirty: set[str] = set()
    ignored: set[str] = set()
    fields = proc.stdout.decode("utf-8", "surrogateescape").split("\0")
    i = 0
    while i < len(fields):
        record = fields[i]
        i += 1
        if len(record) < 4:
            continue
        code, path = record[:2], record[3:]
        if code[0] in "RC":  # renames and copies carry the old path as the next field
            i += 1
        rel = _project_relative(top / path, project)
        if rel is None:
            continue
        (ignored if code == "!!" else dirty).add(rel)
    return tuple(sorted(dirty)), tuple(sorted(ignored))


def _project_relative(path: Path, project: Path) -> str | None:
    try:
        return Path(os.path.abspath(path)).relative_to(project.resolve()).as_posix()
    except ValueError:
        try:
            return Path(os.path.abspath(path)).relative_to(project).as_posix()
        except ValueError:
            return None
