"""The recipe schema: complete, strict, and its committed JSON Schema in sync."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from czbuild import ops
from czbuild.formats import vocab
from czbuild.recipe import RecipeSpec, load_variants, recipe_json_schema, render_json_schema

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "czbuild" / "schemas" / "recipe.schema.json"
DATA = Path(__file__).parent / "data" / "recipes"
VALID = sorted(DATA.glob("valid_*.yaml")) + sorted((ROOT / "recipes").glob("*.yaml"))


def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(recipe_json_schema())


def test_committed_schema_is_in_sync() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render_json_schema(), (
        "czbuild/schemas/recipe.schema.json is stale: run "
        "`python -m czbuild schema > czbuild/schemas/recipe.schema.json`"
    )


def test_schema_is_a_valid_json_schema() -> None:
    schema = recipe_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"].endswith("2020-12/schema")


@pytest.mark.parametrize("path", VALID, ids=[p.name for p in VALID])
def test_valid_recipes_validate_against_the_json_schema(path: Path) -> None:
    _validator().validate(yaml.safe_load(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    "name",
    [
        "invalid_unknown_key",
        "invalid_enum_type",
        "invalid_wrong_type",
        "invalid_tile_zero",
        "invalid_sha256_malformed",
        "invalid_op_unknown",
        "invalid_zen_product",
    ],
)
def test_invalid_recipes_fail_the_json_schema(name: str) -> None:
    data = yaml.safe_load((DATA / f"{name}.yaml").read_text(encoding="utf-8"))
    assert list(_validator().iter_errors(data))


def _props(schema: dict[str, Any], ref: str | None = None) -> set[str]:
    node = schema["$defs"][ref] if ref else schema
    return set(node["properties"])


def test_every_library_option_has_a_key() -> None:
    schema = recipe_json_schema()
    assert _props(schema) >= {
        "name",
        "model",
        "format",
        "format_version",
        "opset",
        "target",
        "tile",
        "spatial_dims",
        "preprocessing",
        "postprocessing",
        "metadata",
        "allow_experimental_types",
        "sweep",
        "defaults",
    }
    assert _props(schema, "ModelSource") == {
        "path",
        "factory",
        "onnx",
        "torch",
        "channels_first",
        "sha256",
        "custom_objects",
        "inputs",
    }
    assert _props(schema, "Target") == {"product", "version"}
    assert _props(schema, "Metadata") == {
        "type",
        "classes",
        "model_name",
        "min_overlap",
        "scaling",
        "id",
        "license",
        "pixel_type",
        "color_handling",
        "border_size",
    }


def _enum_of(node: dict[str, Any]) -> list[str]:
    for option in node.get("anyOf", [node]):
        if "enum" in option:
            return option["enum"]
    raise AssertionError(node)


def test_enums_come_from_the_vocabularies() -> None:
    defs = recipe_json_schema()["$defs"]
    assert _enum_of(defs["Metadata"]["properties"]["type"]) == list(vocab.MODEL_TYPES)
    assert _enum_of(defs["Metadata"]["properties"]["color_handling"]) == list(vocab.COLOR_HANDLINGS)
    assert _enum_of(defs["Metadata"]["properties"]["pixel_type"]["anyOf"][0]) == list(
        vocab.PIXEL_TYPES
    )
    top = recipe_json_schema()["properties"]
    assert _enum_of(top["format_version"]) == list(vocab.ALL_VERSIONS)


def test_every_registered_op_is_in_the_schema() -> None:
    items = recipe_json_schema()["properties"]["preprocessing"]["items"]["anyOf"]
    consts = {alt["properties"]["op"]["const"] for alt in items if alt.get("type") == "object"}
    assert consts == set(ops.OPS)
    for alt in items:
        if alt.get("type") == "object":
            name = alt["properties"]["op"]["const"]
            assert set(alt["properties"]) == {"op", *ops.OPS[name].arg_names}


def test_resolved_spec_round_trips_through_json(tmp_path: Path) -> None:
    shutil.copytree(DATA, tmp_path / "recipes")
    for variant in load_variants(["valid_full_czann", "valid_full_czmodel"], project_dir=tmp_path):
        plain = json.loads(json.dumps(variant.spec.to_plain()))
        assert RecipeSpec.from_plain(plain) == variant.spec


def test_resolved_spec_is_frozen(tmp_path: Path) -> None:
    shutil.copytree(DATA, tmp_path / "recipes")
    (variant,) = load_variants(["valid_minimal"], project_dir=tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        variant.spec.opset = 12  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        variant.spec.verify.seed = 3  # type: ignore[misc]
