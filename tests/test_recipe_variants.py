"""The recipe layer's API: list_recipes, load_variants, Variant, and resolution rules."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path, PurePosixPath

import pytest

from czbuild.errors import RecipeError
from czbuild.recipe import Variant, find_project_dir, list_recipes, load_variants

DATA = Path(__file__).parent / "data" / "recipes"

CZANN = """\
model: {path: _files/tiny.keras}
format: czann
tile: 256
metadata: {type: SingleClassSemanticSegmentation, classes: [bg, fg]}
"""
CZMODEL = """\
model: {path: _files/tiny.keras}
format: czmodel
tile: 256
metadata: {classes: [bg, fg], pixel_type: Gray16, color_handling: ConvertToMonochrome}
"""


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    shutil.copytree(DATA, tmp_path / "recipes")
    (tmp_path / "recipes" / "czann_recipe.yaml").write_text(CZANN, encoding="utf-8")
    (tmp_path / "recipes" / "czmodel_recipe.yaml").write_text(CZMODEL, encoding="utf-8")
    return tmp_path


def _one(project: Path, name: str, overrides: tuple[str, ...] = ()) -> Variant:
    (variant,) = load_variants([name], overrides, project_dir=project)
    return variant


def test_list_recipes_sorted_yaml_only(tmp_path: Path) -> None:
    assert list_recipes(tmp_path) == []
    (tmp_path / "recipes").mkdir()
    for name in ("b.yaml", "a.yaml", "notes.txt", "c.yml"):
        (tmp_path / "recipes" / name).write_text("x: 1\n")
    (tmp_path / "recipes" / "dir.yaml").mkdir()
    assert list_recipes(tmp_path) == ["a", "b"]


def test_find_project_dir_walks_up(tmp_path: Path) -> None:
    (tmp_path / "recipes").mkdir()
    deep = tmp_path / "models" / "sub"
    deep.mkdir(parents=True)
    assert find_project_dir(deep) == tmp_path
    lonely = tmp_path.parent / f"{tmp_path.name}-lonely"
    lonely.mkdir()
    assert find_project_dir(lonely) == lonely


def test_load_all_recipes_sorted(tmp_path: Path) -> None:
    (tmp_path / "recipes").mkdir()
    shutil.copytree(DATA / "_files", tmp_path / "recipes" / "_files")
    for name in ("zeta", "alpha", "mid"):
        (tmp_path / "recipes" / f"{name}.yaml").write_text(CZANN)
    assert [v.recipe for v in load_variants(project_dir=tmp_path)] == ["alpha", "mid", "zeta"]
    assert [v.recipe for v in load_variants(["zeta", "alpha", "zeta"], project_dir=tmp_path)] == [
        "zeta",
        "alpha",
    ]


def test_recipe_by_name_or_path(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    by_name = _one(project, "valid_minimal")
    by_path = _one(project, str(project / "recipes" / "valid_minimal.yaml"))
    monkeypatch.chdir(project)
    by_relative = _one(project, "recipes/valid_minimal.yaml")
    assert by_name == by_path == by_relative


def test_recipe_outside_the_recipes_folder(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    shutil.copytree(DATA / "_files", other / "_files")
    (other / "side.yaml").write_text(CZANN)
    variant = _one(project, str(other / "side.yaml"))
    assert variant.recipe == "side" and variant.spec.model.path == "elsewhere/_files/tiny.keras"


def test_variant_fields(project: Path) -> None:
    variant = _one(project, "valid_full_czann")
    assert dataclasses.is_dataclass(variant)
    with pytest.raises(dataclasses.FrozenInstanceError):
        variant.name = "x"  # type: ignore[misc]
    assert variant.recipe == variant.name == "valid_full_czann"
    assert variant.recipe_file == project / "recipes" / "valid_full_czann.yaml"
    assert variant.project_dir == project and project.is_absolute()
    assert variant.output == PurePosixPath("valid_full_czann/default/valid_full_czann.czann")
    files = project / "recipes" / "_files"
    assert variant.inputs == (files / "tiny.keras", files / "layers.py", files / "LICENSE.txt")
    assert variant.model_source == str(files / "tiny.keras")
    assert variant.license_file == files / "LICENSE.txt"
    assert variant.custom_object_files == (files / "layers.py",)
    assert len(variant.digest) == 64


@pytest.mark.parametrize(
    ("name", "kind", "source_suffix", "function"),
    [
        pytest.param("valid_minimal", "keras", "_files/tiny.keras", None, id="keras"),
        pytest.param("valid_regression_h5", "h5", "_files/tiny.h5", None, id="h5"),
        pytest.param(
            "valid_full_czmodel", "savedmodel", "_files/saved_model", None, id="savedmodel"
        ),
        pytest.param("valid_factory_sweep", "factory", "_files/factory.py", "build", id="factory"),
    ],
)
def test_model_source_kinds(
    project: Path, name: str, kind: str, source_suffix: str, function: str | None
) -> None:
    variant = load_variants([name], project_dir=project)[0]
    assert variant.spec.model.kind == kind
    assert variant.spec.model.path == f"recipes/{source_suffix}"
    assert variant.spec.model.function == function
    assert variant.inputs[0] == project / "recipes" / source_suffix
    expected = str(project / "recipes" / source_suffix) + (f":{function}" if function else "")
    assert variant.model_source == expected


# target option -> (czann version or None if unreadable, czmodel version)
TARGETS = {
    "zen-blue-3.2": (None, "3.0.0"),
    "zen-blue-3.4": (None, "3.1.0"),
    "zen-blue-3.5": ("1.1.0", "3.1.0"),
    "zen-blue-3.13": ("2.1.0", "3.1.0"),
    "zen-core-3.1": (None, "3.0.0"),
    "zen-core-3.3": (None, "3.1.0"),
    "zen-core-3.4": ("1.1.0", "3.1.0"),
    "zen-core-3.13": ("2.1.0", "3.1.0"),
}
OPSETS = {"1.1.0": 12, "2.1.0": 18, "3.1.0": 12, "3.0.0": None}


@pytest.mark.parametrize("target", sorted(TARGETS), ids=sorted(TARGETS))
@pytest.mark.parametrize("family", ["czann", "czmodel"], ids=["czann", "czmodel"])
def test_target_picks_newest_readable_version(project: Path, target: str, family: str) -> None:
    expected = TARGETS[target][0 if family == "czann" else 1]
    recipe = f"{family}_recipe"
    if expected is None:
        with pytest.raises(RecipeError, match=f"cannot read any {family} version"):
            load_variants([recipe], (f"target={target}",), project_dir=project)
        return
    spec = _one(project, recipe, (f"target={target}",)).spec
    assert (spec.format, spec.format_version, spec.opset) == (family, expected, OPSETS[expected])


@pytest.mark.parametrize(
    ("recipe", "overrides", "version", "opset"),
    [
        pytest.param("czann_recipe", (), "2.1.0", 18, id="czann-default"),
        pytest.param("czmodel_recipe", (), "3.1.0", 12, id="czmodel-default"),
        pytest.param("czann_recipe", ("+format_version=2.0.0",), "2.0.0", 12, id="explicit"),
        pytest.param(
            "czann_recipe", ("+format_version=1.0.0", "+opset=11"), "1.0.0", 11, id="lower-opset"
        ),
        pytest.param(
            "czmodel_recipe", ("+format_version=3.0.0",), "3.0.0", None, id="savedmodel-payload"
        ),
        pytest.param(
            "czann_recipe",
            ("+format_version=1.1.0", "+target=zen-blue-3.13"),
            "1.1.0",
            12,
            id="older-than-target-allows",
        ),
    ],
)
def test_version_and_opset(
    project: Path, recipe: str, overrides: tuple[str, ...], version: str, opset: int | None
) -> None:
    spec = _one(project, recipe, overrides).spec
    assert (spec.format_version, spec.opset) == (version, opset)


def test_format_inferred_from_format_version(project: Path) -> None:
    text = CZMODEL.replace("format: czmodel\n", "format_version: 3.0.0\n")
    (project / "recipes" / "inferred.yaml").write_text(text)
    assert _one(project, "inferred").spec.format == "czmodel"


def test_metadata_defaults_and_normalisation(project: Path) -> None:
    legacy = _one(project, "czmodel_recipe").spec.metadata
    assert legacy.model_name == "czmodel_recipe"
    assert legacy.type == "SingleClassSemanticSegmentation"
    assert legacy.pixel_type == ("Gray16",)
    assert legacy.border_size == 0
    assert legacy.min_overlap is None and legacy.scaling is None
    full = _one(project, "valid_full_czann").spec.metadata
    assert full.id == "3f1c2a9e-7b4d-5e8a-9c61-0d2b4f6a8e10"
    assert full.scaling == (1e-7, 2e-7, 5e-7)
    assert full.pixel_type is None and full.border_size is None


def test_ops_are_normalised(project: Path) -> None:
    spec = _one(project, "valid_full_czann").spec
    assert spec.preprocessing[0] == {"op": "rgb_to_bgr"}
    assert spec.preprocessing[2] == {"op": "normalization", "mean": [0.5, 0.5, 0.5], "std": [0.25]}
    assert spec.postprocessing == (
        {"op": "sigmoid_to_softmax_scores", "positive": "Cell", "positive_channel": 0},
    )


def test_same_recipe_name_twice_is_refused(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(DATA / "_files", other / "_files")
    (other / "czann_recipe.yaml").write_text(CZANN)
    with pytest.raises(RecipeError, match="writes the same output"):
        load_variants(["czann_recipe", str(other / "czann_recipe.yaml")], project_dir=project)


def test_every_public_name_resolves() -> None:
    from czbuild import recipe

    assert sorted(recipe.__all__) == sorted(recipe._EXPORTS)
    for name in recipe.__all__:
        assert getattr(recipe, name).__name__ == name
    with pytest.raises(AttributeError):
        recipe.no_such_name  # noqa: B018
