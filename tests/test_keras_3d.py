"""3D Keras models: ``spatial_dims (z, h, w)`` -> CZANN >= 2.0.0, verified in z, y and x.

A tiny seeded 3D U-Net (Conv3D, BatchNormalization, MaxPooling3D, UpSampling3D,
Conv3DTranspose, Concatenate) is converted with the same chains and routes as 2D models,
read back by the format reader and verified against the Keras model (fidelity and the 3D
tiling checks); a recipe builds it and passes ``czbuild verify --recipe``. Formats that
cannot carry 3D refuse it before anything is converted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from czbuild.convert import ConversionRequest, convert
from czbuild.errors import MetadataError, ModelError
from czbuild.formats.archive import read_artifact
from czbuild.formats.czann import CzannMetadata
from czbuild.formats.legacy import LegacyMetadata
from support.cli import run_cli

pytestmark = pytest.mark.slow

SEG = "SingleClassSemanticSegmentation"
PRE = ({"op": "normalization", "mean": [0.5], "std": [0.25]},)

FACTORY = '''
import keras
import numpy as np


def build(tile=None):
    """A two-level 3D U-Net with every 3D layer kind czbuild converts."""
    keras.utils.set_random_seed(3)
    layers = keras.layers
    inputs = keras.Input((*(tile or (None, None, None)), 1))
    a = layers.Conv3D(4, 3, padding="same", activation="relu")(inputs)
    a = layers.BatchNormalization()(a)
    b = layers.Conv3D(6, 3, padding="same", activation="relu")(layers.MaxPooling3D()(a))
    up = layers.UpSampling3D()(b)
    tr = layers.Conv3DTranspose(3, 2, strides=2, padding="same")(b)
    x = layers.Concatenate()([up, tr, a])
    model = keras.Model(inputs, layers.Conv3D(2, 1, activation="softmax")(x), name="unet3d")
    norm = model.layers[2]  # non-trivial statistics, so BatchNormalization is exercised
    rng = np.random.default_rng(0)
    norm.set_weights(
        [
            rng.uniform(0.5, 2.0, (4,)).astype("float32"),
            rng.normal(0.0, 0.3, (4,)).astype("float32"),
            rng.normal(0.0, 0.3, (4,)).astype("float32"),
            rng.uniform(0.5, 2.0, (4,)).astype("float32"),
        ]
    )
    return model
'''

RECIPE = """
model:
  path: ../models/unet3d.keras
format_version: 2.1.0
spatial_dims: [12, 16, 20]
preprocessing:
  - op: normalization
    mean: [0.5]
    std: [0.25]
metadata:
  type: SingleClassSemanticSegmentation
  classes: [bg, fg]
  min_overlap: [10, 10, 10]
  scaling: [1.0e-6, 1.0e-6, 2.0e-6]
"""


def _factory(tmp_path: Path) -> Any:
    path = tmp_path / "unet3d_factory.py"
    path.write_text(FACTORY)
    namespace: dict[str, Any] = {}
    exec(compile(FACTORY, str(path), "exec"), namespace)
    return namespace["build"]


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Any:
    return _factory(tmp_path_factory.mktemp("factory"))


def _md(version: str = "2.0.0", overlap: tuple[int, ...] | None = (10, 10, 10)) -> CzannMetadata:
    return CzannMetadata(
        type=SEG,
        input_shape=None,
        output_shape=None,
        classes=("bg", "fg"),
        min_overlap=overlap,
        format_version=version,
    )


def test_3d_unet_converts_and_verifies_in_z_y_and_x(build, tmp_path) -> None:
    from czbuild.formats.runner import open_runner
    from czbuild.verify import verify_artifact

    model = build()
    out = tmp_path / "u3.czann"
    result = convert(
        ConversionRequest(
            source=model, metadata=_md(), preprocessing=PRE, spatial_dims=(12, 16, 20)
        ),
        out,
    )
    artifact = read_artifact(out)
    assert artifact.metadata.input_shape == (12, 16, 20, 1)
    assert artifact.metadata.output_shape == (12, 16, 20, 2)
    assert artifact.metadata.min_overlap == (10, 10, 10)
    # UpSampling3D / Conv3DTranspose graphs do not specialise: one conversion per tile
    assert result.route == "fixed"
    x = np.random.default_rng(1).random((2, 12, 16, 20, 1), dtype=np.float32)
    expected = model.predict((x - 0.5) / 0.25, verbose=0)
    assert np.abs(open_runner(artifact.model_bytes)(x) - expected).max() < 1e-5
    report = verify_artifact(out, source_model=model, preprocessing=list(PRE))
    assert report.ok, {c.name: c.message for c in report.failed}
    assert report.get("fidelity").status == "passed"
    seams = report.get("tiling.seams")
    assert seams.status == "passed", seams.message
    assert len(seams.details["tile_starts_z"]) > 1 and seams.details["image_size"] == [24, 32, 40]
    assert report.get("tiling.min_overlap").details["minimal_overlap"] <= 10


def test_fixed_size_3d_model_and_the_specialised_route(build, tmp_path) -> None:
    import keras

    from czbuild.sources.dispatch import open_converter

    fixed = build((12, 16, 20))
    result = convert(ConversionRequest(source=fixed, metadata=_md()), tmp_path / "f.czann")
    assert read_artifact(result.path).metadata.input_shape == (12, 16, 20, 1)
    # a fixed-size model replayed at another volume size
    other = convert(
        ConversionRequest(source=fixed, metadata=_md(overlap=None), spatial_dims=(4, 8, 12)),
        tmp_path / "g.czann",
    )
    assert read_artifact(other.path).metadata.output_shape == (4, 8, 12, 2)
    # a conv + BatchNormalization net: one undefined-size conversion, every tile specialised
    keras.utils.set_random_seed(5)
    inputs = keras.Input((None, None, None, 2))
    x = keras.layers.BatchNormalization()(keras.layers.Conv3D(3, 3, padding="same")(inputs))
    plain = keras.Model(inputs, keras.layers.Conv3D(1, 1)(x), name="plain3d")
    converter = open_converter(plain)
    md = CzannMetadata(type="Regression", input_shape=None, output_shape=None)
    for tile in ((4, 8, 8), (6, 8, 10)):
        out = tmp_path / f"p{tile[0]}.czann"
        done = convert(
            ConversionRequest(source=plain, metadata=md, spatial_dims=tile),
            out,
            converter=converter,
        )
        assert done.route == "specialized"
        assert read_artifact(out).metadata.output_shape == (*tile, 1)


def test_formats_and_sizes_that_cannot_take_a_3d_model(build, tmp_path) -> None:
    model = build()
    legacy = LegacyMetadata(
        name="u3",
        color_handling="ConvertToMonochrome",
        pixel_types=("Gray8",),
        classes=("bg", "fg"),
        border_size=2,
    )
    for version in ("3.1.0", "3.0.0"):
        out = tmp_path / f"u3-{version}.czmodel"
        request = ConversionRequest(
            source=model, metadata=legacy.__class__(**{**legacy.__dict__, "version": version}),
            spatial_dims=(12, 16, 20),
        )  # fmt: skip
        with pytest.raises(ModelError, match=r"3D model .* legacy czmodel .* CZANN >= 2\.0\.0"):
            convert(request, out)
        assert not out.exists()
        # a 2D tile for a 3D model names the format problem, not the tile
        with pytest.raises(ModelError, match=r"3D model .* legacy czmodel"):
            convert(ConversionRequest(source=model, metadata=request.metadata, spatial_dims=(16, 16)), out)  # fmt: skip
    with pytest.raises(MetadataError, match=r"InputShape: .* 3D needs format version >= 2\.0\.0"):
        convert(
            ConversionRequest(source=model, metadata=_md("1.1.0", None), spatial_dims=(12, 16, 20)),
            tmp_path / "old.czann",
        )
    with pytest.raises(ModelError, match=r"a 3D model\): give spatial_dims=\(z, h, w\)"):
        convert(
            ConversionRequest(source=model, metadata=_md(), spatial_dims=(16, 16)), tmp_path / "a"
        )
    with pytest.raises(ModelError, match=r"undefined .* spatial_dims=\(h, w\) \(3D: \(z, h, w\)\)"):
        convert(ConversionRequest(source=model, metadata=_md()), tmp_path / "b.czann")
    with pytest.raises(ModelError, match=r"cannot run at input \(7, 16, 20, 1\): .* divisible"):
        convert(
            ConversionRequest(source=model, metadata=_md(), spatial_dims=(7, 16, 20)),
            tmp_path / "c",
        )


def test_3d_keras_recipe_builds_and_passes_verify_recipe(build, tmp_path) -> None:
    root = tmp_path
    (root / "recipes").mkdir()
    (root / "models").mkdir()
    build().save(root / "models" / "unet3d.keras")
    (root / "recipes" / "kunet3d.yaml").write_text(RECIPE)
    run_cli("build", "--in-process", cwd=root, check=True)
    (built,) = (root / "build").rglob("*.czann")
    artifact = read_artifact(built)
    assert artifact.version == "2.1.0"
    assert artifact.metadata.input_shape == (12, 16, 20, 1)
    assert artifact.metadata.scaling == (1e-6, 1e-6, 2e-6)
    result = run_cli(
        "verify", str(built), "--recipe", "kunet3d", "--project", str(root), "--json", cwd=root
    )
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {c["name"]: c["status"] for c in json.loads(result.stdout)["checks"]}
    assert checks["fidelity"] == "passed" and checks["tiling.seams"] == "passed", checks


def test_convert_cli_takes_a_3d_tile_with_depth(build, tmp_path) -> None:
    """``czbuild convert --spatial-dims H W --depth Z`` rebuilds an undefined-size 3D model."""
    from click.testing import CliRunner

    from czbuild.cli import cli

    build().save(tmp_path / "u3.keras")
    metadata = {
        "Type": SEG,
        "Classes": ["bg", "fg"],
        "MinOverlap": [10, 10, 10],
        "FormatVersion": "2.0.0",
    }
    spec = tmp_path / "u3.json"
    spec.write_text(json.dumps({"ModelMetadata": metadata, "ModelPath": "u3.keras"}))
    args = ["convert", str(spec), str(tmp_path / "out"), "--spatial-dims", "16", "20"]
    result = CliRunner().invoke(cli, [*args, "--depth", "12"])
    assert result.exit_code == 0, result.output
    artifact = read_artifact(tmp_path / "out" / "u3.czann")
    assert artifact.metadata.input_shape == (12, 16, 20, 1)
    assert artifact.metadata.output_shape == (12, 16, 20, 2)
    alone = CliRunner().invoke(cli, ["convert", str(spec), str(tmp_path / "o2"), "--depth", "12"])
    assert alone.exit_code == 2 and "--depth Z needs --spatial-dims H W" in alone.output


def _sigmoid_3d(kernel: float) -> Any:
    """A 1x1x1 Conv3D sigmoid head: high on the test volume's blobs, low between them."""
    import keras

    inputs = keras.Input((None, None, None, 1))
    head = keras.layers.Conv3D(
        1,
        1,
        activation="sigmoid",
        kernel_initializer=keras.initializers.Constant(kernel),
        bias_initializer=keras.initializers.Constant(-0.55 * kernel),
    )
    return keras.Model(inputs, head(inputs))


def test_semantic_checks_run_on_3d_tiles(tmp_path) -> None:
    """class_order and output_range look at a volume tile of the test volume, not skip 3D."""
    from czbuild.verify import verify_artifact

    model = _sigmoid_3d(20.0)
    seed_default = ({"op": "sigmoid_to_softmax_scores"},)
    out = tmp_path / "s3.czann"
    md = _md(overlap=None)
    convert(
        ConversionRequest(
            source=model, metadata=md, postprocessing=seed_default, spatial_dims=(8, 16, 16)
        ),
        out,
    )
    claimed = ({"op": "sigmoid_to_softmax_scores", "positive": "fg", "positive_channel": 0},)
    report = verify_artifact(out, source_model=model, postprocessing=claimed, tiling=False)
    check = report.get("semantics.class_order")
    assert check.status == "failed", check.message  # [p, 1 - p] labels the blobs 'bg'
    assert check.details["high_pixels"] > 0 and check.details["low_pixels"] > 0
    assert "as 'bg', not 'fg'" in check.message

    # A linear 3D regression head that leaves [0, 1] on the test volume.
    reg = tmp_path / "r3.czann"
    regression = CzannMetadata(
        type="Regression",
        input_shape=None,
        output_shape=None,
        classes=None,
        min_overlap=None,
        format_version="2.0.0",
    )
    import keras

    linear = _sigmoid_3d(20.0)
    linear.layers[-1].activation = keras.activations.linear
    convert(ConversionRequest(source=linear, metadata=regression, spatial_dims=(8, 16, 16)), reg)
    report = verify_artifact(reg, source_model=linear, tiling=False)
    check = report.get("semantics.output_range")
    assert check.status == "failed", check.message
    assert "on the test image" in check.message and "test_image" in check.details
