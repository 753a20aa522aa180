"""Every user error in a recipe or an override is a one-line RecipeError naming file, key, line.

Table-driven over the fixtures ``tests/data/recipes/invalid_*.yaml`` (one per case). Each row
asserts the error type, the recipe file and the dotted key in the message, the line where the
YAML shows it, and a fragment of the advice. The fixtures are copied into a temporary project
so that the bundled configs/ are used as the fallback search path.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from czbuild.errors import CzbuildError, RecipeError
from czbuild.recipe import list_recipes, load_variants

DATA = Path(__file__).parent / "data" / "recipes"


# (fixture stem without "invalid_", key in the message (None: no key), line or None, fragment)
CASES = [
    ("malformed_yaml", None, 6, "malformed YAML"),
    ("empty", None, None, "the recipe is empty"),
    ("list", None, 2, "is a list, not a mapping"),
    ("scalar", None, 1, "not a mapping"),
    ("duplicate_key", "tile", 7, "duplicate key 'tile' (first written on line 3)"),
    ("hydra_section", "hydra", 1, "must not configure Hydra"),
    ("unknown_key", "metdata", 4, "did you mean 'metadata'?"),
    ("unknown_nested_key", "metadata.clases", 5, "did you mean 'classes'?"),
    ("wrong_type", "tile", 3, "expected an integer, got str 'large'"),
    ("wrong_type_bool_class", "metadata.classes[1]", 5, "quote it"),
    ("enum_type", "metadata.type", 4, "did you mean 'SingleClassSemanticSegmentation'?"),
    ("enum_pixel_type", "metadata.pixel_type", 7, "did you mean 'Gray16'?"),
    ("enum_format", "format", 3, "did you mean 'czann'?"),
    ("zen_product", "target.product", 4, "did you mean 'blue'?"),
    ("zen_version_number", "target.version", 5, "quoted string"),
    ("missing_model", "model", None, "required key is missing"),
    ("missing_type", "metadata.type", 3, "required for czann"),
    ("missing_model_file", "model.path", 2, "model not found"),
    ("missing_license", "metadata.license", 6, "licence file not found"),
    ("missing_custom_objects", "model.custom_objects[0]", 3, "custom-objects file not found"),
    ("missing_factory_file", "model.factory", 2, "factory file not found"),
    ("missing_config", "defaults[0]", 2, "did you mean 'zen-blue-3.5'?"),
    ("missing_group", "defaults[0]", 2, "did you mean 'target'?"),
    ("model_path_and_factory", "model", 1, "exactly one of 'path'"),
    ("model_not_savedmodel", "model.path", 2, "not a SavedModel"),
    ("model_unsupported_file", "model.path", 2, "unsupported model file"),
    ("factory_without_function", "model.factory", 2, "file.py:function"),
    ("sha256_malformed", "model.sha256", 3, "not a sha256 hex digest"),
    ("tile_zero", "tile", 3, "must be at least 1"),
    ("tile_negative_dims", "spatial_dims[1]", 3, "must be at least 1"),
    ("tile_sweep_invalid", "tile", 8, "variant invalid_tile_sweep_invalid@tile=0"),
    ("tile_and_dims", "spatial_dims", 4, "not both"),
    ("overlap_ge_tile", "metadata.min_overlap[0]", 7, "not smaller than the tile size 256"),
    ("overlap_ge_tile_sweep", "metadata.min_overlap[0]", 7, "@tile=64"),
    ("overlap_odd", "metadata.min_overlap[1]", 7, "must be even"),
    ("overlap_count", "metadata.min_overlap", 7, "one per spatial dim"),
    ("target_cannot_read_version", "format_version", 6, "ZEN Core 3.4 cannot read czann 2.1.0"),
    ("target_cannot_read_family", "target", 2, "ZEN Blue 3.2 cannot read any czann version"),
    ("format_version_family", "format_version", 4, "set format: czmodel"),
    ("opset_too_high", "opset", 4, "too high for format version 1.1.0 (at most 12)"),
    ("opset_savedmodel", "opset", 5, "remove opset"),
    ("sweep_unknown_key", "sweep.tiles", 8, "did you mean 'tile'?"),
    ("sweep_unknown_nested_key", "sweep.metadata.clases", 8, "did you mean 'classes'?"),
    ("sweep_not_a_list", "sweep.tile", 8, "non-empty list"),
    ("min_overlap_on_czmodel", "metadata.min_overlap", 9, "use border_size"),
    ("border_on_czann", "metadata.border_size", 7, "use min_overlap"),
    ("border_too_big", "metadata.border_size", 9, "larger than 180"),
    ("legacy_without_tile", "tile", None, "needs a fixed tile size"),
    ("legacy_without_pixel_type", "metadata.pixel_type", 5, "required for czmodel"),
    ("classes_one", "metadata.classes", 5, "at least 2"),
    ("classes_on_regression", "metadata.classes", 5, "Regression models have no classes"),
    ("scaling_count", "metadata.scaling", 7, "exactly 2 values"),
    ("scaling_in_v100", "metadata.scaling", 7, "CZANN 1.0.0 has no Scaling"),
    ("scaling_negative", "metadata.scaling[1]", 6, "must be > 0"),
    ("resolver_env", "metadata.model_name", 6, "resolver ${oc.env:...} is not allowed"),
    ("resolver_now", "metadata.model_name", 6, "resolver ${now:...} is not allowed"),
    ("interpolation_missing", "metadata.model_name", 6, "cannot resolve"),
    ("op_unknown", "preprocessing[1].op", 5, "did you mean 'normalization'?"),
    ("op_bad_argument", "preprocessing[0].std[0]", 6, "must not be 0"),
    ("experimental_type", "metadata.type", 4, "allow_experimental_types: true"),
    ("name_mismatch", "name", 1, "differs from the file name"),
    ("model_id", "metadata.id", 6, "is not a UUID"),
    ("verify_unknown_key", "verify.tolerence", 8, "did you mean 'tolerance'?"),
    ("verify_tolerance_negative", "verify.tolerance", 8, "must be at least 0"),
    ("verify_tolerance_too_big", "verify.tolerance", 8, "must be at most 1"),
    ("verify_tiling_not_bool", "verify.tiling", 8, "expected true or false"),
    ("verify_seed_float", "verify.seed", 8, "expected an integer"),
    ("verify_max_tile_small", "verify.tiling_max_tile", 8, "0 (no limit) or at least 128"),
    ("verify_not_a_mapping", "verify", 7, "expected a mapping"),
]


def test_every_invalid_fixture_has_a_row() -> None:
    fixtures = {p.stem.removeprefix("invalid_") for p in DATA.glob("invalid_*.yaml")}
    assert fixtures == {row[0] for row in CASES}


@pytest.mark.parametrize(("case", "key", "line", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_invalid_recipe(
    project: Path, case: str, key: str | None, line: int | None, fragment: str
) -> None:
    name = f"invalid_{case}"
    with pytest.raises(RecipeError) as info:
        load_variants([name], project_dir=project)
    err = info.value
    message = str(err)
    assert "\n" not in message
    assert isinstance(err, CzbuildError) and err.exit_code != 0
    assert err.file == f"recipes/{name}.yaml"
    assert message.startswith(f"recipes/{name}.yaml")
    assert err.key == key
    if key is not None:
        assert f"{key}: " in message
    assert err.line == line
    if line is not None:
        assert message.startswith(f"recipes/{name}.yaml:{line}: ")
    assert fragment in message


def test_invalid_recipe_by_path(project: Path) -> None:
    path = project / "recipes" / "invalid_tile_zero.yaml"
    with pytest.raises(RecipeError, match=r"invalid_tile_zero\.yaml:3: tile: "):
        load_variants([path], project_dir=project)


def test_loading_everything_stops_at_the_first_invalid_recipe(project: Path) -> None:
    assert "invalid_border_on_czann" in list_recipes(project)
    with pytest.raises(RecipeError, match="invalid_"):
        load_variants(project_dir=project)


# (overrides, key in message, fragment)
OVERRIDE_CASES = [
    (["tile=["], "tile", "invalid override 'tile=['"),
    (["target=zen-blue-9"], "target", "did you mean"),
    (["metdata.classes=[a,b]"], "metdata", "did you mean 'metadata'?"),
    (["+metadata.colour=red"], "metadata.colour", "unknown key 'colour'"),
    (["tile=interval(0,1)"], "tile", "only lists of values"),
    (["hydra.job.name=x"], "hydra.job.name", "cannot be overridden"),
    (["spatial_dims=[64,64]"], "spatial_dims", "add it with +spatial_dims=[64,64]"),
    (["+metadata.model_name=${oc.env:HOME}"], "metadata.model_name", "is not allowed"),
    (["tile=0"], "tile", "from the command line: tile=0"),
    (["tile=128,2"], "metadata.min_overlap[0]", "variant valid_factory_sweep@"),
    (["target=zen-blue-3.2"], "target", "cannot read any czann version"),
    (["format=czmodel"], "metadata.min_overlap", "use border_size"),
]


@pytest.mark.parametrize(
    ("overrides", "key", "fragment"), OVERRIDE_CASES, ids=[" ".join(c[0]) for c in OVERRIDE_CASES]
)
def test_invalid_override(project: Path, overrides: list[str], key: str, fragment: str) -> None:
    with pytest.raises(RecipeError) as info:
        load_variants(["valid_factory_sweep"], overrides, project_dir=project)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("recipes/valid_factory_sweep.yaml")
    assert info.value.key == key
    assert fragment in message


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        pytest.param("nucleus", "no recipe 'nucleus'", id="unknown-name"),
        pytest.param("valid_minimall", "did you mean 'valid_minimal'?", id="did-you-mean"),
        pytest.param("recipes/nope.yaml", "recipe file not found", id="missing-path"),
    ],
)
def test_unknown_recipe(project: Path, name: str, fragment: str) -> None:
    with pytest.raises(RecipeError, match=fragment.replace("?", r"\?")):
        load_variants([name], project_dir=project)
