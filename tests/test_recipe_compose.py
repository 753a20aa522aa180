"""Hydra composition: search path, config groups, overrides, resolvers, global state."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from czbuild.recipe import load_variants
from czbuild.recipe.compose import Composer, parse_overrides
from czbuild.recipe.diagnostics import Issue
from czbuild.recipe.project import BUNDLED_CONFIGS, config_search_path

DATA = Path(__file__).parent / "data" / "recipes"
PACKAGE = Path(__file__).resolve().parents[1] / "czbuild" / "recipe"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _only(project: Path, name: str, overrides: tuple[str, ...] = ()) -> Any:
    variants = load_variants([name], overrides, project_dir=project)
    assert len(variants) == 1
    return variants[0]


def _assert_plain(data: Any) -> None:
    assert type(data) in (dict, list, str, int, float, bool, type(None)), type(data)
    if isinstance(data, dict):
        for k, v in data.items():
            assert type(k) is str
            _assert_plain(v)
    elif isinstance(data, list):
        for v in data:
            _assert_plain(v)


def test_bundled_configs_exist_for_every_documented_group() -> None:
    targets = {p.stem for p in (BUNDLED_CONFIGS / "target").glob("*.yaml")}
    assert targets == {
        "zen-blue-3.2",
        "zen-blue-3.4",
        "zen-blue-3.5",
        "zen-blue-3.13",
        "zen-core-3.1",
        "zen-core-3.3",
        "zen-core-3.4",
        "zen-core-3.13",
    }
    assert {p.stem for p in (BUNDLED_CONFIGS / "format").glob("*.yaml")} == {"czann", "czmodel"}
    assert (BUNDLED_CONFIGS / "preprocessing" / "standardize.yaml").is_file()
    assert (BUNDLED_CONFIGS / "metadata" / "lab-defaults.yaml").is_file()


def test_defaults_list_pulls_config_groups(project: Path) -> None:
    _write(
        project / "recipes" / "chain.yaml",
        "defaults:\n  - /target: zen-core-3.13\n  - /preprocessing: imagenet\n  - _self_\n"
        "model: {path: _files/tiny.keras}\nmetadata: {type: Regression}\n",
    )
    spec = _only(project, "chain").spec
    assert spec.target is not None and (spec.target.product, spec.target.version) == (
        "core",
        "3.13",
    )
    assert [op["op"] for op in spec.preprocessing] == ["rgb_to_bgr", "normalization"]
    assert spec.preprocessing[1]["mean"] == [0.485, 0.456, 0.406]


def test_recipe_values_override_defaults_after_self(project: Path) -> None:
    spec = _only(project, "valid_full_czann").spec
    # the recipe's own preprocessing replaces the imagenet chain pulled in by defaults
    assert spec.preprocessing[0]["op"] == "rgb_to_bgr"
    assert len(spec.preprocessing) == 6


def test_project_configs_shadow_bundled_ones(project: Path) -> None:
    _write(
        project / "configs" / "preprocessing" / "standardize.yaml", "- {op: scale, scale: 0.5}\n"
    )
    _write(project / "configs" / "metadata" / "mylab.yaml", "model_name: From my lab\n")
    _write(
        project / "recipes" / "shadow.yaml",
        "defaults:\n  - /preprocessing: standardize\n  - /metadata: mylab\n"
        "  - /target: zen-blue-3.5\n  - _self_\n"
        "model: {path: _files/tiny.keras}\nmetadata: {type: Regression}\n",
    )
    assert config_search_path(project)[0] == project / "configs"
    spec = _only(project, "shadow").spec
    assert spec.preprocessing == ({"op": "scale", "scale": [0.5]},)
    assert spec.metadata.model_name == "From my lab"
    assert spec.format_version == "1.1.0"  # bundled target still found


@pytest.mark.parametrize(
    ("recipe", "override", "expected"),
    [
        pytest.param("valid_factory_sweep", "target=zen-core-3.4", "1.1.0", id="in-defaults"),
        pytest.param("valid_minimal", "target=zen-core-3.4", "1.1.0", id="appended"),
        pytest.param("valid_minimal", "+target=zen-blue-3.5", "1.1.0", id="explicit-plus"),
        pytest.param("valid_regression_h5", "target=zen-blue-3.13", "2.1.0", id="replaced"),
    ],
)
def test_group_selection_on_the_command_line(
    project: Path, recipe: str, override: str, expected: str
) -> None:
    variants = load_variants([recipe], [override, "++tile=128"], project_dir=project)
    assert {v.spec.format_version for v in variants} == {expected}


def test_format_group_overrides_an_inline_format(project: Path) -> None:
    _write(
        project / "recipes" / "fmt.yaml",
        "model: {path: _files/tiny.keras}\nformat: czann\ntile: 256\n"
        "metadata: {classes: [a, b], pixel_type: Gray8, color_handling: SplitRgb}\n",
    )
    spec = _only(project, "fmt", ("format=czmodel",)).spec
    assert (spec.format, spec.format_version) == ("czmodel", "3.1.0")


@pytest.mark.parametrize(
    ("overrides", "check"),
    [
        pytest.param(("tile=1024",), lambda s: s.spatial_dims == (1024, 1024), id="value"),
        pytest.param(
            ("metadata.classes=[bg,fg]",), lambda s: s.metadata.classes == ("bg", "fg"), id="list"
        ),
        pytest.param(
            ("+metadata.scaling=[1e-7,1e-7]",),
            lambda s: s.metadata.scaling == (1e-7, 1e-7),
            id="append",
        ),
        pytest.param(
            ("++metadata.model_name='a, b'",),
            lambda s: s.metadata.model_name == "a, b",
            id="force-quoted",
        ),
        pytest.param(
            ("~metadata.min_overlap",), lambda s: s.metadata.min_overlap is None, id="delete"
        ),
        pytest.param(
            ("preprocessing=standardize",),
            lambda s: s.preprocessing == ({"op": "per_image_standardization"},),
            id="group-appended",
        ),
    ],
)
def test_value_overrides(project: Path, overrides: tuple[str, ...], check: Any) -> None:
    variants = load_variants(
        ["valid_factory_sweep"],
        ("target=zen-blue-3.13", "tile=512", *overrides),
        project_dir=project,
    )
    assert len(variants) == 1
    assert check(variants[0].spec)


def test_plain_interpolation_is_resolved(project: Path) -> None:
    assert _only(project, "valid_interpolation").spec.metadata.model_name == "tile-512"
    spec = _only(project, "valid_interpolation", ("tile=256",)).spec
    assert spec.metadata.model_name == "tile-256"


def test_composer_returns_plain_data(project: Path) -> None:
    composer = Composer(project / "recipes" / "valid_full_czann.yaml", config_search_path(project))
    data = composer.compose(
        ["target=zen-core-3.13"], ["spatial_dims=[64,32]"], [("metadata.id", None)]
    )
    _assert_plain(data)
    assert data["spatial_dims"] == [64, 32] and data["target"] == {
        "product": "core",
        "version": "3.13",
    }
    assert data["metadata"]["id"] is None


@pytest.mark.parametrize(
    ("value", "refused", "expected"),
    [
        pytest.param("${oc.env:HOME}", True, None, id="oc.env"),
        pytest.param("x-${now:%Y}", True, None, id="now-embedded"),
        pytest.param("${oc.select:tile,1}", True, None, id="oc.select"),
        pytest.param("t${tile}", False, "t64", id="plain"),
        pytest.param("\\${oc.env:HOME}", False, "${oc.env:HOME}", id="escaped"),
    ],
)
def test_resolvers_are_refused(
    project: Path, value: str, refused: bool, expected: str | None
) -> None:
    _write(
        project / "recipes" / "res.yaml",
        f"model: {{path: _files/tiny.keras}}\ntile: 64\nmetadata:\n  type: Regression\n"
        f"  model_name: '{value}'\n",
    )
    composer = Composer(project / "recipes" / "res.yaml", config_search_path(project))
    if refused:
        with pytest.raises(Issue) as info:
            composer.compose()
        assert info.value.key == ("metadata", "model_name")
    else:
        assert composer.compose()["metadata"]["model_name"] == expected


def test_many_recipes_compose_in_one_process(project: Path) -> None:
    from hydra.core.global_hydra import GlobalHydra

    for i in range(12):
        _write(
            project / "recipes" / f"many{i}.yaml",
            f"model: {{path: _files/tiny.keras}}\ntile: {64 + 2 * i}\n"
            "metadata: {type: Regression}\n",
        )
    names = [f"many{i}" for i in range(12)]
    variants = load_variants(names, project_dir=project)
    assert [v.spec.spatial_dims[0] for v in variants] == [64 + 2 * i for i in range(12)]
    assert not GlobalHydra.instance().is_initialized()


@pytest.mark.parametrize(
    ("text", "points", "sweep"),
    [
        pytest.param("tile=512", [("tile=512", 512)], False, id="single"),
        pytest.param("tile=256,512", [("tile=256", 256), ("tile=512", 512)], True, id="list"),
        pytest.param(
            "tile=range(256,1025,256)",
            [(f"tile={t}", t) for t in (256, 512, 768, 1024)],
            True,
            id="range",
        ),
        pytest.param(
            "format=czann,czmodel",
            [("format=czann", "czann"), ("format=czmodel", "czmodel")],
            True,
            id="group",
        ),
        pytest.param(
            "metadata.classes=[a,b],[c,d]",
            [("metadata.classes=[a,b]", ["a", "b"]), ("metadata.classes=[c,d]", ["c", "d"])],
            True,
            id="list-values",
        ),
        pytest.param(
            "+metadata.scaling=[1e-7,1e-7]",
            [("+metadata.scaling=[1e-7,1e-7]", [1e-7, 1e-7])],
            False,
            id="add",
        ),
    ],
)
def test_parse_overrides(text: str, points: list[tuple[str, Any]], sweep: bool) -> None:
    (parsed,) = parse_overrides([text])
    assert list(parsed.points) == points
    assert parsed.is_sweep is sweep


def test_only_the_compose_seam_imports_hydra_and_nothing_imports_tensorflow() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules.add(node.module.split(".")[0])
        assert not modules & {"tensorflow", "keras", "tf2onnx", "onnx"}, path.name
        if path.name not in ("compose.py", "hydra_overrides.py"):  # the Hydra seam
            assert not modules & {"hydra", "omegaconf"}, path.name


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("import czbuild.recipe.spec", id="spec"),
        pytest.param(
            "from czbuild.recipe import RecipeSpec, list_recipes, render_json_schema",
            id="schema-and-listing",
        ),
    ],
)
def test_reading_specs_does_not_import_hydra(statement: str) -> None:
    import os
    import subprocess
    import sys

    root = PACKAGE.parents[1]
    code = f"{statement}\nimport sys\nprint(sorted(m for m in ('hydra', 'omegaconf') if m in sys.modules))"
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_missing_self_means_recipe_last_and_stays_silent(project: Path) -> None:
    import warnings

    _write(
        project / "recipes" / "noself.yaml",
        "defaults:\n  - /preprocessing: standardize\n"
        "model: {path: _files/tiny.keras}\npreprocessing: [rgb_to_bgr]\n"
        "metadata: {type: Regression}\n",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec = _only(project, "noself").spec
    assert spec.preprocessing == ({"op": "rgb_to_bgr"},)
