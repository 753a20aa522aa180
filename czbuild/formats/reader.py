"""Safe reading of ``.czann`` / ``.czmodel`` / ``.czseg`` files (czmodel-format.md 2.1, 3.1).

:func:`read_artifact` opens any of the three, decides the family from the members (not the
extension), finds the members by name the way the format's readers do, parses the
metadata and classifies the payload. It refuses anything unsafe before reading data:
traversal, absolute or drive paths, backslashes, duplicate names, encrypted entries,
unknown compression, oversized archives and compression-ratio bombs.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from czbuild.errors import ArchiveError, MetadataError
from czbuild.formats.czann import CzannMetadata
from czbuild.formats.legacy import LegacyMetadata, parse_xml

#: Largest total uncompressed size read_artifact accepts by default (4 GiB).
DEFAULT_MAX_BYTES: Final = 4 * 1024**3
#: Largest uncompressed/compressed ratio accepted for a member above 1 MiB.
DEFAULT_MAX_RATIO: Final = 200
_RATIO_MIN_SIZE: Final = 1024**2
ZIP_MAGIC: Final = b"PK\x03\x04"
ARTIFACT_SUFFIXES: Final = {".czann": "czann", ".czmodel": "czmodel", ".czseg": "czmodel"}
MODELID_PREFIX: Final = "modelid="
COMPRESSION_NAMES: Final = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_DRIVE_RE: Final = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class MemberInfo:
    """One ZIP entry as stored (what a reproducibility check compares)."""

    name: str
    size: int
    compress_type: int
    date_time: tuple[int, int, int, int, int, int]
    external_attr: int
    create_system: int
    compress_size: int = 0
    flag_bits: int = 0
    extra: bytes = b""
    crc: int = 0
    sha256: str = ""


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
    """

    path: Path
    family: str
    version: str
    metadata: CzannMetadata | LegacyMetadata
    model_bytes: bytes
    payload: str
    license_bytes: bytes | None
    members: tuple[MemberInfo, ...]
    metadata_member: str = ""
    model_member: str = ""
    license_member: str | None = None
    metadata_bytes: bytes = b""
    raw_metadata: Mapping[str, Any] = field(default_factory=dict)
    version_inferred: bool = False
    comment: bytes = b""


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
        max_ratio: Refuse compressed members above 1 MiB that expand more than this.

    Returns:
        The parsed :class:`Artifact`.

    Raises:
        ArchiveError: If the file is missing, not a ZIP, truncated, unsafe, lacks the
            metadata or model member, or its metadata cannot be parsed. The message names
            the file (and the member).
    """
    return load_artifact(path, max_bytes=max_bytes, max_ratio=max_ratio)[0]


def load_artifact(
    path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES, max_ratio: int = DEFAULT_MAX_RATIO
) -> tuple[Artifact, dict[str, bytes]]:
    """Like :func:`read_artifact`, also returning every file member's bytes by name."""
    path = Path(path)
    if not path.is_file():
        raise ArchiveError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            _check_entries(path, infos, max_bytes, max_ratio)
            contents = {i.filename: zf.read(i) for i in infos if not i.is_dir()}
            comment = zf.comment
    except ArchiveError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        zlib.error,
        ValueError,
        NotImplementedError,
        RuntimeError,
    ) as exc:
        raise ArchiveError(
            f"{path}: not a readable ZIP archive (truncated or corrupt?): {exc}"
        ) from exc
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot read: {exc}") from exc
    members = tuple(
        MemberInfo(
            name=i.filename,
            size=i.file_size,
            compress_type=i.compress_type,
            date_time=tuple(i.date_time),
            external_attr=i.external_attr,  # type: ignore[arg-type]
            create_system=i.create_system,
            compress_size=i.compress_size,
            flag_bits=i.flag_bits,
            extra=bytes(i.extra),
            crc=i.CRC,
            sha256=hashlib.sha256(contents.get(i.filename, b"")).hexdigest(),
        )
        for i in infos
    )
    names = [i.filename for i in infos if not i.is_dir()]
    family = _family(path, names)
    parse = _parse_czann if family == "czann" else _parse_czmodel
    fields = parse(path, names, contents)
    model_bytes = contents[fields["model_member"]]
    if not model_bytes:
        raise ArchiveError(f"{path}: {fields['model_member']}: the model member is empty")
    license_member = fields["license_member"]
    artifact = Artifact(
        path=path,
        family=family,
        members=members,
        model_bytes=model_bytes,
        payload=payload_kind(model_bytes),
        license_bytes=contents[license_member] if license_member else None,
        metadata_bytes=contents[fields["metadata_member"]],
        comment=comment,
        **fields,
    )
    return artifact, contents


# --- entry checks --------------------------------------------------------------------------


def _name_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if "\x00" in info.orig_filename or not name:
        return "empty name or NUL byte"
    if "\\" in name:
        return "backslash in the name (Windows path)"
    if name.startswith("/") or _DRIVE_RE.match(name):
        return "absolute path"
    parts = name.rstrip("/").split("/") if info.is_dir() else name.split("/")
    if ".." in parts:
        return "'..' path component (path traversal)"
    if any(part in ("", ".") for part in parts):
        return "empty or '.' path component"
    if any(not ch.isprintable() for ch in name):
        return "control character in the name"
    return None


def _check_entries(
    path: Path, infos: list[zipfile.ZipInfo], max_bytes: int, max_ratio: int
) -> None:
    seen: dict[str, str] = {}
    total = 0
    for info in infos:
        name = info.filename
        problem = _name_problem(info)
        if problem:
            raise ArchiveError(f"{path}: member {name!r}: {problem}; refusing the archive")
        folded = name.casefold()
        if folded in seen:
            raise ArchiveError(
                f"{path}: member {name!r} appears twice (also as {seen[folded]!r}); "
                "member names must be unique"
            )
        seen[folded] = name
        if info.flag_bits & 0x1:
            raise ArchiveError(f"{path}: member {name!r} is encrypted; model files never are")
        if info.compress_type not in COMPRESSION_NAMES:
            raise ArchiveError(
                f"{path}: member {name!r} uses compression method "
                f"{info.compress_type}; only stored and deflated are accepted"
            )
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise ArchiveError(
                f"{path}: member {name!r} is stored but its sizes disagree "
                f"({info.compress_size} vs {info.file_size}); corrupt archive"
            )
        if info.file_size > _RATIO_MIN_SIZE and info.file_size > max_ratio * max(
            info.compress_size, 1
        ):
            raise ArchiveError(
                f"{path}: member {name!r} expands {info.compress_size} -> "
                f"{info.file_size} bytes (ratio > {max_ratio}); refusing a "
                "possible zip bomb"
            )
        total += info.file_size
        if total > max_bytes:
            raise ArchiveError(
                f"{path}: members add up to more than {max_bytes} bytes "
                "uncompressed; raise max_bytes if the file is trusted"
            )


# --- family and members --------------------------------------------------------------------


def _first(names: list[str], suffix: str) -> str | None:
    return next((n for n in names if n.lower().endswith(suffix)), None)


def _family(path: Path, names: list[str]) -> str:
    stems = {n[:-6] for n in names if n.lower().endswith(".model")}
    if "model.json" in names:
        return "czann"
    if any(n.startswith(MODELID_PREFIX) for n in names):
        return "czmodel"
    if any(n.lower().endswith(".xml") and n[:-4] in stems for n in names):
        return "czmodel"
    if _first(names, ".json"):
        return "czann"
    if _first(names, ".xml"):
        return "czmodel"
    listed = ", ".join(names[:8]) or "none"
    raise ArchiveError(
        f"{path}: neither model.json (CZANN) nor <id>.xml (CZMODEL) found "
        f"(members: {listed}); not a ZEN model file"
    )


def _license(names: list[str], reserved: set[str]) -> str | None:
    others = [n for n in names if n not in reserved and not n.startswith(MODELID_PREFIX)]
    if "license.txt" in others:
        return "license.txt"
    return others[0] if others else None


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice")
        out[key] = value
    return out


def _parse_czann(path: Path, names: list[str], contents: dict[str, bytes]) -> dict[str, Any]:
    meta_name = "model.json" if "model.json" in names else _first(names, ".json")
    model_name = "model.model" if "model.model" in names else _first(names, ".model")
    assert meta_name is not None
    if model_name is None:
        raise ArchiveError(f"{path}: no model.model (ONNX) member next to {meta_name}")
    where = f"{path}: {meta_name}"
    try:
        doc = json.loads(
            contents[meta_name].decode("utf-8-sig"), object_pairs_hook=_reject_duplicate_keys
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise ArchiveError(f"{where}: not valid UTF-8 JSON: {exc}") from exc
    try:
        metadata = CzannMetadata.from_json_dict(doc)
    except MetadataError as exc:
        raise ArchiveError(f"{where}: {exc}") from exc
    if metadata.id is None:
        raise ArchiveError(f"{where}: Id: required key is missing")
    return {
        "version": metadata.format_version,
        "version_inferred": doc.get("FormatVersion") is None,
        "metadata": metadata,
        "raw_metadata": doc,
        "metadata_member": meta_name,
        "model_member": model_name,
        "license_member": _license(names, {meta_name, model_name}),
    }


def _parse_czmodel(path: Path, names: list[str], contents: dict[str, bytes]) -> dict[str, Any]:
    name_id = next((n[len(MODELID_PREFIX) :] for n in names if n.startswith(MODELID_PREFIX)), None)
    if name_id and f"{name_id}.xml" in names:
        xml_name: str | None = f"{name_id}.xml"
    else:
        stems = {n[:-6] for n in names if n.lower().endswith(".model")}
        xml_name = next(
            (n for n in names if n.lower().endswith(".xml") and n[:-4] in stems), None
        ) or _first(names, ".xml")
    if xml_name is None:
        raise ArchiveError(f"{path}: no <id>.xml metadata member")
    stem = xml_name[:-4]
    model_name = f"{stem}.model" if f"{stem}.model" in names else _first(names, ".model")
    if model_name is None:
        raise ArchiveError(f"{path}: no <id>.model member next to {xml_name}")
    try:
        metadata, extra = parse_xml(contents[xml_name])
    except MetadataError as exc:
        raise ArchiveError(f"{path}: {xml_name}: {exc}") from exc
    if metadata.id is None:
        metadata = metadata.with_id(name_id or stem)
    raw: dict[str, Any] = {
        "Version": metadata.version,
        "Id": metadata.id,
        "ModelName": metadata.name,
        "ColorHandling": metadata.color_handling,
        "Channels": list(metadata.pixel_types),
        "TrainingClasses": list(metadata.classes),
        "BorderSize": metadata.border_size,
    }
    raw.update({k: v for k, v in extra.items() if k not in raw})
    return {
        "version": metadata.version,
        "version_inferred": False,
        "metadata": metadata,
        "raw_metadata": raw,
        "metadata_member": xml_name,
        "model_member": model_name,
        "license_member": _license(names, {xml_name, model_name}),
    }
