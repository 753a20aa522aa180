"""Strict, bounded reading of a ZIP container: the ``container.archive`` check.

The verifier reads every member itself rather than trusting a lenient reader: a truncated
archive, an overlapping-entry or high-ratio zip bomb, an encrypted member or a CRC error each
become a failed check with the reason, never an exception or a write to disk. Nothing here is
written anywhere; member bytes stay in memory under a total size limit.
"""

from __future__ import annotations

import io
import itertools
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from czbuild.verify.report import FAILED, PASSED, VerifyReport

#: Total uncompressed bytes the verifier reads from one archive (ONNX protobufs are < 2 GiB).
MAX_UNPACKED_BYTES = 2 * 1024**3
#: Compression ratio above which a deflated member larger than :data:`RATIO_MIN_SIZE` is
#: treated as a zip bomb (float weights compress about 1.1:1).
MAX_RATIO = 100
RATIO_MIN_SIZE = 1024**2
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_LOCAL_MAGIC = b"PK\x03\x04"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Member:
    """What the central directory says about one entry, plus where it sits in the file."""

    name: str
    index: int
    size: int
    compress_size: int
    compress_type: int
    date_time: tuple[int, int, int, int, int, int]
    external_attr: int
    create_system: int
    flag_bits: int
    extra: bytes
    header_offset: int
    is_dir: bool

    def to_dict(self) -> dict:
        """JSON-friendly summary for report details."""
        return {
            "name": self.name,
            "size": self.size,
            "compress_size": self.compress_size,
            "compress_type": self.compress_type,
            "date_time": list(self.date_time),
            "external_attr": self.external_attr,
            "create_system": self.create_system,
        }


@dataclass
class Container:
    """A ZIP archive whose members were all read and CRC-checked.

    Attributes:
        path: The archive file (for a nested archive: the outer file).
        members: Entries in central-directory order.
        comment: The archive comment.
        data: Member bytes by index in :attr:`members`.
    """

    path: Path
    members: list[Member]
    comment: bytes = b""
    data: dict[int, bytes] = field(default_factory=dict)

    def names(self) -> list[str]:
        """Member names in archive order."""
        return [m.name for m in self.members]

    def find(self, name: str) -> Member | None:
        """The first member called ``name``."""
        for member in self.members:
            if member.name == name:
                return member
        return None

    def read(self, member: Member) -> bytes:
        """The bytes of ``member`` (already read and checked)."""
        return self.data[member.index]


def read_container(
    path: Path, report: VerifyReport, *, max_bytes: int = MAX_UNPACKED_BYTES
) -> Container | None:
    """Read ``path`` as a ZIP archive and add the ``container.archive`` check to ``report``.

    Args:
        path: The artifact.
        report: Receives the check.
        max_bytes: Limit on the sum of uncompressed member sizes.

    Returns:
        The container, or None when the archive is unreadable or unsafe (the check failed).
    """
    try:
        container, problems = read_zip(path, max_bytes=max_bytes)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        report.add(
            "container.archive",
            FAILED,
            "unreadable",
            f"not a readable ZIP archive (truncated or corrupt?): {exc}",
        )
        return None
    if problems:
        report.add(
            "container.archive",
            FAILED,
            f"{len(problems)} problem(s)",
            "; ".join(problems),
            problems=problems,
        )
        return None
    total = sum(m.size for m in container.members)
    report.add(
        "container.archive",
        PASSED,
        f"{len(container.members)} members, {total} bytes",
        "ZIP archive readable; sizes, CRCs and entry layout are sound",
        members=[m.to_dict() for m in container.members],
        total_bytes=total,
    )
    return container


def read_zip(
    source: Path | bytes, *, max_bytes: int = MAX_UNPACKED_BYTES, path: Path | None = None
) -> tuple[Container, list[str]]:
    """Open, bound-check and read every member of a ZIP file or of ZIP bytes.

    Args:
        source: The archive file, or the bytes of a nested archive.
        max_bytes: Limit on the sum of uncompressed member sizes.
        path: Path to record in the container (defaults to ``source`` when it is a path).

    Returns:
        The container and the problems found (members are only read when there are none).

    Raises:
        zipfile.BadZipFile, OSError, EOFError, ValueError: The archive cannot be opened.
    """
    problems: list[str] = []
    if isinstance(source, (bytes, bytearray)):
        fh: io.BufferedIOBase = io.BytesIO(source)  # type: ignore[assignment]
        file_size = len(source)
    else:
        fh = open(source, "rb")  # noqa: SIM115 - closed below
        file_size = source.stat().st_size
    with fh, zipfile.ZipFile(fh) as zf:
        infos = zf.infolist()
        members = [_member(i, info) for i, info in enumerate(infos)]
        where = path if path is not None else (source if isinstance(source, Path) else Path())
        container = Container(path=where, members=members, comment=zf.comment)
        total = sum(m.size for m in members)
        if total > max_bytes:
            problems.append(
                f"members unpack to {total} bytes, over the {max_bytes}-byte limit (zip bomb?)"
            )
        for m in members:
            if (
                m.compress_type != zipfile.ZIP_STORED
                and m.size > RATIO_MIN_SIZE
                and m.size > MAX_RATIO * max(m.compress_size, 1)
            ):
                problems.append(
                    f"{m.name!r}: compression ratio {m.size / max(m.compress_size, 1):.0f}:1 "
                    f"over {MAX_RATIO}:1 (zip bomb?)"
                )
            if m.flag_bits & 0x1:
                problems.append(f"{m.name!r}: encrypted member")
            if m.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                problems.append(
                    f"{m.name!r}: compression method {m.compress_type} (only stored or "
                    "deflated are readable by ZEN)"
                )
        problems.extend(_layout_problems(fh, members, file_size))
        if problems:
            return container, problems
        for m, info in zip(members, infos):
            if m.is_dir:
                container.data[m.index] = b""
                continue
            try:
                container.data[m.index] = _bounded_read(zf, info, m.size)
            except (zipfile.BadZipFile, EOFError, OSError, ValueError, RuntimeError) as exc:
                problems.append(f"{m.name!r}: cannot be read: {exc}")
            except Exception as exc:
                problems.append(f"{m.name!r}: cannot be decompressed: {exc}")
    return container, problems


def _member(index: int, info: zipfile.ZipInfo) -> Member:
    return Member(
        name=info.filename,
        index=index,
        size=info.file_size,
        compress_size=info.compress_size,
        compress_type=info.compress_type,
        date_time=tuple(info.date_time),  # type: ignore[arg-type]
        external_attr=info.external_attr,
        create_system=info.create_system,
        flag_bits=info.flag_bits,
        extra=info.extra,
        header_offset=info.header_offset,
        is_dir=info.is_dir(),
    )


def _layout_problems(fh: io.BufferedIOBase, members: list[Member], file_size: int) -> list[str]:
    """Local headers must exist where the central directory says and must not overlap."""
    problems: list[str] = []
    spans: list[tuple[int, int, str]] = []
    for m in members:
        if m.header_offset < 0 or m.header_offset + _LOCAL_HEADER.size > file_size:
            problems.append(f"{m.name!r}: local header outside the file (truncated?)")
            continue
        fh.seek(m.header_offset)
        raw = fh.read(_LOCAL_HEADER.size)
        fields = _LOCAL_HEADER.unpack(raw)
        if fields[0] != _LOCAL_MAGIC:
            problems.append(f"{m.name!r}: no local file header at offset {m.header_offset}")
            continue
        name_len, extra_len = fields[-2], fields[-1]
        end = m.header_offset + _LOCAL_HEADER.size + name_len + extra_len + m.compress_size
        if end > file_size:
            problems.append(f"{m.name!r}: data runs past the end of the file (truncated?)")
        spans.append((m.header_offset, end, m.name))
    spans.sort()
    for (_, end, name), (start, _, next_name) in itertools.pairwise(spans):
        if start < end:
            problems.append(
                f"entries {name!r} and {next_name!r} overlap (overlapping-entry zip bomb?)"
            )
    return problems


def _bounded_read(zf: zipfile.ZipFile, info: zipfile.ZipInfo, declared: int) -> bytes:
    """Read one member, refusing more bytes than declared; the CRC is checked at EOF."""
    chunks: list[bytes] = []
    got = 0
    with zf.open(info) as fh:
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                break
            got += len(chunk)
            if got > declared:
                raise ValueError(f"more data than the declared {declared} bytes")
            chunks.append(chunk)
    if got != declared:
        raise ValueError(f"{got} bytes instead of the declared {declared}")
    return b"".join(chunks)
