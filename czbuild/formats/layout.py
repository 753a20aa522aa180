"""Which member is which: the family rule and member roles (czmodel-format.md 2.1, 3.1).

One rule, used by ``inspect``, ``unpack``, ``verify``, the lock file and the artifact diff:

* **Family** (from the member names, never the extension): ``model.json`` -> CZANN; a
  ``modelid=<id>`` marker or an ``<id>.xml`` next to an ``<id>.model`` -> CZMODEL; otherwise any
  ``*.json`` -> CZANN, any ``*.xml`` -> CZMODEL; else not a model file.
* **Roles**, found the way ZEN's readers find them: CZANN ``model.json`` / ``model.model``, else
  the first ``*.json`` / ``*.model``; CZMODEL ``<id>.xml`` / ``<id>.model`` for the id of the
  ``modelid=`` marker, else the ``*.xml`` with a matching ``*.model``, else the first of each.
  The licence is ``license.txt``, else the first remaining member.

A reader takes the first candidate, as ZEN does; :attr:`Layout.problems` records what a strict
check objects to (ambiguous candidates, stray members, a missing or disagreeing legacy id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from czbuild.errors import ArchiveError

CZANN: Final = "czann"
CZMODEL: Final = "czmodel"
MODELID_PREFIX: Final = "modelid="
LICENSE_NAME: Final = "license.txt"
#: Member roles.
METADATA: Final = "metadata"
MODEL: Final = "model"
LICENSE: Final = "license"
MODELID: Final = "modelid"
OTHER: Final = "other"
#: The family an extension promises (only a tie-breaker for names that decide nothing).
SUFFIX_FAMILIES: Final = {".czann": CZANN, ".czmodel": CZMODEL, ".czseg": CZMODEL}


@dataclass(frozen=True)
class Layout:
    """The roles of an artifact's members.

    Attributes:
        family: ``"czann"`` or ``"czmodel"``.
        metadata: ``model.json`` / ``<id>.xml`` (or the stand-in a reader uses).
        model: ``model.model`` / ``<id>.model``.
        license: The licence member, or None.
        modelid: CZMODEL: the ``modelid=<id>`` marker, or None.
        others: Members with no role (stray).
        problems: What a strict check objects to (a reader ignores these).
    """

    family: str
    metadata: str
    model: str
    license: str | None = None
    modelid: str | None = None
    others: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def legacy_id(self) -> str | None:
        """CZMODEL: the id the ``modelid=`` marker carries, or None."""
        return self.modelid[len(MODELID_PREFIX) :] if self.modelid else None

    def role(self, name: str) -> str:
        """:data:`METADATA`, :data:`MODEL`, :data:`LICENSE`, :data:`MODELID` or :data:`OTHER`."""
        roles = {self.metadata: METADATA, self.model: MODEL}
        if self.license:
            roles[self.license] = LICENSE
        if self.modelid:
            roles[self.modelid] = MODELID
        return roles.get(name, OTHER)

    def order(self) -> list[str]:
        """The canonical member order (§2.1 / §3.1) of the members with a role."""
        return [n for n in (self.metadata, self.model, self.license, self.modelid) if n]


def _ends(names: Sequence[str], suffix: str) -> list[str]:
    return [n for n in names if n.lower().endswith(suffix)]


def family_of(names: Sequence[str]) -> str | None:
    """``"czann"``, ``"czmodel"``, or None when the names say neither."""
    if "model.json" in names:
        return CZANN
    stems = {n[:-6] for n in _ends(names, ".model")}
    if any(n.startswith(MODELID_PREFIX) for n in names) or any(
        n[:-4] in stems for n in _ends(names, ".xml")
    ):
        return CZMODEL
    if _ends(names, ".json"):
        return CZANN
    if _ends(names, ".xml"):
        return CZMODEL
    return None


def layout_of(names: Sequence[str], *, where: str = "") -> Layout:
    """The roles of ``names`` (file members, archive order).

    Args:
        names: The member names (no directory entries).
        where: Prefix for error messages (e.g. the file path).

    Raises:
        ArchiveError: No metadata or model member: not a ZEN model file.
    """
    prefix = f"{where}: " if where else ""
    family = family_of(names)
    if family is None:
        listed = ", ".join(names[:8]) or "none"
        raise ArchiveError(
            f"{prefix}neither model.json (CZANN) nor <id>.xml (CZMODEL) found "
            f"(members: {listed}); not a ZEN model file"
        )
    problems: list[str] = []
    if family == CZANN:
        metadata = _pick(names, "model.json", ".json", METADATA, problems)
        model = _pick(names, "model.model", ".model", MODEL, problems)
        modelid = None
        if metadata is None:
            raise ArchiveError(f"{prefix}missing metadata member model.json")
        if model is None:
            raise ArchiveError(
                f"{prefix}missing model member model.model (ONNX) next to {metadata}"
            )
    else:
        metadata, model, modelid = _legacy_roles(names, problems)
        if not metadata:
            raise ArchiveError(f"{prefix}missing metadata member <id>.xml")
        if model is None:
            raise ArchiveError(f"{prefix}missing model member <id>.model next to {metadata}")
    rest = [n for n in names if n not in (metadata, model) and not n.startswith(MODELID_PREFIX)]
    license = LICENSE_NAME if LICENSE_NAME in rest else (rest[0] if rest else None)
    others = tuple(n for n in rest if n != license)
    if others:
        problems.append(
            "stray members: "
            + ", ".join(repr(n) for n in [license, *others])
            + " (at most one licence)"
        )
    return Layout(family, metadata, model, license, modelid, others, tuple(problems))


def _pick(
    names: Sequence[str], canonical: str, suffix: str, role: str, problems: list[str]
) -> str | None:
    if canonical in names:
        return canonical
    candidates = _ends(names, suffix)
    if len(candidates) > 1:
        problems.append(
            f"no {canonical!r} and several {suffix} members: "
            + ", ".join(repr(n) for n in candidates)
        )
    return candidates[0] if candidates else None


def _legacy_roles(names: Sequence[str], problems: list[str]) -> tuple[str, str | None, str | None]:
    markers = [n for n in names if n.startswith(MODELID_PREFIX)]
    xmls, models = _ends(names, ".xml"), _ends(names, ".model")
    for role, found, pattern in (
        ("metadata", xmls, "<id>.xml"),
        ("model", models, "<id>.model"),
        ("id marker", markers, "modelid=<id>"),
    ):
        if len(found) != 1:
            what = "missing" if not found else f"{len(found)} candidates for"
            problems.append(f"{what} {role} member {pattern}")
    marker = markers[0] if markers else None
    ident = marker[len(MODELID_PREFIX) :] if marker else None
    stems = {n[:-6] for n in models}
    if ident and f"{ident}.xml" in names:
        xml = f"{ident}.xml"
    else:
        xml = next((n for n in xmls if n[:-4] in stems), xmls[0] if xmls else "")
    stem = xml[:-4]
    model = f"{stem}.model" if f"{stem}.model" in names else (models[0] if models else None)
    if model is not None and marker is not None and len({stem, model[:-6], ident}) != 1:
        problems.append(f"member ids disagree: {xml!r}, {model!r}, {marker!r}")
    return xml, model, marker


def layout_or_none(names: Sequence[str]) -> Layout | None:
    """:func:`layout_of`, or None for names that are not a model file's."""
    try:
        return layout_of(names)
    except ArchiveError:
        return None


def roles_of(names: Sequence[str]) -> dict[str, str]:
    """The role of every name (all :data:`OTHER` when the names are not a model file's)."""
    layout = layout_or_none(names)
    return {n: layout.role(n) if layout else OTHER for n in names}


def family_hint(names: Sequence[str], suffix: str = "") -> str:
    """The family of ``names``; the extension ``suffix`` decides only when the names do not,
    and CZANN when neither does (for describing files that are not model files)."""
    return family_of(names) or SUFFIX_FAMILIES.get(suffix.lower(), CZANN)
