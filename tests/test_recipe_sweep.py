"""Sweeps: recipe ``sweep:`` sections and command-line sweeps -> named, deduplicated variants."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from czbuild.recipe import load_variants
from czbuild.recipe.compose import parse_overrides
from czbuild.recipe.sweep import format_value, plan_points, variant_dir, variant_name

DATA = Path(__file__).parent / "data" / "recipes"
GROUPS = {"target": ["zen-blue-3.13", "zen-blue-3.5"], "format": ["czann", "czmodel"]}


def _names(project: Path, name: str, overrides: tuple[str, ...] = ()) -> list[str]:
    return [v.name for v in load_variants([name], overrides, project_dir=project)]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(512, "512", id="int"),
        pytest.param(2e-7, "2e-07", id="float"),
        pytest.param("czann", "czann", id="str"),
        pytest.param(True, "true", id="bool"),
        pytest.param(None, "null", id="none"),
        pytest.param(["bg", "fg"], "[bg,fg]", id="list"),
        pytest.param(
            {"product": "blue", "version": "3.5"}, "{product:blue,version:3.5}", id="dict"
        ),
    ],
)
def test_format_value(value: Any, text: str) -> None:
    assert format_value(value) == text


@pytest.mark.parametrize(
    ("items", "name", "folder"),
    [
        pytest.param((), "nuclei", "default", id="no-sweep"),
        pytest.param((("tile", "512"),), "nuclei@tile=512", "tile=512", id="one-key"),
        pytest.param(
            (("tile", "512"), ("format", "czann")),
            "nuclei@format=czann,tile=512",
            "format=czann,tile=512",
            id="sorted-keys",
        ),
    ],
)
def test_variant_name_and_dir(items: tuple[tuple[str, str], ...], name: str, folder: str) -> None:
    assert variant_name("nuclei", items) == name
    assert variant_dir(items) == folder


@pytest.mark.parametrize(
    "items",
    [
        pytest.param((("metadata.classes", "[a b,c/d]"),), id="spaces-slashes"),
        pytest.param((("metadata.model_name", "x" * 200),), id="long"),
        pytest.param((("metadata.model_name", "..\\..\\evil"),), id="traversal"),
    ],
)
def test_variant_dir_is_filesystem_safe(items: tuple[tuple[str, str], ...]) -> None:
    folder = variant_dir(items)
    assert re.fullmatch(r"[A-Za-z0-9._,=+-]{1,80}", folder)
    assert PurePosixPath(folder).name == folder and folder not in (".", "..")


def test_variant_dirs_stay_distinct_after_sanitising() -> None:
    assert variant_dir((("k", "a b"),)) != variant_dir((("k", "a_b"),))


def test_plan_recipe_sweep_is_a_product_in_key_order() -> None:
    points = plan_points(
        {"tile": [128, 256], "target": ["zen-blue-3.13", "zen-blue-3.5"]},
        [],
        groups=GROUPS,
        groups_in_defaults=frozenset({"target"}),
    )
    assert [p.items for p in points] == [
        (("target", "zen-blue-3.13"), ("tile", "128")),
        (("target", "zen-blue-3.13"), ("tile", "256")),
        (("target", "zen-blue-3.5"), ("tile", "128")),
        (("target", "zen-blue-3.5"), ("tile", "256")),
    ]
    assert points[0].group_overrides == ("target=zen-blue-3.13",)
    assert points[0].assignments == (("tile", 128),)


def test_plan_appends_groups_missing_from_defaults() -> None:
    (point,) = plan_points(
        {}, parse_overrides(["format=czmodel"]), groups=GROUPS, groups_in_defaults=frozenset()
    )
    assert point.group_overrides == ("+format=czmodel",)


def test_plan_command_line_value_replaces_recipe_sweep() -> None:
    points = plan_points(
        {"tile": [128, 256]},
        parse_overrides(["tile=1024"]),
        groups=GROUPS,
        groups_in_defaults=frozenset(),
    )
    assert [p.items for p in points] == [(("tile", "1024"),)]
    assert points[0].value_overrides == ("tile=1024",)
    assert points[0].assignments == ()


def test_plan_combines_recipe_and_command_line_sweeps() -> None:
    points = plan_points(
        {"tile": [128, 256]},
        parse_overrides(["format=czann,czmodel"]),
        groups=GROUPS,
        groups_in_defaults=frozenset(),
    )
    assert len(points) == 4
    assert {p.items for p in points} == {
        (("format", f), ("tile", t)) for f in ("czann", "czmodel") for t in ("128", "256")
    }


def test_recipe_sweep_variants(project: Path) -> None:
    variants = load_variants(["valid_factory_sweep"], project_dir=project)
    assert [v.name for v in variants] == [
        "valid_factory_sweep@target=zen-blue-3.13,tile=128",
        "valid_factory_sweep@target=zen-blue-3.13,tile=256",
        "valid_factory_sweep@target=zen-blue-3.5,tile=128",
        "valid_factory_sweep@target=zen-blue-3.5,tile=256",
    ]
    assert [v.spec.format_version for v in variants] == ["2.1.0", "2.1.0", "1.1.0", "1.1.0"]
    assert variants[0].output == PurePosixPath(
        "valid_factory_sweep/target=zen-blue-3.13,tile=128/valid_factory_sweep.czann"
    )
    assert variants[0].sweep == (("target", "zen-blue-3.13"), ("tile", "128"))
    assert len({v.output for v in variants}) == len({v.digest for v in variants}) == 4


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        pytest.param(
            ("tile=1024",),
            ["@target=zen-blue-3.13,tile=1024", "@target=zen-blue-3.5,tile=1024"],
            id="replace-one",
        ),
        pytest.param(
            ("tile=64,1024", "target=zen-blue-3.13"),
            ["@target=zen-blue-3.13,tile=64", "@target=zen-blue-3.13,tile=1024"],
            id="replace-both",
        ),
        pytest.param(
            ("target=zen-blue-3.13", "tile=range(64,193,64)"),
            [f"@target=zen-blue-3.13,tile={t}" for t in (64, 128, 192)],
            id="range",
        ),
        pytest.param(
            ("target=zen-blue-3.13", "tile=128", "opset=16,17"),
            ["@opset=16,target=zen-blue-3.13,tile=128", "@opset=17,target=zen-blue-3.13,tile=128"],
            id="new-axis",
        ),
    ],
)
def test_command_line_sweeps(project: Path, overrides: tuple[str, ...], names: list[str]) -> None:
    overrides = tuple("++opset=16,17" if o == "opset=16,17" else o for o in overrides)
    assert _names(project, "valid_factory_sweep", overrides) == [
        "valid_factory_sweep" + n for n in names
    ]


def test_command_line_sweep_on_a_recipe_without_sweep(project: Path) -> None:
    assert _names(project, "valid_regression_h5", ("tile=64,128",)) == [
        "valid_regression_h5@tile=64",
        "valid_regression_h5@tile=128",
    ]
    assert _names(project, "valid_regression_h5") == ["valid_regression_h5"]


def test_format_sweep_from_the_command_line(project: Path) -> None:
    variants = load_variants(
        ["valid_regression_h5"],
        (
            "format=czann,czmodel",
            "~target",
            "metadata.type=SingleClassSemanticSegmentation",
            "~metadata.scaling",
            "+metadata.classes=[a,b]",
            "+metadata.pixel_type=Gray8",
            "+metadata.color_handling=ConvertToMonochrome",
        ),
        project_dir=project,
    )
    # every one-value override that changes a variant's spec is in its name; keys of the other
    # family are ignored by a format-swept variant, so they are not in its name
    assert [(v.name, v.spec.format, v.output.suffix) for v in variants] == [
        (
            (
                "valid_regression_h5@format=czann,metadata.classes=[a,b],"
                "metadata.type=SingleClassSemanticSegmentation,~metadata.scaling,~target"
            ),
            "czann",
            ".czann",
        ),
        (
            (
                "valid_regression_h5@format=czmodel,metadata.classes=[a,b],"
                "metadata.color_handling=ConvertToMonochrome,metadata.pixel_type=Gray8,"
                "metadata.type=SingleClassSemanticSegmentation,~target"
            ),
            "czmodel",
            ".czmodel",
        ),
    ]
    # keys of the other family are allowed when the format is swept, and left out of the spec
    assert variants[0].spec.metadata.pixel_type is None
    assert variants[1].spec.metadata.pixel_type == ("Gray8",)


def test_a_fixed_format_override_keeps_misplaced_keys_errors(project: Path) -> None:
    from czbuild.errors import RecipeError

    with pytest.raises(RecipeError, match="min_overlap: legacy czmodel has no min_overlap"):
        load_variants(["valid_factory_sweep"], ("format=czmodel",), project_dir=project)


def test_points_with_the_same_spec_are_one_variant(project: Path) -> None:
    variants = load_variants(["valid_dedupe"], project_dir=project)
    assert [v.name for v in variants] == ["valid_dedupe@opset=null", "valid_dedupe@opset=17"]
    assert [v.spec.opset for v in variants] == [18, 17]


def test_variants_are_stable_across_loads(project: Path) -> None:
    first = load_variants(["valid_factory_sweep"], project_dir=project)
    second = load_variants(["valid_factory_sweep"], project_dir=project)
    assert [(v.name, v.digest, v.output) for v in first] == [
        (v.name, v.digest, v.output) for v in second
    ]
