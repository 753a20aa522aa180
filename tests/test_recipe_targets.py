"""ZEN target releases czbuild accepts (QA finding: ``version: '9.9'`` passed without comment).

Older than the oldest release that opens ZEN model files: error. Leading zeros: error.
Newer than the newest release the compatibility matrix knows: accepted with a note (newer ZEN
releases read everything older ones do).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from czbuild.cli import cli
from czbuild.errors import RecipeError
from czbuild.formats import vocab
from czbuild.recipe import load_variants
from czbuild.recipe.targets import known_zen_range

DATA = Path(__file__).parent / "data" / "recipes"
RECIPE = """\
model: {{path: _files/tiny.keras}}
format: {fmt}
tile: 128
target:
  product: {product}
  version: '{version}'
metadata: {{classes: [bg, fg], {meta}}}
"""
CZANN_META = "type: SingleClassSemanticSegmentation"
CZMODEL_META = "pixel_type: Gray8, color_handling: ConvertToMonochrome"


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    shutil.copytree(DATA / "_files", tmp_path / "recipes" / "_files")
    return tmp_path


def _write(project: Path, product: str, version: str, fmt: str = "czann") -> None:
    meta = CZANN_META if fmt == "czann" else CZMODEL_META
    (project / "recipes" / "t.yaml").write_text(
        RECIPE.format(fmt=fmt, product=product, version=version, meta=meta), encoding="utf-8"
    )


def test_known_range_comes_from_the_matrix() -> None:
    assert known_zen_range("blue") == ((3, 2), (3, 13))
    assert known_zen_range("core") == ((3, 1), (3, 13))
    newest = max(v for needs in vocab.MIN_ZEN.values() for v in needs)
    assert known_zen_range("blue")[1] == newest


@pytest.mark.parametrize(
    ("product", "version", "fmt", "picked"),
    [
        pytest.param("blue", "3.2", "czmodel", "3.0.0", id="oldest-blue"),
        pytest.param("core", "3.1", "czmodel", "3.0.0", id="oldest-core"),
        pytest.param("blue", "3.9", "czann", "1.1.0", id="between-known"),
        pytest.param("blue", "3.13", "czann", "2.1.0", id="newest"),
    ],
)
def test_known_releases_are_accepted_without_notes(
    project: Path, product: str, version: str, fmt: str, picked: str
) -> None:
    _write(project, product, version, fmt)
    (variant,) = load_variants(["t"], project_dir=project)
    assert variant.spec.format_version == picked
    assert variant.notes == ()


@pytest.mark.parametrize("version", ["9.9", "3.14", "4.0", "10.2"])
def test_newer_releases_are_accepted_with_a_note(project: Path, version: str) -> None:
    _write(project, "blue", version)
    (variant,) = load_variants(["t"], project_dir=project)
    assert variant.spec.format_version == "2.1.0" and variant.spec.target.version == version
    (note,) = variant.notes
    assert f"ZEN Blue {version} is newer than the newest release czbuild knows" in note


@pytest.mark.parametrize(
    ("product", "version", "fragment"),
    [
        pytest.param("blue", "3.1", "ZEN Blue 3.1 is older than ZEN Blue 3.2", id="blue-3.1"),
        pytest.param("core", "3.0", "ZEN Core 3.0 is older than ZEN Core 3.1", id="core-3.0"),
        pytest.param("blue", "2.6", "use '3.2' or newer", id="zen-2"),
        pytest.param("blue", "0.0", "zen-blue-3.2", id="zero"),
        pytest.param(
            "blue",
            "3.05",
            "has leading zeros; write the release as ZEN names it, e.g. '3.5'",
            id="leading-zero-minor",
        ),
        pytest.param("core", "03.13", "e.g. '3.13'", id="leading-zero-major"),
    ],
)
def test_old_or_malformed_releases_are_refused(
    project: Path, product: str, version: str, fragment: str
) -> None:
    _write(project, product, version, fmt="czmodel")
    with pytest.raises(RecipeError) as info:
        load_variants(["t"], project_dir=project)
    err = info.value
    assert err.file == "recipes/t.yaml" and err.key == "target.version" and err.line == 6
    assert fragment in str(err) and "\n" not in str(err)


def test_a_target_from_a_config_group_points_at_the_defaults_entry(project: Path) -> None:
    (project / "configs" / "target").mkdir(parents=True)
    (project / "configs" / "target" / "zen-blue-2.6.yaml").write_text(
        "product: blue\nversion: '2.6'\n", encoding="utf-8"
    )
    (project / "recipes" / "t.yaml").write_text(
        "defaults: [/target: zen-blue-2.6, _self_]\nmodel: {path: _files/tiny.keras}\n"
        "tile: 128\nmetadata: {type: Regression}\n",
        encoding="utf-8",
    )
    with pytest.raises(RecipeError, match=r"^recipes/t\.yaml:1: target\.version: ZEN Blue 2\.6"):
        load_variants(["t"], project_dir=project)
    with pytest.raises(RecipeError, match=r"from the command line: target=zen-blue-2\.6"):
        load_variants(["t"], ["target=zen-blue-2.6"], project_dir=project)


def test_show_prints_the_note(project: Path) -> None:
    _write(project, "core", "9.9")
    result = CliRunner().invoke(
        cli, ["show", "t", "--project", str(project)], catch_exceptions=False
    )
    assert result.exit_code == 0
    assert (
        "# note: ZEN Core 9.9 is newer than the newest release czbuild knows (ZEN Core "
        "3.13)" in result.output
    )
    result = CliRunner().invoke(
        cli, ["show", "t", "--json", "--project", str(project)], catch_exceptions=False
    )
    (variant,) = json.loads(result.output)["variants"]
    assert len(variant["notes"]) == 1
