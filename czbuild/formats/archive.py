"""Writing, inspecting and unpacking model files (czmodel-format.md 2.1, 3.1, 7.1).

Writers validate the metadata, derive the id from the content when none is given, build the
archive with :func:`zip_bytes` (deterministic, stored) and replace the target atomically.
Reading lives in :mod:`czbuild.formats.reader` and unpacking in :mod:`czbuild.formats.extraction`;
their public names are re-exported here.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from czbuild.errors import ArchiveError
from czbuild.files.digest import file_sha256
from czbuild.files.scratch import final_name
from czbuild.formats.czann import CzannMetadata
from czbuild.formats.extraction import unpack
from czbuild.formats.ids import derive_id
from czbuild.formats.legacy import LegacyMetadata
from czbuild.formats.reader import (
    ARTIFACT_SUFFIXES,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_RATIO,
    MODELID_PREFIX,
    ZIP_MAGIC,
    Artifact,
    MemberInfo,
    payload_kind,
    read_artifact,
)
from czbuild.formats.ziputil import atomic_write, zip_bytes

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_RATIO",
    "Artifact",
    "MemberInfo",
    "czann_members",
    "czmodel_members",
    "inspect",
    "payload_kind",
    "read_artifact",
    "unpack",
    "write_czann",
    "write_czmodel",
]

logger = logging.getLogger(__name__)

LICENSE_MEMBER = "license.txt"


def _payload(member: str, data: object) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ArchiveError(f"{member}: the model payload must be bytes, got {type(data).__name__}")
    payload = bytes(data)
    if not payload:
        raise ArchiveError(f"{member}: the model payload is empty")
    return payload


def _license_bytes(data: object) -> bytes | None:
    if data is None:
        return None
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ArchiveError(
            f"{LICENSE_MEMBER}: the licence must be bytes (read the file in binary "
            f"mode), got {type(data).__name__}"
        )
    return bytes(data)


def _warn_suffix(path: Path, expected: str) -> None:
    # Looks through czbuild's own hidden temporaries (the build verifies under
    # ``.<name>.verifying-<pid>.tmp`` before the artifact gets its name).
    if Path(final_name(path.name)).suffix.lower() != expected:
        logger.warning("%s: writing a %s file under a %r extension", path, expected, path.suffix)


def czann_members(
    metadata: CzannMetadata,
    onnx_bytes: bytes,
    license_bytes: bytes | None = None,
    *,
    allow_experimental_types: bool = False,
) -> tuple[CzannMetadata, list[tuple[str, bytes]]]:
    """Validate and complete CZANN metadata and list the members in writing order.

    Returns:
        The metadata with its id (derived if it was None) and the ``(name, bytes)`` list:
        ``model.json``, ``model.model``, optional ``license.txt``.

    Raises:
        MetadataError: If the metadata is invalid.
        ArchiveError: If the payload is empty, not bytes, or a ZIP (SavedModel).
    """
    metadata.validate(allow_experimental_types=allow_experimental_types)
    payload = _payload("model.model", onnx_bytes)
    if payload.startswith(ZIP_MAGIC):
        raise ArchiveError(
            "model.model: the payload is a ZIP archive (a zipped SavedModel?); "
            "czbuild writes CZANN files with an ONNX model only: export ONNX"
        )
    if metadata.id is None:
        metadata = metadata.with_id(derive_id(metadata.to_json_bytes(include_id=False), payload))
    elif metadata.id != metadata.id.lower():
        metadata = metadata.with_id(metadata.id.lower())
    members = [("model.json", metadata.to_json_bytes()), ("model.model", payload)]
    license_data = _license_bytes(license_bytes)
    if license_data is not None:
        members.append((LICENSE_MEMBER, license_data))
    return metadata, members


def czmodel_members(
    metadata: LegacyMetadata, model_bytes: bytes, license_bytes: bytes | None = None
) -> tuple[LegacyMetadata, list[tuple[str, bytes]]]:
    """Validate and complete legacy metadata and list the members in writing order.

    Returns:
        The metadata with its id and the ``(name, bytes)`` list: ``<id>.xml``,
        ``<id>.model``, optional ``license.txt``, empty ``modelid=<id>``.

    Raises:
        MetadataError: If the metadata is invalid.
        ArchiveError: If the payload does not fit the version (3.1.0: ONNX, 3.0.0: zipped
            SavedModel) or is empty.
    """
    metadata.validate()
    payload = _payload("<id>.model", model_bytes)
    is_zip = payload.startswith(ZIP_MAGIC)
    if metadata.version == "3.0.0" and not is_zip:
        raise ArchiveError(
            "<id>.model: version 3.0.0 carries a zipped TensorFlow SavedModel, "
            "but the payload is not a ZIP; use version 3.1.0 for ONNX"
        )
    if metadata.version != "3.0.0" and is_zip:
        raise ArchiveError(
            f"<id>.model: version {metadata.version} carries an ONNX model, but "
            "the payload is a ZIP (SavedModel?); use version 3.0.0 for SavedModel"
        )
    if metadata.id is None:
        metadata = metadata.with_id(derive_id(metadata.to_xml_bytes(include_id=False), payload))
    elif metadata.id != metadata.id.lower():
        metadata = metadata.with_id(metadata.id.lower())
    ident = metadata.id
    members = [(f"{ident}.xml", metadata.to_xml_bytes()), (f"{ident}.model", payload)]
    license_data = _license_bytes(license_bytes)
    if license_data is not None:
        members.append((LICENSE_MEMBER, license_data))
    members.append((f"{MODELID_PREFIX}{ident}", b""))
    return metadata, members


def write_czann(
    path: str | Path,
    metadata: CzannMetadata,
    onnx_bytes: bytes,
    license_bytes: bytes | None = None,
    *,
    allow_experimental_types: bool = False,
) -> CzannMetadata:
    """Write a ``.czann`` file deterministically and atomically.

    Args:
        path: Target file; written exactly under this name (no extension appended).
        metadata: Complete metadata (shapes set); ``id`` None derives it from the content.
        onnx_bytes: The ONNX model (all weights embedded).
        license_bytes: Optional licence, stored as ``license.txt``.
        allow_experimental_types: Passed to :meth:`CzannMetadata.validate`.

    Returns:
        The metadata as written (with its id).

    Raises:
        MetadataError: If the metadata is invalid.
        ArchiveError: If the payload is not ONNX-like bytes or the file cannot be written.
    """
    path = Path(path)
    metadata, members = czann_members(
        metadata, onnx_bytes, license_bytes, allow_experimental_types=allow_experimental_types
    )
    _warn_suffix(path, ".czann")
    atomic_write(path, zip_bytes(members))
    return metadata


def write_czmodel(
    path: str | Path,
    metadata: LegacyMetadata,
    model_bytes: bytes,
    license_bytes: bytes | None = None,
) -> LegacyMetadata:
    """Write a legacy ``.czmodel`` file deterministically and atomically.

    Args:
        path: Target file; written exactly under this name (no extension appended).
        metadata: The metadata; ``id`` None derives it from the content.
        model_bytes: ONNX (3.1.0) or a zipped SavedModel (3.0.0, see ``zip_directory``).
        license_bytes: Optional licence, stored as ``license.txt``.

    Returns:
        The metadata as written (with its id).

    Raises:
        MetadataError: If the metadata is invalid.
        ArchiveError: If the payload does not fit the version or the file cannot be written.
    """
    path = Path(path)
    metadata, members = czmodel_members(metadata, model_bytes, license_bytes)
    _warn_suffix(path, ".czmodel")
    atomic_write(path, zip_bytes(members))
    return metadata


# --- inspect ----------------------------------------------------------------------------


def _member_dict(artifact: Artifact, info: MemberInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "role": artifact.layout.role(info.name) if artifact.layout else "other",
        "size": info.size,
        "compressed_size": info.compress_size,
        "compression": info.compression_text,
        "date_time": info.date_text,
        "mode": info.mode_text,
        "create_system": info.create_system,
        "sha256": info.sha256,
    }


def inspect(path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """Summarise a model file as JSON-friendly data (never imports TensorFlow or ONNX).

    Returns:
        ``path``, ``size``, ``sha256`` (of the file), ``family``, ``version``,
        ``version_inferred``, ``id``, ``payload``, ``payload_size``, ``payload_sha256``,
        ``metadata`` (in the file's key names), ``license`` (member name or None),
        ``extension_matches`` and ``members`` (name, role, sizes, compression, date_time,
        mode, create_system, sha256).

    Raises:
        ArchiveError: As :func:`read_artifact`.
    """
    artifact = read_artifact(path, max_bytes=max_bytes)
    file_digest = file_sha256(artifact.path)
    suffix_family = ARTIFACT_SUFFIXES.get(artifact.path.suffix.lower())
    return {
        "path": str(artifact.path),
        "size": artifact.path.stat().st_size,
        "sha256": file_digest,
        "family": artifact.family,
        "version": artifact.version,
        "version_inferred": artifact.version_inferred,
        "id": artifact.metadata.id,
        "payload": artifact.payload,
        "payload_size": len(artifact.model_bytes),
        "payload_sha256": hashlib.sha256(artifact.model_bytes).hexdigest(),
        "metadata": dict(artifact.raw_metadata),
        "license": artifact.license_member,
        "extension_matches": suffix_family == artifact.family,
        "members": [_member_dict(artifact, m) for m in artifact.members],
    }
