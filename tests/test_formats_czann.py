"""CzannMetadata: validation rules, canonical JSON bytes, tolerant reading."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from czbuild.errors import MetadataError
from czbuild.formats.czann import KEYS_BY_VERSION, CzannMetadata, infer_version

EXAMPLE_ID = "3f1c2a9e-7b4d-5e8a-9c61-0d2b4f6a8e10"
EXAMPLE_2_1_0 = (
    b'{"FormatVersion": "2.1.0", "Id": "3f1c2a9e-7b4d-5e8a-9c61-0d2b4f6a8e10", '
    b'"Type": "SingleClassSemanticSegmentation", "InputShape": [512, 512, 1], '
    b'"OutputShape": [512, 512, 2], "MinOverlap": [64, 64], "Classes": ["Background", "Nucleus"], '
    b'"ModelName": "Nuclei", "Scaling": [2.5e-07, 2.5e-07]}'
)


def seg(**changes: object) -> CzannMetadata:
    base = CzannMetadata(
        type="SingleClassSemanticSegmentation",
        input_shape=(512, 512, 1),
        output_shape=(512, 512, 2),
        classes=("Background", "Nucleus"),
        min_overlap=(64, 64),
        model_name="Nuclei",
        scaling=(2.5e-07, 2.5e-07),
        id=EXAMPLE_ID,
    )
    return dataclasses.replace(base, **changes)


def regression(**changes: object) -> CzannMetadata:
    base = CzannMetadata(
        type="Regression",
        input_shape=(1024, 1024, 3),
        output_shape=(1024, 1024, 3),
        id=EXAMPLE_ID,
        format_version="1.1.0",
    )
    return dataclasses.replace(base, **changes)


# --- canonical bytes ------------------------------------------------------------------------


def test_section_2_3_example_is_byte_exact() -> None:
    assert seg().to_json_bytes() == EXAMPLE_2_1_0


def test_regression_1_1_0_example_is_byte_exact() -> None:
    expected = (
        b'{"Id": "3f1c2a9e-7b4d-5e8a-9c61-0d2b4f6a8e10", "Type": "Regression", '
        b'"InputShape": [1024, 1024, 3], "OutputShape": [1024, 1024, 3]}'
    )
    assert regression().to_json_bytes() == expected


def test_canonical_bytes_do_not_depend_on_input_key_order() -> None:
    doc = json.loads(EXAMPLE_2_1_0)
    shuffled = dict(reversed(list(doc.items())))
    assert CzannMetadata.from_json_dict(shuffled).to_json_bytes() == EXAMPLE_2_1_0


@pytest.mark.parametrize(
    ("version", "expected_keys"),
    [
        (
            "1.0.0",
            ["Id", "Type", "InputShape", "OutputShape", "MinOverlap", "Classes", "ModelName"],
        ),
        (
            "1.1.0",
            [
                "Id",
                "Type",
                "InputShape",
                "OutputShape",
                "MinOverlap",
                "Classes",
                "ModelName",
                "Scaling",
            ],
        ),
        (
            "2.0.0",
            [
                "Id",
                "Type",
                "InputShape",
                "OutputShape",
                "MinOverlap",
                "Classes",
                "ModelName",
                "Scaling",
            ],
        ),
        (
            "2.1.0",
            [
                "FormatVersion",
                "Id",
                "Type",
                "InputShape",
                "OutputShape",
                "MinOverlap",
                "Classes",
                "ModelName",
                "Scaling",
            ],
        ),
    ],
    ids=["1.0.0", "1.1.0", "2.0.0", "2.1.0"],
)
def test_only_keys_of_the_version_in_canonical_order(
    version: str, expected_keys: list[str]
) -> None:
    scaling = None if version == "1.0.0" else (2.5e-07, 2.5e-07)
    meta = seg(format_version=version, scaling=scaling)
    doc = json.loads(meta.to_json_bytes())
    assert list(doc) == expected_keys
    assert tuple(doc) == KEYS_BY_VERSION[version]


def test_absent_keys_are_omitted_never_null() -> None:
    meta = seg(classes=None, min_overlap=None, model_name=None, scaling=None)
    text = meta.to_json_bytes().decode("ascii")
    assert "null" not in text
    assert list(json.loads(text)) == ["FormatVersion", "Id", "Type", "InputShape", "OutputShape"]


@pytest.mark.parametrize(
    ("scaling", "expected"),
    [
        ((1.0, 1.0), b'"Scaling": [1.0, 1.0]'),
        ((1, 2), b'"Scaling": [1, 2]'),
        ((1e-06, 2.5e-07), b'"Scaling": [1e-06, 2.5e-07]'),
        ((0.1, 0.30000000000000004), b'"Scaling": [0.1, 0.30000000000000004]'),
        ((1.5e-07, 1.5e-07, 3e-06), b'"Scaling": [1.5e-07, 1.5e-07, 3e-06]'),
    ],
    ids=["float-one-stays-1.0", "ints-stay-ints", "exponent-form", "shortest-roundtrip", "three"],
)
def test_number_formatting(scaling: tuple[float, ...], expected: bytes) -> None:
    out = seg(scaling=scaling).to_json_bytes()
    assert out.endswith(expected + b"}")


def test_non_ascii_is_escaped_and_output_is_one_line() -> None:
    meta = seg(model_name="Zellkern \u00b5m \U0001f52c", classes=("Hintergrund", "K\u00f6rper"))
    out = meta.to_json_bytes()
    assert out.isascii()
    assert b'"ModelName": "Zellkern \\u00b5m \\ud83d\\udd2c"' in out
    assert b'"K\\u00f6rper"' in out
    assert b"\n" not in out and not out.endswith(b" ")
    assert json.loads(out)["ModelName"] == "Zellkern \u00b5m \U0001f52c"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused_when_writing(bad: float) -> None:
    with pytest.raises(MetadataError, match="^Scaling:"):
        seg(scaling=(bad, 1e-6)).to_json_bytes()


def test_to_json_requires_id_unless_excluded() -> None:
    meta = seg(id=None)
    with pytest.raises(MetadataError, match="^Id:"):
        meta.to_json_bytes()
    without = meta.to_json_bytes(include_id=False)
    assert b'"Id"' not in without
    assert without == seg().to_json_bytes().replace(b'"Id": "' + EXAMPLE_ID.encode() + b'", ', b"")


@pytest.mark.parametrize("key", ["input_shape", "output_shape"], ids=["input", "output"])
def test_to_json_requires_shapes(key: str) -> None:
    name = "InputShape" if key == "input_shape" else "OutputShape"
    with pytest.raises(MetadataError, match=f"^{name}:"):
        seg(**{key: None}).to_json_bytes()


def test_to_json_refuses_scaling_for_1_0_0() -> None:
    with pytest.raises(MetadataError, match="^Scaling:.*1.0.0"):
        seg(format_version="1.0.0").to_json_bytes()


def test_id_is_written_lower_case() -> None:
    out = seg(id=EXAMPLE_ID.upper()).to_json_bytes()
    assert out == EXAMPLE_2_1_0


def test_sequences_are_stored_as_tuples() -> None:
    meta = CzannMetadata(
        type="Regression", input_shape=[8, 8, 1], output_shape=range(8, 11), scaling=[1e-6, 1e-6]
    )
    assert meta.input_shape == (8, 8, 1) and meta.scaling == (1e-6, 1e-6)
    assert meta.output_shape == (8, 9, 10)
    hash(meta)


def test_numpy_values_are_written_as_plain_numbers() -> None:
    np = pytest.importorskip("numpy")
    meta = seg(
        input_shape=np.array([512, 512, 1]),
        output_shape=(np.int64(512), 512, 2),
        scaling=np.array([2.5e-07, 2.5e-07]),
    )
    meta.validate()
    assert meta.to_json_bytes() == EXAMPLE_2_1_0


# --- validation -----------------------------------------------------------------------------

VALID = [
    pytest.param(seg(), {}, id="section-2.3-example"),
    pytest.param(regression(), {}, id="regression-1.1.0"),
    pytest.param(seg(input_shape=None, output_shape=None), {}, id="shapes-not-yet-known"),
    pytest.param(
        seg(min_overlap=None, classes=None, model_name=None, scaling=None), {}, id="only-required"
    ),
    pytest.param(seg(format_version="1.0.0", scaling=None), {}, id="1.0.0"),
    pytest.param(
        seg(
            format_version="2.0.0",
            input_shape=(16, 64, 64, 1),
            output_shape=(16, 64, 64, 2),
            min_overlap=(0, 8, 8),
            scaling=(1e-7, 1e-7, 5e-7),
        ),
        {},
        id="3d-2.0.0",
    ),
    pytest.param(seg(min_overlap=(0, 510)), {}, id="overlap-zero-and-max"),
    pytest.param(
        seg(
            type="MultiClassSemanticSegmentation",
            output_shape=(512, 512, 5),
            classes=tuple("abcde"),
        ),
        {},
        id="multiclass",
    ),
    pytest.param(seg(id=EXAMPLE_ID.upper()), {}, id="upper-case-uuid"),
    pytest.param(seg(id=None), {}, id="id-derived-later"),
    pytest.param(seg(scaling=(1, 2)), {}, id="integer-scaling"),
    pytest.param(
        seg(type="ObjectDetection", classes=None, output_shape=(512, 512, 6)),
        {"allow_experimental_types": True},
        id="experimental-allowed",
    ),
    pytest.param(
        seg(type="SingleClassClassification", output_shape=(1, 1, 2)),
        {"allow_experimental_types": True},
        id="classification-other-spatial",
    ),
]


@pytest.mark.parametrize(("meta", "kwargs"), VALID)
def test_valid_metadata_passes(meta: CzannMetadata, kwargs: dict[str, bool]) -> None:
    meta.validate(**kwargs)
    assert meta.problems(**kwargs) == []


INVALID = [
    ("unknown-version", seg(format_version="3.0.0"), "FormatVersion", "unknown"),
    ("unknown-type", seg(type="SemanticSegmentation"), "Type", "did you mean"),
    ("experimental-type", seg(type="ObjectDetection"), "Type", "allow_experimental_types"),
    ("instance-seg-refused", seg(type="MultiClassInstanceSegmentation"), "Type", "unpublished"),
    ("id-not-uuid", seg(id="nuclei-1"), "Id", "not a UUID"),
    ("id-no-hyphens", seg(id=EXAMPLE_ID.replace("-", "")), "Id", EXAMPLE_ID),
    ("id-braces", seg(id="{" + EXAMPLE_ID + "}"), "Id", "hyphenated"),
    ("id-not-string", seg(id=12), "Id", "string"),
    ("input-2-items", seg(input_shape=(512, 512)), "InputShape", "3 items"),
    ("input-5-items", seg(input_shape=(1, 2, 512, 512, 1)), "InputShape", "got 5"),
    ("input-zero-dim", seg(input_shape=(0, 512, 1)), "InputShape", ">= 1"),
    ("input-float-dim", seg(input_shape=(512.0, 512, 1)), "InputShape", "integers"),
    ("input-bool-dim", seg(input_shape=(True, 512, 1)), "InputShape", "integers"),
    ("output-negative", seg(output_shape=(512, -512, 2)), "OutputShape", ">= 1"),
    (
        "3d-in-1.1.0",
        seg(
            format_version="1.1.0",
            input_shape=(4, 512, 512, 1),
            output_shape=(4, 512, 512, 2),
            min_overlap=(0, 64, 64),
        ),
        "InputShape",
        ">= 2.0.0",
    ),
    ("rank-mismatch", seg(output_shape=(1, 512, 512, 2)), "OutputShape", "InputShape has 3"),
    ("seg-spatial-mismatch", seg(output_shape=(256, 256, 2)), "OutputShape", "spatial dims"),
    (
        "regression-spatial-mismatch",
        regression(output_shape=(512, 512, 3)),
        "OutputShape",
        "spatial dims",
    ),
    (
        "seg-one-channel",
        seg(output_shape=(512, 512, 1), classes=None),
        "OutputShape",
        "sigmoid_to_softmax_scores",
    ),
    ("overlap-count", seg(min_overlap=(64,)), "MinOverlap", "one per spatial dim"),
    ("overlap-rank-count", seg(min_overlap=(64, 64, 64)), "MinOverlap", "2 values"),
    ("overlap-odd", seg(min_overlap=(64, 63)), "MinOverlap", "even"),
    ("overlap-negative", seg(min_overlap=(-2, 64)), "MinOverlap", ">= 0"),
    ("overlap-equals-tile", seg(min_overlap=(64, 512)), "MinOverlap", "smaller than the tile"),
    ("overlap-float", seg(min_overlap=(64.0, 64)), "MinOverlap", "integers"),
    (
        "overlap-without-shapes-count",
        seg(input_shape=None, min_overlap=(2,)),
        "MinOverlap",
        "2 or 3",
    ),
    ("classes-single", seg(classes=("Nucleus",)), "Classes", "at least 2"),
    ("classes-duplicate", seg(classes=("a", "a")), "Classes", "duplicate class name"),
    ("classes-empty", seg(classes=("a", " ")), "Classes", "must not be empty"),
    ("classes-count", seg(classes=("a", "b", "c")), "Classes", "last OutputShape dim is 2"),
    ("classes-not-strings", seg(classes=("a", 2)), "Classes", "strings"),
    ("classes-on-regression", regression(classes=("a", "b", "c")), "Classes", "have no classes"),
    ("empty-model-name", seg(model_name="  "), "ModelName", "empty"),
    ("model-name-not-string", seg(model_name=3), "ModelName", "string"),
    ("scaling-in-1.0.0", seg(format_version="1.0.0"), "Scaling", "1.0.0"),
    (
        "scaling-3-in-1.1.0",
        seg(format_version="1.1.0", scaling=(1e-7, 1e-7, 1e-7)),
        "Scaling",
        ">= 2.0.0",
    ),
    ("scaling-1-item", seg(scaling=(1e-7,)), "Scaling", "2 or 3"),
    ("scaling-4-items", seg(scaling=(1e-7,) * 4), "Scaling", "2 or 3"),
    ("scaling-zero", seg(scaling=(0.0, 1e-7)), "Scaling", "> 0"),
    ("scaling-negative", seg(scaling=(-1e-7, 1e-7)), "Scaling", "> 0"),
    ("scaling-nan", seg(scaling=(math.nan, 1e-7)), "Scaling", "finite"),
    ("scaling-inf", seg(scaling=(math.inf, 1e-7)), "Scaling", "finite"),
    ("scaling-bool", seg(scaling=(True, 1e-7)), "Scaling", "numbers"),
    ("scaling-string", seg(scaling=("1e-7", 1e-7)), "Scaling", "numbers"),
]


@pytest.mark.parametrize(
    ("meta", "field", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_each_rule_raises_naming_the_key(meta: CzannMetadata, field: str, fragment: str) -> None:
    with pytest.raises(MetadataError) as info:
        meta.validate()
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_problems_lists_every_violation() -> None:
    meta = seg(type="Nope", min_overlap=(3, 3), classes=("x",))
    fields = [p.field for p in meta.problems()]
    assert fields == ["Type", "MinOverlap", "Classes"]


# --- reading --------------------------------------------------------------------------------

INFERENCE = [
    ("no-scaling", {}, "1.0.0"),
    ("two-scaling", {"Scaling": [1e-6, 1e-6]}, "1.1.0"),
    ("three-scaling", {"Scaling": [1e-6, 1e-6, 1e-6]}, "2.0.0"),
    ("3d-shapes", {"InputShape": [4, 8, 8, 1], "OutputShape": [4, 8, 8, 2]}, "2.0.0"),
    ("declared", {"FormatVersion": "2.1.0"}, "2.1.0"),
]


@pytest.mark.parametrize(
    ("extra", "expected"), [c[1:] for c in INFERENCE], ids=[c[0] for c in INFERENCE]
)
def test_version_is_inferred_without_format_version(extra: dict, expected: str) -> None:
    doc = {
        "Id": EXAMPLE_ID,
        "Type": "Regression",
        "InputShape": [8, 8, 1],
        "OutputShape": [8, 8, 1],
        **extra,
    }
    assert infer_version(doc) == expected
    assert CzannMetadata.from_json_dict(doc).format_version == expected


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0", "2.0.0", "2.1.0"])
def test_round_trip_through_json(version: str) -> None:
    meta = seg(format_version=version, scaling=None if version == "1.0.0" else (1e-6, 2e-6))
    doc = json.loads(meta.to_json_bytes())
    assert CzannMetadata.from_json_dict(doc, format_version=version) == meta
    # Without FormatVersion the lowest consistent version is inferred: same keys, same bytes.
    assert CzannMetadata.from_json_dict(doc).to_json_bytes() == meta.to_json_bytes()


def test_explicit_format_version_overrides_document() -> None:
    doc = json.loads(EXAMPLE_2_1_0)
    doc["FormatVersion"] = "9.9.9"
    assert CzannMetadata.from_json_dict(doc, format_version="2.0.0").format_version == "2.0.0"


def test_reader_is_tolerant_of_unknown_keys_and_nulls() -> None:
    doc = {
        "Type": "Regression",
        "InputShape": [8, 8, 1],
        "OutputShape": [8, 8, 1],
        "Classes": None,
        "Scaling": None,
        "Vendor": {"x": 1},
    }
    meta = CzannMetadata.from_json_dict(doc)
    assert meta.id is None and meta.classes is None and meta.scaling is None


BASE_DOC = {
    "Id": EXAMPLE_ID,
    "Type": "Regression",
    "InputShape": [8, 8, 1],
    "OutputShape": [8, 8, 1],
}
READ_ERRORS = [
    ("missing-type", {"Type": None}, "Type"),
    ("missing-input", {"InputShape": None}, "InputShape"),
    ("missing-output", {"OutputShape": None}, "OutputShape"),
    ("type-not-string", {"Type": 3}, "Type"),
    ("shape-not-array", {"InputShape": "512x512"}, "InputShape"),
    ("shape-float", {"OutputShape": [8.5, 8, 1]}, "OutputShape"),
    ("shape-bool", {"InputShape": [True, 8, 1]}, "InputShape"),
    ("classes-not-strings", {"Classes": ["a", 1]}, "Classes"),
    ("overlap-strings", {"MinOverlap": ["8", "8"]}, "MinOverlap"),
    ("scaling-strings", {"Scaling": ["1e-6", "1e-6"]}, "Scaling"),
    ("scaling-not-array", {"Scaling": 1e-6}, "Scaling"),
    ("id-number", {"Id": 5}, "Id"),
    ("name-list", {"ModelName": ["a"]}, "ModelName"),
    ("format-version-number", {"FormatVersion": 2.1}, "FormatVersion"),
]


@pytest.mark.parametrize(
    ("change", "field"), [c[1:] for c in READ_ERRORS], ids=[c[0] for c in READ_ERRORS]
)
def test_reader_names_the_key_of_a_wrong_type(change: dict, field: str) -> None:
    doc = {**BASE_DOC, **change}
    doc = {k: v for k, v in doc.items() if v is not None}
    with pytest.raises(MetadataError) as info:
        CzannMetadata.from_json_dict(doc)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_reader_refuses_a_non_object() -> None:
    with pytest.raises(MetadataError, match="JSON object"):
        CzannMetadata.from_json_dict(["x"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("meta", "field", "index"),
    [
        (seg(min_overlap=(64, 63)), "MinOverlap", 1),
        (seg(scaling=(1e-7, -1e-7)), "Scaling", 1),
        (seg(classes=("a", "a")), "Classes", 1),
        (seg(min_overlap=(64,)), "MinOverlap", None),
    ],
    ids=["overlap-odd", "scaling-negative", "classes-duplicate", "overlap-count"],
)
def test_problems_name_the_array_item(meta: CzannMetadata, field: str, index: int | None) -> None:
    """The recipe layer maps field + index to its key (metadata.min_overlap[1])."""
    (problem,) = meta.problems()
    assert (problem.field, problem.index) == (field, index)


def test_the_recipe_reports_the_format_rule_verbatim(tmp_path) -> None:
    """One rule, two entry points: the recipe error carries the format layer's message."""
    from czbuild.errors import RecipeError
    from czbuild.recipe import load_variants

    (tmp_path / "recipes").mkdir()
    (tmp_path / "m.keras").write_bytes(b"")
    (tmp_path / "recipes" / "r.yaml").write_text(
        "model:\n  path: ../m.keras\ntile: 256\nmetadata:\n"
        "  type: SingleClassSemanticSegmentation\n  classes: [a, b]\n  min_overlap: [64, 63]\n"
    )
    with pytest.raises(RecipeError) as info:
        load_variants(["r"], project_dir=tmp_path)
    library = str(seg(min_overlap=(64, 63)).problems()[0]).removeprefix("MinOverlap: ")
    assert str(info.value).endswith(f"metadata.min_overlap[1]: {library}")
