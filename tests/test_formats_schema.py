"""JSON Schemas of model.json: canonical outputs conform, invalid documents fail."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from jsonschema import Draft202012Validator

from czbuild.errors import MetadataError
from czbuild.formats import vocab
from czbuild.formats.czann import KEYS_BY_VERSION, CzannMetadata
from czbuild.formats.schema import load_schema, validate_model_json

ID = "3f1c2a9e-7b4d-5e8a-9c61-0d2b4f6a8e10"


def canonical(version: str, **changes: object) -> dict:
    fields: dict = {
        "type": "SingleClassSemanticSegmentation",
        "input_shape": (512, 512, 1),
        "output_shape": (512, 512, 2),
        "classes": ("Background", "Nucleus"),
        "min_overlap": (64, 64),
        "model_name": "Nuclei",
        "id": ID,
        "format_version": version,
        "scaling": None if version == "1.0.0" else (2.5e-07, 2.5e-07),
    }
    fields.update(changes)
    return json.loads(CzannMetadata(**fields).to_json_bytes())


@pytest.mark.parametrize("version", vocab.CZANN_VERSIONS)
def test_schema_files_are_valid_2020_12_and_match_the_keys(version: str) -> None:
    schema = load_schema(version)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert tuple(schema["properties"]) == KEYS_BY_VERSION[version]
    text = resources.files("czbuild.schemas").joinpath(f"czann-{version}.schema.json").read_text()
    assert json.loads(text) == schema


VALID = [
    ("1.0.0", {}),
    ("1.1.0", {}),
    ("2.0.0", {}),
    ("2.1.0", {}),
    (
        "1.1.0",
        {
            "type": "Regression",
            "classes": None,
            "output_shape": (512, 512, 3),
            "min_overlap": None,
            "model_name": None,
            "scaling": None,
        },
    ),
    (
        "2.0.0",
        {
            "input_shape": (8, 64, 64, 1),
            "output_shape": (8, 64, 64, 2),
            "min_overlap": (0, 8, 8),
            "scaling": (1e-7, 1e-7, 4e-7),
        },
    ),
    ("2.1.0", {"scaling": (1, 1)}),
]


@pytest.mark.parametrize(
    ("version", "changes"),
    VALID,
    ids=["1.0.0", "1.1.0", "2.0.0", "2.1.0", "regression-1.1.0", "3d-2.0.0", "int-scaling"],
)
def test_canonical_outputs_conform(version: str, changes: dict) -> None:
    assert validate_model_json(canonical(version, **changes), version) == []


def _without(doc: dict, key: str) -> dict:
    return {k: v for k, v in doc.items() if k != key}


INVALID = [
    ("extra-key", "2.1.0", lambda d: {**d, "Color": "red"}, "Color: key is not part"),
    ("missing-id", "2.1.0", lambda d: _without(d, "Id"), "Id: required key is missing"),
    (
        "missing-format-version",
        "2.1.0",
        lambda d: _without(d, "FormatVersion"),
        "FormatVersion: required",
    ),
    (
        "format-version-in-2.0.0",
        "2.0.0",
        lambda d: {**d, "FormatVersion": "2.0.0"},
        "FormatVersion: key is not part",
    ),
    ("wrong-format-version", "2.1.0", lambda d: {**d, "FormatVersion": "2.0.0"}, "FormatVersion:"),
    ("scaling-in-1.0.0", "1.0.0", lambda d: {**d, "Scaling": [1e-6, 1e-6]}, "Scaling: key is not"),
    ("scaling-3-in-1.1.0", "1.1.0", lambda d: {**d, "Scaling": [1e-6] * 3}, "Scaling:"),
    ("scaling-zero", "2.1.0", lambda d: {**d, "Scaling": [0, 1e-6]}, "Scaling[0]:"),
    ("scaling-nan", "2.1.0", lambda d: {**d, "Scaling": [float("nan"), 1e-6]}, "Scaling[0]:"),
    ("scaling-inf", "2.1.0", lambda d: {**d, "Scaling": [float("inf"), 1e-6]}, "Scaling[0]:"),
    ("type-unknown", "2.1.0", lambda d: {**d, "Type": "Segmentation"}, "Type:"),
    ("id-pattern", "2.1.0", lambda d: {**d, "Id": "abc"}, "Id:"),
    ("shape-short", "2.1.0", lambda d: {**d, "InputShape": [512, 512]}, "InputShape:"),
    ("shape-3d-in-1.1.0", "1.1.0", lambda d: {**d, "InputShape": [4, 512, 512, 1]}, "InputShape:"),
    ("shape-zero", "2.1.0", lambda d: {**d, "OutputShape": [512, 0, 2]}, "OutputShape[1]:"),
    ("shape-string", "2.1.0", lambda d: {**d, "InputShape": ["512", 512, 1]}, "InputShape[0]:"),
    ("overlap-odd", "2.1.0", lambda d: {**d, "MinOverlap": [63, 64]}, "MinOverlap[0]:"),
    ("overlap-negative", "2.1.0", lambda d: {**d, "MinOverlap": [-2, 64]}, "MinOverlap[0]:"),
    ("classes-one", "2.1.0", lambda d: {**d, "Classes": ["x"]}, "Classes:"),
    ("classes-number", "2.1.0", lambda d: {**d, "Classes": ["x", 2]}, "Classes[1]:"),
    ("name-empty", "2.1.0", lambda d: {**d, "ModelName": ""}, "ModelName:"),
    ("not-an-object", "2.1.0", lambda d: [d], "(document):"),
]


@pytest.mark.parametrize(
    ("version", "mutate", "expected"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_documents_fail_naming_the_key(version: str, mutate, expected: str) -> None:
    errors = validate_model_json(mutate(canonical(version)), version)
    assert errors, "expected at least one error"
    assert any(e.startswith(expected) for e in errors), errors


def test_unknown_version_is_a_metadata_error() -> None:
    with pytest.raises(MetadataError, match="^FormatVersion:"):
        validate_model_json({}, "3.1.0")


@pytest.mark.parametrize("version", vocab.CZANN_VERSIONS)
def test_committed_schema_is_the_generated_one(version: str) -> None:
    """The committed files are generated from the format tables (write_schema_files)."""
    from czbuild.formats.schema import render_czann_schema

    text = resources.files("czbuild.schemas").joinpath(f"czann-{version}.schema.json").read_text()
    assert text == render_czann_schema(version)


@pytest.mark.parametrize("version", vocab.CZANN_VERSIONS)
def test_schema_tables_are_the_rule_tables(version: str) -> None:
    from czbuild.formats import czann

    schema = load_schema(version)
    props = schema["properties"]
    assert tuple(props["Type"]["enum"]) == vocab.MODEL_TYPES
    assert props["Classes"]["minItems"] == czann.MIN_CLASSES
    ranks = czann.spatial_ranks(version)
    assert (props["MinOverlap"]["minItems"], props["MinOverlap"]["maxItems"]) == (
        min(ranks),
        max(ranks),
    )
    counts = czann.SCALING_COUNTS[version]
    if counts:
        assert (props["Scaling"]["minItems"], props["Scaling"]["maxItems"]) == (
            min(counts),
            max(counts),
        )
    else:
        assert "Scaling" not in props
