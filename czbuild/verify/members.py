"""Which member is which: the ``container.members`` check (czmodel-format.md §2.1, §3.1).

Finds the metadata, model and licence members the way a ZEN reader does (by name), and fails
on anything a reader could trip over: missing or empty required members, duplicate names,
unsafe names (absolute, ``..``, backslashes, drive letters), stray extra members, legacy ids
that disagree, or an extension that does not match the content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from czbuild.verify.archive import Container, Member
from czbuild.verify.report import FAILED, PASSED, VerifyReport

CZANN_METADATA = "model.json"
CZANN_MODEL = "model.model"
LICENSE_NAME = "license.txt"
MODELID_PREFIX = "modelid="
_DRIVE = re.compile(r"^[A-Za-z]:")
_EXT_FAMILY = {".czann": "czann", ".czmodel": "czmodel", ".czseg": "czmodel"}


@dataclass(frozen=True)
class Layout:
    """The roles of the members of a well-formed container.

    Attributes:
        family: ``"czann"`` or ``"czmodel"``.
        metadata: ``model.json`` or ``<id>.xml``.
        model: ``model.model`` or ``<id>.model``.
        license: The licence member, if any.
        modelid: Legacy only: the empty ``modelid=<id>`` member.
        legacy_id: Legacy only: the id the member names carry.
    """

    family: str
    metadata: Member
    model: Member
    license: Member | None = None
    modelid: Member | None = None
    legacy_id: str | None = None


def unsafe_name_reason(name: str) -> str | None:
    """Why ``name`` is unsafe to unpack, or None when it is a plain relative path."""
    if not name:
        return "empty name"
    if "\x00" in name:
        return "NUL byte in name"
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        return "absolute path"
    if "\\" in name:
        return "backslash in name"
    parts = name.rstrip("/").split("/")
    if any(part == ".." for part in parts):
        return "'..' component (path traversal)"
    if any(part in ("", ".") for part in parts):
        return "empty or '.' path component"
    if not name.isprintable():
        return "control character in name"
    return None


def check_members(container: Container, report: VerifyReport) -> Layout | None:
    """Identify the members and add the ``container.members`` check.

    Returns:
        The layout, or None when the members are not usable (the check failed).
    """
    problems: list[str] = []
    names = container.names()
    folded: dict[str, list[str]] = {}
    for name in names:
        folded.setdefault(name.casefold(), []).append(name)
    for group in folded.values():
        if len(group) > 1:
            problems.append(
                f"duplicate entry {group[0]!r} ({len(group)} times"
                + (", differing only in case: Windows readers clash" if len(set(group)) > 1 else "")
                + ")"
            )
    unusable: set[int] = set()
    seen: set[str] = set()
    for member in container.members:
        reason = unsafe_name_reason(member.name)
        if reason:
            problems.append(f"unsafe member name {member.name!r}: {reason}")
            unusable.add(member.index)
        elif member.name.casefold() in seen:
            unusable.add(member.index)
        seen.add(member.name.casefold())
    files = [m for m in container.members if not m.is_dir and m.index not in unusable]
    family = _family(files, container)
    layout: Layout | None = None
    if family is None:
        problems.append(
            "neither a CZANN (model.json + model.model) nor a legacy CZMODEL "
            "(<id>.xml + <id>.model + modelid=<id>) container"
        )
    elif family == "czann":
        layout = _czann_layout(files, problems)
    else:
        layout = _legacy_layout(files, problems)
    suffix = container.path.suffix.lower()
    if layout is not None and suffix in _EXT_FAMILY and _EXT_FAMILY[suffix] != layout.family:
        problems.append(
            f"extension {suffix} but the content is a {layout.family.upper()} container"
        )
    if layout is not None:
        for role, member in (("metadata", layout.metadata), ("model", layout.model)):
            if member.size == 0:
                problems.append(f"{role} member {member.name!r} is empty")
        if layout.modelid is not None and layout.modelid.size != 0:
            problems.append(
                f"{layout.modelid.name!r} must be empty, has {layout.modelid.size} bytes"
            )
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
    roles = {"metadata": layout.metadata.name, "model": layout.model.name}
    if layout.license is not None:
        roles["license"] = layout.license.name
    if layout.modelid is not None:
        roles["modelid"] = layout.modelid.name
    report.add(
        "container.members",
        PASSED,
        f"{len(files)} members",
        f"{layout.family.upper()} members present and unique: {', '.join(names)}",
        roles=roles,
        names=names,
    )
    return layout


def _family(files: list[Member], container: Container) -> str | None:
    if any(m.name.lower().endswith(".json") for m in files):
        return "czann"
    if any(m.name.lower().endswith(".xml") for m in files) or any(
        m.name.startswith(MODELID_PREFIX) for m in files
    ):
        return "czmodel"
    return None


def _czann_layout(files: list[Member], problems: list[str]) -> Layout | None:
    metadata = _pick(files, CZANN_METADATA, ".json", "metadata", problems)
    model = _pick(files, CZANN_MODEL, ".model", "model", problems)
    if metadata is None or model is None:
        return None
    rest = [m for m in files if m is not metadata and m is not model]
    if len(rest) > 1:
        problems.append(
            "stray members: " + ", ".join(repr(m.name) for m in rest) + " (at most one licence)"
        )
        return None
    return Layout("czann", metadata, model, rest[0] if rest else None)


def _pick(
    files: list[Member], canonical: str, suffix: str, role: str, problems: list[str]
) -> Member | None:
    exact = [m for m in files if m.name == canonical]
    if exact:
        return exact[0]
    candidates = [m for m in files if m.name.lower().endswith(suffix)]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        problems.append(f"missing {role} member {canonical!r}")
    else:
        problems.append(
            f"no {canonical!r} and several {suffix} members: "
            + ", ".join(repr(m.name) for m in candidates)
        )
    return None


def _legacy_layout(files: list[Member], problems: list[str]) -> Layout | None:
    xmls = [m for m in files if m.name.lower().endswith(".xml")]
    models = [m for m in files if m.name.lower().endswith(".model")]
    ids = [m for m in files if m.name.startswith(MODELID_PREFIX)]
    for role, found, pattern in (
        ("metadata", xmls, "<id>.xml"),
        ("model", models, "<id>.model"),
        ("id marker", ids, "modelid=<id>"),
    ):
        if len(found) != 1:
            what = "missing" if not found else f"{len(found)} candidates for"
            problems.append(f"{what} {role} member {pattern}")
    if problems:
        return None
    xml, model, marker = xmls[0], models[0], ids[0]
    legacy_id = marker.name[len(MODELID_PREFIX) :]
    stems = {xml.name[: -len(".xml")], model.name[: -len(".model")], legacy_id}
    if len(stems) != 1:
        problems.append(f"member ids disagree: {xml.name!r}, {model.name!r}, {marker.name!r}")
        return None
    rest = [m for m in files if m not in (xml, model, marker)]
    if len(rest) > 1:
        problems.append(
            "stray members: " + ", ".join(repr(m.name) for m in rest) + " (at most one licence)"
        )
        return None
    return Layout("czmodel", xml, model, rest[0] if rest else None, marker, legacy_id)
