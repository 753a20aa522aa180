"""Deterministic zips (raw header checks, SOURCE_DATE_EPOCH, TZ/umask) and atomic_write."""

from __future__ import annotations

import io
import os
import struct
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from czbuild.errors import ArchiveError
from czbuild.formats import ziputil
from czbuild.formats.ziputil import atomic_write, zip_bytes, zip_date_time, zip_directory

MEMBERS = [
    ("model.json", b'{"Type": "Regression"}'),
    ("model.model", b"\x08\x07" + bytes(300)),
    ("license.txt", "MIT \u00a9".encode()),
]

LOCAL = struct.Struct("<IHHHHHIIIHH")  # 30 bytes
CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # 46 bytes
END = struct.Struct("<IHHHHIIH")  # 22 bytes


def dos(date_time: tuple[int, ...]) -> tuple[int, int]:
    y, mo, d, h, mi, s = date_time
    return (h << 11) | (mi << 5) | (s // 2), ((y - 1980) << 9) | (mo << 5) | d


def parse(data: bytes) -> tuple[list[dict], list[dict], dict]:
    """Walk local headers, central directory and end record of a zip byte string."""
    locals_, centrals = [], []
    pos = 0
    while data[pos : pos + 4] == b"PK\x03\x04":
        f = LOCAL.unpack_from(data, pos)
        name = data[pos + 30 : pos + 30 + f[9]]
        locals_.append(
            {
                "offset": pos,
                "version": f[1],
                "flags": f[2],
                "method": f[3],
                "time": f[4],
                "date": f[5],
                "crc": f[6],
                "csize": f[7],
                "size": f[8],
                "name": name,
                "extra_len": f[10],
            }
        )
        pos += 30 + f[9] + f[10] + f[7]
    cd_start = pos
    while data[pos : pos + 4] == b"PK\x01\x02":
        f = CENTRAL.unpack_from(data, pos)
        centrals.append(
            {
                "made_by": f[1],
                "version": f[2],
                "flags": f[3],
                "method": f[4],
                "time": f[5],
                "date": f[6],
                "extra_len": f[11],
                "comment_len": f[12],
                "external_attr": f[15],
                "offset": f[16],
                "name": data[pos + 46 : pos + 46 + f[10]],
            }
        )
        pos += 46 + f[10] + f[11] + f[12]
    e = END.unpack_from(data, pos)
    end = {
        "signature": e[0],
        "entries": e[4],
        "cd_size": e[5],
        "cd_offset": e[6],
        "comment_len": e[7],
        "end": pos + 22,
        "cd_start": cd_start,
    }
    return locals_, centrals, end


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    yield


# --- SOURCE_DATE_EPOCH ----------------------------------------------------------------------

EPOCHS = [
    ("unset", None, (1980, 1, 1, 0, 0, 0)),
    ("empty", "", (1980, 1, 1, 0, 0, 0)),
    ("zero-clamped", "0", (1980, 1, 1, 0, 0, 0)),
    ("negative-clamped", "-5", (1980, 1, 1, 0, 0, 0)),
    ("just-before-1980", "315532799", (1980, 1, 1, 0, 0, 0)),
    ("1980-exact", "315532800", (1980, 1, 1, 0, 0, 0)),
    ("even", "1700000000", (2023, 11, 14, 22, 13, 20)),
    ("odd-rounded-down", "1700000001", (2023, 11, 14, 22, 13, 20)),
    ("odd-minute-boundary", "1700000039", (2023, 11, 14, 22, 13, 58)),
    ("whitespace", " 1700000000\n", (2023, 11, 14, 22, 13, 20)),
    ("after-2107-clamped", "99999999999", (2107, 12, 31, 23, 59, 58)),
]


@pytest.mark.parametrize(("value", "expected"), [c[1:] for c in EPOCHS], ids=[c[0] for c in EPOCHS])
def test_source_date_epoch(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: tuple[int, ...]
) -> None:
    if value is None:
        monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    else:
        monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    assert zip_date_time() == expected
    info = zipfile.ZipFile(io.BytesIO(zip_bytes([("a", b"x")]))).infolist()[0]
    assert info.date_time == expected


@pytest.mark.parametrize("value", ["yesterday", "1.5e9", "0x10"], ids=["word", "float", "hex"])
def test_invalid_source_date_epoch_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    with pytest.raises(ArchiveError, match="SOURCE_DATE_EPOCH"):
        zip_bytes([("a", b"x")])


def test_source_date_epoch_changes_only_the_time_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    default = zip_bytes(MEMBERS)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000001")
    later = zip_bytes(MEMBERS)
    assert later != default and len(later) == len(default)
    for header in parse(later)[0] + parse(later)[1]:
        assert (header["time"], header["date"]) == dos((2023, 11, 14, 22, 13, 20))


# --- deterministic bytes ----------------------------------------------------------------------


def test_same_members_same_bytes(clean_env: None) -> None:
    assert zip_bytes(MEMBERS) == zip_bytes(list(MEMBERS))


@pytest.mark.parametrize(
    ("tz", "umask"),
    [
        ("UTC", 0o022),
        ("America/New_York", 0o077),
        ("Asia/Kolkata", 0o002),
        ("Pacific/Kiritimati", 0),
    ],
    ids=["utc-022", "new-york-077", "kolkata-002", "kiritimati-000"],
)
def test_bytes_do_not_depend_on_time_zone_or_umask(
    monkeypatch: pytest.MonkeyPatch, tz: str, umask: int
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000001")
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    reference = zip_bytes(MEMBERS)
    old_umask = os.umask(umask)
    try:
        monkeypatch.setenv("TZ", tz)
        time.tzset()
        assert zip_bytes(MEMBERS) == reference
    finally:
        os.umask(old_umask)
        monkeypatch.undo()
        time.tzset()


def test_raw_headers(clean_env: None) -> None:
    data = zip_bytes(MEMBERS)
    locals_, centrals, end = parse(data)
    assert [h["name"] for h in locals_] == [n.encode() for n, _ in MEMBERS]
    assert [h["name"] for h in centrals] == [n.encode() for n, _ in MEMBERS]
    for header, (_, content) in zip(locals_, MEMBERS):
        assert header["method"] == 0  # stored
        assert header["flags"] == 0  # no data descriptor (bit 3), no UTF-8 flag, not encrypted
        assert header["extra_len"] == 0
        assert header["size"] == header["csize"] == len(content)
        assert (header["time"], header["date"]) == dos((1980, 1, 1, 0, 0, 0))
        assert header["version"] == 20
    for header, local in zip(centrals, locals_):
        assert header["made_by"] >> 8 == 3  # create_system: Unix
        assert header["external_attr"] == 0o100644 << 16
        assert header["extra_len"] == 0 and header["comment_len"] == 0
        assert header["flags"] == 0 and header["method"] == 0
        assert header["offset"] == local["offset"]
    assert end["signature"] == 0x06054B50
    assert end["entries"] == len(MEMBERS)
    assert end["comment_len"] == 0
    assert end["cd_offset"] == end["cd_start"]
    assert end["end"] == len(data)  # nothing after the end record: no comment
    assert b"PK\x06\x06" not in data and b"PK\x07\x08" not in data  # no ZIP64, no descriptor


def test_members_keep_the_given_order(clean_env: None) -> None:
    names = ["z.txt", "a.txt", "m/b.txt"]
    data = zip_bytes([(n, n.encode()) for n in names])
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == names


BAD_NAMES = [
    ("non-ascii", "mod\u00e8le.json"),
    ("empty", ""),
    ("directory", "dir/"),
    ("absolute", "/etc/model.json"),
    ("traversal", "../model.json"),
    ("inner-traversal", "a/../../b"),
    ("dot", "./model.json"),
    ("double-slash", "a//b"),
    ("backslash", "a\\b"),
    ("control", "a\nb"),
]


@pytest.mark.parametrize("name", [c[1] for c in BAD_NAMES], ids=[c[0] for c in BAD_NAMES])
def test_bad_member_names_are_refused(clean_env: None, name: str) -> None:
    with pytest.raises(ArchiveError, match="zip member"):
        zip_bytes([(name, b"x")])


def test_duplicate_names_are_refused(clean_env: None) -> None:
    with pytest.raises(ArchiveError, match="twice"):
        zip_bytes([("a", b"1"), ("a", b"2")])


# --- zip_directory ----------------------------------------------------------------------------

TREE = {
    "saved_model.pb": b"pb",
    "fingerprint.pb": b"fp",
    "variables/variables.index": b"idx",
    "variables/variables.data-00000-of-00001": b"data",
    "assets/vocab.txt": b"v",
    "a.txt": b"dot sorts before slash",
}


def make_tree(root: Path, order: list[str], mode: int, mtime: int) -> Path:
    for rel in order:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(TREE[rel])
        path.chmod(mode)
        os.utime(path, (mtime, mtime))
    (root / "empty_dir").mkdir()
    return root


def test_zip_directory_is_sorted_and_independent_of_walk_order_modes_and_mtimes(
    tmp_path: Path, clean_env: None
) -> None:
    first = make_tree(tmp_path / "one", list(TREE), 0o644, 1_000_000_000)
    second = make_tree(tmp_path / "two", list(reversed(TREE)), 0o600, 1_600_000_000)
    data = zip_directory(first)
    assert data == zip_directory(second)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert names == sorted(TREE)
    assert names[0] == "a.txt" and "empty_dir/" not in names
    assert all(not n.endswith("/") for n in names)


def test_zip_directory_refuses_symlinks_and_missing_root(tmp_path: Path, clean_env: None) -> None:
    root = make_tree(tmp_path / "sm", list(TREE), 0o644, 1_000_000_000)
    (root / "link.pb").symlink_to(root / "saved_model.pb")
    with pytest.raises(ArchiveError, match="symbolic link"):
        zip_directory(root)
    with pytest.raises(ArchiveError, match="not a directory"):
        zip_directory(tmp_path / "missing")


def test_zip_directory_refuses_non_ascii_names(tmp_path: Path, clean_env: None) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "gewicht\u00e9.bin").write_bytes(b"x")
    with pytest.raises(ArchiveError, match="ASCII"):
        zip_directory(tmp_path / "d")


# --- atomic_write ---------------------------------------------------------------------------


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_atomic_write_creates_parents_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "m.czann"
    atomic_write(target, b"first")
    assert target.read_bytes() == b"first"
    atomic_write(target, b"second, longer")
    assert target.read_bytes() == b"second, longer"
    assert leftovers(target.parent) == []


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)], ids=["022", "077"])
def test_atomic_write_mode_follows_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "f", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == mode


def _failing_write(exc: BaseException):
    real_write = os.write

    def fake(fd: int, data: bytes) -> int:
        real_write(fd, bytes(data[: max(1, len(data) // 2)]))  # a half file on disk...
        raise exc  # ...then the failure

    return fake


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (OSError(28, "No space left on device"), ArchiveError),
        (KeyboardInterrupt(), KeyboardInterrupt),
    ],
    ids=["disk-full", "ctrl-c"],
)
def test_failed_write_keeps_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException, expected: type
) -> None:
    target = tmp_path / "model.czann"
    target.write_bytes(b"old complete file")
    monkeypatch.setattr(ziputil.os, "write", _failing_write(exc))
    with pytest.raises(expected):
        atomic_write(target, b"new content " * 100)
    monkeypatch.undo()
    assert target.read_bytes() == b"old complete file"
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.czann"]


def test_failed_write_of_a_new_file_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ziputil.os, "write", _failing_write(OSError(5, "I/O error")))
    with pytest.raises(ArchiveError, match="new.czann"):
        atomic_write(tmp_path / "new.czann", b"data" * 10)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("step", ["fsync", "replace"], ids=["fsync-fails", "rename-fails"])
def test_failure_after_writing_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    target = tmp_path / "m.czmodel"
    target.write_bytes(b"old")

    def boom(*args: object) -> None:
        raise OSError(5, f"{step} failed")

    monkeypatch.setattr(ziputil.os, step, boom)
    with pytest.raises(ArchiveError, match="m.czmodel"):
        atomic_write(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_directory_in_the_way_is_an_archive_error(tmp_path: Path) -> None:
    (tmp_path / "out.czann").mkdir()
    with pytest.raises(ArchiveError, match="out.czann"):
        atomic_write(tmp_path / "out.czann", b"x")
    assert leftovers(tmp_path) == []
