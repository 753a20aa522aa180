"""Writer rules a reader tolerates: ``container.layout`` and ``container.hygiene``.

``container.layout``: member order (§2.1 / §3.1), stored entries, the licence named
``license.txt``, no directory entries. ``container.hygiene``: the reproducibility rules of
§7.1 — one fixed even-second timestamp on or after 1980, ``0o100644`` regular-file attributes
from a Unix host, no extra fields, data descriptors or comment, ASCII names, metadata in its
canonical serialisation.

ZEN reads files that break these rules, so for files czbuild did not build they are
*warnings*; for czbuild's own artifacts (``strict=True``) they are failures, because they
mean the build is not reproducible.
"""

from __future__ import annotations

import zipfile
from typing import Any

from czbuild.formats.container import Container, Member
from czbuild.formats.layout import LICENSE_NAME, Layout
from czbuild.verify.report import FAILED, PASSED, WARNING, VerifyReport

FILE_ATTR = 0o100644 << 16
UNIX = 3
MIN_DATE = (1980, 1, 1, 0, 0, 0)
_DATA_DESCRIPTOR = 0x08


def check_layout(
    container: Container, layout: Layout, report: VerifyReport, *, strict: bool
) -> None:
    """Add ``container.layout``: canonical member order, stored entries, licence name."""
    problems: list[str] = []
    expected = layout.order()
    files = [m.name for m in container.members if not m.is_dir]
    if files != expected:
        problems.append(f"member order {files} differs from the canonical {expected}")
    dirs = [m.name for m in container.members if m.is_dir]
    if dirs:
        problems.append(f"directory entries {dirs}")
    deflated = [m.name for m in container.members if m.compress_type != zipfile.ZIP_STORED]
    if deflated:
        problems.append(f"compressed (not stored) entries {deflated}")
    if layout.family == "czann":
        canonical = {layout.metadata: "model.json", layout.model: "model.model"}
        for name, want in canonical.items():
            if name != want:
                problems.append(f"{name!r} should be named {want!r}")
    if layout.license is not None and layout.license != LICENSE_NAME:
        problems.append(f"licence member {layout.license!r} should be named {LICENSE_NAME!r}")
    _add(
        report,
        "container.layout",
        problems,
        strict,
        "members in canonical order, stored, licence named license.txt",
        order=files,
    )


def check_hygiene(
    container: Container,
    layout: Layout,
    metadata: Any,
    report: VerifyReport,
    *,
    strict: bool,
    expected_date_time: tuple[int, ...] | None = None,
) -> None:
    """Add ``container.hygiene``: the §7.1 reproducibility rules.

    Args:
        container: The read archive.
        layout: Member roles.
        metadata: Parsed metadata (to compare the member with its canonical bytes), or None.
        report: Receives the check.
        strict: Failures instead of warnings (czbuild's own artifacts).
        expected_date_time: The entry time the build should have used (``SOURCE_DATE_EPOCH``);
            None to only require one common, valid time.
    """
    problems: list[str] = []
    members = container.members
    times = sorted({m.date_time for m in members})
    if len(times) > 1:
        problems.append(f"{len(times)} different entry times (wall-clock timestamps?)")
    for t in times:
        if t < MIN_DATE or t[5] % 2:
            problems.append(f"entry time {_fmt_time(t)} is before 1980 or has odd seconds")
    if expected_date_time is not None and times and times != [tuple(expected_date_time)]:
        problems.append(
            f"entry time {_fmt_time(times[0])} differs from the build's "
            f"{_fmt_time(tuple(expected_date_time))} (SOURCE_DATE_EPOCH)"
        )
    _per_member(
        members,
        "external_attr",
        lambda m: m.external_attr != FILE_ATTR,
        lambda m: oct(m.external_attr >> 16),
        "file mode other than 0o100644",
        problems,
    )
    _per_member(
        members,
        "create_system",
        lambda m: m.create_system != UNIX,
        lambda m: m.create_system,
        "create_system other than 3 (Unix)",
        problems,
    )
    _per_member(
        members, "extra", lambda m: bool(m.extra), lambda m: len(m.extra), "extra fields", problems
    )
    _per_member(
        members,
        "flag",
        lambda m: bool(m.flag_bits & _DATA_DESCRIPTOR),
        lambda m: m.flag_bits,
        "data descriptors",
        problems,
    )
    _per_member(
        members,
        "name",
        lambda m: not m.name.isascii(),
        lambda m: m.name,
        "non-ASCII names",
        problems,
    )
    if container.comment:
        problems.append(f"archive comment of {len(container.comment)} bytes")
    problems.extend(_metadata_problems(container, layout, metadata))
    _add(
        report,
        "container.hygiene",
        problems,
        strict,
        "fixed timestamps and attributes, canonical metadata bytes (reproducible)",
        date_times=[_fmt_time(t) for t in times],
    )


def _per_member(
    members: tuple[Member, ...], what: str, bad: Any, show: Any, label: str, problems: list[str]
) -> None:
    offenders = [f"{m.name}={show(m)}" for m in members if bad(m)]
    if offenders:
        problems.append(f"{label}: {', '.join(offenders)}")


def _metadata_problems(container: Container, layout: Layout, metadata: Any) -> list[str]:
    if metadata is None:
        return []
    data = container.read(layout.metadata)
    try:
        canonical = (
            metadata.to_json_bytes() if layout.family == "czann" else metadata.to_xml_bytes()
        )
    except Exception as exc:
        return [f"metadata cannot be serialised canonically: {exc}"]
    if data != canonical:
        return [f"{layout.metadata} is not in the canonical serialisation (§2.3 / §3.2)"]
    return []


def _fmt_time(t: tuple[int, ...]) -> str:
    y, mo, d, h, mi, sec = t[:6]
    return f"{y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{sec:02d}"


def _add(
    report: VerifyReport,
    name: str,
    problems: list[str],
    strict: bool,
    ok_message: str,
    **details: Any,
) -> None:
    if not problems:
        report.add(name, PASSED, "canonical", ok_message, **details)
        return
    status = FAILED if strict else WARNING
    report.add(
        name,
        status,
        f"{len(problems)} deviation(s)",
        "; ".join(problems),
        problems=problems,
        strict=strict,
        **details,
    )
