"""``czbuild list``, ``czbuild show`` and ``czbuild schema`` (and that they never import TF)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from czbuild.cli import cli
from czbuild.recipe import load_variants

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data" / "recipes"


def _run(*args: str) -> object:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture()
def broken_project(tmp_path: Path) -> Path:
    (tmp_path / "recipes").mkdir()
    shutil.copytree(DATA / "_files", tmp_path / "recipes" / "_files")
    shutil.copy(DATA / "valid_minimal.yaml", tmp_path / "recipes" / "good.yaml")
    shutil.copy(DATA / "invalid_enum_type.yaml", tmp_path / "recipes" / "bad.yaml")
    return tmp_path


def test_list_shows_every_variant_of_the_bundled_recipes() -> None:
    result = _run("list", "--project", str(ROOT))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["RECIPE", "VARIANT", "FORMAT"]
    rows = [line.split() for line in lines[1:]]
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        ("cells_onnx", "czann", "2.1.0", "cells_onnx/default/cells_onnx.czann"),
        ("denoise", "czann", "1.1.0", "denoise/default/denoise.czann"),
        ("legacy_seed", "czmodel", "3.0.0", "legacy_seed/default/legacy_seed.czmodel"),
        ("nuclei@tile=128", "czann", "2.1.0", "nuclei/tile=128/nuclei.czann"),
        ("nuclei@tile=256", "czann", "2.1.0", "nuclei/tile=256/nuclei.czann"),
        ("nuclei@tile=512", "czann", "2.1.0", "nuclei/tile=512/nuclei.czann"),
        ("volume_3d", "czann", "2.0.0", "volume_3d/default/volume_3d.czann"),
    ]


def test_list_json() -> None:
    result = _run("list", "--project", str(ROOT), "--json")
    data = json.loads(result.output)
    assert [v["variant"] for v in data["variants"]][:2] == ["cells_onnx", "denoise"]
    assert all(len(v["digest"]) == 64 for v in data["variants"])


def test_list_reports_invalid_recipes_and_fails(broken_project: Path) -> None:
    result = CliRunner().invoke(cli, ["list", "--project", str(broken_project)])
    assert result.exit_code == 2
    assert "good" in result.stdout and "good/default/good.czann" in result.stdout
    assert "ERROR" in result.stdout and "recipes/bad.yaml:4: metadata.type:" in result.stdout


def test_list_finds_the_project_from_a_subfolder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT / "models")
    result = _run("list")
    assert result.exit_code == 0 and "nuclei@tile=256" in result.output


def test_show_prints_resolved_specs_and_digests() -> None:
    result = _run("show", "nuclei", "--project", str(ROOT))
    assert result.exit_code == 0, result.output
    docs = result.output.split("\n---\n")
    variants = load_variants(["nuclei"], project_dir=ROOT)
    assert len(docs) == len(variants) == 3
    for doc, variant in zip(docs, variants):
        assert f"# variant: {variant.name}\n# digest: {variant.digest}\n" in doc
        assert yaml.safe_load(doc) == variant.spec.to_plain()


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        pytest.param(["tile=1024"], ["nuclei@tile=1024"], id="narrow-sweep"),
        pytest.param(
            ["tile=256,512", "target=zen-core-3.4"],
            ["nuclei@target=zen-core-3.4,tile=256", "nuclei@target=zen-core-3.4,tile=512"],
            id="sweep-and-group",
        ),
        pytest.param(
            [
                "metadata.classes=[bg,fg]",
                "+metadata.id=3f1c2a9e-7b4d-5e8a-9c61-0d2b4f6a8e10",
                "tile=512",
            ],
            [
                (
                    "nuclei@metadata.classes=[bg,fg],"
                    "metadata.id=3f1c2a9e-7b4d-5e8a-9c61-0d2b4f6a8e10,tile=512"
                )
            ],
            id="values",
        ),
    ],
)
def test_show_json_with_overrides(overrides: list[str], names: list[str]) -> None:
    result = _run("show", "nuclei", *overrides, "--json", "--project", str(ROOT))
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)["variants"]
    assert [v["name"] for v in data] == names
    expected = load_variants(["nuclei"], overrides, project_dir=ROOT)
    assert [v["digest"] for v in data] == [v.digest for v in expected]
    assert data[0]["inputs"] == ["models/nuclei.py", "models/LICENSE.txt"]


@pytest.mark.parametrize("name", ["legacy_seed", "denoise", "nuclei", "recipes/nuclei.yaml"])
def test_show_every_bundled_recipe(name: str) -> None:
    result = _run("show", name, "--project", str(ROOT))
    assert result.exit_code == 0, result.output
    assert "# digest: " in result.output


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(["show", "nuclei", "tile=0"], "recipes/nuclei.yaml:", id="bad-override"),
        pytest.param(["show", "nucleus"], "did you mean 'nuclei'?", id="unknown-recipe"),
        pytest.param(["show", "nuclei", "tile=["], "invalid override", id="syntax"),
    ],
)
def test_show_errors_are_one_line_without_traceback(args: list[str], fragment: str) -> None:
    result = CliRunner().invoke(cli, [*args, "--project", str(ROOT)])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("czbuild: error: ")
    assert fragment in lines[0] and "Traceback" not in result.stderr


def test_show_checks_the_model_pin(tmp_path: Path) -> None:
    shutil.copytree(DATA, tmp_path / "recipes")
    assert _run("show", "valid_full_czann", "--project", str(tmp_path)).exit_code == 0
    (tmp_path / "recipes" / "_files" / "tiny.keras").write_bytes(b"changed")
    result = CliRunner().invoke(cli, ["show", "valid_full_czann", "--project", str(tmp_path)])
    assert result.exit_code == 2 and "model.sha256" in result.stderr


def test_schema_prints_the_committed_schema() -> None:
    result = _run("schema")
    assert result.exit_code == 0
    assert result.output == (ROOT / "czbuild/schemas/recipe.schema.json").read_text()


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["list", "--project", str(ROOT)], id="list"),
        pytest.param(["show", "nuclei", "tile=256,512", "--project", str(ROOT)], id="show"),
        pytest.param(["schema"], id="schema"),
    ],
)
def test_commands_never_import_tensorflow(argv: list[str]) -> None:
    code = (
        "import sys\n"
        "from czbuild.cli import main\n"
        f"rc = main({argv!r})\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras', 'tf2onnx', 'onnxruntime')"
        " if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy), file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY=\n" in proc.stderr


@pytest.mark.parametrize(
    ("overrides", "sweep"),
    [
        pytest.param([], {"tile": 128}, id="recipe-sweep"),
        pytest.param(["tile=1024"], {"tile": 1024}, id="pinned"),
        pytest.param(
            [
                "tile=1024",
                "+metadata.id=3f1c2a9e-7b4d-5e8a-9c61-0d2b4f6a8e10",
                "metadata.scaling=[1e-7,1e-7]",
                "target=zen-core-3.13",
                "~metadata.license",
            ],
            {
                "tile": 1024,
                "metadata.id": "3f1c2a9e-7b4d-5e8a-9c61-0d2b4f6a8e10",
                "metadata.scaling": [1e-7, 1e-7],
                "target": "zen-core-3.13",
                "~metadata.license": None,
            },
            id="typed",
        ),
    ],
)
def test_show_json_keeps_the_types_of_sweep_values(
    overrides: list[str], sweep: dict[str, object]
) -> None:
    result = _run("show", "nuclei", *overrides, "--json", "--project", str(ROOT))
    assert result.exit_code == 0, result.output
    first = json.loads(result.output)["variants"][0]
    assert first["sweep"] == sweep
    assert all(type(first["sweep"][k]) is type(v) for k, v in sweep.items())
    assert isinstance(first["name"], str) and first["name"].startswith("nuclei@")


def test_schema_write_keeps_a_copy_for_a_user_project(tmp_path: Path) -> None:
    (tmp_path / "recipes").mkdir()
    result = _run("schema", "--write", str(tmp_path / "recipe.schema.json"))
    assert result.exit_code == 0, result.output
    written = tmp_path / "recipe.schema.json"
    assert written.read_text(encoding="utf-8") == _run("schema").output
    assert result.output.splitlines()[-1] == "# yaml-language-server: $schema=../recipe.schema.json"


def test_schema_write_into_a_folder_of_another_project(tmp_path: Path) -> None:
    folder = tmp_path / "tools" / "schemas"
    folder.mkdir(parents=True)
    project = tmp_path / "proj"
    (project / "recipes").mkdir(parents=True)
    result = _run("schema", "--write", str(folder), "--project", str(project))
    assert result.exit_code == 0, result.output
    assert (folder / "recipe.schema.json").is_file()
    assert f"wrote {folder / 'recipe.schema.json'}" in result.output
    assert (
        result.output.splitlines()[-1]
        == "# yaml-language-server: $schema=../../tools/schemas/recipe.schema.json"
    )
