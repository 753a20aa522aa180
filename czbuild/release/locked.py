"""Whether an artifact carries the bytes ``czbuild.lock`` records for its recipe variant.

Fidelity checks compare outputs within a tolerance, so a weight changed by less than that
(one flipped low bit) passes them. The lock records the sha256 of every member the build
wrote; comparing with it catches any change. ``czbuild verify --recipe`` runs this when the
project has a lock (:func:`lock_digest`), and says plainly when it cannot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from czbuild.errors import ArchiveError
from czbuild.files.digest import file_sha256
from czbuild.formats.container import open_container
from czbuild.formats.layout import MODEL, roles_of
from czbuild.release.difference import short_hash
from czbuild.release.lockfile import LockFileError, lock_path, read_lock

#: The check's name in a verification report.
CHECK = "payload.digest"
UNCHECKED = (
    "no czbuild.lock entry to compare with: a weight changed by less than the tolerance "
    "cannot be detected (use --recipe in a project whose czbuild.lock records the variant)"
)


@dataclass(frozen=True)
class LockDigest:
    """The outcome: ``passed``, ``failed`` or ``skipped``, a short figure and a sentence."""

    status: str
    figure: str | None
    message: str


def lock_digest(artifact: Path, variant_name: str, project_dir: Path | None) -> LockDigest:
    """Compare ``artifact`` with the lock entry of ``variant_name`` in ``project_dir``.

    Passed when the file's sha256 is the locked one. Failed on any difference, naming the
    model payload when it is the member that differs. Skipped (with :data:`UNCHECKED`'s
    warning) without a project, lock or entry.
    """
    if project_dir is None:
        return LockDigest("skipped", None, UNCHECKED)
    lock_file = lock_path(Path(project_dir))
    if not lock_file.is_file():
        return LockDigest("skipped", None, f"{lock_file} does not exist: " + UNCHECKED)
    try:
        entry = read_lock(lock_file).get(variant_name)
    except LockFileError as exc:
        return LockDigest("skipped", None, f"{exc}; " + UNCHECKED)
    if entry is None:
        return LockDigest(
            "skipped", None, f"{lock_file.name} has no entry for {variant_name}: " + UNCHECKED
        )
    actual = file_sha256(artifact)
    if actual == entry.sha256:
        return LockDigest(
            "passed",
            f"sha256 {short_hash(actual)}",
            f"the artifact's sha256 is the one {lock_file.name} records for {variant_name}",
        )
    fix = (
        "if the recipe or model changed on purpose, `czbuild build` records the new bytes; "
        "else the file was modified after the build"
    )
    try:
        container = open_container(artifact)
    except ArchiveError as exc:
        return LockDigest("failed", "differs", f"differs from {lock_file.name} and {exc}")
    locked = {m.name: m.sha256 for m in entry.members}
    locked_model = [s for n, s in locked.items() if roles_of(list(locked)).get(n) == MODEL]
    names = container.names()
    model = [container.entry(n) for n in names if roles_of(names).get(n) == MODEL]
    if locked_model and model and model[0] is not None and model[0].sha256 != locked_model[0]:
        return LockDigest(
            "failed",
            "model payload differs",
            f"the model payload ({PurePosixPath(model[0].name)}) is not the one "
            f"{lock_file.name} records for {variant_name} (sha256 {short_hash(model[0].sha256)}, "
            f"locked {short_hash(locked_model[0])}): its weights or graph changed, by however "
            f"little; {fix}",
        )
    changed = sorted(
        n for n in names if (e := container.entry(n)) is not None and locked.get(n) != e.sha256
    )
    what = f"member(s) {', '.join(changed)}" if changed else "the archive structure"
    return LockDigest(
        "failed",
        "differs",
        f"the artifact (sha256 {short_hash(actual)}) is not the one {lock_file.name} records "
        f"for {variant_name} ({short_hash(entry.sha256)}): {what} differ; {fix}",
    )
