"""Which project a command works on (QA finding: ``cd /tmp && czbuild build
/tmp/qa/recipes/nuclei.yaml`` used /tmp as the project).

A recipe named by path belongs to the nearest folder at or above it that holds ``recipes/``;
``--project`` still wins; recipes of two projects in one call are an error.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from czbuild.cli import cli
from czbuild.errors import RecipeError
from czbuild.recipe.project import bundled_configs, find_project_dir, project_for

DATA = Path(__file__).parent / "data" / "recipes"
RECIPE = """\
model: {path: ../models/tiny.keras}
tile: 128
metadata: {type: SingleClassSemanticSegmentation, classes: [bg, fg]}
"""


def _project(root: Path, *names: str) -> Path:
    (root / "recipes").mkdir(parents=True)
    (root / "models").mkdir()
    shutil.copy(DATA / "_files" / "tiny.keras", root / "models" / "tiny.keras")
    for name in names:
        (root / "recipes" / f"{name}.yaml").write_text(RECIPE, encoding="utf-8")
    return root


@pytest.fixture()
def qa(tmp_path: Path) -> Path:
    return _project(tmp_path / "qa", "nuclei", "other")


@pytest.fixture()
def elsewhere(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere" / "deep"
    folder.mkdir(parents=True)
    return folder


def test_a_recipe_path_selects_its_own_project(qa: Path, elsewhere: Path) -> None:
    recipe = qa / "recipes" / "nuclei.yaml"
    assert project_for([str(recipe)], cwd=elsewhere) == qa
    assert project_for([str(recipe), "tile=256", "+x=1", "~y"], cwd=elsewhere) == qa


def test_a_relative_recipe_path_starts_at_cwd(qa: Path) -> None:
    assert project_for(["qa/recipes/nuclei.yaml"], cwd=qa.parent) == qa
    assert project_for(["recipes/nuclei.yaml"], cwd=qa / "models") == qa  # the cwd's project


def test_names_use_the_project_around_cwd(qa: Path, elsewhere: Path) -> None:
    assert project_for(["nuclei"], cwd=qa / "models") == qa
    assert project_for([], cwd=qa / "recipes") == qa
    assert project_for(["nuclei"], cwd=elsewhere) == find_project_dir(elsewhere) == elsewhere


def test_the_project_option_wins(qa: Path, elsewhere: Path) -> None:
    recipe = qa / "recipes" / "nuclei.yaml"
    assert project_for([str(recipe)], elsewhere, cwd=qa) == elsewhere
    assert project_for([str(recipe)], "deep", cwd=elsewhere.parent) == elsewhere


def test_a_recipe_outside_any_project_is_its_own_project(elsewhere: Path) -> None:
    recipe = elsewhere / "loose.yaml"
    recipe.write_text(RECIPE, encoding="utf-8")
    assert project_for([str(recipe)], cwd=elsewhere.parent) == elsewhere


def test_names_join_the_path_project_when_cwd_has_none(qa: Path, elsewhere: Path) -> None:
    assert project_for([str(qa / "recipes" / "nuclei.yaml"), "other"], cwd=elsewhere) == qa


def test_recipes_of_two_projects_are_refused(qa: Path, tmp_path: Path) -> None:
    second = _project(tmp_path / "second", "nuclei")
    with pytest.raises(RecipeError, match="recipes from different projects in one call"):
        project_for(
            [str(qa / "recipes" / "nuclei.yaml"), str(second / "recipes/nuclei.yaml")], cwd=tmp_path
        )
    with pytest.raises(RecipeError, match=r"different projects.*name it by path"):
        project_for([str(qa / "recipes" / "nuclei.yaml"), "nuclei"], cwd=second)


def test_a_missing_recipe_path_is_left_to_the_loader(qa: Path) -> None:
    assert project_for(["recipes/nope.yaml"], cwd=qa) == qa


def test_show_from_another_folder_uses_the_recipes_project(
    qa: Path, elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(
        cli, ["show", str(qa / "recipes" / "nuclei.yaml"), "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    (variant,) = json.loads(result.output)["variants"]
    assert variant["inputs"] == ["models/tiny.keras"]
    assert variant["spec"]["model"]["path"] == "models/tiny.keras"


def test_show_refuses_two_projects(
    qa: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    second = _project(tmp_path / "second", "other")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli, ["show", str(qa / "recipes" / "nuclei.yaml"), str(second / "recipes" / "other.yaml")]
    )
    assert result.exit_code == 2
    assert "recipes from different projects" in result.stderr


@pytest.mark.parametrize(
    ("inside", "expected"),
    [
        pytest.param(True, "czbuild/configs", id="wheel"),
        pytest.param(False, "configs", id="source-checkout"),
    ],
)
def test_bundled_configs_inside_the_package_or_next_to_it(
    tmp_path: Path, inside: bool, expected: str
) -> None:
    package = tmp_path / "czbuild"
    package.mkdir()
    if inside:
        (package / "configs").mkdir()
    assert bundled_configs(package) == tmp_path / expected
