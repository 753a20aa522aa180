"""Text rendering of lock checks and lock updates, shared by ``build`` and ``check``.

``czbuild build`` (after a build, and with ``--locked``), ``czbuild check`` and
``czbuild release`` print the same lines; this module owns them so that no command module
imports another.
"""

from __future__ import annotations

from typing import Any

from czbuild.errors import LockMismatchError

__all__ = ["lock_failure", "render_check", "render_lock_update"]


_LABELS = {
    "match": "match",
    "numeric": "numeric",
    "differs": "DIFFERS",
    "modified": "MODIFIED",
    "missing": "MISSING",
    "stale": "STALE",
    "failed": "FAILED",
}


def render_check(report: Any, *, verbose: bool = False) -> list[str]:
    """Text lines for a :class:`czbuild.release.CheckReport`."""
    from czbuild.release import format_differences

    lines = []
    for r in report.results:
        lines.append(f"{_LABELS[r.status]:<8} {r.variant}  ({r.output})")
        if not r.ok or r.status == "numeric":
            lines.append(f"         {r.headline}")
        if r.status in ("differs", "numeric", "modified"):
            lines += [f"         - {line}" for line in format_differences(r.differences)]
        if not r.ok or verbose:
            lines += [f"         note: {note}" for note in r.notes]
    if report.extra_entries:
        lines.append(
            f"note: {report.lock_file.name} has entries of variants no recipe defines "
            f"any more: {', '.join(report.extra_entries)} (a full `czbuild build` "
            "removes them)"
        )
    counts = report.counts()
    parts = [f"{n} {'match' if s == 'match' else s}" for s, n in counts.items()]
    lines.append(
        f"czbuild: {', '.join(parts) or 'nothing checked'} "
        f"({len(report.results)} variants, {report.lock_file.name})"
    )
    return lines


def lock_failure(report: Any) -> LockMismatchError:
    """The one-line error for a check with failures, with the fix for each kind."""
    bad = report.failures
    statuses = {r.status for r in bad}
    fix = []
    if statuses & {"missing", "stale"}:
        fix.append("run `czbuild build` (without --locked) to update czbuild.lock and commit it")
    if "modified" in statuses:
        fix.append("run `czbuild build` to replace the modified artifacts in the build folder")
    if "differs" in statuses:
        fix.append(
            "find the cause in the differences above (toolchain? SOURCE_DATE_EPOCH?), "
            "or accept the new bytes with `czbuild build`"
        )
    if "failed" in statuses:
        fix.append("fix the failed rebuilds named above (their reports are kept) and re-run")
    names = ", ".join(f"{r.variant} ({r.status})" for r in bad)
    return LockMismatchError(
        f"{len(bad)} of {len(report.results)} variants do not match "
        f"{report.lock_file.name}: {names}" + "".join(f"; {x}" for x in fix)
    )


def render_lock_update(update: Any) -> str | None:
    """One line about a lock update, or None when nothing changed."""
    if not update.modified:
        return None
    parts = [
        f"{len(names)} {what}"
        for names, what in (
            (update.added, "added"),
            (update.changed, "changed"),
            (update.removed, "removed"),
        )
        if names
    ]
    changed = ", ".join([*update.added, *update.changed, *update.removed][:6])
    return f"czbuild: updated {update.path.name}: {', '.join(parts)} ({changed})"
