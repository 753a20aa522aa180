"""The one bounded ZIP reader under every artifact reader (czmodel-format.md 2.1, 3.1, 7.1).

:func:`read_container` opens a ZIP file (or the bytes of a nested SavedModel zip), records
every entry as a :class:`Member` and checks everything that can be checked *before*
inflating a byte: member count, total uncompressed size, compression ratio (per member and
for the whole archive), encryption, compression method, local headers where the central
directory says and not overlapping, member names (:func:`name_problem`) and duplicates. Only a
container without problems is read, member by member in 1 MiB chunks that stop at the size the
central directory declares, so a lying header cannot make it inflate more.

Problems are collected, not raised: the verifier turns them into failed checks, and
:func:`open_container` (what every other reader uses) raises the first as an ``ArchiveError``.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from czbuild.errors import ArchiveError

ZIP_MAGIC: Final = b"PK\x03\x04"
COMPRESSION_NAMES: Final = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}


@dataclass(frozen=True)
class Limits:
    """Bounds checked from the central directory before anything is inflated.

    Attributes:
        max_bytes: Largest total uncompressed size of all members.
        max_members: Largest number of entries.
        max_ratio: Largest uncompressed/compressed ratio of a member above
            :data:`RATIO_MIN_SIZE`, and of the whole archive (uncompressed total / file size).
    """

    max_bytes: int = 4 * 1024**3
    max_members: int = 16
    max_ratio: int = 200


#: Artifacts: a CZANN has 2-3 members, a CZMODEL 3-4; 16 leaves room for foreign extras.
ARTIFACT_LIMITS: Final = Limits()
#: A nested SavedModel zip: ``saved_model.pb``, variables, assets and fingerprint files.
SAVEDMODEL_LIMITS: Final = Limits(max_members=10_000)
#: Ratios are only judged above this size (a tiny JSON compresses well and is harmless).
RATIO_MIN_SIZE: Final = 1024**2
_CHUNK: Final = 1 << 20
_LOCAL_HEADER: Final = struct.Struct("<4s2B4HL2L2H")
_DRIVE_RE: Final = re.compile(r"^[A-Za-z]:")
_UNREADABLE: Final = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    zlib.error,
    ValueError,
    NotImplementedError,
    RuntimeError,
    struct.error,
)


@dataclass(frozen=True)
class Member:
    """One ZIP entry as the central directory describes it (what reproducibility compares).

    ``sha256`` is the content hash once the member was read ("" before).
    """

    name: str
    size: int
    compress_size: int
    compress_type: int
    date_time: tuple[int, int, int, int, int, int]
    external_attr: int
    create_system: int
    flag_bits: int = 0
    extra: bytes = b""
    crc: int = 0
    header_offset: int = 0
    is_dir: bool = False
    sha256: str = ""

    @property
    def date_text(self) -> str:
        """``1980-01-01 00:00:00``."""
        return "{:04d}-{:02d}-{:02d} {:02d}:{:02d}:{:02d}".format(*self.date_time)

    @property
    def mode_text(self) -> str:
        """The Unix mode in the high 16 bits of ``external_attr``, in octal."""
        return oct(self.external_attr >> 16)

    @property
    def compression_text(self) -> str:
        """``stored`` / ``deflated`` or the method number."""
        return COMPRESSION_NAMES.get(self.compress_type, str(self.compress_type))


@dataclass
class Container:
    """A ZIP archive's entries and, when it was safe to read, their contents.

    Attributes:
        label: What to call the archive in messages (its path, or ``"nested archive"``).
        members: Entries in central-directory order.
        comment: The archive comment.
        contents: Member bytes by name (empty until read; directories map to ``b""``).
        problems: Why the archive is unsafe or unreadable (sizes, ratios, layout, CRC).
        name_problems: Unsafe or duplicate member names.
    """

    label: str
    members: tuple[Member, ...]
    comment: bytes = b""
    contents: dict[str, bytes] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    name_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether no problem was found (then every member was read)."""
        return not self.problems and not self.name_problems

    def names(self) -> list[str]:
        """Member names in archive order."""
        return [m.name for m in self.members]

    def files(self) -> list[Member]:
        """The members that are not directory entries."""
        return [m for m in self.members if not m.is_dir]

    def entry(self, name: str) -> Member | None:
        """The first member called ``name``."""
        return next((m for m in self.members if m.name == name), None)

    def read(self, name: str) -> bytes:
        """The bytes of member ``name`` (read and CRC-checked)."""
        return self.contents[name]

    def raise_problems(self) -> None:
        """Raise the first problem as an :class:`ArchiveError` naming the archive."""
        for first in (*self.problems, *self.name_problems):
            raise ArchiveError(f"{self.label}: {first}")


def name_problem(name: str, *, is_dir: bool = False) -> str | None:
    """Why ``name`` is not a plain relative member path, or None (the one name-safety rule).

    Refused: empty names, NUL and control characters, backslashes (Windows paths), absolute
    and drive paths, ``..`` (traversal), empty and ``.`` components.
    """
    if not name or "\x00" in name:
        return "empty name or NUL byte"
    if "\\" in name:
        return "backslash in the name (Windows path)"
    if name.startswith("/") or _DRIVE_RE.match(name):
        return "absolute path"
    parts = name.rstrip("/").split("/") if is_dir else name.split("/")
    if ".." in parts:
        return "'..' path component (path traversal)"
    if any(part in ("", ".") for part in parts):
        return "empty or '.' path component"
    if not name.isprintable():
        return "control character in the name"
    return None


def read_container(
    source: str | Path | bytes,
    *,
    limits: Limits = ARTIFACT_LIMITS,
    read_contents: bool = True,
    label: str | None = None,
) -> Container:
    """Read the entries of a ZIP file or of ZIP bytes, check them, then read the members.

    Args:
        source: A path, or the bytes of a (nested) archive.
        limits: The bounds to enforce before inflating.
        read_contents: Read (and hash) every member when the container has no problems.
        label: Name used in messages (default: the path, or ``"nested archive"``).

    Returns:
        The container; ``problems`` / ``name_problems`` say why it was not read.

    Raises:
        ArchiveError: The file is missing or is not a ZIP archive at all (nothing to list).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = label or "nested archive"
        handle: io.BufferedIOBase = io.BytesIO(data)
        file_size = len(data)
    else:
        path = Path(source)
        label = label or str(path)
        if not path.is_file():
            what = "no such file" if not path.exists() else "not a file"
            raise ArchiveError(f"{path}: {what}")
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below
            file_size = path.stat().st_size
        except OSError as exc:
            raise ArchiveError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        with handle, zipfile.ZipFile(handle) as zf:
            infos = zf.infolist()
            container = Container(
                label=label, members=tuple(_member(i) for i in infos), comment=zf.comment
            )
            _check_bounds(container, limits, file_size)
            if len(infos) <= limits.max_members:
                container.problems.extend(_layout_problems(handle, container.members, file_size))
            _check_names(container)
            if container.ok and read_contents:
                _read_members(zf, infos, container)
    except ArchiveError:
        raise
    except _UNREADABLE as exc:
        raise ArchiveError(
            f"{label}: not a readable ZIP archive (truncated or corrupt?): {exc}"
        ) from exc
    except OSError as exc:
        raise ArchiveError(f"{label}: cannot read: {exc.strerror or exc}") from exc
    return container


def open_container(
    source: str | Path | bytes,
    *,
    limits: Limits = ARTIFACT_LIMITS,
    read_contents: bool = True,
    label: str | None = None,
) -> Container:
    """:func:`read_container`, raising the first problem as an :class:`ArchiveError`."""
    container = read_container(source, limits=limits, read_contents=read_contents, label=label)
    container.raise_problems()
    return container


def _member(info: zipfile.ZipInfo) -> Member:
    return Member(
        name=info.filename,
        size=info.file_size,
        compress_size=info.compress_size,
        compress_type=info.compress_type,
        date_time=tuple(info.date_time),  # type: ignore[arg-type]
        external_attr=info.external_attr,
        create_system=info.create_system,
        flag_bits=info.flag_bits,
        extra=bytes(info.extra),
        crc=info.CRC,
        header_offset=info.header_offset,
        is_dir=info.is_dir(),
    )


def _check_bounds(container: Container, limits: Limits, file_size: int) -> None:
    problems = container.problems
    members = container.members
    if len(members) > limits.max_members:
        problems.append(
            f"{len(members)} members, more than the {limits.max_members} this kind of "
            "archive can have (zip bomb?); refusing before inflating anything"
        )
    total = sum(m.size for m in members)
    if total > limits.max_bytes:
        problems.append(
            f"members unpack to {total} bytes, over the {limits.max_bytes}-byte limit "
            "(zip bomb?); raise max_bytes if the file is trusted"
        )
    elif total > RATIO_MIN_SIZE and total > limits.max_ratio * max(file_size, 1):
        problems.append(
            f"members unpack to {total} bytes from a {file_size}-byte file (ratio over "
            f"{limits.max_ratio}:1, zip bomb?)"
        )
    for m in members:
        if m.flag_bits & 0x1:
            problems.append(f"member {m.name!r} is encrypted; model files never are")
        if m.compress_type not in COMPRESSION_NAMES:
            problems.append(
                f"member {m.name!r} uses compression method {m.compress_type}; only "
                "stored and deflated are accepted"
            )
        elif m.compress_type == zipfile.ZIP_STORED and m.compress_size != m.size:
            problems.append(
                f"member {m.name!r} is stored but its sizes disagree ({m.compress_size} vs "
                f"{m.size}); corrupt archive"
            )
        elif m.size > RATIO_MIN_SIZE and m.size > limits.max_ratio * max(m.compress_size, 1):
            problems.append(
                f"member {m.name!r} expands {m.compress_size} -> {m.size} bytes (ratio over "
                f"{limits.max_ratio}:1, zip bomb?)"
            )


def _layout_problems(
    handle: io.BufferedIOBase, members: tuple[Member, ...], file_size: int
) -> list[str]:
    """Local headers must exist where the central directory says and must not overlap."""
    problems: list[str] = []
    spans: list[tuple[int, int, str]] = []
    for m in members:
        if m.header_offset < 0 or m.header_offset + _LOCAL_HEADER.size > file_size:
            problems.append(f"member {m.name!r}: local header outside the file (truncated?)")
            continue
        handle.seek(m.header_offset)
        fields = _LOCAL_HEADER.unpack(handle.read(_LOCAL_HEADER.size))
        if fields[0] != ZIP_MAGIC:
            problems.append(f"member {m.name!r}: no local file header at offset {m.header_offset}")
            continue
        end = m.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1] + m.compress_size
        if end > file_size:
            problems.append(f"member {m.name!r}: data runs past the end of the file (truncated?)")
        spans.append((m.header_offset, end, m.name))
    spans.sort()
    for (_, end, name), (start, _, next_name) in itertools.pairwise(spans):
        if start < end:
            problems.append(
                f"entries {name!r} and {next_name!r} overlap (overlapping-entry zip bomb?)"
            )
    return problems


def _check_names(container: Container) -> None:
    seen: dict[str, str] = {}
    for m in container.members:
        problem = name_problem(m.name, is_dir=m.is_dir)
        if problem:
            container.name_problems.append(f"member {m.name!r}: {problem}; unsafe member name")
            continue
        folded = m.name.casefold()
        if folded in seen:
            clash = ", differing only in case" if seen[folded] != m.name else ""
            container.name_problems.append(
                f"member {m.name!r} appears twice (also as {seen[folded]!r}{clash}); "
                "duplicate member names"
            )
        seen.setdefault(folded, m.name)


def _read_members(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], container: Container) -> None:
    members = []
    for info, member in zip(infos, container.members):
        data = b"" if member.is_dir else _bounded_read(zf, info, container)
        if data is None:
            return
        container.contents[member.name] = data
        members.append(_with_hash(member, data))
    container.members = tuple(members)


def _with_hash(member: Member, data: bytes) -> Member:
    from dataclasses import replace

    return replace(member, sha256=hashlib.sha256(data).hexdigest())


def _bounded_read(zf: zipfile.ZipFile, info: zipfile.ZipInfo, container: Container) -> bytes | None:
    """Inflate one member in chunks, never past its declared size; the CRC is checked at EOF."""
    chunks: list[bytes] = []
    got = 0
    try:
        with zf.open(info) as fh:
            while chunk := fh.read(_CHUNK):
                got += len(chunk)
                if got > info.file_size:
                    raise ValueError(f"more data than the declared {info.file_size} bytes")
                chunks.append(chunk)
        if got != info.file_size:
            raise ValueError(f"{got} bytes instead of the declared {info.file_size}")
    except (*_UNREADABLE, OSError) as exc:
        container.problems.append(
            f"member {info.filename!r} cannot be read (not a readable ZIP archive: corrupt?): {exc}"
        )
        return None
    return b"".join(chunks)
