"""ZIP entries as the lock file and the artifact diff see them, and member roles.

:class:`Entry` is one ZIP entry: its name, content hash and the header fields that decide the
archive's bytes. :func:`read_zip` reads them (and the contents) from a file or from bytes with
a size limit; :func:`member_role` says what a member is for (``metadata``, ``model``,
``license``, ``modelid``), so members can be paired across two legacy artifacts whose member
names embed different model ids.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

from czbuild.errors import ArchiveError

# The same values as czbuild.formats.reader, restated: importing czbuild.formats costs 20 ms
# that the no-op build (which refreshes the lock) cannot spend.
ZIP_MAGIC = b"PK\x03\x04"
MODELID_PREFIX = "modelid="
COMPRESSION_NAMES = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}

#: Largest total uncompressed size read here (the reader's default limit).
MAX_BYTES = 4 * 1024**3

METADATA = "metadata"
MODEL = "model"
LICENSE = "license"
MODELID = "modelid"


@dataclass(frozen=True)
class Entry:
    """One ZIP entry.

    Attributes:
        name: Member name.
        size: Uncompressed size.
        sha256: sha256 of the content ("" when not read).
        date_time: ``(Y, M, D, h, m, s)``.
        compress_type: ZIP compression method.
        external_attr: External attributes (Unix mode in the high 16 bits).
        create_system: Host system byte (3 = Unix).
        extra: Extra field bytes.
        flag_bits: General purpose flags (bit 3: data descriptor).
    """

    name: str
    size: int
    sha256: str
    date_time: tuple[int, ...]
    compress_type: int
    external_attr: int
    create_system: int
    extra: bytes = b""
    flag_bits: int = 0

    @property
    def date_text(self) -> str:
        return date_text(self.date_time)

    @property
    def mode_text(self) -> str:
        return oct(self.external_attr >> 16)

    @property
    def compression_text(self) -> str:
        return compression_text(self.compress_type)


def date_text(date_time: tuple[int, ...]) -> str:
    """``(1980, 1, 1, 0, 0, 0)`` -> ``1980-01-01 00:00:00``."""
    return "{:04d}-{:02d}-{:02d} {:02d}:{:02d}:{:02d}".format(*date_time)


def compression_text(method: int) -> str:
    """``stored`` / ``deflated`` or the method number."""
    return COMPRESSION_NAMES.get(method, str(method))


@dataclass(frozen=True)
class ZipSnapshot:
    """The entries, comment and member contents of one ZIP archive."""

    entries: tuple[Entry, ...]
    comment: bytes
    contents: dict[str, bytes]

    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def entry(self, name: str) -> Entry | None:
        return next((e for e in self.entries if e.name == name), None)


def read_zip(
    source: Path | bytes, *, read_contents: bool = True, max_bytes: int = MAX_BYTES
) -> ZipSnapshot:
    """Read the entries (and contents) of a ZIP file or of ZIP bytes.

    Args:
        source: A path, or the archive bytes.
        read_contents: Also read and hash every member (else ``sha256`` is "").
        max_bytes: Refuse archives whose members add up to more bytes.

    Raises:
        ArchiveError: Not a readable ZIP, or too large.
    """
    what = str(source) if isinstance(source, Path) else "nested archive"
    handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        with zipfile.ZipFile(handle) as zf:
            infos = zf.infolist()
            if sum(i.file_size for i in infos) > max_bytes:
                raise ArchiveError(f"{what}: members add up to more than {max_bytes} bytes")
            contents = {i.filename: zf.read(i) for i in infos} if read_contents else {}
            comment = zf.comment
    except ArchiveError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        ValueError,
        OSError,
        NotImplementedError,
        RuntimeError,
    ) as exc:
        raise ArchiveError(f"{what}: not a readable ZIP archive: {exc}") from exc
    entries = tuple(
        Entry(
            name=i.filename,
            size=i.file_size,
            sha256=hashlib.sha256(contents[i.filename]).hexdigest() if read_contents else "",
            date_time=tuple(i.date_time),
            compress_type=i.compress_type,
            external_attr=i.external_attr,
            create_system=i.create_system,
            extra=bytes(i.extra),
            flag_bits=i.flag_bits,
        )
        for i in infos
    )
    return ZipSnapshot(entries=entries, comment=comment, contents=contents)


def family_of(names: list[str], path: Path | str | None = None) -> str:
    """``czann`` or ``czmodel``, from the member names (the extension as a tie-breaker)."""
    if "model.json" in names:
        return "czann"
    if any(n.startswith(MODELID_PREFIX) or n.lower().endswith(".xml") for n in names):
        return "czmodel"
    if path is not None and str(path).lower().endswith((".czmodel", ".czseg")):
        return "czmodel"
    return "czann"


def member_role(family: str, name: str) -> str:
    """What a member is for: :data:`METADATA`, :data:`MODEL`, :data:`LICENSE`, :data:`MODELID`."""
    lowered = name.lower()
    if family == "czmodel" and name.startswith(MODELID_PREFIX):
        return MODELID
    if lowered.endswith(".json" if family == "czann" else ".xml"):
        return METADATA
    if lowered.endswith(".model"):
        return MODEL
    return LICENSE


def payload_kind_of(data: bytes) -> str:
    """``savedmodel_zip`` for a nested ZIP, else ``onnx``."""
    return "savedmodel_zip" if data[:4] == ZIP_MAGIC else "onnx"
