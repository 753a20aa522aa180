"""Safe reading of ``.czann`` / ``.czmodel`` / ``.czseg`` files (czmodel-format.md 2.1, 3.1).

:func:`read_artifact` reads the archive with the one bounded reader
(:mod:`czbuild.formats.container`), finds the members with the one family and role rule
(:mod:`czbuild.formats.layout`), parses the metadata (:mod:`czbuild.formats.model_json` /
:func:`~czbuild.formats.legacy.parse_xml`) and classifies the payload.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from czbuild.errors import ArchiveError, MetadataError
from czbuild.formats.container import (
    ARTIFACT_LIMITS,
    COMPRESSION_NAMES,
    ZIP_MAGIC,
    Container,
    Limits,
    Member,
    open_container,
)
from czbuild.formats.czann import CzannMetadata
from czbuild.formats.layout import CZANN, MODELID_PREFIX, SUFFIX_FAMILIES, Layout, layout_of
from czbuild.formats.legacy import LegacyMetadata, parse_xml
from czbuild.formats.model_json import MAX_METADATA_BYTES, parse_model_json

#: Largest total uncompressed size read_artifact accepts by default (4 GiB).
DEFAULT_MAX_BYTES: Final = ARTIFACT_LIMITS.max_bytes
#: Largest uncompressed/compressed ratio accepted for a member above 1 MiB.
DEFAULT_MAX_RATIO: Final = ARTIFACT_LIMITS.max_ratio
ARTIFACT_SUFFIXES: Final = SUFFIX_FAMILIES
#: Kept for callers of the earlier name: one entry of an archive.
MemberInfo = Member

__all__ = [
    "ARTIFACT_SUFFIXES",
    "COMPRESSION_NAMES",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_RATIO",
    "MODELID_PREFIX",
    "ZIP_MAGIC",
    "Artifact",
    "MemberInfo",
    "load_artifact",
    "parse_metadata",
    "payload_kind",
    "read_artifact",
]


@dataclass(frozen=True)
class Artifact:
    """A parsed model file.

    Attributes:
        path: The file read.
        family: ``"czann"`` or ``"czmodel"`` (also for ``.czseg``), from the content.
        version: Format version (inferred for CZANN files without ``FormatVersion``).
        metadata: The parsed metadata (not validated: see ``metadata.problems()``).
        model_bytes: The network payload.
        payload: ``"onnx"`` or ``"savedmodel_zip"`` (payload starting with ``PK\\x03\\x04``).
        license_bytes: The licence member's content, or None.
        members: Every entry in archive order.
        metadata_member / model_member / license_member: Names of the members used.
        metadata_bytes: The raw metadata member.
        raw_metadata: The metadata in the file's own key names (the JSON object for CZANN;
            for legacy the XML values plus unknown elements such as ``ScaleInputsByBitdepth``).
        version_inferred: True if a CZANN file has no ``FormatVersion``.
        comment: The archive comment (czbuild writes none).
        layout: The member roles.
    """

    path: Path
    family: str
    version: str
    metadata: CzannMetadata | LegacyMetadata
    model_bytes: bytes
    payload: str
    license_bytes: bytes | None
    members: tuple[Member, ...]
    metadata_member: str = ""
    model_member: str = ""
    license_member: str | None = None
    metadata_bytes: bytes = b""
    raw_metadata: Mapping[str, Any] = field(default_factory=dict)
    version_inferred: bool = False
    comment: bytes = b""
    layout: Layout | None = None


def payload_kind(model_bytes: bytes) -> str:
    """``"savedmodel_zip"`` for a nested ZIP, else ``"onnx"``."""
    return "savedmodel_zip" if model_bytes.startswith(ZIP_MAGIC) else "onnx"


def read_artifact(
    path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES, max_ratio: int = DEFAULT_MAX_RATIO
) -> Artifact:
    """Read and parse a ``.czann`` / ``.czmodel`` / ``.czseg`` file safely.

    Args:
        path: The file.
        max_bytes: Refuse archives whose members add up to more bytes (uncompressed).
        max_ratio: Refuse members above 1 MiB (and archives) that expand more than this.

    Returns:
        The parsed :class:`Artifact`.

    Raises:
        ArchiveError: If the file is missing, not a ZIP, truncated, unsafe (see
            :mod:`czbuild.formats.container`), lacks the metadata or model member, or its
            metadata cannot be parsed. The message names the file (and the member).
    """
    return load_artifact(path, max_bytes=max_bytes, max_ratio=max_ratio)[0]


def load_artifact(
    path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES, max_ratio: int = DEFAULT_MAX_RATIO
) -> tuple[Artifact, dict[str, bytes]]:
    """Like :func:`read_artifact`, also returning every file member's bytes by name."""
    limits = Limits(max_bytes, ARTIFACT_LIMITS.max_members, max_ratio)
    container = open_container(Path(path), limits=limits)
    return artifact_from(container), container.contents


def artifact_from(container: Container) -> Artifact:
    """The :class:`Artifact` of a container that was read without problems.

    Raises:
        ArchiveError: Not a model file, an empty payload, or metadata that cannot be parsed.
    """
    path = Path(container.label)
    layout = layout_of([m.name for m in container.files()], where=str(path))
    model_bytes = container.read(layout.model)
    if not model_bytes:
        raise ArchiveError(f"{path}: {layout.model}: the model member is empty")
    try:
        metadata, raw, inferred = parse_metadata(layout, container.read(layout.metadata))
    except MetadataError as exc:
        raise ArchiveError(f"{path}: {layout.metadata}: {exc}") from exc
    return Artifact(
        path=path,
        family=layout.family,
        version=_version(metadata),
        metadata=metadata,
        model_bytes=model_bytes,
        payload=payload_kind(model_bytes),
        license_bytes=container.read(layout.license) if layout.license else None,
        members=container.members,
        metadata_member=layout.metadata,
        model_member=layout.model,
        license_member=layout.license,
        metadata_bytes=container.read(layout.metadata),
        raw_metadata=raw,
        version_inferred=inferred,
        comment=container.comment,
        layout=layout,
    )


def _version(metadata: CzannMetadata | LegacyMetadata) -> str:
    return metadata.version if isinstance(metadata, LegacyMetadata) else metadata.format_version


def parse_metadata(
    layout: Layout, data: bytes
) -> tuple[CzannMetadata | LegacyMetadata, dict[str, Any], bool]:
    """Parse the metadata member the way every reader does.

    Returns:
        The metadata (a legacy file without an ``Id`` takes the id of its member names), the
        metadata in the file's own key names, and whether a CZANN version was inferred.

    Raises:
        MetadataError: Unparseable, or a required key is missing or of the wrong type.
    """
    if len(data) > MAX_METADATA_BYTES:
        raise MetadataError("", f"{len(data)} bytes, over the {MAX_METADATA_BYTES}-byte limit")
    if layout.family == CZANN:
        doc = parse_model_json(data)
        metadata = CzannMetadata.from_json_dict(doc)
        if metadata.id is None:
            raise MetadataError("Id", "required key is missing")
        return metadata, doc, doc.get("FormatVersion") is None
    legacy, extra = parse_xml(data)
    if legacy.id is None:
        legacy = legacy.with_id(layout.legacy_id or layout.metadata[:-4])
    raw: dict[str, Any] = {
        "Version": legacy.version,
        "Id": legacy.id,
        "ModelName": legacy.name,
        "ColorHandling": legacy.color_handling,
        "Channels": list(legacy.pixel_types),
        "TrainingClasses": list(legacy.classes),
        "BorderSize": legacy.border_size,
    }
    raw.update({k: v for k, v in extra.items() if k not in raw})
    return legacy, raw, False
