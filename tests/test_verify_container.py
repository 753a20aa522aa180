"""Verification of containers, metadata and ONNX payloads, good and bad (no TensorFlow).

Payloads are tiny ONNX graphs made with ``onnx.helper`` (a convolution stack with a softmax),
packed with the formats writers; bad files are crafted from the good members with zipfile.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from czbuild.errors import ArchiveError
from czbuild.formats.archive import czann_members, czmodel_members, write_czann, write_czmodel
from czbuild.formats.czann import CzannMetadata
from czbuild.formats.legacy import LegacyMetadata
from czbuild.formats.ziputil import zip_bytes
from czbuild.verify import FAILED, PASSED, SKIPPED, WARNING, verify_artifact

ID = "3f1c2a9e-7b4d-5e8a-9c61-0d2b4f6a8e10"


def onnx_model(
    size: int | None = 8,
    channels: int = 1,
    classes: int = 2,
    *,
    opset: int = 18,
    ir: int = 8,
    convs: int = 1,
    head: str = "softmax",
    batch: int | str = "N",
    in_type: int = TensorProto.FLOAT,
) -> bytes:
    """NHWC float input -> ``convs`` 3x3 convs -> 1x1 conv to ``classes`` -> head -> NHWC."""
    rng = np.random.default_rng(0)
    dim = size if size is not None else "S"
    nodes = []
    inits = []
    src = "input"
    if in_type != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", [src], ["cast"], to=TensorProto.FLOAT))
        src = "cast"
    nodes.append(helper.make_node("Transpose", [src], ["x0"], perm=[0, 3, 1, 2]))
    c_in, x = channels, "x0"
    for i in range(convs):
        w = rng.normal(0, 0.5, (4, c_in, 3, 3)).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"w{i}"),
            numpy_helper.from_array(np.zeros(4, np.float32), f"b{i}"),
        ]
        nodes.append(helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"x{i + 1}"]))
        c_in, x = 4, f"x{i + 1}"
    w = rng.normal(0, 0.5, (classes, c_in, 1, 1)).astype(np.float32)
    inits.append(numpy_helper.from_array(w, "wh"))
    nodes.append(helper.make_node("Conv", [x, "wh"], ["logits"]))
    nodes.append(helper.make_node("Transpose", ["logits"], ["nhwc"], perm=[0, 2, 3, 1]))
    op = {"softmax": "Softmax", "sigmoid": "Sigmoid"}.get(head, "Identity")
    extra = {"axis": 3} if op == "Softmax" else {}
    nodes.append(helper.make_node(op, ["nhwc"], ["output"], **extra))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", in_type, [batch, dim, dim, channels])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, dim, dim, classes])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir
    return model.SerializeToString()


def czann_meta(size: int = 8, n_classes: int = 2, version: str = "2.1.0", **kw) -> CzannMetadata:
    args = {
        "type": "SingleClassSemanticSegmentation",
        "input_shape": (size, size, 1),
        "output_shape": (size, size, n_classes),
        "classes": tuple(f"c{i}" for i in range(n_classes)),
        "min_overlap": (2, 2),
        "model_name": "tiny",
        "id": ID,
        "format_version": version,
    }
    args.update(kw)
    return CzannMetadata(**args)


def legacy_meta(version: str = "3.1.0", **kw) -> LegacyMetadata:
    args = {
        "name": "tiny",
        "color_handling": "ConvertToMonochrome",
        "pixel_types": ("Gray16",),
        "classes": ("bg", "fg"),
        "border_size": 1,
        "id": ID,
        "version": version,
    }
    args.update(kw)
    return LegacyMetadata(**args)


def good_czann_members(**kw) -> list[tuple[str, bytes]]:
    return czann_members(czann_meta(), onnx_model(**kw), b"licence text")[1]


def write_zip(
    path: Path, members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_STORED
) -> Path:
    """A plain zipfile archive (wall-clock times, host attributes): a 'foreign' file."""
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def statuses(report) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


# --- good files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "opset", "ir", "scaling"),
    [
        ("2.1.0", 18, 8, None),
        ("2.0.0", 12, 7, (1e-6, 1e-6, 2e-6)),
        ("1.1.0", 12, 7, (1e-6, 1e-6)),
        ("1.0.0", 12, 7, None),
    ],
    ids=["czann-2.1.0", "czann-2.0.0", "czann-1.1.0", "czann-1.0.0"],
)
def test_good_czann_passes_static_checks(tmp_path, version, opset, ir, scaling):
    # Without FormatVersion the version is inferred from Scaling (format §2.2).
    path = tmp_path / "m.czann"
    meta = czann_meta(version=version, scaling=scaling)
    write_czann(path, meta, onnx_model(opset=opset, ir=ir), b"MIT")
    report = verify_artifact(path)
    got = statuses(report)
    assert report.ok, [c for c in report.checks if c.status == FAILED]
    assert (report.family, report.version) == ("czann", version)
    for name in (
        "container.archive",
        "container.members",
        "container.metadata",
        "container.layout",
        "container.hygiene",
        "payload.model",
        "payload.io",
        "payload.opset",
        "semantics",
    ):
        assert got[name] == PASSED, (name, report.get(name).message)
    assert got["fidelity"] == SKIPPED and got["tiling.seams"] == SKIPPED
    assert report.get("payload.opset").details["opset"] == opset


def test_good_legacy_onnx_passes(tmp_path):
    path = tmp_path / "m.czmodel"
    write_czmodel(path, legacy_meta(), onnx_model(opset=12, ir=7), b"MIT")
    report = verify_artifact(path, strict=True)
    assert report.ok, [c.message for c in report.failed]
    assert (report.family, report.version) == ("czmodel", "3.1.0")
    assert report.get("semantics").details["input_range"] == [0.0, 65535.0]
    assert report.get("payload.io").figure == "[?, 8, 8, 1] -> [?, 8, 8, 2]"


def test_receptive_field_measured_on_packaged_model_without_source(tmp_path):
    path = tmp_path / "m.czann"
    write_czann(path, czann_meta(size=16, min_overlap=(2, 2)), onnx_model(size=16, convs=3))
    check = verify_artifact(path).get("tiling.receptive_field")
    assert check.details["radius"] == [3, 3]
    assert check.status == WARNING  # overlap 2 < 2 x radius 3


def test_report_to_dict_is_json(tmp_path):
    path = tmp_path / "m.czann"
    write_czann(path, czann_meta(), onnx_model())
    doc = json.loads(json.dumps(verify_artifact(path).to_dict()))
    assert set(doc) == {
        "path",
        "family",
        "version",
        "ok",
        "summary",
        "metadata",
        "checks",
        "images",
    }
    assert {"name", "status", "figure", "message", "details"} <= set(doc["checks"][0])
    assert doc["metadata"]["Id"] == ID


# --- hygiene: warnings for foreign files, failures for czbuild's own ------------------------


@pytest.mark.parametrize("strict", [False, True], ids=["foreign-warns", "strict-fails"])
def test_deflated_wallclock_archive(tmp_path, strict):
    path = write_zip(tmp_path / "m.czann", good_czann_members(), zipfile.ZIP_DEFLATED)
    report = verify_artifact(path, strict=strict)
    want = FAILED if strict else WARNING
    assert report.get("container.layout").status == want
    assert "compressed" in report.get("container.layout").message
    assert report.get("semantics").status == PASSED
    assert report.ok is (not strict)


def test_non_canonical_order_and_licence_name(tmp_path):
    members = good_czann_members()
    members = [members[1], members[0], ("LICENSE", b"x")]
    report = verify_artifact(zip_to(tmp_path / "m.czann", members))
    layout = report.get("container.layout")
    assert layout.status == WARNING
    assert "order" in layout.message and "'LICENSE' should be named 'license.txt'" in layout.message


def test_non_canonical_json_is_a_hygiene_finding(tmp_path):
    members = good_czann_members()
    doc = json.loads(members[0][1])
    members[0] = ("model.json", json.dumps(doc, indent=1).encode())
    report = verify_artifact(zip_to(tmp_path / "m.czann", members), strict=True)
    assert report.get("container.metadata").status == PASSED
    assert report.get("container.hygiene").status == FAILED
    assert "canonical" in report.get("container.hygiene").message


def zip_to(path: Path, members: list[tuple[str, bytes]]) -> Path:
    path.write_bytes(zip_bytes(members))
    return path


# --- bad files: a failed check, never a crash ------------------------------------------------


def _truncated(tmp_path: Path) -> Path:
    data = zip_bytes(good_czann_members())
    path = tmp_path / "m.czann"
    path.write_bytes(data[: len(data) // 2])
    return path


def _crc(tmp_path: Path) -> Path:
    data = bytearray(zip_bytes(good_czann_members()))
    at = bytes(data).index(b"model.model") + len(b"model.model") + 40
    data[at] ^= 0xFF
    path = tmp_path / "m.czann"
    path.write_bytes(bytes(data))
    return path


def _bomb(tmp_path: Path) -> Path:
    members = good_czann_members()
    path = tmp_path / "m.czann"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members[:2]:
            zf.writestr(name, data)
        zf.writestr("license.txt", b"\0" * (20 * 1024**2))
    return path


def _overlap_bomb(tmp_path: Path) -> Path:
    """Two central-directory entries pointing at the same local data (overlapping entries)."""
    data = zip_bytes(good_czann_members()[:2])
    eocd = data.rindex(b"PK\x05\x06")
    count, cd_size, cd_offset = struct.unpack("<HII", data[eocd + 10 : eocd + 20])
    cd = data[cd_offset : cd_offset + cd_size]
    second = cd.index(b"PK\x01\x02", 4)
    entry = bytearray(cd[second:])
    name_len = struct.unpack("<H", entry[28:30])[0]
    entry[46 : 46 + name_len] = b"license.txt".ljust(name_len, b"_")[:name_len]
    new_cd = cd + bytes(entry)
    tail = bytearray(data[eocd:])
    struct.pack_into("<HHII", tail, 8, count + 1, count + 1, len(new_cd), cd_offset)
    path = tmp_path / "m.czann"
    path.write_bytes(data[:cd_offset] + new_cd + bytes(tail))
    return path


def _members(**changes):
    def make(tmp_path: Path) -> Path:
        members = dict(good_czann_members())
        for name, value in changes.items():
            name = name.replace("__", ".").replace("_dot_", ".")
            if value is None:
                members.pop(name)
            else:
                members[name] = value
        return zip_to(tmp_path / "m.czann", list(members.items()))

    return make


def _extra(*extra: tuple[str, bytes]):
    def make(tmp_path: Path) -> Path:
        return write_zip(tmp_path / "m.czann", good_czann_members() + list(extra))

    return make


def _text(data: bytes):
    def make(tmp_path: Path) -> Path:
        path = tmp_path / "m.czann"
        path.write_bytes(data)
        return path

    return make


def _savedmodel_in_czann_2(tmp_path: Path) -> Path:
    nested = zip_bytes([("saved_model.pb", b"x")])
    members = good_czann_members()
    return zip_to(tmp_path / "m.czann", [members[0], ("model.model", nested)])


def _legacy(members_fn):
    def make(tmp_path: Path) -> Path:
        _, members = czmodel_members(legacy_meta(), onnx_model(opset=12, ir=7))
        return zip_to(tmp_path / "m.czmodel", members_fn(members))

    return make


def _doc(**changes) -> bytes:
    doc = json.loads(good_czann_members()[0][1])
    for key, value in changes.items():
        if value is None:
            doc.pop(key)
        else:
            doc[key] = value
    return json.dumps(doc).encode()


BAD = [
    ("truncated-zip", _truncated, "container.archive", "truncated"),
    ("not-a-zip", _text(b"hello, I am not a zip file"), "container.archive", "not a readable"),
    ("empty-file", _text(b""), "container.archive", "not a readable"),
    ("crc-error", _crc, "container.archive", "cannot be read"),
    ("zip-bomb-ratio", _bomb, "container.archive", "zip bomb"),
    ("zip-bomb-overlap", _overlap_bomb, "container.archive", "overlap"),
    ("path-traversal", _extra(("../evil.txt", b"x")), "container.members", "path traversal"),
    ("absolute-path", _extra(("/tmp/evil.txt", b"x")), "container.members", "absolute"),
    ("backslash", _extra(("..\\evil.txt", b"x")), "container.members", "backslash"),
    ("duplicate-entry", _extra(("model.json", b"{}")), "container.members", "duplicate"),
    ("case-duplicate", _extra(("Model.json", b"{}")), "container.members", "case"),
    ("stray-members", _extra(("a.txt", b"a"), ("b.txt", b"b")), "container.members", "stray"),
    ("missing-model", _members(model_dot_model=None), "container.members", "missing model"),
    ("missing-metadata", _members(model_dot_json=None), "container.members", "neither"),
    ("empty-model", _members(model_dot_model=b""), "container.members", "empty"),
    ("json-not-json", _members(model_dot_json=b"{not json"), "container.metadata", "JSON"),
    ("json-not-utf8", _members(model_dot_json=b'{"Id": "\xff"}'), "container.metadata", "UTF-8"),
    ("json-list", _members(model_dot_json=b"[1, 2]"), "container.metadata", "object"),
    (
        "json-nan",
        _members(model_dot_json=_doc(Scaling=[1e-6, 1e-6]).replace(b"1e-06]", b"NaN]")),
        "container.metadata",
        "NaN",
    ),
    (
        "json-wrong-types",
        _members(model_dot_json=_doc(InputShape="8x8", Classes=3)),
        "container.metadata",
        "InputShape",
    ),
    ("json-missing-type", _members(model_dot_json=_doc(Type=None)), "container.metadata", "Type"),
    (
        "json-unknown-key",
        _members(model_dot_json=_doc(Colour="red")),
        "container.metadata",
        "Colour",
    ),
    (
        "json-classes-vs-output",
        _members(model_dot_json=_doc(Classes=["a", "b", "c"])),
        "container.metadata",
        "Classes",
    ),
    (
        "json-odd-overlap",
        _members(model_dot_json=_doc(MinOverlap=[3, 3])),
        "container.metadata",
        "MinOverlap",
    ),
    (
        "payload-not-onnx",
        _members(model_dot_model=b"this is not an onnx model at all"),
        "payload.model",
        "not an ONNX",
    ),
    ("payload-savedmodel-in-2.1", _savedmodel_in_czann_2, "payload.model", "SavedModel"),
    (
        "legacy-id-mismatch",
        _legacy(lambda m: [(m[0][0].replace("3f", "4f"), m[0][1])] + m[1:]),
        "container.members",
        "ids disagree",
    ),
    ("legacy-missing-marker", _legacy(lambda m: m[:-1]), "container.members", "modelid"),
    (
        "legacy-xml-doctype",
        _legacy(
            lambda m: (
                [(m[0][0], m[0][1].replace(b"\n", b"\n<!DOCTYPE x [<!ENTITY a 'b'>]>", 1))] + m[1:]
            )
        ),
        "container.metadata",
        "DOCTYPE",
    ),
    (
        "legacy-xml-broken",
        _legacy(lambda m: [(m[0][0], b"<Model")] + m[1:]),
        "container.metadata",
        "malformed",
    ),
    (
        "legacy-marker-not-empty",
        _legacy(lambda m: m[:-1] + [(m[-1][0], b"x")]),
        "container.members",
        "must be empty",
    ),
]


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize(("make", "check", "needle"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_file_gives_a_failed_check(tmp_path, make, check, needle):
    work = tmp_path / "work"
    work.mkdir()
    path = make(work)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    report = verify_artifact(path)
    assert not report.ok
    failed = report.get(check)
    assert failed is not None and failed.status == FAILED, statuses(report)
    assert needle.lower() in failed.message.lower(), failed.message
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written anywhere
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()
    json.dumps(report.to_dict())


def test_zip_bomb_over_size_limit(tmp_path):
    path = zip_to(tmp_path / "m.czann", good_czann_members())
    report = verify_artifact(path, max_bytes=100)
    assert report.get("container.archive").status == FAILED
    assert "limit" in report.get("container.archive").message


@pytest.mark.parametrize("target", ["missing.czann", "."], ids=["missing", "directory"])
def test_missing_path_is_a_clear_error(tmp_path, target):
    with pytest.raises(ArchiveError):
        verify_artifact(tmp_path / target)


# --- payload rules ----------------------------------------------------------------------------


def _payload_case(tmp_path: Path, metadata: CzannMetadata, payload: bytes):
    path = zip_to(tmp_path / "m.czann", czann_members(metadata, payload)[1])
    return verify_artifact(path)


def _two_inputs() -> bytes:
    model = onnx.load_from_string(onnx_model())
    model.graph.input.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1]))
    return model.SerializeToString()


def _custom_domain() -> bytes:
    model = onnx.load_from_string(onnx_model())
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    return model.SerializeToString()


PAYLOAD = [
    (
        "opset-too-new-for-2.0.0",
        czann_meta(version="2.0.0"),
        onnx_model(opset=18, ir=8),
        "payload.opset",
        "opset 18",
    ),
    (
        "ir-too-new-for-1.1.0",
        czann_meta(version="1.1.0"),
        onnx_model(opset=12, ir=8),
        "payload.opset",
        "ir_version 8",
    ),
    ("custom-domain", czann_meta(), _custom_domain(), "payload.opset", "non-standard"),
    ("two-inputs", czann_meta(), _two_inputs(), "payload.io", "2 inputs"),
    ("int-input", czann_meta(), onnx_model(in_type=TensorProto.INT32), "payload.io", "FLOAT"),
    ("batch-2", czann_meta(), onnx_model(batch=2), "payload.io", "batch"),
    ("shape-mismatch", czann_meta(size=16), onnx_model(size=8), "payload.io", "InputShape"),
    ("no-softmax", czann_meta(), onnx_model(head="none"), "semantics", "sum"),
    (
        "regression-out-of-range",
        czann_meta(type="Regression", classes=None),
        onnx_model(head="none"),
        "semantics.output_range",
        "ZEN expects [0, 1]; add {op: clip, min: 0, max: 1}",
    ),
]


@pytest.mark.parametrize(
    ("metadata", "payload", "check", "needle"),
    [p[1:] for p in PAYLOAD],
    ids=[p[0] for p in PAYLOAD],
)
def test_payload_rule_violations_fail(tmp_path, metadata, payload, check, needle):
    report = _payload_case(tmp_path, metadata, payload)
    failed = report.get(check)
    assert failed.status == FAILED, statuses(report)
    assert needle in failed.message, failed.message


def test_symbolic_dims_accepted_for_czann(tmp_path):
    report = _payload_case(tmp_path, czann_meta(), onnx_model(size=None))
    assert report.ok and report.get("payload.io").figure == "[?, ?, ?, 1] -> [?, ?, ?, 2]"


def test_symbolic_dims_rejected_for_legacy(tmp_path):
    path = tmp_path / "m.czmodel"
    write_czmodel(path, legacy_meta(), onnx_model(size=None, opset=12, ir=7))
    check = verify_artifact(path).get("payload.io")
    assert check.status == FAILED and "fixed H, W" in check.message


def test_legacy_class_count_mismatch(tmp_path):
    path = tmp_path / "m.czmodel"
    write_czmodel(path, legacy_meta(classes=("a", "b", "c")), onnx_model(opset=12, ir=7))
    check = verify_artifact(path).get("payload.io")
    assert check.status == FAILED and "3 classes" in check.message


def test_legacy_pixel_type_channel_warning(tmp_path):
    path = tmp_path / "m.czmodel"
    write_czmodel(path, legacy_meta(pixel_types=("Bgr24",)), onnx_model(opset=12, ir=7))
    report = verify_artifact(path)
    assert report.get("payload.io").status == WARNING and report.ok


def test_regression_with_sigmoid_passes(tmp_path):
    report = _payload_case(
        tmp_path, czann_meta(type="Regression", classes=None), onnx_model(head="sigmoid")
    )
    assert report.get("semantics").status == PASSED


def test_external_data_is_rejected(tmp_path):
    model = onnx.load_from_string(onnx_model())
    tensor = model.graph.initializer[0]
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "weights.bin"
    tensor.ClearField("raw_data")
    report = _payload_case(tmp_path, czann_meta(), model.SerializeToString())
    assert report.get("payload.model").status == FAILED


def test_nothing_is_unpacked_next_to_the_artifact(tmp_path):
    path = write_zip(tmp_path / "m.czann", good_czann_members() + [("../escape.txt", b"x")])
    verify_artifact(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.czann"]
    assert not (tmp_path.parent / "escape.txt").exists()


# --- legacy 3.0.0: the nested SavedModel zip is read as strictly as the container -------------


def _nested(members: list[tuple[str, bytes]], *, raw: bytes | None = None) -> bytes:
    if raw is not None:
        return raw
    buffer = __import__("io").BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buffer.getvalue()


NESTED = [
    ("traversal", _nested([("saved_model.pb", b"x"), ("../../evil.txt", b"x")]), "path traversal"),
    ("absolute", _nested([("saved_model.pb", b"x"), ("/tmp/evil.txt", b"x")]), "absolute"),
    ("no-saved-model", _nested([("variables/variables.index", b"x")]), "saved_model.pb"),
    ("truncated", _nested([("saved_model.pb", b"x" * 100)])[:60], "not a readable ZIP"),
]


@pytest.mark.parametrize(("payload", "needle"), [n[1:] for n in NESTED], ids=[n[0] for n in NESTED])
def test_bad_nested_savedmodel_zip(tmp_path, payload, needle):
    work = tmp_path / "work"
    work.mkdir()
    _, members = czmodel_members(legacy_meta(version="3.0.0"), _nested([("saved_model.pb", b"x")]))
    members[1] = (members[1][0], payload)
    path = zip_to(work / "m.czmodel", members)
    report = verify_artifact(path)
    check = report.get("payload.model")
    assert check.status == FAILED and needle in check.message, check.message
    assert report.get("semantics").status == SKIPPED
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["m.czmodel", "work"]
    assert not Path("/tmp/evil.txt").exists()


def test_onnx_payload_in_a_300_container_fails(tmp_path):
    _, members = czmodel_members(legacy_meta(version="3.0.0"), _nested([("saved_model.pb", b"x")]))
    members[1] = (members[1][0], onnx_model(opset=12, ir=7))
    report = verify_artifact(zip_to(tmp_path / "m.czmodel", members))
    check = report.get("payload.model")
    assert check.status == FAILED and "3.0.0" in check.message


def test_verify_container_runs_the_container_checks_only_and_names_the_rest(tmp_path):
    """What a metadata-only re-package runs: the same check list, payload onwards skipped."""
    from czbuild.verify.api import verify_container

    path = tmp_path / "m.czann"
    write_czann(path, czann_meta(), onnx_model(), b"MIT")
    full = verify_artifact(path)
    only = verify_container(path, strict=False, reason="taken from the earlier record")
    assert [c.name for c in only.checks] == [c.name for c in full.checks]
    for check in only.checks:
        if check.name.startswith("container."):
            assert check.status == full.get(check.name).status, check.name
        else:
            assert check.status == SKIPPED and check.message == "taken from the earlier record"

    members = [("model.json", b"{"), ("model.model", onnx_model())]
    broken = write_zip(tmp_path / "broken.czann", members)
    report = verify_container(broken, strict=False, reason="unused")
    assert not report.ok and report.get("container.metadata").status == FAILED
    assert report.get("payload.model").status == SKIPPED
