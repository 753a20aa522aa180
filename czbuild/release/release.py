"""``czbuild release``: build every variant from scratch, check it, verify it, publish it.

Order, failing as early as possible:

1. git: refuse uncommitted release inputs (:mod:`~czbuild.release.gitinfo` defines the scope)
   unless ``allow_dirty``; outside git, note that no commit is recorded;
2. lock: refuse variants without a current lock entry, and lock entries of variants that no
   longer exist, unless ``allow_stale_lock``;
3. rebuild every variant in a scratch folder and compare with the lock
   (:func:`~czbuild.release.check.check_lock`); a difference is refused unless
   ``allow_stale_lock``; a failed build always is;
4. verify each artifact: the scratch build verified it in its workers before installing it
   (the record in its stamp; :mod:`czbuild.verify` in this process only where no record is
   left); a failed check is refused, and so is a warning about a check the recipe does not
   accept (``verify.accept``) unless ``allow_warnings``;
5. write ``dist/`` with ``SHA256SUMS`` and ``release.json`` (:mod:`~czbuild.release.dist`).

The release is reproducible: the same commit, lock and toolchain give the same ``dist/`` bytes.
``release.json`` holds no times, host names or absolute paths. ``SOURCE_DATE_EPOCH`` is *not*
derived from the commit time: artifacts must not change with unrelated commits, and must be
the very bytes the lock (written by ``czbuild build``) pins. An explicitly set
``SOURCE_DATE_EPOCH`` is honoured by every build step alike and recorded in ``release.json``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TextIO

from czbuild.builder.status import CheckWarning, record_warnings
from czbuild.errors import BuildError, LockMismatchError, VerifyError
from czbuild.files.scratch import make_scratch
from czbuild.formats.container import open_container
from czbuild.recipe.variant import Variant
from czbuild.release.check import DIFFERS, FAILED, MATCH, CheckReport, check_lock
from czbuild.release.collect import lock_toolchain
from czbuild.release.difference import format_differences
from czbuild.release.dist import RELEASE_FORMAT, check_target, write_dist
from czbuild.release.freshness import Freshness, extra_entries, freshness
from czbuild.release.gitinfo import DirtyTreeError, GitState, git_state
from czbuild.release.lockfile import LOCK_NAME, lock_path, read_lock

PASSED = "passed"
SKIPPED = "skipped"
_SHOW = 10


@dataclass(frozen=True)
class VerifyOutcome:
    """Verification of one artifact: ``passed``, ``failed`` or ``skipped``, and why.

    ``warnings`` are the checks that ended in a warning; a release refuses those the recipe
    does not accept (``verify.accept``) unless ``allow_warnings``.
    """

    status: str
    message: str = ""
    warnings: tuple[CheckWarning, ...] = ()

    @property
    def open_warnings(self) -> tuple[CheckWarning, ...]:
        """The warnings the recipe does not accept."""
        return tuple(w for w in self.warnings if not w.accepted)


#: ``verifier(artifact_path, variant) -> VerifyOutcome``.
Verifier = Callable[[Path, Any], VerifyOutcome]


@dataclass(frozen=True)
class ReleasedArtifact:
    """One artifact in the release.

    Attributes:
        variant: Variant name.
        path: Path relative to the release folder.
        sha256: sha256 of the file.
        size: Size in bytes.
        lock_status: The lock check's status (``match``, ``numeric``, or with
            ``allow_stale_lock`` also ``missing`` / ``stale`` / ``differs``).
        verify: The verification outcome.
    """

    variant: str
    path: str
    sha256: str
    size: int
    lock_status: str
    verify: VerifyOutcome


@dataclass(frozen=True)
class ReleaseReport:
    """What :func:`release` wrote.

    Attributes:
        dist_dir: The release folder.
        artifacts: One per variant.
        git: The git state at release time.
        check: The lock check of the scratch rebuild.
        manifest: The content of ``release.json``.
        sums: Relative path -> sha256 of every file in ``SHA256SUMS``.
        notes: Things the user should know (no git, no verifier, stale lock accepted, ...).
    """

    dist_dir: Path
    artifacts: tuple[ReleasedArtifact, ...]
    git: GitState
    check: CheckReport
    manifest: dict[str, Any]
    sums: dict[str, str]
    notes: tuple[str, ...] = field(default=())


def default_verifier() -> Verifier | None:
    """A verifier backed by :func:`czbuild.verify.verify_built_artifact`, or None if absent."""
    try:
        from czbuild.verify import verify_built_artifact
    except ImportError:
        return None

    def run(path: Path, variant: Variant) -> VerifyOutcome:
        report = verify_built_artifact(path, variant)
        return outcome_of(report.to_dict(), variant)

    return run


def outcome_of(record: Any, variant: Variant) -> VerifyOutcome:
    """The :class:`VerifyOutcome` of a verification record (a stamp's or ``report.to_dict()``)."""
    checks = [c for c in record.get("checks") or [] if isinstance(c, dict)]
    warnings = record_warnings(record, variant.spec.verify.accept)
    if record.get("ok"):
        return VerifyOutcome(PASSED, f"{len(checks)} checks, none failed", warnings)
    failed = [c for c in checks if c.get("status") == FAILED]
    first = failed[0] if failed else {"name": "?", "message": "no check passed"}
    return VerifyOutcome(
        FAILED,
        f"{len(failed)} failed check(s): "
        f"{', '.join(str(c.get('name')) for c in failed)} ({first.get('name')}: "
        f"{first.get('message')})",
        warnings,
    )


def recorded_outcome(out_dir: Path, variant: Variant) -> VerifyOutcome | None:
    """The outcome of the verification the build recorded in the variant's stamp, if any.

    The release's scratch build verified every artifact in its worker processes before
    installing it, with the recipe's settings; reading that record avoids verifying twice
    (and loading TensorFlow in the release process).
    """
    from czbuild.builder.stamps import read_stamp

    stamp = read_stamp(out_dir, PurePosixPath(variant.output).as_posix())
    record = (stamp or {}).get("verification")
    if not isinstance(record, dict):
        return None
    if (stamp or {}).get("artifact", {}).get("sha256") != _sha256(
        out_dir / PurePosixPath(variant.output)
    ):
        return None
    return outcome_of(record, variant)


def _sha256(path: Path) -> str | None:
    from czbuild.files.digest import file_sha256

    try:
        return file_sha256(path)
    except OSError:
        return None


def release_scope(variants: Iterable[Variant], project_dir: Path) -> list[str]:
    """Project-relative paths whose uncommitted changes block a release (gitinfo docstring)."""
    project = Path(project_dir).absolute()
    scope = {"recipes", "configs", LOCK_NAME}
    for variant in variants:
        for path in [*variant.inputs, variant.recipe_file]:
            try:
                scope.add(Path(os.path.abspath(path)).relative_to(project).as_posix())
            except ValueError:
                continue  # inputs outside the project are pinned by hash only
    return sorted(scope)


def release(
    variants: Sequence[Variant],
    *,
    project_dir: Path,
    dist_dir: Path | None = None,
    options: Any = None,
    allow_dirty: bool = False,
    allow_stale_lock: bool = False,
    verify: bool = True,
    verifier: Verifier | None = None,
    reference_dirs: Iterable[Path] = (),
    stream: TextIO | None = None,
    allow_warnings: bool = False,
) -> ReleaseReport:
    """Build, check, verify and publish every variant (see the module docstring).

    Args:
        variants: Every recipe variant of the project.
        project_dir: The project folder.
        dist_dir: The release folder (default ``<project>/dist``).
        options: A :class:`czbuild.builder.BuildOptions` template (jobs, backend, timeout).
        allow_dirty: Release even with uncommitted release inputs (recorded).
        allow_stale_lock: Release even if the lock is missing entries, has extra ones, or
            an artifact differs from it (recorded per artifact).
        verify: Verify the artifacts.
        verifier: The verifier (default: the record the scratch build's verification left in
            each stamp, else :func:`default_verifier`).
        reference_dirs: Where previous artifacts are looked up for field-level diffs.
        stream: Where build progress lines go.
        allow_warnings: Release artifacts whose verification warned about a check the
            recipe does not accept (``verify.accept``); recorded in ``release.json``.

    Returns:
        The report.

    Raises:
        DirtyTreeError: Uncommitted release inputs, without ``allow_dirty``.
        LockMismatchError: A stale lock or a difference, without ``allow_stale_lock``.
        BuildError: A variant failed to build, or the release folder cannot be written.
        VerifyError: An artifact failed verification, or has warnings the recipe does not
            accept (without ``allow_warnings``).
    """
    project = Path(project_dir).absolute()
    dist = Path(dist_dir).absolute() if dist_dir else project / "dist"
    if not variants:
        raise BuildError(f"{project}: no recipe variants to release (recipes/ is empty)")
    notes: list[str] = []
    git = git_state(project, release_scope(variants, project))
    _check_git(git, allow_dirty, notes)
    lock_file = lock_path(project)
    fresh = _check_lock_fresh(variants, lock_file, allow_stale_lock, notes, reference_dirs)
    check_target(dist)
    scratch = make_scratch("release")
    try:
        report = check_lock(
            variants,
            project_dir=project,
            lock_file=lock_file,
            options=options,
            reference_dirs=reference_dirs,
            scratch_dir=scratch,
            build_stale=True,
            full=True,
            stream=stream,
        )
        _check_results(report, allow_stale_lock, notes)
        outcomes = _verify(variants, scratch, verify, verifier, notes)
        _check_warnings(outcomes, allow_warnings, notes)
        artifacts, entries = _describe(variants, scratch, report, outcomes)
        manifest = _manifest(variants, git, lock_file, report, entries, fresh, notes)
        sums = write_dist(dist, [(a.path, scratch / a.path) for a in artifacts], manifest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return ReleaseReport(
        dist_dir=dist,
        artifacts=tuple(artifacts),
        git=git,
        check=report,
        manifest=manifest,
        sums=sums,
        notes=tuple(notes),
    )


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    return shown + (f" and {len(items) - _SHOW} more" if len(items) > _SHOW else "")


def _check_git(git: GitState, allow_dirty: bool, notes: list[str]) -> None:
    if not git.available:
        notes.append(
            "no git commit recorded (not in a git work tree, or git is not "
            "available); the uncommitted-changes check was skipped"
        )
        return
    if git.commit is None:
        notes.append("the git repository has no commit yet: no commit recorded")
    if not git.dirty:
        return
    if not allow_dirty:
        raise DirtyTreeError(
            f"uncommitted changes to release inputs: {_listing(list(git.dirty))}. Commit them "
            "(a release must be reproducible from its commit), or pass --allow-dirty to "
            "release anyway (recorded in release.json)"
        )
    notes.append(f"released with uncommitted changes (--allow-dirty): {_listing(list(git.dirty))}")


def _check_lock_fresh(
    variants: Sequence[Variant],
    lock_file: Path,
    allow: bool,
    notes: list[str],
    reference_dirs: Iterable[Path],
) -> dict[str, Freshness]:
    lock = read_lock(lock_file)
    refs = list(reference_dirs)
    fresh = freshness(variants, lock, reference_dir=refs[0] if refs else None)
    problems = [f"{name}: {'; '.join(f.reasons)}" for name, f in fresh.items() if f.status]
    extra = extra_entries(lock, variants)
    if extra:
        problems.append(f"entries of variants that no recipe defines any more: {_listing(extra)}")
    if not problems:
        return fresh
    where = lock_file.name if lock_file.exists() else f"{lock_file.name} (missing)"
    if not allow:
        raise LockMismatchError(
            f"{where} is stale: " + " | ".join(problems) + ". Run `czbuild build` (all "
            "recipes) and commit czbuild.lock, or pass --allow-stale-lock to release anyway"
        )
    notes.append("released with a stale lock (--allow-stale-lock): " + " | ".join(problems))
    return fresh


def _check_results(report: CheckReport, allow_stale: bool, notes: list[str]) -> None:
    failed = [r for r in report.results if r.status == FAILED]
    if failed:
        raise BuildError(
            "the release build failed: "
            + " | ".join(f"{r.variant}: {'; '.join(r.reasons)}" for r in failed)
        )
    differs = [r for r in report.results if r.status == DIFFERS]
    if not differs:
        return
    details = []
    for r in differs:
        lines = format_differences(r.differences, limit=8)
        details.append(f"{r.variant} ({r.output}): {r.headline}\n    - " + "\n    - ".join(lines))
    message = "rebuilt artifacts differ from czbuild.lock:\n" + "\n".join(details)
    if not allow_stale:
        raise LockMismatchError(
            message + "\nFix the cause, or run `czbuild build` to accept the "
            "new bytes into the lock, or pass --allow-stale-lock"
        )
    notes.append(
        f"released artifacts that differ from the lock (--allow-stale-lock): "
        f"{', '.join(r.variant for r in differs)}"
    )


def _verify(
    variants: Sequence[Variant],
    scratch: Path,
    verify: bool,
    verifier: Verifier | None,
    notes: list[str],
) -> dict[str, VerifyOutcome]:
    if not verify:
        notes.append("artifacts not verified (--no-verify)")
        return {v.name: VerifyOutcome(SKIPPED, "--no-verify") for v in variants}
    outcomes: dict[str, VerifyOutcome] = {}
    if verifier is None:
        for variant in variants:
            recorded = recorded_outcome(scratch, variant)
            if recorded is not None:
                outcomes[variant.name] = recorded
    todo = [v for v in variants if v.name not in outcomes]
    verifier = verifier or (default_verifier() if todo else None)
    if todo and verifier is None:
        notes.append("czbuild.verify is not available: artifacts not verified")
        return {v.name: VerifyOutcome(SKIPPED, "czbuild.verify not available") for v in variants}
    for variant in todo:
        assert verifier is not None
        outcomes[variant.name] = verifier(scratch / PurePosixPath(variant.output), variant)
    failed = [n for n, o in outcomes.items() if o.status == FAILED]
    if failed:
        raise VerifyError(
            "verification failed: "
            + " | ".join(f"{n}: {outcomes[n].message}" for n in failed)
            + " (see `czbuild verify`)"
        )
    return outcomes


def _check_warnings(
    outcomes: dict[str, VerifyOutcome], allow_warnings: bool, notes: list[str]
) -> None:
    """Refuse artifacts whose verification warned about checks their recipe does not accept."""
    warned = {n: o.open_warnings for n, o in sorted(outcomes.items()) if o.open_warnings}
    if not warned:
        return
    listing = ", ".join(
        f"{name}: " + "; ".join(f"{w.check} ({w.figure})" if w.figure else w.check for w in found)
        for name, found in warned.items()
    )
    if not allow_warnings:
        checks = sorted({w.check for found in warned.values() for w in found})
        raise VerifyError(
            f"verification warnings in {len(warned)} artifact(s): {listing} (the build's "
            "output and `czbuild status` say more). Fix the cause, "
            f"or accept the check in the recipe (verify: accept: [{', '.join(checks)}]) if "
            "the behaviour is intended, or pass --allow-warnings to release anyway "
            "(recorded in release.json)"
        )
    notes.append(
        "released with verification warnings (--allow-warnings): "
        + ", ".join(f"{n} ({', '.join(w.check for w in found)})" for n, found in warned.items())
    )


def _describe(
    variants: Sequence[Variant],
    scratch: Path,
    report: CheckReport,
    outcomes: dict[str, VerifyOutcome],
) -> tuple[list[ReleasedArtifact], list[dict]]:
    status = {r.variant: r.status for r in report.results}
    artifacts, entries = [], []
    for variant in sorted(variants, key=lambda v: PurePosixPath(v.output).as_posix()):
        rel = PurePosixPath(variant.output).as_posix()
        data = (scratch / rel).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        snapshot = open_container(scratch / rel)
        artifacts.append(
            ReleasedArtifact(
                variant.name,
                rel,
                sha,
                len(data),
                status.get(variant.name, MATCH),
                outcomes[variant.name],
            )
        )
        entries.append(
            {
                "variant": variant.name,
                "recipe": variant.recipe,
                "path": rel,
                "sha256": sha,
                "size": len(data),
                "spec_digest": variant.digest,
                "members": [
                    {"name": e.name, "sha256": e.sha256, "size": e.size} for e in snapshot.members
                ],
                "lock": status.get(variant.name, MATCH),
                "verify": outcomes[variant.name].status,
            }
        )
        if outcomes[variant.name].warnings:
            entries[-1]["warnings"] = [
                {"check": w.check, "figure": w.figure, "accepted": w.accepted}
                for w in outcomes[variant.name].warnings
            ]
    return artifacts, entries


def _manifest(
    variants: Sequence[Variant],
    git: GitState,
    lock_file: Path,
    report: CheckReport,
    entries: list[dict],
    fresh: dict[str, Freshness],
    notes: list[str],
) -> dict[str, Any]:
    from czbuild.builder.fingerprint import display_path
    from czbuild.builder.toolchain import toolchain_versions

    by_name = {v.name: v for v in variants}
    for entry in entries:
        variant = by_name[entry["variant"]]
        entry["recipe_file"] = display_path(Path(variant.recipe_file), variant.project_dir)
        entry["inputs"] = fresh[variant.name].inputs
    lock_sha = _sha256(lock_file)
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return {
        "format": RELEASE_FORMAT,
        "git": git.to_json(),
        "lock": {
            "file": LOCK_NAME,
            "sha256": lock_sha,
            "ok": report.ok,
            "extra_entries": list(report.extra_entries),
        },
        "toolchain": lock_toolchain(toolchain_versions()),
        "source_date_epoch": int(epoch) if epoch.lstrip("-").isdigit() else None,
        "recipes": {
            v.recipe: display_path(Path(v.recipe_file), v.project_dir)
            for v in sorted(variants, key=lambda v: v.recipe)
        },
        "artifacts": entries,
        "notes": list(notes),
    }
