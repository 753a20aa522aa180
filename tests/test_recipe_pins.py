"""One-value command-line overrides are part of the variant name (QA finding: ``czbuild build
cellk tile=256`` overwrote the recipe's own ``cellk`` artifact).

Every command-line override that changes the resolved spec shows in the name and the output
folder, exactly like a one-point sweep; one that leaves the spec as it is names the plain
variant (same digest, same variant).
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

import pytest

from czbuild.recipe import Variant, load_variants
from czbuild.recipe.compose import parse_overrides
from czbuild.recipe.sweep import plan_points

DATA = Path(__file__).parent / "data" / "recipes"
GROUPS = {"target": ["zen-blue-3.13", "zen-core-3.4"], "format": ["czann", "czmodel"]}

CELLK = """\
defaults: [/target: zen-blue-3.13, _self_]
model: {path: _files/tiny.keras}
format: czann
tile: 128
metadata: {type: SingleClassSemanticSegmentation, classes: [bg, fg], min_overlap: [16, 16]}
"""
SWEPT = CELLK + "sweep: {tile: [128, 256]}\n"


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    shutil.copytree(DATA / "_files", tmp_path / "recipes" / "_files")
    (tmp_path / "recipes" / "cellk.yaml").write_text(CELLK, encoding="utf-8")
    (tmp_path / "recipes" / "swept.yaml").write_text(SWEPT, encoding="utf-8")
    return tmp_path


def _load(project: Path, *overrides: str, name: str = "cellk") -> list[Variant]:
    return load_variants([name], list(overrides), project_dir=project)


def _one(project: Path, *overrides: str) -> Variant:
    (variant,) = _load(project, *overrides)
    return variant


@pytest.mark.parametrize(
    ("overrides", "name", "folder"),
    [
        pytest.param((), "cellk", "default", id="none"),
        pytest.param(("tile=256",), "cellk@tile=256", "tile=256", id="value"),
        pytest.param(
            ("target=zen-core-3.4",),
            "cellk@target=zen-core-3.4",
            "target=zen-core-3.4",
            id="group-selection",
        ),
        pytest.param(
            ("tile=256", "target=zen-core-3.4"),
            "cellk@target=zen-core-3.4,tile=256",
            "target=zen-core-3.4,tile=256",
            id="sorted-keys",
        ),
        pytest.param(("++opset=17",), "cellk@opset=17", "opset=17", id="plus-plus"),
        pytest.param(
            ("+metadata.model_name=Cells",),
            "cellk@metadata.model_name=Cells",
            "metadata.model_name=Cells",
            id="added-key",
        ),
        pytest.param(
            ("~metadata.min_overlap",), "cellk@~metadata.min_overlap", None, id="deletion"
        ),
    ],
)
def test_a_value_override_names_the_variant(
    project: Path, overrides: tuple[str, ...], name: str, folder: str | None
) -> None:
    variant = _one(project, *overrides)
    assert variant.name == name
    assert variant.output.name == "cellk.czann"
    if folder is not None:
        assert variant.output == PurePosixPath("cellk", folder, "cellk.czann")


def test_an_override_never_writes_the_recipes_own_output(project: Path) -> None:
    plain = _one(project)
    overridden = _one(project, "tile=256")
    assert overridden.digest != plain.digest
    assert overridden.output != plain.output
    assert overridden.spec.spatial_dims == (256, 256)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(("tile=128",), id="value-as-written"),
        pytest.param(("target=zen-blue-3.13",), id="group-as-selected"),
        pytest.param(("tile=128", "target=zen-blue-3.13"), id="both"),
        pytest.param(("metadata.min_overlap=[16,16]",), id="list"),
    ],
)
def test_an_override_that_changes_nothing_is_the_plain_variant(
    project: Path, overrides: tuple[str, ...]
) -> None:
    assert _one(project, *overrides) == _one(project)


def test_only_the_overrides_that_change_the_spec_are_named(project: Path) -> None:
    variant = _one(project, "tile=128", "target=zen-core-3.4")
    assert variant.name == "cellk@target=zen-core-3.4"
    assert variant == _one(project, "target=zen-core-3.4")


def test_two_formats_get_two_names(project: Path) -> None:
    czmodel = _one(
        project,
        "format=czmodel",
        "~metadata.min_overlap",
        "+metadata.pixel_type=Gray8",
        "+metadata.color_handling=ConvertToMonochrome",
    )
    assert czmodel.name == (
        "cellk@format=czmodel,metadata.color_handling=ConvertToMonochrome,"
        "metadata.pixel_type=Gray8,~metadata.min_overlap"
    )
    assert czmodel.name != _one(project).name
    assert czmodel.output.suffix == ".czmodel"


def test_overrides_combine_with_a_sweep(project: Path) -> None:
    variants = _load(project, "target=zen-core-3.4", name="swept")
    assert [v.name for v in variants] == [
        "swept@target=zen-core-3.4,tile=128",
        "swept@target=zen-core-3.4,tile=256",
    ]
    assert [v.name for v in _load(project, "target=zen-blue-3.13", name="swept")] == [
        "swept@tile=128",
        "swept@tile=256",
    ]


def test_a_pinned_swept_key_keeps_its_name(project: Path) -> None:
    (variant,) = _load(project, "tile=128", name="swept")
    assert variant.name == "swept@tile=128"
    assert variant == _load(project, name="swept")[0]


def test_sweep_values_keep_their_types(project: Path) -> None:
    variant = _one(
        project,
        "tile=256",
        "+metadata.scaling=[1e-7,1e-7]",
        "~metadata.min_overlap",
        "target=zen-core-3.4",
    )
    assert dict(variant.sweep_values) == {
        "tile": 256,
        "metadata.scaling": [1e-7, 1e-7],
        "target": "zen-core-3.4",
        "~metadata.min_overlap": None,
    }
    assert dict(variant.sweep) == {
        "tile": "256",
        "metadata.scaling": "[1e-07,1e-07]",
        "target": "zen-core-3.4",
        "~metadata.min_overlap": "",
    }


def test_plan_points_pins_and_without() -> None:
    (point,) = plan_points(
        {},
        parse_overrides(["tile=256", "target=zen-core-3.4", "~opset"]),
        groups=GROUPS,
        groups_in_defaults=frozenset({"target"}),
    )
    assert point.items == (("target", "zen-core-3.4"), ("tile", "256"), ("~opset", ""))
    assert point.values == (("target", "zen-core-3.4"), ("tile", 256), ("~opset", None))
    assert [p.key for p in point.pins] == ["tile", "target", "~opset"]
    assert point.group_overrides == ("target=zen-core-3.4",)
    assert point.value_overrides == ("tile=256", "~opset")
    tile = point.pins[0]
    reduced = point.without(tile)
    assert reduced.items == (("target", "zen-core-3.4"), ("~opset", ""))
    assert reduced.value_overrides == ("~opset",)
    assert reduced.group_overrides == point.group_overrides
    assert [p.key for p in reduced.pins] == ["target", "~opset"]
    bare = point.without(*point.pins)
    assert bare.items == bare.values == bare.pins == () and bare.group_overrides == ()
