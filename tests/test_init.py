"""``czbuild init [DIR] [--from MODEL]``: the project layout, the model probe, the first recipe.

Fast tests: the layout, refusals (nothing written), the recipe text from given facts, and the
probe of tiny ONNX models (onnxruntime only). Slow tests: a tiny seeded softmax, sigmoid and
linear Keras U-Net and an ONNX U-Net each go through ``init --from`` and ``czbuild build``
(in this process); the sigmoid one only after the test answers the ``positive:`` question.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import yaml

from czbuild.recipe.project import bundled_configs
from czbuild.scaffold.probe import ModelFacts, probe_model
from czbuild.scaffold.recipe_text import recipe_text, suggest_tile, valid_tiles
from support.cli import run_cli
from support.onnx_models import unet_onnx


def _facts(**overrides: object) -> ModelFacts:
    values: dict = dict(
        path=Path("m.keras"),
        family="keras",
        channels_first=None,
        layout_certain=True,
        input_channels=1,
        spatial=(None, None),
        output_channels=3,
        head="softmax",
        output_range=(0.0, 1.0),
        max_sum_error=1e-7,
        factor=4,
        radius=(11, 11),
        radius_bounded=True,
        probe_side=256,
    )
    values.update(overrides)
    return ModelFacts(**values)


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


# --- the project layout -----------------------------------------------------------------------


def test_init_writes_the_layout_with_the_bundled_configs(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    result = run_cli("init", str(root), cwd=tmp_path, check=True)
    assert "created project" in result.stdout
    bundled = bundled_configs()
    configs = {p.relative_to(bundled).as_posix(): p.read_bytes() for p in bundled.rglob("*.yaml")}
    assert configs, "czbuild has bundled configs"
    for rel, data in configs.items():
        assert (root / "configs" / rel).read_bytes() == data, rel  # untouched copies
    assert (root / "recipes").is_dir() and (root / "models").is_dir()
    ignore = (root / ".gitignore").read_text().splitlines()
    assert {"/build/", "/.doit*", ".*.tmp"} <= set(ignore)
    assert "czbuild build" in (root / "README.md").read_text()
    assert (root / "recipe.schema.json").read_text().startswith("{")
    # the new project is a project: czbuild finds it and lists its (no) recipes
    listed = run_cli("list", cwd=root, check=True)
    assert "no recipes" in listed.stdout
    # running it again changes nothing and refuses nothing: every file has the same bytes
    before = {rel: (root / rel).stat().st_mtime_ns for rel in _files(root)}
    run_cli("init", str(root), cwd=tmp_path, check=True)
    assert {rel: (root / rel).stat().st_mtime_ns for rel in _files(root)} == before


def test_init_refuses_an_existing_file_and_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "README.md").write_text("mine\n")
    result = run_cli("init", str(root), cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "README.md: already exists" in line and "--force" in line
    assert _files(root) == {"README.md"} and (root / "README.md").read_text() == "mine\n"
    assert not (root / "configs").exists()
    # --force overwrites
    run_cli("init", str(root), "--force", cwd=tmp_path, check=True)
    assert (root / "README.md").read_text() != "mine\n"
    assert (root / "configs/target").is_dir()


def test_a_failed_write_removes_what_init_created(tmp_path: Path, monkeypatch) -> None:
    import czbuild.scaffold.project as scaffold

    calls = []

    def failing(path, data, *, durable=True):  # the third file fails: disk full
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device", str(path))
        Path(path).write_bytes(data)

    monkeypatch.setattr(scaffold, "atomic_write", failing)
    root = tmp_path / "new"
    with pytest.raises(OSError):
        scaffold.init_project(root)
    assert not root.exists()


def test_init_from_a_missing_or_unknown_model_is_one_line(tmp_path: Path) -> None:
    result = run_cli("init", "p", "--from", "nope.keras", cwd=tmp_path)
    assert result.returncode == 2 and "nope.keras" in result.stderr
    (tmp_path / "weights.bin").write_bytes(b"\0")
    result = run_cli("init", "p", "--from", "weights.bin", cwd=tmp_path)
    assert result.returncode == 2
    (line,) = [x for x in result.stderr.splitlines() if "error" in x]
    assert "weights.bin" in line and ".onnx" in line
    assert not (tmp_path / "p").exists()


# --- the recipe text ---------------------------------------------------------------------------


def _parse(text: str) -> dict:
    return yaml.safe_load(text)


def test_softmax_recipe_text() -> None:
    text = recipe_text(_facts(), name="unet", model_ref="../models/unet.keras")
    recipe = _parse(text)
    assert recipe["model"] == {"path": "../models/unet.keras"}
    assert recipe["tile"] == 256 and recipe["tile"] % 4 == 0
    assert recipe["metadata"] == {
        "type": "MultiClassSemanticSegmentation",
        "classes": ["class_0", "class_1", "class_2"],
        "min_overlap": [24, 24],  # 2 x 11, rounded up to the factor 4
    }
    assert "postprocessing" not in recipe
    assert "pixel type Gray8, Gray16, Gray32Float" in " ".join(text.replace("#", "").split())
    for key in ("tile:", "preprocessing:", "type:", "classes:", "min_overlap:"):
        (line,) = [x for x in text.splitlines() if x.strip().startswith(key)]
        assert "# guessed:" in line, line
    assert max(len(x) for x in text.splitlines()) <= 120


def test_sigmoid_recipe_leaves_the_positive_question() -> None:
    text = recipe_text(
        _facts(head="sigmoid", output_channels=1, output_range=(0.01, 0.99)),
        name="cells",
        model_ref="../models/cells.h5",
    )
    recipe = _parse(text)
    assert recipe["postprocessing"] == [{"op": "sigmoid_to_softmax_scores"}]
    assert recipe["metadata"]["type"] == "SingleClassSemanticSegmentation"
    assert recipe["metadata"]["classes"] == ["Background", "Foreground"]
    assert "    # positive: Foreground" in text.splitlines()
    assert "QUESTION" in text


def test_linear_recipe_is_regression_clipped_to_zen_range() -> None:
    recipe = _parse(
        recipe_text(
            _facts(head="linear", output_channels=1, output_range=(-3.0, 5.0), factor=1),
            name="care",
            model_ref="../models/care.keras",
        )
    )
    assert recipe["metadata"]["type"] == "Regression" and "classes" not in recipe["metadata"]
    assert recipe["postprocessing"] == [{"op": "clip", "min": 0, "max": 1}]
    assert recipe["metadata"]["min_overlap"] == [22, 22]


def test_fixed_size_model_uses_its_size_and_keeps_the_overlap_below_it() -> None:
    facts = _facts(spatial=(64, 64), factor=None, radius=(40, 40), probe_side=64)
    recipe = _parse(recipe_text(facts, name="fixed", model_ref="../models/f.keras"))
    assert recipe["tile"] == 64
    assert all(o < 64 and o % 2 == 0 for o in recipe["metadata"]["min_overlap"])


@pytest.mark.parametrize(
    ("factor", "overlap", "tile"), [(1, 0, 256), (16, 24, 256), (32, 100, 416), (8, 600, 1024)]
)
def test_suggested_tile_is_a_multiple_of_the_factor_above_the_overlap(
    factor: int, overlap: int, tile: int
) -> None:
    assert suggest_tile(factor, overlap) == tile
    assert all(t % factor == 0 and t > overlap for t in valid_tiles(factor, overlap))


# --- the probe on ONNX models (onnxruntime, no TensorFlow) -------------------------------------


@pytest.mark.parametrize("channels_first", [True, False])
def test_probe_onnx_unet(tmp_path: Path, channels_first: bool) -> None:
    path = tmp_path / "unet.onnx"
    onnx.save(unet_onnx(channels=2, classes=3, channels_first=channels_first, opset=13), path)
    facts = probe_model(path)
    assert facts.family == "onnx" and facts.channels_first is channels_first
    assert facts.layout_certain
    assert (facts.input_channels, facts.output_channels) == (2, 3)
    assert facts.head == "softmax" and facts.factor == 2
    assert facts.radius is not None and facts.radius_bounded
    assert 2 <= facts.radius[0] <= 8  # three 3x3 convolutions, one of them after pooling


def test_probe_fixed_size_onnx_guesses_the_layout(tmp_path: Path) -> None:
    path = tmp_path / "fixed.onnx"
    onnx.save(unet_onnx(channels=1, channels_first=True, spatial=(64, 64), opset=13), path)
    facts = probe_model(path)
    assert facts.channels_first is True and not facts.layout_certain
    assert facts.factor is None and facts.fixed == (64, 64)


def test_probe_3d_onnx_unet_and_its_recipe(tmp_path: Path) -> None:
    path = tmp_path / "volume.onnx"
    onnx.save(unet_onnx(channels=1, classes=2, dims=3, opset=13), path)
    facts = probe_model(path)
    assert facts.spatial == (None, None, None) and facts.channels_first is True
    assert facts.head == "softmax" and facts.factor == 2
    assert facts.radius is not None and len(facts.radius) == 3 and facts.radius_bounded
    recipe = _parse(recipe_text(facts, name="volume", model_ref="../models/volume.onnx"))
    assert "tile" not in recipe
    overlap = recipe["metadata"]["min_overlap"]
    assert overlap == list(facts.overlap or ()) and all(o % 2 == 0 for o in overlap)
    for side, least, o in zip(recipe["spatial_dims"], (16, 64, 64), overlap, strict=True):
        assert side % 2 == 0 and side >= least and side >= 2 * o


# --- end to end: init --from, then czbuild build ------------------------------------------------


def _init_and_build(tmp_path: Path, model: Path, *, answer: bool = False):
    root = tmp_path / "proj"
    run_cli("init", str(root), "--from", str(model), cwd=tmp_path, check=True)
    (recipe,) = (root / "recipes").glob("*.yaml")
    if answer:  # what the user does: uncomment positive: under sigmoid_to_softmax_scores
        refused = run_cli("build", "--in-process", cwd=root)
        assert refused.returncode == 2
        assert "postprocessing[0].positive: missing" in refused.stderr
        assert not (root / "build" / recipe.stem).exists()
        text = recipe.read_text()
        recipe.write_text(text.replace("# positive: Foreground", "positive: Foreground"))
    built = run_cli("build", "--in-process", cwd=root)
    assert built.returncode == 0, built.stdout + built.stderr
    from czbuild.formats.archive import read_artifact

    spec = yaml.safe_load(recipe.read_text())
    artifact = read_artifact(root / f"build/{recipe.stem}/default/{recipe.stem}.czann")
    dims = spec["spatial_dims"] if "spatial_dims" in spec else [spec["tile"]] * 2
    assert list(artifact.metadata.input_shape[:-1]) == dims
    if "min_overlap" in spec["metadata"]:
        assert list(artifact.metadata.min_overlap) == spec["metadata"]["min_overlap"]
    return artifact, spec


@pytest.mark.slow
def test_softmax_keras_unet_builds(tmp_path: Path) -> None:
    from support.keras_models import save_tiny_unet

    model = save_tiny_unet(tmp_path / "seg.keras", "softmax", classes=3)
    artifact, spec = _init_and_build(tmp_path, model)
    assert artifact.metadata.type == "MultiClassSemanticSegmentation"
    assert artifact.metadata.classes == ("class_0", "class_1", "class_2")
    assert spec["tile"] % 4 == 0  # depth 2: factor 4


@pytest.mark.slow
def test_sigmoid_keras_unet_builds_after_the_positive_answer(tmp_path: Path) -> None:
    from support.keras_models import save_tiny_unet

    model = save_tiny_unet(tmp_path / "cells.h5", "sigmoid")
    artifact, _ = _init_and_build(tmp_path, model, answer=True)
    assert artifact.metadata.type == "SingleClassSemanticSegmentation"
    assert artifact.metadata.classes == ("Background", "Foreground")
    # the verifier saw the pixels where the sigmoid is high labelled Foreground
    (report,) = (tmp_path / "proj/build/.czbuild/reports").glob("cells/**/*.verify.json")
    checks = {c["name"]: c for c in json.loads(report.read_text())["checks"]}
    assert checks["semantics.class_order"]["status"] == "passed"


@pytest.mark.slow
def test_linear_keras_model_builds_as_regression(tmp_path: Path) -> None:
    from support.keras_models import save_tiny_unet

    model = save_tiny_unet(tmp_path / "care.keras", "linear", depth=1)
    artifact, spec = _init_and_build(tmp_path, model)
    assert artifact.metadata.type == "Regression"
    assert spec["postprocessing"] == [{"op": "clip", "min": 0, "max": 1}]


@pytest.mark.slow
@pytest.mark.parametrize("dims", [2, 3])
def test_onnx_unet_builds(tmp_path: Path, dims: int) -> None:
    model = tmp_path / "cells.onnx"
    onnx.save(unet_onnx(channels=1, classes=2, dims=dims, opset=13), model)
    artifact, spec = _init_and_build(tmp_path, model)
    assert spec["model"] == {"onnx": "../models/cells.onnx", "channels_first": True}
    assert artifact.metadata.type == "SingleClassSemanticSegmentation"
    assert len(artifact.metadata.input_shape) == dims + 1


@pytest.mark.slow
def test_probe_savedmodel_folder(tmp_path: Path) -> None:
    from support.keras_models import save_tiny_unet

    model = save_tiny_unet(tmp_path / "exported", "softmax", classes=2, depth=3)
    facts = probe_model(model)
    assert facts.family == "keras" and facts.head == "softmax"
    assert (facts.input_channels, facts.output_channels, facts.factor) == (1, 2, 8)
    assert facts.overlap is not None and facts.overlap[0] % 8 == 0


def test_a_model_already_under_models_is_referenced_not_copied(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "models").mkdir(parents=True)
    model = root / "models" / "net.onnx"
    onnx.save(unet_onnx(opset=13), model)
    before = model.read_bytes()
    run_cli("init", str(root), "--from", str(model), cwd=tmp_path, check=True)
    recipe = _parse((root / "recipes/net.yaml").read_text())
    assert recipe["model"]["onnx"] == "../models/net.onnx"
    assert sorted(p.name for p in (root / "models").iterdir()) == ["net.onnx"]
    assert model.read_bytes() == before
    again = run_cli("init", str(root), "--from", str(model), cwd=tmp_path, check=True)
    assert "nothing written" in again.stdout
