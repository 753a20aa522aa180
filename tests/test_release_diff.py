"""explain_differences: every layer of an artifact, from the ZIP headers to ONNX initializers.

Artifacts are written with czbuild's own writers (no TensorFlow) and then mutated one member,
one field or one header at a time; each mutation must be named precisely.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from czbuild.formats import CzannMetadata, LegacyMetadata, write_czann, write_czmodel
from czbuild.formats.ziputil import zip_bytes
from czbuild.release.collect import entry_from_artifact
from czbuild.release.diff import explain_against_lock, explain_differences
from czbuild.release.difference import (
    CONTENT,
    HEADER,
    MEMBERS,
    METADATA,
    ONNX,
    ORDER,
    SAVEDMODEL,
    format_differences,
    headline,
)
from support.release_fakes import onnx_payload, savedmodel_payload

LABELS = ("lock", "rebuilt")
WEIGHTS = np.array([0.25, 0.75], np.float32)
CZANN_MD = CzannMetadata(
    type="SingleClassSemanticSegmentation",
    input_shape=(8, 8, 1),
    output_shape=(8, 8, 2),
    classes=("bg", "fg"),
    model_name="Nuclei",
)
LEGACY_MD = LegacyMetadata(
    name="Seed",
    color_handling="ConvertToMonochrome",
    pixel_types=("Gray16",),
    classes=("a", "b", "c"),
    border_size=4,
    version="3.0.0",
)


def _czann(path: Path, **onnx_kwargs) -> Path:
    write_czann(
        path,
        CZANN_MD,
        onnx_payload(onnx_kwargs.pop("weights", WEIGHTS), 8, 8, **onnx_kwargs),
        b"MIT\nline two\n",
    )
    return path


def _members(path: Path) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(path) as zf:
        return [(info, zf.read(info)) for info in zf.infolist()]


def _rewrite(
    src: Path,
    dst: Path,
    edit: Callable[[list[tuple[zipfile.ZipInfo, bytes]]], list[tuple[zipfile.ZipInfo, bytes]]],
) -> Path:
    members = edit(_members(src))
    with zipfile.ZipFile(dst, "w") as zf:
        for info, data in members:
            zf.writestr(info, data, compress_type=info.compress_type)
    return dst


def _replace(name: str, data_fn: Callable[[bytes], bytes]):
    def edit(members):
        return [(i, data_fn(d) if i.filename == name else d) for i, d in members]

    return edit


def _json_field(key: str, value) -> Callable[[bytes], bytes]:
    def change(data: bytes) -> bytes:
        doc = json.loads(data)
        doc[key] = value
        return json.dumps(doc).encode()

    return change


def _swap_first_two(members):
    return [members[1], members[0], *members[2:]]


def _mode(members):
    for info, _ in members:
        info.external_attr = 0o100755 << 16
    return members


def _deflate(members):
    for info, _ in members:
        if info.filename == "license.txt":
            info.compress_type = zipfile.ZIP_DEFLATED
    return members


def _drop_licence(members):
    return [(i, d) for i, d in members if i.filename != "license.txt"]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return _czann(tmp_path_factory.mktemp("diff") / "base.czann")


@pytest.mark.parametrize(
    ("edit", "kind", "member", "needle"),
    [
        pytest.param(
            _replace("model.json", _json_field("Type", "Regression")),
            METADATA,
            "model.json",
            'metadata field Type differs: "SingleClassSemanticSegmentation" (lock) vs '
            '"Regression" (rebuilt)',
            id="metadata-field",
        ),
        pytest.param(
            _replace("model.json", _json_field("Extra", 1)),
            METADATA,
            "model.json",
            "metadata field Extra appears only in rebuilt: 1",
            id="metadata-extra-key",
        ),
        pytest.param(
            _replace("model.json", lambda d: json.dumps(json.loads(d), indent=1).encode()),
            METADATA,
            "model.json",
            "serialisation differs",
            id="metadata-whitespace",
        ),
        pytest.param(
            _swap_first_two,
            ORDER,
            None,
            "member order differs: model.json, model.model, license.txt (lock) vs "
            "model.model, model.json, license.txt (rebuilt)",
            id="member-order",
        ),
        pytest.param(
            _mode,
            HEADER,
            "model.json",
            "file mode differs: 0o100644 (lock) vs 0o100755 (rebuilt)",
            id="file-mode",
        ),
        pytest.param(
            _deflate,
            HEADER,
            "license.txt",
            "compression differs: stored (lock) vs deflated (rebuilt)",
            id="compression",
        ),
        pytest.param(
            _drop_licence,
            MEMBERS,
            "license.txt",
            "member license.txt is missing in rebuilt",
            id="member-missing",
        ),
        pytest.param(
            _replace("license.txt", lambda d: d.replace(b"two", b"2")),
            CONTENT,
            "license.txt",
            "licence text differs from line 2",
            id="licence",
        ),
    ],
)
def test_container_and_metadata_differences(
    base: Path, tmp_path: Path, edit, kind: str, member: str | None, needle: str
) -> None:
    mutated = _rewrite(base, tmp_path / "m.czann", edit)
    diffs = explain_differences(base, mutated, labels=LABELS)
    hits = [d for d in diffs if d.kind == kind and needle in d.message]
    assert hits, [d.message for d in diffs]
    assert hits[0].member == member


@pytest.mark.parametrize(
    ("kwargs", "field", "needle"),
    [
        pytest.param(
            {"weights": WEIGHTS + np.array([0.0, 0.5], np.float32)},
            "initializer:W",
            "initializer W differs: max abs diff 0.5 (1 of 2 values)",
            id="initializer",
        ),
        pytest.param(
            {"opset": 17},
            "opset",
            'opset imports differs: {"ai.onnx": 18} (lock) vs {"ai.onnx": 17}',
            id="opset",
        ),
        pytest.param(
            {"producer": "tf2onnx"},
            "producer",
            'producer differs: "czbuild" (lock) vs "tf2onnx" (rebuilt)',
            id="producer",
        ),
        pytest.param(
            {"doc": "/tmp/tmpab12cd"}, "doc_string", "model doc_string differs", id="doc-string"
        ),
    ],
)
def test_onnx_differences(
    base: Path, tmp_path: Path, kwargs: dict, field: str, needle: str
) -> None:
    other = _czann(tmp_path / "other.czann", **kwargs)
    diffs = explain_differences(base, other, labels=LABELS)
    onnx = [d for d in diffs if d.kind == ONNX]
    assert [d.field for d in onnx] == [field], [d.message for d in diffs]
    assert needle in onnx[0].message
    # the derived Id follows the payload, and says so
    ids = [d for d in diffs if d.kind == METADATA and d.field == "Id"]
    assert ids and "derived from the content" in ids[0].message
    assert headline(diffs).startswith("2 member(s) differ: model.json (Id); model.model")


def test_onnx_shape_and_node_count(tmp_path: Path) -> None:
    small = _czann(tmp_path / "a.czann")
    write_czann(
        tmp_path / "b.czann",
        CZANN_MD.__class__(
            **{**CZANN_MD.__dict__, "input_shape": (16, 16, 1), "output_shape": (16, 16, 2)}
        ),
        onnx_payload(WEIGHTS, 16, 16),
        b"MIT\nline two\n",
    )
    diffs = explain_differences(small, tmp_path / "b.czann", labels=LABELS)
    messages = [d.message for d in diffs]
    assert any(
        "graph input 'input' shape differs: [1, 8, 8, 1] (lock) vs [1, 16, 16, 1]" in m
        for m in messages
    ), messages
    assert any(
        "metadata field InputShape differs: [8, 8, 1] (lock) vs [16, 16, 1]" in m for m in messages
    ), messages


def test_timestamp_only_difference_is_explained_as_such(
    base: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    later = _czann(tmp_path / "later.czann")
    diffs = explain_differences(base, later, labels=LABELS)
    assert {d.kind for d in diffs} == {HEADER} and {d.field for d in diffs} == {"date_time"}
    assert headline(diffs).startswith("timestamps only")
    lines = format_differences(diffs)
    expected = (
        "members model.json, model.model, license.txt: entry time differs: "
        "1980-01-01 00:00:00 (lock) vs 2023-11-14 22:13:20 (rebuilt)"
    )
    assert lines == [expected]


def test_identical_files_have_no_differences(base: Path, tmp_path: Path) -> None:
    assert explain_differences(base, _czann(tmp_path / "same.czann")) == []


def _legacy(path: Path, suffix: bytes = b"", index: bytes | None = None) -> Path:
    payload = savedmodel_payload(b"seed-weights", graph_suffix=suffix)
    if index is not None:
        from czbuild.formats.container import SAVEDMODEL_LIMITS, open_container

        files = open_container(payload, limits=SAVEDMODEL_LIMITS).contents
        files["variables/variables.index"] = index
        payload = zip_bytes(sorted(files.items()))
    write_czmodel(path, LEGACY_MD, payload, b"MIT\n")
    return path


def test_legacy_members_pair_across_ids_and_nested_savedmodel_files(tmp_path: Path) -> None:
    a = _legacy(tmp_path / "a.czmodel")
    b = _legacy(tmp_path / "b.czmodel", index=b"another index")
    diffs = explain_differences(a, b, labels=LABELS)
    renamed = [d for d in diffs if d.kind == MEMBERS]
    assert len(renamed) == 1 and renamed[0].field == "Id"
    assert "member names embed the model Id, which differs" in renamed[0].message
    nested = [d for d in diffs if d.kind == SAVEDMODEL]
    assert [d.field for d in nested] == ["variables/variables.index"]
    assert "SavedModel file variables/variables.index differs" in nested[0].message
    xml = [d for d in diffs if d.kind == METADATA]
    assert [d.field for d in xml] == ["Id"]


def test_against_the_lock_names_the_member_whose_hash_differs(base: Path, tmp_path: Path) -> None:
    entry = entry_from_artifact(
        base,
        variant="v",
        recipe="v",
        recipe_file="recipes/v.yaml",
        spec_digest="0" * 64,
        inputs={},
        toolchain={},
        relative_path="v/default/v.czann",
    )
    mutated = _rewrite(
        base, tmp_path / "m.czann", _replace("model.json", _json_field("ModelName", "Other"))
    )
    diffs = explain_against_lock(entry, mutated)
    assert [(d.kind, d.member) for d in diffs] == [(CONTENT, "model.json")]
    assert "member model.json: content differs" in diffs[0].message
    assert explain_differences(entry, base) == []


def test_against_the_lock_explains_headers(base: Path, tmp_path: Path, monkeypatch) -> None:
    entry = entry_from_artifact(
        base,
        variant="v",
        recipe="v",
        recipe_file="recipes/v.yaml",
        spec_digest="0" * 64,
        inputs={},
        toolchain={},
        relative_path="v/default/v.czann",
    )
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    later = _czann(tmp_path / "later.czann")
    diffs = explain_against_lock(entry, later)
    assert {d.field for d in diffs} == {"date_time"}
    assert headline(diffs).startswith("timestamps only")
