"""A permanent corpus of hostile model files, generated here (small on disk, no TensorFlow).

Each file must make ``inspect`` / ``unpack`` exit non-zero with one line and no traceback,
be refused *before* anything is inflated where inflating is the attack, leave nothing
half-written, and be classified by ``verify`` the way ``inspect`` classifies it (one reader).
"""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from czbuild.cli import cli
from czbuild.formats import layout_of
from czbuild.formats.archive import czann_members, czmodel_members
from czbuild.formats.container import ARTIFACT_LIMITS
from czbuild.formats.czann import CzannMetadata
from czbuild.formats.legacy import LegacyMetadata
from czbuild.formats.model_json import MAX_DEPTH
from czbuild.verify import FAILED, verify_artifact

ONNX_STANDIN = b"\x08\x07onnx-bytes-stand-in"
META = CzannMetadata(
    type="MultiClassSemanticSegmentation",
    input_shape=(8, 8, 1),
    output_shape=(8, 8, 2),
    classes=("a", "b"),
)
LEGACY = LegacyMetadata(
    name="m", color_handling="ConvertToMonochrome", pixel_types=("Gray8",), classes=("a", "b"),
    border_size=0,
)  # fmt: skip


def _zip(path: Path, members: list[tuple[str, bytes]], method: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def _czann(**overrides: bytes) -> list[tuple[str, bytes]]:
    members = dict(czann_members(META, ONNX_STANDIN)[1])
    members.update(overrides)
    return list(members.items())


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def _assert_one_line_error(code: int, output: str, *needles: str) -> None:
    assert code != 0, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def no_inflating(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any member is opened for reading (inflated)."""
    original = zipfile.ZipFile.open

    def refuse(self: zipfile.ZipFile, name: object, mode: str = "r", **kwargs: object) -> object:
        if mode == "r":
            raise AssertionError("a member was opened: the bound was checked too late")
        return original(self, name, mode, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(zipfile.ZipFile, "open", refuse)


# --- issue 16.4: many small members, each under the per-member ratio check ------------------


def _many_members(path: Path) -> Path:
    block = bytes(512 * 1024)  # deflates to ~500 bytes; 64 of them claim 32 MiB
    members = _czann() + [(f"pad/{i:04d}.bin", block) for i in range(64)]
    return _zip(path, members, zipfile.ZIP_DEFLATED)


def _few_big_ratio_members(path: Path) -> Path:
    block = bytes(1024 * 1024)  # exactly at the per-member floor: only the archive ratio sees it
    members = _czann() + [(f"pad{i}.bin", block) for i in range(8)]
    return _zip(path, members, zipfile.ZIP_DEFLATED)


@pytest.mark.parametrize(
    ("make", "needle"),
    [(_many_members, "members, more than"), (_few_big_ratio_members, "ratio over")],
    ids=["member-count", "archive-ratio"],
)
def test_bombs_are_refused_before_inflating(
    tmp_path: Path, no_inflating: None, make: Callable[[Path], Path], needle: str
) -> None:
    path = make(tmp_path / "bomb.czann")
    assert path.stat().st_size < 200_000
    _assert_one_line_error(*_run("inspect", str(path)), "bomb.czann", needle)
    dest = tmp_path / "out"
    _assert_one_line_error(*_run("unpack", str(path), str(dest)), needle)
    assert not dest.exists() or not any(dest.iterdir())
    check = verify_artifact(path).get("container.archive")
    assert check.status == FAILED and needle in check.message


def test_member_count_bound_fits_every_format() -> None:
    czmodel = [name for name, _ in czmodel_members(LEGACY, ONNX_STANDIN, b"MIT")[1]]
    assert len(czmodel) == 4 <= ARTIFACT_LIMITS.max_members
    assert layout_of(czmodel).family == "czmodel"


# --- issue 16.5: a member whose declared size lies ---------------------------------------------


def _lying_size(path: Path, claimed: int = 100, real: int = 64 * 1024**2) -> Path:
    """A deflated member declaring ``claimed`` bytes that inflates to ``real`` bytes."""
    _zip(path, _czann(**{"license.txt": bytes(real)}), zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("license.txt")
    struct.pack_into("<I", data, info.header_offset + 22, claimed)  # local header size
    central = data.find(b"PK\x01\x02")
    while data[central + 46 : central + 57] != b"license.txt":
        central = data.find(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", data, central + 24, claimed)  # central directory size
    path.write_bytes(bytes(data))
    return path


class _CountingDecompressor:
    """Wraps zlib's decompressor and records the most it inflated in one call."""

    largest = 0

    def __init__(self, real: object) -> None:
        self._real = real

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        out = self._real.decompress(data, max_length)  # type: ignore[attr-defined]
        _CountingDecompressor.largest = max(_CountingDecompressor.largest, len(out))
        return out

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)


def test_lying_member_size_stops_at_the_declared_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _lying_size(tmp_path / "liar.czann")
    assert path.stat().st_size < 200_000
    real = zlib.decompressobj
    monkeypatch.setattr(zipfile.zlib, "decompressobj", lambda *a: _CountingDecompressor(real(*a)))
    _CountingDecompressor.largest = 0
    _assert_one_line_error(*_run("inspect", str(path)), "liar.czann", "license.txt")
    dest = tmp_path / "out"
    _assert_one_line_error(*_run("unpack", str(path), str(dest)), "cannot be read")
    assert not dest.exists() or not any(dest.iterdir())
    assert 0 < _CountingDecompressor.largest <= 2 * 1024**2  # chunks, not 64 MiB at once
    assert verify_artifact(path).get("container.archive").status == FAILED


# --- issue 16.8: deep model.json, over-long names -----------------------------------------------


def test_deeply_nested_model_json(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    path = _zip(tmp_path / "deep.czann", _czann(**{"model.json": deep}))
    _assert_one_line_error(*_run("inspect", str(path)), "model.json", f"{MAX_DEPTH} levels")
    check = verify_artifact(path).get("container.metadata")
    assert check.status == FAILED and f"{MAX_DEPTH} levels" in check.message
    # unpacking is how a broken file is examined: allowed, with a one-line warning
    dest = tmp_path / "out"
    code, output = _run("unpack", str(path), str(dest))
    assert code == 0 and "Traceback" not in output, output
    assert "unpacking it anyway" in caplog.text
    assert (dest / "model.json").read_bytes() == deep


def test_over_long_member_name_is_refused_by_unpack(tmp_path: Path) -> None:
    long_name = "x" * 300 + ".txt"
    path = _zip(tmp_path / "long.czann", _czann(**{long_name: b"x"}))
    dest = tmp_path / "out"
    _assert_one_line_error(*_run("unpack", str(path), str(dest)), "longer than 255 bytes")
    assert not dest.exists() or not any(dest.iterdir())
    assert _run("inspect", str(path))[0] == 0  # reading it is harmless


# --- issue 16.11: one model.json parser ----------------------------------------------------------


def test_duplicate_keys_are_refused_by_inspect_and_verify(tmp_path: Path) -> None:
    good = czann_members(META, ONNX_STANDIN)[1][0][1]
    twice = good[:-1] + b', "Type": "Regression"}'
    path = _zip(tmp_path / "dup.czann", _czann(**{"model.json": twice}))
    _assert_one_line_error(*_run("inspect", str(path)), "'Type' appears twice")
    check = verify_artifact(path).get("container.metadata")
    assert check.status == FAILED and "'Type' appears twice" in check.message


# --- issue 16.14: no partial extraction ------------------------------------------------------------


def test_failed_unpack_leaves_nothing_behind(tmp_path: Path) -> None:
    # "x" is a file, so "x/y" cannot be written: the failure comes after "x" was written
    path = _zip(tmp_path / "clash.czann", _czann(x=b"1", **{"x/y": b"2"}))
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    code, output = _run("unpack", str(path), str(dest))
    _assert_one_line_error(code, output, "'x/y'")
    assert sorted(p.name for p in dest.iterdir()) == ["keep.txt"]  # no member, no scratch folder


# --- one reader: inspect and verify classify every file the same way ----------------------------


def _mixed_family(path: Path) -> Path:
    """A legacy file whose licence is named ``*.json``: the old verifier called it CZANN."""
    members = czmodel_members(LEGACY, ONNX_STANDIN)[1]
    return _zip(path, [*members[:2], ("notes.json", b"{}"), members[2]])


def _ratio_150(path: Path) -> Path:
    """A member above 1 MiB expanding ~170 times: within the one ratio bound (200)."""
    data = (b"\x01" + bytes(149)) * (12 * 1024**2 // 150)
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in _czann():
            zf.writestr(name, content)
        zf.writestr("license.txt", data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
    return path


CORPUS: list[tuple[str, Callable[[Path], Path], bool]] = [
    ("member-count", _many_members, False),
    ("archive-ratio", _few_big_ratio_members, False),
    ("lying-size", _lying_size, False),
    ("mixed-family", _mixed_family, True),
    ("ratio-150", _ratio_150, True),
]


@pytest.mark.parametrize(("make", "readable"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_inspect_and_verify_agree(
    tmp_path: Path, make: Callable[[Path], Path], readable: bool
) -> None:
    path = make(tmp_path / ("f.czmodel" if make is _mixed_family else "f.czann"))
    code, output = _run("inspect", "--json", str(path))
    report = verify_artifact(path)
    assert (code == 0) == readable, output
    assert (report.get("container.archive").status != FAILED) == readable, report.to_dict()
    if readable:
        assert report.get("container.members").status != FAILED, report.to_dict()
        assert json.loads(output)["family"] == report.family


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"ModelMetadata": ' + "[" * 200_000 + "]" * 200_000 + ', "ModelPath": "m"}', "nested"),
        ('{"ModelPath": "a", "ModelPath": "b"}', "key 'ModelPath' appears twice"),
    ],
    ids=["200000_deep", "duplicate_key"],
)
def test_a_hostile_conversion_spec_is_one_line(tmp_path: Path, text: str, fragment: str) -> None:
    """`czbuild convert` reads specs with the one bounded JSON parser of model.json."""
    spec = tmp_path / "spec.json"
    spec.write_text(text)
    result = CliRunner().invoke(cli, ["convert", str(spec), str(tmp_path / "out")])
    assert result.exit_code != 0
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert fragment in result.output and str(spec) in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
