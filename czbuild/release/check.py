"""Rebuild variants in a scratch folder and compare every artifact with ``czbuild.lock``.

This is what ``czbuild check``, ``czbuild build --locked`` and ``czbuild release`` share:

1. compare each variant's fingerprint with its lock entry (:mod:`~czbuild.release.freshness`);
   variants without a current entry are not rebuilt unless asked (``build_stale``) or their
   recipe pins results on a sample (``verify.expect``: the rebuild's ``samples.expect`` check
   says, per class, whether the change altered them);
2. build the others from scratch (a fresh output folder, so no incremental state can hide a
   difference) through the build layer, with its worker processes and ``-j``;
3. compare each rebuilt artifact's sha256 with the lock; explain any difference member by
   member: field by field against the previous artifact when one with the locked sha256 is
   found (in the build folder by default), else from the lock's member hashes alone;
4. a member the lock marks ``"reproducible": "numeric"`` whose bytes differ (and, with it, the
   content-derived Id) is run against the previous payload on seeded tensors; within the
   tolerance the variant passes as "functionally identical".
"""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, TextIO

from czbuild.errors import ArchiveError
from czbuild.files.digest import file_sha256
from czbuild.files.scratch import make_scratch
from czbuild.formats.container import open_container
from czbuild.formats.layout import METADATA as METADATA_ROLE
from czbuild.formats.layout import MODEL, MODELID, roles_of
from czbuild.recipe.variant import Variant
from czbuild.release.diff import explain_differences
from czbuild.release.difference import (
    CONTENT,
    HEADER,
    MEMBERS,
    METADATA,
    NUMERIC,
    Difference,
    headline,
)
from czbuild.release.freshness import MISSING, STALE, Freshness, extra_entries, freshness
from czbuild.release.lockfile import LockEntry, LockFile, lock_path, read_lock
from czbuild.release.policy import NUMERIC_TOLERANCE

MATCH = "match"
NUMERIC_MATCH = "numeric"
DIFFERS = "differs"
FAILED = "failed"
#: The rebuild matches the lock, but the artifact in the build folder does not.
MODIFIED = "modified"
#: Every status of a :class:`VariantCheck`; only the first two are ok.
STATUSES = (MATCH, NUMERIC_MATCH, DIFFERS, MODIFIED, MISSING, STALE, FAILED)


@dataclass(frozen=True)
class VariantCheck:
    """The lock check of one variant.

    Attributes:
        variant: Variant name.
        output: Artifact path relative to the build folder.
        status: One of :data:`STATUSES`.
        expected_sha256: The locked artifact sha256 (None without an entry).
        actual_sha256: The rebuilt artifact's sha256 (None when not rebuilt).
        differences: Why the rebuilt artifact differs from the lock.
        reasons: Why the entry is missing or stale, or why the build failed.
        notes: Context (toolchain differences, what the comparison was made against).
        reference: The previous artifact the field-level diff used, if any.
    """

    variant: str
    output: str
    status: str
    expected_sha256: str | None = None
    actual_sha256: str | None = None
    differences: tuple[Difference, ...] = ()
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    reference: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in (MATCH, NUMERIC_MATCH)

    @property
    def headline(self) -> str:
        if self.status in (MISSING, STALE, FAILED, MODIFIED):
            return "; ".join(self.reasons)
        if self.status == NUMERIC_MATCH:
            numeric = [d.message for d in self.differences if d.kind == NUMERIC]
            return "bytes differ only where the lock allows it; " + "; ".join(numeric)
        return headline(self.differences) if self.differences else "identical"

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "output": self.output,
            "status": self.status,
            "ok": self.ok,
            "headline": self.headline,
            "expected_sha256": self.expected_sha256,
            "actual_sha256": self.actual_sha256,
            "differences": [d.to_json() for d in self.differences],
            "reasons": list(self.reasons),
            "notes": list(self.notes),
            "reference": self.reference,
        }


@dataclass(frozen=True)
class CheckReport:
    """The lock check of a set of variants.

    Attributes:
        lock_file: The lock file checked against.
        results: One per variant, in the order given.
        extra_entries: Lock entries of variants that no recipe defines any more.
        scratch_dir: Where the rebuilt artifacts are (None once removed).
    """

    lock_file: Path
    results: tuple[VariantCheck, ...]
    extra_entries: tuple[str, ...] = ()
    scratch_dir: Path | None = None

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failures(self) -> list[VariantCheck]:
        return [r for r in self.results if not r.ok]

    def counts(self) -> dict[str, int]:
        return {s: n for s in STATUSES if (n := sum(r.status == s for r in self.results))}

    def to_json(self) -> dict[str, Any]:
        return {
            "lock_file": str(self.lock_file),
            "ok": self.ok,
            "counts": self.counts(),
            "extra_entries": list(self.extra_entries),
            "variants": [r.to_json() for r in self.results],
        }


def check_lock(
    variants: Sequence[Variant],
    *,
    project_dir: Path,
    lock_file: Path | None = None,
    options: Any = None,
    reference_dirs: Iterable[Path] = (),
    scratch_dir: Path | None = None,
    build_stale: bool = False,
    full: bool = False,
    stream: TextIO | None = None,
    tolerance: float = NUMERIC_TOLERANCE,
) -> CheckReport:
    """Rebuild ``variants`` from scratch and compare them with the lock (module docstring).

    Args:
        variants: The variants to check (from :func:`czbuild.recipe.load_variants`).
        project_dir: The project folder (holds ``czbuild.lock``).
        lock_file: The lock file (default ``<project>/czbuild.lock``).
        options: A :class:`czbuild.builder.BuildOptions` template (jobs, backend, lock
            timeout); its output folder is replaced by the scratch folder.
        reference_dirs: Folders searched for the previous artifact (same relative path,
            sha256 as locked), e.g. the build folder.
        scratch_dir: Build here and keep the result (the caller removes it); default: a
            temporary folder removed before returning.
        build_stale: Also rebuild variants whose entry is missing or stale (``release``).
        full: ``variants`` are all the recipes define: report lock entries of other variants.
        stream: Where the build's progress lines go (default: discarded).
        tolerance: Absolute tolerance of the numeric comparison.

    Returns:
        The report; ``report.ok`` is False when any variant is missing, stale, failed or
        differs.

    Raises:
        LockFileError: The lock file cannot be parsed.
    """
    from czbuild.builder import BuildOptions, build

    lock_file = Path(lock_file) if lock_file else lock_path(project_dir)
    lock = read_lock(lock_file)
    refs = [Path(d) for d in reference_dirs]
    fresh = freshness(variants, lock, reference_dir=refs[0] if refs else None)
    # a stale variant that pins results on a sample (verify.expect) is rebuilt all the same:
    # its verification says whether the change altered what ZEN shows on the user's data
    todo = [
        v
        for v in variants
        if build_stale or fresh[v.name].status is None or v.spec.verify.expect is not None
    ]
    own_scratch = scratch_dir is None
    scratch = Path(scratch_dir) if scratch_dir is not None else make_scratch("check")
    try:
        failed: dict[str, str] = {}
        if todo:
            template = options if options is not None else BuildOptions()
            build_options = replace(template, out_dir=scratch, force=True)
            if own_scratch and refs:  # the failure lines name reports that outlive the scratch
                build_options = replace(build_options, failed_reports_dir=refs[0] / CHECK_REPORTS)
            report = build(todo, build_options, out=stream or io.StringIO())
            failed = dict(report.summary.failed)
            if not report.ok and not failed:
                failed = {
                    v.name: f"the build did not complete (exit code {report.exit_code})"
                    for v in todo
                }
        results = tuple(
            _check_one(
                v,
                lock,
                fresh[v.name],
                scratch,
                refs,
                failed,
                tolerance,
                rebuilt=any(t is v for t in todo),
            )
            for v in variants
        )
    finally:
        if own_scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    return CheckReport(
        lock_file=lock_file,
        results=results,
        extra_entries=tuple(extra_entries(lock, variants)) if full else (),
        scratch_dir=None if own_scratch else scratch,
    )


#: Where ``check`` keeps the verification reports of its rebuilds that fail (its scratch
#: build folder is deleted): ``<build folder>/.czbuild/check-reports/<output>.verify.json``.
CHECK_REPORTS = PurePosixPath(".czbuild") / "check-reports"


def find_reference(entry: LockEntry, dirs: Iterable[Path]) -> Path | None:
    """The first ``<dir>/<entry.path>`` whose sha256 is the locked one."""
    for folder in dirs:
        candidate = Path(folder) / PurePosixPath(entry.path)
        if candidate.is_file() and file_sha256(candidate) == entry.sha256:
            return candidate
    return None


def _check_one(
    variant: Variant,
    lock: LockFile,
    fresh: Freshness,
    scratch: Path,
    refs: list[Path],
    failed: dict[str, str],
    tolerance: float,
    *,
    rebuilt: bool,
) -> VariantCheck:
    output = PurePosixPath(variant.output).as_posix()
    entry = lock.get(variant.name)
    base = VariantCheck(
        variant=variant.name,
        output=output,
        status=MATCH,
        expected_sha256=entry.sha256 if entry else None,
        notes=fresh.notes,
    )
    if variant.name in failed:
        return replace(
            base,
            status=FAILED,
            reasons=(f"the rebuild failed: {failed[variant.name]}", *fresh.reasons),
        )
    artifact = scratch / output
    actual = file_sha256(artifact) if rebuilt and artifact.is_file() else None
    if fresh.status is not None:
        return replace(base, status=fresh.status, reasons=fresh.reasons, actual_sha256=actual)
    assert entry is not None
    if actual is None:
        return replace(base, status=FAILED, reasons=(f"the rebuild wrote no {output}",))
    base = replace(base, actual_sha256=actual)
    if actual == entry.sha256:
        return _check_on_disk(base, entry, refs, artifact)
    reference = find_reference(entry, refs)
    notes = list(base.notes)
    if reference is not None:
        notes.append(f"compared field by field with the previous artifact {reference}")
    else:
        looked = ", ".join(str(d) for d in refs) or "nowhere"
        notes.append(
            f"no previous artifact with the locked sha256 (looked in: {looked}); only "
            "the lock's member hashes could be compared"
        )
    diffs = explain_differences(reference or entry, artifact, labels=("lock", "rebuilt"))
    result = replace(
        base,
        status=DIFFERS,
        differences=tuple(diffs),
        notes=tuple(notes),
        reference=str(reference) if reference else None,
    )
    if entry.numeric_members:
        return _numeric_fallback(result, entry, reference, artifact, tolerance)
    return result


def _check_on_disk(
    result: VariantCheck, entry: LockEntry, refs: list[Path], rebuilt: Path
) -> VariantCheck:
    """Compare the artifact in the build folder (``refs[0]``), if there is one, with the lock.

    A rebuild that matches says the recipe and toolchain still make the locked bytes; the file
    users would ship is the one on disk, so a difference there (a tampered or corrupted file) is
    reported by name too.
    """
    if not refs:
        return result
    on_disk = refs[0] / PurePosixPath(entry.path)
    if not on_disk.is_file():
        return result
    found = file_sha256(on_disk)
    if found == entry.sha256:
        return result
    # The rebuild has the locked bytes: compare with it field by field.
    diffs = explain_differences(rebuilt, on_disk, labels=("lock", "on disk"))
    return replace(
        result,
        status=MODIFIED,
        differences=tuple(diffs),
        reasons=(
            f"{on_disk} differs from the lock (sha256 {found[:12]}..., locked "
            f"{entry.sha256[:12]}...) although a rebuild matches it; `czbuild build` "
            "replaces it",
        ),
    )


def _numeric_fallback(
    result: VariantCheck, entry: LockEntry, reference: Path | None, artifact: Path, tolerance: float
) -> VariantCheck:
    """Pass a variant whose only differences are in its ``numeric`` member (and the Id)."""
    roles = roles_of([m.name for m in entry.members])
    with contextlib.suppress(ArchiveError):  # the rebuilt names (their Id may differ)
        roles.update(roles_of(open_container(artifact, read_contents=False).names()))
    if not _confined(result.differences, roles):
        return result
    if reference is None:
        note = (
            f"member(s) {', '.join(entry.numeric_members)} are only numerically reproducible "
            "(see the lock entry); keep the previous artifact in the build folder so the "
            "check can compare it numerically"
        )
        return replace(result, notes=result.notes + (note,))
    from czbuild.formats.reader import read_artifact
    from czbuild.release.numeric import compare_payloads

    try:
        numeric = compare_payloads(
            read_artifact(reference).model_bytes,
            read_artifact(artifact).model_bytes,
            tolerance=tolerance,
        )
    except ArchiveError as exc:
        diff = Difference(NUMERIC, f"numeric comparison impossible: {exc}")
        return replace(result, differences=result.differences + (diff,))
    diff = Difference(
        NUMERIC,
        f"model payload: {numeric.message}",
        field="max_abs_diff",
        expected=0.0,
        actual=numeric.max_abs_diff,
    )
    status = NUMERIC_MATCH if numeric.ok else DIFFERS
    return replace(result, status=status, differences=result.differences + (diff,))


def _confined(diffs: Sequence[Difference], roles: dict[str, str]) -> bool:
    """Whether every difference is in the model payload or follows from the derived Id."""
    for d in diffs:
        role = roles.get(d.member) if d.member else None
        if d.kind == HEADER:
            return False
        if role in (MODEL, MODELID):
            continue
        if d.kind == MEMBERS and d.field == "Id":
            continue
        if role == METADATA_ROLE and d.kind == METADATA and d.field == "Id":
            continue
        if role == METADATA_ROLE and d.kind == CONTENT:
            continue  # explained by its METADATA differences, checked above
        return False
    return True
