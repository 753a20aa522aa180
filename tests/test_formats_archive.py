"""Writers, safe reader, inspect and unpack of .czann / .czmodel files."""

from __future__ import annotations

import dataclasses
import io
import json
import warnings
import zipfile
from pathlib import Path

import pytest

from czbuild.errors import ArchiveError, MetadataError
from czbuild.formats import (
    CzannMetadata,
    LegacyMetadata,
    derive_id,
    inspect,
    read_artifact,
    unpack,
    write_czann,
    write_czmodel,
    zip_bytes,
)

ONNX = b"\x08\x07\x12\x07tf2onnx" + bytes(range(256)) * 4  # looks like a ModelProto start
SAVEDMODEL_ZIP = zip_bytes([("saved_model.pb", b"pb"), ("variables/variables.index", b"i")])
LICENSE = "Apache-2.0 \u00a9 Lab".encode()
ZEN_ID = "ab1c2a9e-7b4d-5e8a-9c61-0d2b4f6a8e10"


@pytest.fixture(autouse=True)
def _no_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)


def czann_meta(**changes: object) -> CzannMetadata:
    base = CzannMetadata(
        type="SingleClassSemanticSegmentation",
        input_shape=(256, 256, 1),
        output_shape=(256, 256, 2),
        classes=("Background", "Nucleus"),
        min_overlap=(32, 32),
        model_name="Nuclei",
        scaling=(2.5e-07, 2.5e-07),
    )
    return dataclasses.replace(base, **changes)


def legacy_meta(**changes: object) -> LegacyMetadata:
    base = LegacyMetadata(
        name="Nuclei",
        color_handling="ConvertToMonochrome",
        pixel_types=("Gray16",),
        classes=("Background", "Nucleus"),
        border_size=16,
    )
    return dataclasses.replace(base, **changes)


def raw_zip(
    path: Path, members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_STORED
) -> Path:
    """Write a zip without any of czbuild's checks (for hostile or foreign files)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names
        with zipfile.ZipFile(path, "w", compression=compression) as zf:
            for name, data in members:
                zf.writestr(
                    zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data, compress_type=compression
                )
    return path


def good_czann_members(**extra: bytes) -> list[tuple[str, bytes]]:
    meta = czann_meta(id=ZEN_ID)
    return [("model.json", meta.to_json_bytes()), ("model.model", ONNX), *extra.items()]


# --- writers --------------------------------------------------------------------------------


def test_write_czann_members_order_and_content(tmp_path: Path) -> None:
    written = write_czann(tmp_path / "m.czann", czann_meta(), ONNX, LICENSE)
    with zipfile.ZipFile(tmp_path / "m.czann") as zf:
        assert zf.namelist() == ["model.json", "model.model", "license.txt"]
        assert zf.read("model.json") == written.to_json_bytes()
        assert zf.read("model.model") == ONNX
        assert zf.read("license.txt") == LICENSE
        for info in zf.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
            assert info.external_attr == 0o100644 << 16
            assert info.create_system == 3
            assert info.date_time == (1980, 1, 1, 0, 0, 0)


def test_write_czann_without_licence(tmp_path: Path) -> None:
    write_czann(tmp_path / "m.czann", czann_meta(), ONNX)
    assert zipfile.ZipFile(tmp_path / "m.czann").namelist() == ["model.json", "model.model"]


def test_write_czann_derives_a_content_id(tmp_path: Path) -> None:
    meta = czann_meta()
    written = write_czann(tmp_path / "a.czann", meta, ONNX)
    assert written.id == derive_id(meta.to_json_bytes(include_id=False), ONNX)
    assert dataclasses.replace(written, id=None) == meta
    again = write_czann(tmp_path / "other" / "b.czann", meta, ONNX)
    assert again.id == written.id
    assert (tmp_path / "a.czann").read_bytes() == (tmp_path / "other" / "b.czann").read_bytes()
    assert write_czann(tmp_path / "c.czann", meta, ONNX + b"\x00").id != written.id
    assert write_czann(tmp_path / "d.czann", czann_meta(model_name="N2"), ONNX).id != written.id


def test_write_czann_keeps_an_explicit_id_lower_cased(tmp_path: Path) -> None:
    written = write_czann(tmp_path / "m.czann", czann_meta(id=ZEN_ID.upper()), ONNX)
    assert written.id == ZEN_ID
    assert read_artifact(tmp_path / "m.czann").metadata.id == ZEN_ID


@pytest.mark.parametrize(
    ("meta", "payload", "licence", "error", "fragment"),
    [
        (czann_meta(classes=("a",)), ONNX, None, MetadataError, "Classes"),
        (czann_meta(input_shape=None), ONNX, None, MetadataError, "InputShape"),
        (czann_meta(), SAVEDMODEL_ZIP, None, ArchiveError, "ONNX model only"),
        (czann_meta(), b"", None, ArchiveError, "empty"),
        (czann_meta(), "onnx", None, ArchiveError, "bytes"),
        (czann_meta(), ONNX, "MIT", ArchiveError, "licence"),
        (czann_meta(type="ObjectDetection", classes=None), ONNX, None, MetadataError, "Type"),
    ],
    ids=[
        "invalid-metadata",
        "no-shapes",
        "savedmodel-payload",
        "empty-payload",
        "str-payload",
        "str-licence",
        "experimental-type",
    ],
)
def test_write_czann_refuses_and_writes_nothing(
    tmp_path: Path,
    meta: CzannMetadata,
    payload: object,
    licence: object,
    error: type,
    fragment: str,
) -> None:
    with pytest.raises(error, match=fragment):
        write_czann(tmp_path / "m.czann", meta, payload, licence)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_write_czann_experimental_types_when_allowed(tmp_path: Path) -> None:
    meta = czann_meta(type="ObjectDetection", classes=None)
    written = write_czann(tmp_path / "m.czann", meta, ONNX, allow_experimental_types=True)
    assert read_artifact(tmp_path / "m.czann").metadata == written


def test_write_czann_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "m.czann"
    target.write_bytes(b"old")
    write_czann(target, czann_meta(), ONNX)
    assert zipfile.is_zipfile(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.czann"]


def test_write_czmodel_members(tmp_path: Path) -> None:
    written = write_czmodel(tmp_path / "m.czmodel", legacy_meta(), ONNX, LICENSE)
    ident = written.id
    assert ident == derive_id(legacy_meta().to_xml_bytes(include_id=False), ONNX)
    with zipfile.ZipFile(tmp_path / "m.czmodel") as zf:
        assert zf.namelist() == [
            f"{ident}.xml",
            f"{ident}.model",
            "license.txt",
            f"modelid={ident}",
        ]
        assert zf.read(f"{ident}.xml") == written.to_xml_bytes()
        assert zf.read(f"modelid={ident}") == b""
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())


def test_write_czmodel_3_0_0_takes_a_savedmodel_zip(tmp_path: Path) -> None:
    written = write_czmodel(tmp_path / "m.czmodel", legacy_meta(version="3.0.0"), SAVEDMODEL_ZIP)
    artifact = read_artifact(tmp_path / "m.czmodel")
    assert artifact.payload == "savedmodel_zip" and artifact.version == "3.0.0"
    assert artifact.metadata == written


@pytest.mark.parametrize(
    ("version", "payload", "fragment"),
    [("3.0.0", ONNX, "not a ZIP"), ("3.1.0", SAVEDMODEL_ZIP, "payload is a ZIP")],
    ids=["3.0.0-onnx", "3.1.0-savedmodel"],
)
def test_write_czmodel_payload_must_fit_the_version(
    tmp_path: Path, version: str, payload: bytes, fragment: str
) -> None:
    with pytest.raises(ArchiveError, match=fragment):
        write_czmodel(tmp_path / "m.czmodel", legacy_meta(version=version), payload)
    assert list(tmp_path.iterdir()) == []


def test_write_czmodel_validates(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="^PixelType:"):
        write_czmodel(
            tmp_path / "m.czmodel", legacy_meta(pixel_types=("Gray64ComplexFloat",)), ONNX
        )


# --- reading --------------------------------------------------------------------------------


def test_read_round_trip_czann(tmp_path: Path) -> None:
    written = write_czann(tmp_path / "m.czann", czann_meta(), ONNX, LICENSE)
    art = read_artifact(tmp_path / "m.czann")
    assert (art.family, art.version, art.payload) == ("czann", "2.1.0", "onnx")
    assert art.metadata == written and art.model_bytes == ONNX and art.license_bytes == LICENSE
    assert (art.metadata_member, art.model_member, art.license_member) == (
        "model.json",
        "model.model",
        "license.txt",
    )
    assert [m.name for m in art.members] == ["model.json", "model.model", "license.txt"]
    assert art.members[1].size == len(ONNX) and art.members[1].extra == b""
    assert not art.version_inferred and art.comment == b""


def test_read_round_trip_czmodel(tmp_path: Path) -> None:
    written = write_czmodel(tmp_path / "m.czmodel", legacy_meta(), ONNX)
    art = read_artifact(tmp_path / "m.czmodel")
    assert (art.family, art.version, art.payload) == ("czmodel", "3.1.0", "onnx")
    assert art.metadata == written and art.license_bytes is None


def test_reads_reference_style_czann(tmp_path: Path) -> None:
    """Deflated, 1.x without FormatVersion, foreign member names, licence under its own name."""
    doc = {
        "Id": ZEN_ID,
        "Type": "Regression",
        "InputShape": [64, 64, 3],
        "OutputShape": [64, 64, 3],
        "Scaling": [1e-6, 1e-6],
        "Extra": True,
    }
    path = raw_zip(
        tmp_path / "ref.czann",
        [("LICENSE", b"lic"), ("meta.json", json.dumps(doc).encode()), ("net.model", ONNX)],
        zipfile.ZIP_DEFLATED,
    )
    art = read_artifact(path)
    assert art.version == "1.1.0" and art.version_inferred
    assert art.metadata_member == "meta.json" and art.model_member == "net.model"
    assert art.license_member == "LICENSE" and art.license_bytes == b"lic"
    assert art.model_bytes == ONNX
    assert art.raw_metadata["Extra"] is True


def test_reads_zen_style_czseg_and_detects_family_from_content(tmp_path: Path) -> None:
    xml = (
        legacy_meta(id=ZEN_ID, classes=("Cells",))
        .to_xml_bytes()
        .replace(
            b"<BorderSize>", b"<ScaleInputsByBitdepth>true</ScaleInputsByBitdepth><BorderSize>"
        )
    )
    members = [(f"{ZEN_ID}.xml", xml), (f"{ZEN_ID}.model", SAVEDMODEL_ZIP), ("notes.txt", b"n")]
    for suffix in (".czseg", ".czann", ".bin"):
        art = read_artifact(raw_zip(tmp_path / f"zen{suffix}", members, zipfile.ZIP_DEFLATED))
        assert art.family == "czmodel" and art.payload == "savedmodel_zip"
        assert art.metadata.classes == ("Cells",) and art.metadata.id == ZEN_ID
        assert art.raw_metadata["ScaleInputsByBitdepth"] == "true"
        assert art.license_member == "notes.txt"


def test_legacy_id_from_member_names_when_xml_has_none(tmp_path: Path) -> None:
    xml = legacy_meta(id=ZEN_ID).to_xml_bytes().replace(f"<Id>{ZEN_ID}</Id>".encode(), b"")
    path = raw_zip(
        tmp_path / "m.czmodel",
        [(f"{ZEN_ID}.xml", xml), (f"{ZEN_ID}.model", ONNX), (f"modelid={ZEN_ID}", b"")],
    )
    assert read_artifact(path).metadata.id == ZEN_ID


HOSTILE = [
    ("traversal", [("../evil.txt", b"x")], "traversal"),
    ("deep-traversal", [("a/../../evil.txt", b"x")], "traversal"),
    ("absolute", [("/tmp/evil.txt", b"x")], "absolute"),
    ("drive", [("C:/evil.txt", b"x")], "absolute"),
    ("backslash-drive", [("C:\\evil.txt", b"x")], "backslash"),
    ("backslash-traversal", [("..\\evil.txt", b"x")], "backslash"),
    ("duplicate", [("model.model", b"again")], "twice"),
    ("case-duplicate", [("MODEL.JSON", b"{}")], "twice"),
    ("empty-component", [("a//b", b"x")], "empty"),
]


@pytest.mark.parametrize(
    ("extra", "fragment"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE]
)
def test_reader_refuses_unsafe_member_names(tmp_path: Path, extra: list, fragment: str) -> None:
    path = raw_zip(tmp_path / "bad.czann", good_czann_members() + extra)
    with pytest.raises(ArchiveError, match=fragment) as info:
        read_artifact(path)
    assert "bad.czann" in str(info.value)


def test_reader_refuses_oversize_and_bombs(tmp_path: Path) -> None:
    path = raw_zip(tmp_path / "big.czann", good_czann_members())
    with pytest.raises(ArchiveError, match="max_bytes"):
        read_artifact(path, max_bytes=100)
    bomb = raw_zip(
        tmp_path / "bomb.czann",
        good_czann_members(**{"license.txt": bytes(8 * 1024**2)}),
        zipfile.ZIP_DEFLATED,
    )
    with pytest.raises(ArchiveError, match="zip bomb"):
        read_artifact(bomb)
    assert read_artifact(bomb, max_ratio=10_000).license_bytes == bytes(8 * 1024**2)


def _valid_bytes(tmp_path: Path) -> bytes:
    write_czann(tmp_path / "ok.czann", czann_meta(), ONNX)
    return (tmp_path / "ok.czann").read_bytes()


BROKEN = [
    ("not-a-zip", lambda ok: b"this is text, not a zip", "not a readable ZIP"),
    ("empty-file", lambda ok: b"", "not a readable ZIP"),
    ("truncated-half", lambda ok: ok[: len(ok) // 2], "not a readable ZIP"),
    ("truncated-end", lambda ok: ok[:-5], "not a readable ZIP"),
    ("bad-crc", lambda ok: ok.replace(b"tf2onnx", b"tf2onnX"), "not a readable ZIP"),
    (
        "encrypted-flag",
        lambda ok: ok.replace(
            b"PK\x01\x02\x14\x03\x14\x00\x00\x00", b"PK\x01\x02\x14\x03\x14\x00\x01\x00"
        ),
        "encrypted",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "fragment"), [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN]
)
def test_reader_refuses_broken_files(tmp_path: Path, mutate, fragment: str) -> None:
    path = tmp_path / "broken.czann"
    path.write_bytes(mutate(_valid_bytes(tmp_path)))
    with pytest.raises(ArchiveError, match=fragment) as info:
        read_artifact(path)
    assert "broken.czann" in str(info.value)


CONTENT_ERRORS = [
    ("no-metadata", [("model.model", ONNX)], "neither model.json"),
    (
        "no-model",
        [("model.json", czann_meta(id=ZEN_ID).to_json_bytes())],
        "missing model member model.model",
    ),
    (
        "empty-model",
        [("model.json", czann_meta(id=ZEN_ID).to_json_bytes()), ("model.model", b"")],
        "empty",
    ),
    (
        "invalid-json",
        [("model.json", b"{nope"), ("model.model", ONNX)],
        "model.json: invalid JSON at line 1",
    ),
    (
        "duplicate-json-key",
        [("model.json", b'{"Type": "a", "Type": "b"}'), ("model.model", ONNX)],
        "twice",
    ),
    (
        "wrong-json-type",
        [
            (
                "model.json",
                (b'{"Id": "x", "Type": "Regression", "InputShape": "8", "OutputShape": [8, 8, 1]}'),
            ),
            ("model.model", ONNX),
        ],
        "model.json: InputShape:",
    ),
    (
        "missing-id",
        [
            (
                "model.json",
                czann_meta(id=ZEN_ID).to_json_bytes().replace(f'"Id": "{ZEN_ID}", '.encode(), b""),
            ),
            ("model.model", ONNX),
        ],
        "Id: required",
    ),
    (
        "legacy-malformed-xml",
        [(f"{ZEN_ID}.xml", b"<Model"), (f"{ZEN_ID}.model", ONNX)],
        "malformed",
    ),
    (
        "legacy-doctype",
        [(f"{ZEN_ID}.xml", b"<!DOCTYPE x><Model/>"), (f"{ZEN_ID}.model", ONNX)],
        "DOCTYPE",
    ),
    (
        "legacy-no-model",
        [(f"modelid={ZEN_ID}", b""), (f"{ZEN_ID}.xml", b"<Model/>")],
        "missing model member <id>.model",
    ),
]


@pytest.mark.parametrize(
    ("members", "fragment"), [c[1:] for c in CONTENT_ERRORS], ids=[c[0] for c in CONTENT_ERRORS]
)
def test_reader_refuses_bad_content(tmp_path: Path, members: list, fragment: str) -> None:
    with pytest.raises(ArchiveError, match=fragment):
        read_artifact(raw_zip(tmp_path / "x.czann", members))


def test_reader_refuses_other_compression_and_missing_files(tmp_path: Path) -> None:
    path = raw_zip(tmp_path / "bz.czann", good_czann_members(), zipfile.ZIP_BZIP2)
    with pytest.raises(ArchiveError, match="compression method"):
        read_artifact(path)
    with pytest.raises(ArchiveError, match="no such file"):
        read_artifact(tmp_path / "missing.czann")
    with pytest.raises(ArchiveError, match="not a file"):
        read_artifact(tmp_path)


# --- inspect --------------------------------------------------------------------------------


def test_inspect_czann_is_json_friendly(tmp_path: Path) -> None:
    written = write_czann(tmp_path / "m.czann", czann_meta(), ONNX, LICENSE)
    info = inspect(tmp_path / "m.czann")
    assert json.loads(json.dumps(info)) == info
    assert (info["family"], info["version"], info["id"], info["payload"]) == (
        "czann",
        "2.1.0",
        written.id,
        "onnx",
    )
    assert info["metadata"] == written.to_json_dict()
    assert info["license"] == "license.txt" and info["extension_matches"] is True
    assert [m["role"] for m in info["members"]] == ["metadata", "model", "license"]
    model = info["members"][1]
    assert model["size"] == len(ONNX) and model["compression"] == "stored"
    assert model["date_time"] == "1980-01-01 00:00:00" and model["mode"] == "0o100644"
    assert len(info["sha256"]) == 64 and info["size"] == (tmp_path / "m.czann").stat().st_size


def test_inspect_tolerates_zero_dates_of_foreign_zips(tmp_path: Path) -> None:
    path = tmp_path / "zero.czann"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in good_czann_members():
            zf.writestr(zipfile.ZipInfo(name, (1980, 0, 0, 0, 0, 0)), data)
    assert inspect(path)["members"][0]["date_time"] == "1980-00-00 00:00:00"


def test_inspect_czmodel_uses_xml_names(tmp_path: Path) -> None:
    written = write_czmodel(tmp_path / "m.czann", legacy_meta(), ONNX)
    info = inspect(tmp_path / "m.czann")
    assert info["family"] == "czmodel" and info["extension_matches"] is False
    assert info["metadata"] == {
        "Version": "3.1.0",
        "Id": written.id,
        "ModelName": "Nuclei",
        "ColorHandling": "ConvertToMonochrome",
        "Channels": ["Gray16"],
        "TrainingClasses": ["Background", "Nucleus"],
        "BorderSize": 16,
    }
    assert [m["role"] for m in info["members"]] == ["metadata", "model", "modelid"]


# --- unpack ---------------------------------------------------------------------------------


def test_unpack_writes_every_member(tmp_path: Path) -> None:
    write_czann(tmp_path / "m.czann", czann_meta(), ONNX, LICENSE)
    dest = tmp_path / "out" / "deeper"
    paths = unpack(tmp_path / "m.czann", dest)
    assert paths == [dest / "model.json", dest / "model.model", dest / "license.txt"]
    assert (dest / "model.model").read_bytes() == ONNX
    assert unpack(tmp_path / "m.czann", dest) == paths  # again: replaces regular files


def test_unpack_nested_names_stay_inside(tmp_path: Path) -> None:
    path = raw_zip(tmp_path / "n.czann", good_czann_members(**{"docs/license.txt": b"l"}))
    paths = unpack(path, tmp_path / "out")
    assert (tmp_path / "out" / "docs" / "license.txt").read_bytes() == b"l"
    assert all((tmp_path / "out") in p.parents for p in paths)


def test_unpack_refuses_traversal_and_writes_nothing(tmp_path: Path) -> None:
    path = raw_zip(tmp_path / "evil.czann", good_czann_members() + [("../../escaped.txt", b"x")])
    dest = tmp_path / "a" / "b"
    with pytest.raises(ArchiveError, match="traversal"):
        unpack(path, dest)
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not dest.exists()


def test_unpack_refuses_a_symlinked_file_in_the_way(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious")
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "license.txt").symlink_to(outside)
    write_czann(tmp_path / "m.czann", czann_meta(), ONNX, LICENSE)
    with pytest.raises(ArchiveError, match="symbolic link"):
        unpack(tmp_path / "m.czann", dest)
    assert outside.read_bytes() == b"precious"
    assert not (dest / "model.json").exists()  # checked before anything is written


def test_unpack_refuses_a_symlinked_folder_in_the_way(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "docs").symlink_to(elsewhere, target_is_directory=True)
    path = raw_zip(tmp_path / "n.czann", good_czann_members(**{"docs/license.txt": b"l"}))
    with pytest.raises(ArchiveError, match="symbolic link"):
        unpack(path, dest)
    assert list(elsewhere.iterdir()) == []


def test_unpack_refuses_a_folder_where_a_file_goes(tmp_path: Path) -> None:
    write_czann(tmp_path / "m.czann", czann_meta(), ONNX)
    (tmp_path / "out" / "model.json").mkdir(parents=True)
    with pytest.raises(ArchiveError, match="is a folder"):
        unpack(tmp_path / "m.czann", tmp_path / "out")


def test_written_zip_is_readable_by_zipfile_testzip(tmp_path: Path) -> None:
    write_czmodel(tmp_path / "m.czmodel", legacy_meta(), ONNX, LICENSE)
    with zipfile.ZipFile(io.BytesIO((tmp_path / "m.czmodel").read_bytes())) as zf:
        assert zf.testzip() is None


def test_suffix_warning_looks_through_czbuild_temporaries(tmp_path: Path, caplog) -> None:
    """A wrong extension warns; the build's hidden verifying name for a .czann does not."""
    import logging

    from czbuild.files.scratch import final_name

    assert final_name(".m.czann.verifying-42.tmp") == "m.czann"
    assert final_name(".m.czann.123-abcdef.tmp") == "m.czann"
    assert final_name("m.zip") == "m.zip" and final_name(".m.tmp") == ".m.tmp"
    with caplog.at_level(logging.WARNING, logger="czbuild"):
        write_czann(tmp_path / ".m.czann.verifying-42.tmp", czann_meta(), ONNX)
        assert not caplog.records
        write_czann(tmp_path / "m.zip", czann_meta(), ONNX)
    (record,) = caplog.records
    assert "writing a .czann file under a '.zip' extension" in record.getMessage()
