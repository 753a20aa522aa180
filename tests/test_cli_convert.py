"""`czbuild convert SPEC.json OUT_DIR [NAME]`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]


def test_help_lists_convert_without_importing_tensorflow():
    code = (
        "import sys\n"
        "from czbuild.cli import main\n"
        "try:\n"
        "    main(['convert', '--help'])\n"
        "finally:\n"
        "    assert 'tensorflow' not in sys.modules, 'TF imported'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "SPEC.json OUT_DIR [NAME]" in proc.stdout
    assert "--format-version" in proc.stdout and "--opset" in proc.stdout


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    import keras

    folder = tmp_path_factory.mktemp("cli")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(2, 3, padding="same", activation="softmax")(inputs)
    keras.Model(inputs, x).save(folder / "m.keras")
    doc = {
        "ModelPath": "m.keras",
        "ColorHandling": "ConvertToMonochrome",
        "PixelType": "Gray8",
        "Classes": ["Background", "Cells"],
        "BorderSize": 2,
    }
    (folder / "cells.json").write_text(json.dumps(doc))
    return folder / "cells.json"


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,options,expected,version,opset",
    [
        (None, [], "cells.czmodel", "3.1.0", 12),
        ("Cells v1", [], "Cells v1.czmodel", "3.1.0", 12),
        (None, ["--format-version", "3.0.0"], "cells.czmodel", "3.0.0", None),
        (None, ["--opset", "11"], "cells.czmodel", "3.1.0", 11),
    ],
    ids=["default-name", "name", "savedmodel", "opset"],
)
def test_convert_writes_the_file(spec, tmp_path, name, options, expected, version, opset):
    import onnx

    from czbuild.cli import cli
    from czbuild.formats import read_artifact

    out = tmp_path / "out"
    args = ["convert", str(spec), str(out), *([name] if name else []), *options]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out / expected)
    artifact = read_artifact(out / expected)
    assert artifact.version == version
    if opset is not None:
        assert onnx.load_from_string(artifact.model_bytes).opset_import[0].version == opset


@pytest.mark.slow
def test_convert_error_is_one_line_with_file_and_key(tmp_path):
    from czbuild.cli import cli

    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "ModelPath": "nowhere.keras",
                "ColorHandling": "SplitRgb",
                "PixelType": "Gray8",
                "Classes": ["a", "b"],
                "BorderSize": 1,
            }
        )
    )
    result = CliRunner().invoke(cli, ["convert", str(bad), str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("czbuild: error: ")
    assert str(bad) in lines[0] and "ModelPath" in lines[0]
    assert not (tmp_path / "out").exists()
