"""ONNX sources: op nodes, composition, conversion, recipes, build and verification.

Tiny seeded ONNX U-Nets are built with ``onnx.helper`` (``support.onnx_models``); no
TensorFlow is needed on these paths.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from czbuild import ops as czops
from czbuild.convert import ConversionRequest, convert
from czbuild.errors import ConversionError, MetadataError, ModelError
from czbuild.formats.archive import read_artifact
from czbuild.formats.czann import CzannMetadata
from czbuild.formats.legacy import LegacyMetadata
from czbuild.formats.runner import OnnxRunner
from czbuild.onnx_source.converter import OnnxConverter
from czbuild.onnx_source.op_nodes import missing_builders
from czbuild.sources.kinds import OnnxFile, source_family
from support.cli import run_cli
from support.fresh_python import run_fresh_python
from support.onnx_models import unet_onnx

SEG = "SingleClassSemanticSegmentation"


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, path)
    return path


def _identity(channels: int, rank: int = 4) -> onnx.ModelProto:
    dims = ["N", *[f"s{i}" for i in range(rank - 2)], channels]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    model.ir_version = 7
    return model


# --- the op registry as ONNX nodes ------------------------------------------------------------

OP_CASES = [
    ("rgb_to_bgr", 3),
    ("rgba_to_bgra", 4),
    ({"op": "transpose_channels", "order": [1, 0]}, 2),
    ("per_image_standardization", 2),
    ({"op": "percentile_normalization", "low": 2.0, "high": 97.0}, 2),
    ("min_max_normalization", 2),
    ({"op": "scale_range", "in": [0, 255], "out": [-1, 1]}, 2),
    ({"op": "normalization", "mean": [0.2, 0.4], "std": [0.5, 2.0]}, 2),
    ({"op": "shift", "shift": [0.5]}, 2),
    ({"op": "scale", "scale": [2.0, -1.0]}, 2),
    ({"op": "clip", "min": 0.2, "max": 0.7}, 2),
    ("sigmoid", 2),
    ({"op": "sigmoid_to_softmax_scores", "positive_channel": 1}, 1),
]


def test_every_op_has_an_onnx_builder() -> None:
    assert missing_builders() == []
    names = {op if isinstance(op, str) else op["op"] for op, _ in OP_CASES}
    assert names == set(czops.OPS)


@pytest.mark.parametrize("opset", [12, 18])
@pytest.mark.parametrize(("op", "channels"), OP_CASES, ids=lambda v: str(v)[:30])
def test_op_nodes_match_the_numpy_reference(tmp_path, op, channels, opset) -> None:
    converter = OnnxConverter(_save(_identity(channels), tmp_path / "id.onnx"))
    for tile in ((7, 9), (3, 4, 5)):
        if len(tile) == 3:
            converter = OnnxConverter(_save(_identity(channels, 5), tmp_path / "id3.onnx"))
        # the channel-changing score op goes after the model, the others before it
        where = "postprocessing" if "scores" in str(op) else "preprocessing"
        result = converter.onnx(**{where: [op]}, spatial_dims=tile, opset=opset)
        x = np.random.default_rng(3).normal(0.5, 0.3, (2, *tile, channels)).astype(np.float32)
        got = OnnxRunner(result.payload)(x)
        want = czops.apply_numpy([op], x)
        np.testing.assert_allclose(got, want, atol=2e-6, rtol=1e-5)


# --- conversion (library) ----------------------------------------------------------------------


@pytest.mark.parametrize("channels_first", [True, False], ids=["nchw", "nhwc"])
def test_onnx_unet_with_standardisation_to_czann_and_verified(tmp_path, channels_first) -> None:
    from czbuild.verify import verify_artifact

    source = _save(unet_onnx(channels_first=channels_first), tmp_path / "unet.onnx")
    ref = OnnxFile(str(source), channels_first=channels_first)
    md = CzannMetadata(
        type=SEG, input_shape=None, output_shape=None, classes=("bg", "fg"), min_overlap=(12, 12)
    )
    out = tmp_path / "unet.czann"
    result = convert(
        ConversionRequest(
            source=ref,
            metadata=md,
            preprocessing=({"op": "per_image_standardization"},),
            spatial_dims=(32, 48),
        ),
        out,
    )
    artifact = read_artifact(out)
    assert artifact.metadata.input_shape == (32, 48, 1)
    assert artifact.metadata.output_shape == (32, 48, 2)
    assert result.route == "onnx" and result.opset == 18
    report = verify_artifact(
        out, source_model=ref, preprocessing=[{"op": "per_image_standardization"}]
    )
    assert report.ok, {c.name: c.message for c in report.failed}
    assert report.get("fidelity").status == "passed"


def test_3d_onnx_model_to_czann_2_0_and_refused_on_1_1(tmp_path) -> None:
    from czbuild.verify import verify_artifact

    source = OnnxFile(str(_save(unet_onnx(dims=3), tmp_path / "u3.onnx")), channels_first=True)
    md = CzannMetadata(
        type=SEG,
        input_shape=None,
        output_shape=None,
        classes=("bg", "fg"),
        min_overlap=(12, 12, 12),
        scaling=(1e-6, 1e-6, 2e-6),
        format_version="2.0.0",
    )
    out = tmp_path / "u3.czann"
    convert(ConversionRequest(source=source, metadata=md, spatial_dims=(16, 16, 24)), out)
    artifact = read_artifact(out)
    assert artifact.metadata.input_shape == (16, 16, 24, 1)
    assert artifact.metadata.output_shape == (16, 16, 24, 2)
    proto = onnx.load_from_string(artifact.model_bytes)
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim][1:] == [
        16,
        16,
        24,
        1,
    ]
    report = verify_artifact(out, source_model=source)
    assert report.ok, {c.name: c.message for c in report.failed}
    assert report.get("fidelity").status == "passed"
    # ZEN's tiled inference simulated in z, y and x on a 2 x 2 x 2-tile volume
    seams = report.get("tiling.seams")
    assert seams.status == "passed", seams.message
    assert len(seams.details["tile_starts_z"]) > 1 and len(seams.details["max_at"]) == 3
    old = CzannMetadata(
        type=SEG, input_shape=None, output_shape=None, classes=("bg", "fg"), format_version="1.1.0"
    )
    with pytest.raises(MetadataError, match="InputShape"):
        convert(ConversionRequest(source=source, metadata=old, spatial_dims=(16, 16, 24)), out)


def test_onnx_source_as_legacy_3_1_0_and_3_0_0_refused(tmp_path) -> None:
    source = OnnxFile(str(_save(unet_onnx(), tmp_path / "u.onnx")), channels_first=True)
    md = LegacyMetadata(
        name="u",
        color_handling="ConvertToMonochrome",
        pixel_types=("Gray32Float",),
        classes=("bg", "fg"),
        border_size=4,
        version="3.1.0",
    )
    out = tmp_path / "u.czmodel"
    convert(ConversionRequest(source=source, metadata=md, spatial_dims=(32, 32)), out)
    assert read_artifact(out).payload == "onnx"
    from dataclasses import replace

    with pytest.raises(ModelError, match="SavedModel"):
        convert(
            ConversionRequest(
                source=source, metadata=replace(md, version="3.0.0"), spatial_dims=(32, 32)
            ),
            tmp_path / "v.czmodel",
        )


def test_a_tile_sweep_composes_the_source_once(tmp_path) -> None:
    converter = OnnxConverter(
        OnnxFile(str(_save(unet_onnx(), tmp_path / "u.onnx")), channels_first=True)
    )
    chain = [{"op": "per_image_standardization"}]
    shapes = [
        converter.onnx(preprocessing=chain, spatial_dims=(t, t), opset=18).input_shape
        for t in (16, 32, 64)
    ]
    assert shapes == [(16, 16, 1), (32, 32, 1), (64, 64, 1)]
    assert converter.compositions == 1
    # alone or in a sweep: the same bytes
    alone = OnnxConverter(OnnxFile(str(tmp_path / "u.onnx"), channels_first=True)).onnx(
        preprocessing=chain, spatial_dims=(32, 32), opset=18
    )
    assert (
        alone.payload
        == converter.onnx(preprocessing=chain, spatial_dims=(32, 32), opset=18).payload
    )


def test_source_family_classifies_without_importing_frameworks() -> None:
    assert source_family("m.onnx") == "onnx"
    assert source_family(OnnxFile("m")) == "onnx"
    assert source_family("m.keras") == "keras"
    assert source_family("f.py:build") == "keras"
    assert source_family(onnx.ModelProto()) == "onnx"


# --- bad input -------------------------------------------------------------------------------


def test_unconvertible_opset_is_a_clear_error(tmp_path) -> None:
    source = OnnxFile(str(_save(unet_onnx(opset=13), tmp_path / "u13.onnx")), channels_first=True)
    with pytest.raises(
        ConversionError, match=r"u13.onnx: cannot convert the model from opset 13 to opset 12"
    ):
        OnnxConverter(source).onnx(spatial_dims=(16, 16), opset=12)


def test_model_errors_name_the_file_and_the_fix(tmp_path) -> None:
    two = _identity(1)
    two.graph.input.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 2, 2, 1]))
    with pytest.raises(ModelError, match="2 inputs"):
        OnnxConverter(_save(two, tmp_path / "two.onnx")).onnx(spatial_dims=(4, 4), opset=12)
    fixed = unet_onnx(spatial=(16, 16))
    conv = OnnxConverter(OnnxFile(str(_save(fixed, tmp_path / "f.onnx")), channels_first=True))
    with pytest.raises(ModelError, match=r"fixed size"):
        conv.onnx(spatial_dims=(32, 32), opset=18)
    assert conv.onnx(opset=18).input_shape == (16, 16, 1)
    with pytest.raises(ModelError, match="preprocessing"):
        conv.onnx(preprocessing=["rgba_to_bgra"], opset=18)
    with pytest.raises(ModelError, match="not found"):
        OnnxConverter(str(tmp_path / "missing.onnx")).onnx(spatial_dims=(4, 4), opset=12)


# --- recipes: build, verify --recipe ---------------------------------------------------------

RECIPE = """
name: unet
model:
  onnx: ../models/unet.onnx
  channels_first: true
format: czann
preprocessing:
  - per_image_standardization
metadata:
  type: SingleClassSemanticSegmentation
  classes: [bg, fg]
  min_overlap: [12, 12]
sweep:
  tile: [32, 48]
"""

RECIPE_3D = """
name: unet3d
model:
  onnx: ../models/unet3d.onnx
  channels_first: true
format_version: 2.0.0
spatial_dims: [16, 16, 16]
metadata:
  type: SingleClassSemanticSegmentation
  classes: [bg, fg]
  min_overlap: [12, 12, 12]
  scaling: [1.0e-6, 1.0e-6, 2.0e-6]
"""


@pytest.fixture(scope="module")
def onnx_project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("onnx_project")
    (root / "recipes").mkdir()
    (root / "models").mkdir()
    onnx.save(unet_onnx(), root / "models" / "unet.onnx")
    onnx.save(unet_onnx(dims=3), root / "models" / "unet3d.onnx")
    (root / "recipes" / "unet.yaml").write_text(RECIPE)
    (root / "recipes" / "unet3d.yaml").write_text(RECIPE_3D)
    return root


@pytest.mark.slow
def test_recipe_build_and_verify(onnx_project) -> None:
    root = onnx_project
    run_cli("build", "--in-process", cwd=root, check=True)
    built = sorted(
        p.relative_to(root / "build").as_posix() for p in (root / "build").rglob("*.czann")
    )
    assert len(built) == 3, built
    for rel in built:
        artifact = read_artifact(root / "build" / rel)
        spatial = artifact.metadata.input_shape[:-1]
        assert artifact.metadata.output_shape == (*spatial, 2)
        recipe = "unet3d" if len(spatial) == 3 else None
        if recipe is None:
            recipe = "unet@tile=32" if spatial == (32, 32) else "unet@tile=48"
        result = run_cli(
            "verify",
            str(root / "build" / rel),
            "--recipe",
            recipe,
            "--project",
            str(root),
            "--json",
            cwd=root,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        doc = json.loads(result.stdout)
        statuses = {c["name"]: c["status"] for c in doc["checks"]}
        assert statuses["fidelity"] == "passed"
        # 2D: per-tile statistics (per_image_standardization) make the seam check a warning
        assert statuses["tiling.seams"] == ("passed" if len(spatial) == 3 else "warning")
    # a no-op rebuild
    again = run_cli("build", "--in-process", cwd=root, check=True)
    assert "3 up to date" in again.stdout or "up to date" in again.stdout


@pytest.mark.slow
def test_building_an_onnx_source_never_imports_tensorflow(tmp_path) -> None:
    """The worker imports only the framework its source needs (``dispatch.import_framework``):
    converting, verifying and recording an ONNX source runs without TensorFlow."""
    (tmp_path / "recipes").mkdir()
    (tmp_path / "models").mkdir()
    onnx.save(unet_onnx(), tmp_path / "models" / "unet.onnx")
    (tmp_path / "recipes" / "unet.yaml").write_text(RECIPE.replace("[32, 48]", "[32]"))
    script = tmp_path / "build_onnx.py"
    script.write_text(
        "import sys\n"
        "from czbuild.cli import main\n"
        "rc = main(['build', '--in-process'])\n"
        "frameworks = [m for m in ('tensorflow', 'keras', 'tf2onnx') if m in sys.modules]\n"
        "print('FRAMEWORKS', frameworks, 'ONNX', 'onnx' in sys.modules)\n"
        "sys.exit(rc)\n"
    )
    out = run_fresh_python(script, cwd=tmp_path)
    assert "1 built" in out, out
    assert "FRAMEWORKS [] ONNX True" in out, out
    assert len(list((tmp_path / "build").rglob("*.czann"))) == 1


def test_recipe_errors_for_onnx_sources(onnx_project, tmp_path) -> None:
    from czbuild.errors import RecipeError
    from czbuild.recipe import load_variants

    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (tmp_path / "m.onnx").write_bytes(b"")
    cases = {
        "both": ("model:\n  onnx: ../m.onnx\n  path: ../m.onnx\n", "exactly one of"),
        "suffix": ("model:\n  path: ../m.onnx\n", "write 'onnx: ../m.onnx'"),
        "objects": ("model:\n  onnx: ../m.onnx\n  custom_objects: [a.py]\n", "custom objects"),
        "legacy3d": (
            "model:\n  onnx: ../m.onnx\nformat_version: 3.1.0\nspatial_dims: [4, 8, 8]\n",
            "3D needs czann >= 2.0.0",
        ),
    }
    for name, (head, needle) in cases.items():
        (recipes / f"{name}.yaml").write_text(
            head + "metadata:\n  type: SingleClassSemanticSegmentation\n  classes: [a, b]\n"
            "  pixel_type: Gray8\n  color_handling: ConvertToMonochrome\n"
            if name == "legacy3d"
            else head + "metadata:\n  type: SingleClassSemanticSegmentation\n  classes: [a, b]\n"
        )
        with pytest.raises(RecipeError, match=needle.replace("[", r"\[").replace("+", r"\+")):
            load_variants([name], project_dir=tmp_path)
