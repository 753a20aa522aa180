"""`czbuild inspect` / `czbuild unpack`, and that neither needs TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from czbuild.cli.artifact_cmds import inspect_cmd, unpack_cmd
from czbuild.errors import ArchiveError
from czbuild.formats import CzannMetadata, LegacyMetadata, inspect, write_czann, write_czmodel

REPO = Path(__file__).resolve().parents[1]
ONNX = b"\x08\x07\x12\x07tf2onnx" + bytes(64)


@pytest.fixture()
def czann(tmp_path: Path) -> Path:
    meta = CzannMetadata(
        type="SingleClassSemanticSegmentation",
        input_shape=(128, 128, 1),
        output_shape=(128, 128, 2),
        classes=("Background", "Nucleus, large"),
        model_name="Nuclei",
        format_version="1.1.0",
        scaling=(1e-6, 1e-6),
    )
    write_czann(tmp_path / "nuclei.czann", meta, ONNX, b"MIT")
    return tmp_path / "nuclei.czann"


@pytest.fixture()
def czmodel(tmp_path: Path) -> Path:
    meta = LegacyMetadata(
        name="Cells",
        color_handling="SplitRgb",
        pixel_types=("Bgr24",),
        classes=("Background", "Cells"),
        border_size=8,
    )
    write_czmodel(tmp_path / "cells.czmodel", meta, ONNX)
    return tmp_path / "cells.czmodel"


def test_inspect_text_summary(czann: Path) -> None:
    result = CliRunner().invoke(inspect_cmd, [str(czann)])
    assert result.exit_code == 0, result.output
    info = inspect(czann)
    assert f"id:       {info['id']}" in result.output
    assert "family:   czann 1.1.0 (inferred: no FormatVersion)" in result.output
    assert '["Background", "Nucleus, large"]' in result.output
    for name in ("model.json", "model.model", "license.txt"):
        assert name in result.output
    assert "0o100644" in result.output and "stored" in result.output


def test_inspect_json_matches_library(czmodel: Path) -> None:
    result = CliRunner().invoke(inspect_cmd, [str(czmodel), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == inspect(czmodel)


def test_unpack_prints_written_paths(czmodel: Path, tmp_path: Path) -> None:
    dest = tmp_path / "unpacked"
    result = CliRunner().invoke(unpack_cmd, [str(czmodel), str(dest)])
    assert result.exit_code == 0, result.output
    written = result.output.splitlines()
    assert len(written) == 3 and all(Path(p).parent == dest for p in written)
    assert sorted(p.name for p in dest.iterdir()) == sorted(Path(p).name for p in written)


@pytest.mark.parametrize("command", [inspect_cmd, unpack_cmd], ids=["inspect", "unpack"])
def test_user_errors_are_czbuild_errors(tmp_path: Path, command) -> None:
    bad = tmp_path / "bad.czann"
    bad.write_text("not a zip")
    args = [str(bad)] if command is inspect_cmd else [str(bad), str(tmp_path / "out")]
    result = CliRunner().invoke(command, args)
    assert isinstance(result.exception, ArchiveError)
    assert "bad.czann" in str(result.exception)


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def test_importing_formats_does_not_import_tensorflow_or_onnx() -> None:
    proc = _run(
        "import czbuild.formats, sys; "
        "bad = [m for m in ('tensorflow', 'onnx', 'keras', 'jsonschema') "
        "if m in sys.modules]; "
        "assert not bad, bad"
    )
    assert proc.returncode == 0, proc.stderr


def test_cli_inspect_and_error_exit_without_tensorflow(czann: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from czbuild.cli import main; rc = main(sys.argv[1:]); "
        "assert 'tensorflow' not in sys.modules and 'onnx' not in sys.modules; sys.exit(rc)"
    )
    proc = _run(code, "inspect", "--json", str(czann))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["family"] == "czann"
    missing = _run(code, "inspect", str(tmp_path / "missing.czann"))
    assert missing.returncode == ArchiveError.exit_code
    assert "czbuild: error:" in missing.stderr and "missing.czann" in missing.stderr
