"""Which member is which: the ``container.members`` check (czmodel-format.md §2.1, §3.1).

The roles and the family come from the one rule in :mod:`czbuild.formats.layout`, so
``inspect``, ``verify`` and ``check`` classify a file the same way. This check fails on what a
ZEN reader could trip over: unsafe or duplicate names (found by the container reader), missing
or empty required members, ambiguous or stray members, legacy ids that disagree, a non-empty
``modelid=`` marker, or an extension that does not match the content.
"""

from __future__ import annotations

from pathlib import Path

from czbuild.errors import ArchiveError
from czbuild.formats.container import Container
from czbuild.formats.layout import SUFFIX_FAMILIES, Layout, layout_of
from czbuild.verify.report import FAILED, PASSED, VerifyReport


def check_members(container: Container, report: VerifyReport) -> Layout | None:
    """Identify the members and add the ``container.members`` check.

    Returns:
        The layout, or None when the members are not usable (the check failed).
    """
    problems = list(container.name_problems)
    names = container.names()
    layout: Layout | None = None
    if not problems:
        try:
            layout = layout_of([m.name for m in container.files()])
        except ArchiveError as exc:
            problems.append(str(exc))
    if layout is not None:
        problems.extend(layout.problems)
        suffix = Path(container.label).suffix.lower()
        if SUFFIX_FAMILIES.get(suffix, layout.family) != layout.family:
            problems.append(
                f"extension {suffix} but the content is a {layout.family.upper()} container"
            )
        for role, name in (("metadata", layout.metadata), ("model", layout.model)):
            if not container.contents.get(name):
                problems.append(f"{role} member {name!r} is empty")
        if layout.modelid is not None and container.contents.get(layout.modelid):
            size = len(container.contents[layout.modelid])
            problems.append(f"{layout.modelid!r} must be empty, has {size} bytes")
    if problems:
        report.add(
            "container.members",
            FAILED,
            f"{len(problems)} problem(s)",
            "; ".join(problems),
            problems=problems,
            names=names,
        )
        return None
    assert layout is not None
    roles = {"metadata": layout.metadata, "model": layout.model}
    if layout.license is not None:
        roles["license"] = layout.license
    if layout.modelid is not None:
        roles["modelid"] = layout.modelid
    report.add(
        "container.members",
        PASSED,
        f"{len(container.files())} members",
        f"{layout.family.upper()} members present and unique: {', '.join(names)}",
        roles=roles,
        names=names,
    )
    return layout
