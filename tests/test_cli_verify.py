"""``czbuild verify``: exit codes, text and --json output, --report files (no TensorFlow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from czbuild.cli import cli
from czbuild.cli.verify_cmds import report_stem
from czbuild.formats.archive import write_czann
from czbuild.formats.czann import CzannMetadata

CHECKS = [
    "container.archive",
    "container.members",
    "container.metadata",
    "container.layout",
    "container.hygiene",
    "payload.model",
    "payload.io",
    "payload.opset",
    "payload.runtime_compat",
    "semantics",
    "fidelity",
    "tiling.seams",
    "tiling.receptive_field",
    "tiling.min_overlap",
    "payload.digest",  # added by the CLI: no recipe and lock here, so skipped with a warning
]


def _onnx(size: int = 8, classes: int = 3) -> bytes:
    """NHWC input -> 3x3 conv to ``classes`` -> softmax over channels."""
    w = np.random.default_rng(0).normal(0, 1, (classes, 1, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["input"], ["x"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
        helper.make_node("Transpose", ["y"], ["z"], perm=[0, 2, 3, 1]),
        helper.make_node("Softmax", ["z"], ["output"], axis=3),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", size, size, 1])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", size, size, classes])],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.fixture()
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.czann"
    meta = CzannMetadata(
        type="SingleClassSemanticSegmentation",
        input_shape=(8, 8, 1),
        output_shape=(8, 8, 3),
        classes=("a", "b", "c"),
        min_overlap=(2, 2),
    )
    write_czann(path, meta, _onnx())
    return path


@pytest.fixture()
def broken(tmp_path: Path, artifact: Path) -> Path:
    path = tmp_path / "broken.czann"
    path.write_bytes(artifact.read_bytes()[:200])
    return path


def run(*args: str):
    return CliRunner().invoke(cli, ["verify", *args], catch_exceptions=False)


def test_json_shape_and_exit_code(artifact):
    result = run(str(artifact), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["ok"] is True and doc["family"] == "czann" and doc["version"] == "2.1.0"
    assert [c["name"] for c in doc["checks"]] == CHECKS
    for check in doc["checks"]:
        assert set(check) == {"name", "status", "figure", "message", "details"}
        assert check["status"] in ("passed", "failed", "skipped", "warning")
    assert doc["summary"]["failed"] == 0


def test_failed_check_exits_non_zero(broken):
    result = run(str(broken), "--json")
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["ok"] is False
    assert doc["checks"][0] == {**doc["checks"][0], "name": "container.archive", "status": "failed"}


def test_text_output(artifact, broken):
    good = run(str(artifact))
    assert good.exit_code == 0
    assert good.output.splitlines()[0].endswith(")") and ": OK (" in good.output
    assert any(line.split()[:2] == ["ok", "semantics"] for line in good.output.splitlines())
    bad = run(str(broken))
    assert bad.exit_code == 1 and ": FAILED (" in bad.output
    lines = bad.output.splitlines()
    assert any(line.split()[:2] == ["FAIL", "container.archive"] for line in lines)


def test_report_writes_html_pictures_and_json(artifact, tmp_path):
    out = tmp_path / "report"
    result = run(str(artifact), "--report", str(out))
    assert result.exit_code == 0
    stem = report_stem(artifact)
    assert stem.startswith("tiny.czann-") and len(stem) == len("tiny.czann-") + 8
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{stem}.html", f"{stem}.input.png", f"{stem}.json", f"{stem}.output.png"]
    page = (out / f"{stem}.html").read_text()
    assert "data:image/png;base64," in page and "semantics" in page and "MinOverlap" in page
    assert (out / f"{stem}.input.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / f"{stem}.json").read_text())["ok"] is True
    assert f"report: {out / (stem + '.html')}" in result.output


def test_reports_of_artifacts_with_the_same_name_do_not_overwrite_each_other(artifact, tmp_path):
    copies = []
    for tile in (128, 512):
        copy = tmp_path / "build" / "tiny" / f"tile={tile}" / artifact.name
        copy.parent.mkdir(parents=True)
        copy.write_bytes(artifact.read_bytes())
        copies.append(copy)
    out = tmp_path / "report"
    for copy in copies:
        assert run(str(copy), "--report", str(out)).exit_code == 0
    pages = sorted(p.name for p in out.glob("*.html"))
    assert len(pages) == 2 and all(p.startswith("tiny.czann-") for p in pages)


def test_report_stem_of_recipe_variants_is_their_path_in_the_build_folder():
    from types import SimpleNamespace

    stems = {
        report_stem(
            Path("build/nuclei") / f"tile={t}" / "nuclei.czann",
            SimpleNamespace(name=f"nuclei@tile={t}", output=Path(f"nuclei/tile={t}/nuclei.czann")),
        )
        for t in (128, 512)
    }
    assert stems == {"nuclei__tile=128__nuclei.czann", "nuclei__tile=512__nuclei.czann"}


def test_no_tiling_skips_the_tiling_checks(artifact):
    doc = json.loads(run(str(artifact), "--json", "--no-tiling").output)
    tiling = [c for c in doc["checks"] if c["name"].startswith("tiling.")]
    assert len(tiling) == 3 and {c["status"] for c in tiling} == {"skipped"}
    assert "disabled" in tiling[0]["message"]


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["missing.czann"], 2, "no such file"),
        (["{artifact}", "--tolerance", "0"], 2, "tolerance"),
        (["{artifact}", "--recipe", "nope", "--project", "{tmp}"], 2, "nope"),
    ],
    ids=["missing-file", "zero-tolerance", "unknown-recipe"],
)
def test_user_errors(artifact, tmp_path, args, code, needle):
    (tmp_path / "recipes").mkdir(exist_ok=True)
    args = [a.format(artifact=artifact, tmp=tmp_path) for a in args]
    result = CliRunner().invoke(cli, ["verify", *args])
    assert result.exit_code == code, result.output
    assert needle in result.output


def test_strict_turns_hygiene_deviations_into_failures(tmp_path, artifact):
    import zipfile

    foreign = tmp_path / "foreign.czann"
    with (
        zipfile.ZipFile(artifact) as src,
        zipfile.ZipFile(foreign, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    assert run(str(foreign)).exit_code == 0
    assert run(str(foreign), "--strict").exit_code == 1


@pytest.mark.slow
def test_verifying_an_onnx_artifact_without_a_source_does_not_import_tensorflow(artifact):
    import subprocess
    import sys

    code = (
        "import sys; from czbuild.verify import verify_artifact; "
        f"r = verify_artifact({str(artifact)!r}); "
        "assert r.ok; assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stderr
