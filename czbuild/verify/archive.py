"""The ``container.archive`` check: the artifact read by the one bounded reader.

:func:`czbuild.formats.container.read_container` collects every problem of the archive
(truncation, CRC errors, zip bombs by size, count, ratio or overlapping entries, encryption,
unknown compression) instead of raising on the first; each becomes part of a failed check.
Nothing is written anywhere; member bytes stay in memory under the size limit.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from czbuild.errors import ArchiveError
from czbuild.formats.container import ARTIFACT_LIMITS, Container, Member, read_container
from czbuild.verify.report import FAILED, PASSED, VerifyReport

#: Total uncompressed bytes the verifier reads from one archive (ONNX protobufs are < 2 GiB).
MAX_UNPACKED_BYTES = 2 * 1024**3


def check_archive(
    path: Path, report: VerifyReport, *, max_bytes: int = MAX_UNPACKED_BYTES
) -> Container | None:
    """Read ``path`` and add the ``container.archive`` check to ``report``.

    Returns:
        The container (unread when only its member names are unsafe: ``container.members``
        reports those), or None when the archive is unreadable or unsafe (the check failed).
    """
    try:
        container = read_container(path, limits=replace(ARTIFACT_LIMITS, max_bytes=max_bytes))
    except ArchiveError as exc:
        report.add("container.archive", FAILED, "unreadable", str(exc))
        return None
    if container.problems:
        problems = container.problems
        report.add(
            "container.archive",
            FAILED,
            f"{len(problems)} problem(s)",
            "; ".join(problems),
            problems=problems,
        )
        return None
    total = sum(m.size for m in container.members)
    read = "sizes, CRCs and entry layout are sound" if container.ok else "sizes and layout sound"
    report.add(
        "container.archive",
        PASSED,
        f"{len(container.members)} members, {total} bytes",
        f"ZIP archive readable; {read}",
        members=[_member_dict(m) for m in container.members],
        total_bytes=total,
    )
    return container


def _member_dict(m: Member) -> dict[str, object]:
    return {
        "name": m.name,
        "size": m.size,
        "compress_size": m.compress_size,
        "compress_type": m.compress_type,
        "date_time": list(m.date_time),
        "external_attr": m.external_attr,
        "create_system": m.create_system,
    }
