"""Real architectures end to end: recipe -> build -> verify -> what ZEN would compute.

Tiny, seeded, offline versions of the models a microscopist brings in the first week (issue
14 §1-§2), each built by the real builder (in process) from a recipe and verified:

* a residual U-Net with BatchNorm and a 1-channel sigmoid head, ``positive: Cell`` with the
  cell class first and second in ``metadata.classes``: ZEN's label map (argmax over channels
  -> class index) must name the cell pixels ``Cell`` both ways;
* a CARE-style restoration U-Net with a linear output: with ``clip`` it builds; without, the
  build fails on ``semantics.output_range`` with the fix in the message; with
  ``verify.accept`` it builds with a warning;
* a percentile-normalised segmenter (CSBDeep convention), CZANN (ONNX) and legacy 3.0.0
  (SavedModel): the packaged model matches the NumPy reference.

The tests that build TensorFlow models are marked slow.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

TILE = 32

MODELS = '''\
"""Seeded tiny versions of real architectures (factories for the recipes)."""
import keras
import numpy as np


def _conv_bn(x, filters):
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    return keras.layers.Activation("relu")(x)


def _unet(inputs, filters=4):
    skip = _conv_bn(inputs, filters)
    shortcut = keras.layers.Conv2D(filters, 1)(inputs)
    skip = keras.layers.Add()([skip, shortcut])  # residual block
    x = keras.layers.MaxPooling2D(2)(skip)
    x = _conv_bn(x, 2 * filters)
    x = keras.layers.UpSampling2D(2)(x)
    x = keras.layers.Concatenate()([x, skip])
    return _conv_bn(x, filters)


def _randomise_batchnorm(model, rng):
    # Trained-looking BatchNorm statistics, so folding them into the export matters.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                rng.normal(0.0, 0.1, beta.shape).astype("float32"),
                rng.normal(0.0, 0.1, mean.shape).astype("float32"),
                rng.uniform(0.5, 2.0, var.shape).astype("float32"),
            ])


def _head(model, name, weight, bias, rng):
    # The head sees the U-Net features and the raw input; a strong weight on the input
    # makes the output follow the image (high on the bright blobs, low on the background).
    layer = model.get_layer(name)
    kernel, _ = layer.get_weights()
    kernel = rng.normal(0.0, 0.05, kernel.shape).astype("float32")
    kernel[0, 0, -1, 0] = weight
    layer.set_weights([kernel, np.full((1,), bias, "float32")])


def unet_sigmoid():
    keras.utils.set_random_seed(14)
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Concatenate()([_unet(inputs), inputs])
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid", name="head")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(14)
    _randomise_batchnorm(model, rng)
    _head(model, "head", 40.0, -20.0, rng)  # p > 0.5 where the input is above ~0.5
    return model


def care_linear():
    keras.utils.set_random_seed(15)
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Concatenate()([_unet(inputs), inputs])
    outputs = keras.layers.Conv2D(1, 1, name="head")(x)  # linear: restoration output
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(15)
    _randomise_batchnorm(model, rng)
    _head(model, "head", 3.0, -0.4, rng)  # leaves [0, 1] on both sides
    return model


def segmenter():
    keras.utils.set_random_seed(16)
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    outputs = keras.layers.Conv2D(2, 1, activation="softmax")(x)
    return keras.Model(inputs, outputs)
'''

CZANN_SEG = """\
name: {name}
model: {{factory: ../models/real.py:{factory}}}
format: czann
tile: {tile}
preprocessing: {pre}
postprocessing: {post}
metadata:
  type: SingleClassSemanticSegmentation
  classes: {classes}
  min_overlap: [{overlap}, {overlap}]
verify: {verify}
"""

CZANN_REGRESSION = """\
name: {name}
model: {{factory: ../models/real.py:care_linear}}
format: czann
tile: {tile}
postprocessing: {post}
metadata:
  type: Regression
  min_overlap: [16, 16]
verify: {verify}
"""

LEGACY_SEG = """\
name: {name}
model: {{factory: ../models/real.py:segmenter}}
format: czmodel
format_version: 3.0.0
tile: {tile}
preprocessing: {pre}
metadata:
  classes: [Background, Cell]
  pixel_type: Gray8
  color_handling: ConvertToMonochrome
  border_size: 2
verify: {verify}
"""

SIGMOID_POST = "[{op: sigmoid_to_softmax_scores, positive: Cell}]"
PERCENTILE_PRE = "[{op: percentile_normalization, low: 1.0, high: 99.8}]"


def _project(root: Path, recipes: dict[str, str]) -> Path:
    (root / "recipes").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "models" / "real.py").write_text(MODELS)
    for name, text in recipes.items():
        (root / "recipes" / f"{name}.yaml").write_text(text)
    return root


def _build(project: Path) -> tuple[Any, str]:
    from czbuild.builder import BuildOptions, build
    from czbuild.recipe import load_variants

    variants = load_variants(project_dir=project)
    stream = io.StringIO()
    report = build(variants, BuildOptions(out_dir=project / "build", in_process=True), out=stream)
    return report, stream.getvalue()


def _record(project: Path, recipe: str) -> dict[str, Any]:
    """The verification record of ``recipe``'s artifact (kept also when it failed)."""
    (path,) = (project / "build" / ".czbuild" / "reports").glob(f"{recipe}/**/*.verify.json")
    return json.loads(path.read_text())


def _checks(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in record["checks"]}


def _artifact(project: Path, recipe: str) -> Path:
    (path,) = (project / "build" / recipe).glob("**/*.cz*")
    return path


def _zen_labels(path: Path, image: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """What ZEN shows: argmax over the output channels, as class names of the artifact."""
    import onnxruntime as ort

    from czbuild.formats.archive import read_artifact

    artifact = read_artifact(path)
    session = ort.InferenceSession(artifact.model_bytes, providers=["CPUExecutionProvider"])
    scores = session.run(None, {session.get_inputs()[0].name: image.astype(np.float32)})[0]
    classes = tuple(artifact.metadata.classes)
    return np.asarray(classes)[np.argmax(scores, axis=-1)], classes


def _load_factory(project: Path, name: str) -> Any:
    from czbuild.keras.sources import load_model

    return load_model(f"{project / 'models' / 'real.py'}:{name}")


def _sample(channels: int = 1, size: int = TILE, seed: int = 3) -> np.ndarray:
    from czbuild.verify.info import ModelInfo
    from czbuild.verify.inputs import sample_image

    info = ModelInfo("czann", "2.1.0", "Regression", (size, size, channels), (size, size, 1))
    return sample_image(info, (size, size, channels), seed)


# --- §1: sigmoid heads --------------------------------------------------------------------


@pytest.mark.slow
def test_sigmoid_unet_positive_class_either_order(tmp_path: Path) -> None:
    common = {"factory": "unet_sigmoid", "tile": TILE, "overlap": 16, "pre": "[]"}
    common.update(post=SIGMOID_POST, verify="{tiling: false}")
    project = _project(
        tmp_path / "proj",
        {
            "cell_second": CZANN_SEG.format(
                name="cell_second", classes="[Background, Cell]", **common
            ),
            "cell_first": CZANN_SEG.format(
                name="cell_first", classes="[Cell, Background]", **common
            ),
        },
    )
    report, text = _build(project)
    assert report.exit_code == 0, text

    image = _sample()
    p = np.asarray(_load_factory(project, "unet_sigmoid")(image))[..., 0]
    truth = np.where(p > 0.5, "Cell", "Background")
    assert 0.05 < np.mean(p > 0.5) < 0.95, "the test model must detect some pixels, not all"
    for recipe, order in (
        ("cell_second", ("Background", "Cell")),
        ("cell_first", ("Cell", "Background")),
    ):
        labels, classes = _zen_labels(_artifact(project, recipe), image)
        assert classes == order
        decided = np.abs(p - 0.5) > 1e-3
        np.testing.assert_array_equal(labels[decided], truth[decided])
        check = _checks(_record(project, recipe))["semantics.class_order"]
        assert check["status"] == "passed", check["message"]
        assert check["details"]["positive"] == "Cell"
        assert check["details"]["positive_channel"] == classes.index("Cell")


def test_recipe_without_positive_explains_both_orders(tmp_path: Path) -> None:
    from czbuild.errors import RecipeError
    from czbuild.recipe import load_variants

    text = CZANN_SEG.format(
        name="nopos",
        factory="unet_sigmoid",
        tile=TILE,
        overlap=16,
        pre="[]",
        post="[sigmoid_to_softmax_scores]",
        classes="[Background, Cell]",
        verify="{}",
    )
    project = _project(tmp_path / "proj", {"nopos": text})
    with pytest.raises(RecipeError) as info:
        load_variants(project_dir=project)
    message = str(info.value)
    assert "\n" not in message
    assert "nopos.yaml" in message and "postprocessing[0].positive" in message
    assert "positive: Cell gives [Background, Cell] = [1 - p, p]" in message
    assert "positive: Background gives [p, 1 - p]" in message


@pytest.mark.slow
def test_class_order_check_catches_a_swapped_head(tmp_path: Path) -> None:
    """The seed default [p, 1-p] with classes [Background, Cell]: cells become Background."""
    from czbuild.convert import ConversionRequest, convert
    from czbuild.formats.czann import CzannMetadata
    from czbuild.verify import verify_artifact

    project = _project(tmp_path / "proj", {})
    model = _load_factory(project, "unet_sigmoid")
    metadata = CzannMetadata(
        type="SingleClassSemanticSegmentation",
        input_shape=None,
        output_shape=None,
        classes=("Background", "Cell"),
        min_overlap=(16, 16),
    )
    seed_default = ({"op": "sigmoid_to_softmax_scores"},)
    request = ConversionRequest(
        source=model, metadata=metadata, postprocessing=seed_default, spatial_dims=(TILE, TILE)
    )
    path = convert(request, tmp_path / "swapped.czann").path

    # The chain as built, with the recipe's claim that the sigmoid scores Cell: fidelity
    # passes (same maths), the class order does not.
    claimed = ({"op": "sigmoid_to_softmax_scores", "positive": "Cell", "positive_channel": 0},)
    report = verify_artifact(path, source_model=model, postprocessing=claimed, tiling=False)
    assert report.get("fidelity").status == "passed"
    check = report.get("semantics.class_order")
    assert check.status == "failed" and not report.ok
    assert "as 'Background', not 'Cell'" in check.message
    assert "wrong order for metadata.classes" in check.message

    # Without a named class (library use) the check warns which class the detections get.
    report = verify_artifact(path, source_model=model, postprocessing=seed_default, tiling=False)
    check = report.get("semantics.class_order")
    assert check.status == "warning" and report.ok
    assert "sigmoid is high as 'Background' (channel 0)" in check.message


# --- §2: regression range -----------------------------------------------------------------


@pytest.mark.slow
def test_linear_regression_needs_clip_or_accept(tmp_path: Path) -> None:
    clip = "[{op: clip, min: 0.0, max: 1.0}]"
    project = _project(
        tmp_path / "proj",
        {
            "care_clip": CZANN_REGRESSION.format(
                name="care_clip", tile=TILE, post=clip, verify="{tiling: false}"
            ),
            "care_raw": CZANN_REGRESSION.format(
                name="care_raw", tile=TILE, post="[]", verify="{tiling: false}"
            ),
            "care_accepted": CZANN_REGRESSION.format(
                name="care_accepted",
                tile=TILE,
                post="[]",
                verify="{tiling: false, accept: [semantics.output_range]}",
            ),
        },
    )
    report, text = _build(project)
    assert report.exit_code != 0, text
    assert sorted(report.summary.built) == ["care_accepted", "care_clip"], text
    assert list(report.summary.failed) == ["care_raw"]
    # The build's one failure line has the figures and the fix.
    line = report.summary.failed["care_raw"]
    assert "verification failed: semantics.output_range (range [" in line
    assert "add {op: clip, min: 0, max: 1} (or {op: sigmoid} for a linear head)" in line

    raw = _checks(_record(project, "care_raw"))["semantics.output_range"]
    assert raw["status"] == "failed"
    low, high = raw["details"]["test_image"]
    assert low < 0.0 or high > 1.0
    assert "on the test image" in raw["message"] and "ZEN expects [0, 1]" in raw["message"]
    assert "add {op: clip, min: 0, max: 1}" in raw["message"]
    assert "verify.accept: [semantics.output_range]" in raw["message"]
    assert not (project / "build" / "care_raw").exists() or not list(
        (project / "build" / "care_raw").glob("**/*.czann")
    )

    clipped = _checks(_record(project, "care_clip"))
    assert clipped["semantics.output_range"]["status"] == "passed"
    assert clipped["fidelity"]["status"] == "passed"
    accepted = _checks(_record(project, "care_accepted"))["semantics.output_range"]
    assert accepted["status"] == "warning" and accepted["details"]["accepted"] is True
    assert accepted["message"].startswith("accepted by verify.accept:")


# --- §2: percentile normalisation ---------------------------------------------------------


@pytest.mark.slow
def test_percentile_normalised_model_matches_numpy_reference(tmp_path: Path) -> None:
    from czbuild.formats.archive import read_artifact
    from czbuild.ops import apply_numpy

    common = {"tile": TILE, "pre": PERCENTILE_PRE, "verify": "{}"}
    project = _project(
        tmp_path / "proj",
        {
            "pct": CZANN_SEG.format(
                name="pct",
                factory="segmenter",
                overlap=4,
                post="[]",
                classes="[Background, Cell]",
                **common,
            ),
            "pct_legacy": LEGACY_SEG.format(name="pct_legacy", **common),
        },
    )
    report, text = _build(project)
    assert report.exit_code == 0, text
    for recipe in ("pct", "pct_legacy"):
        checks = _checks(_record(project, recipe))
        assert checks["fidelity"]["status"] == "passed", checks["fidelity"]["message"]
        assert checks["fidelity"]["details"]["preprocessing"][0]["op"] == (
            "percentile_normalization"
        )
        # Per-tile percentiles make the tiled output depend on the tiling: a warning at
        # most, never a failed build.
        assert checks["tiling.seams"]["status"] in ("passed", "warning")

    model = _load_factory(project, "segmenter")
    op = {"op": "percentile_normalization", "low": 1.0, "high": 99.8}
    rng = np.random.default_rng(7)
    x = rng.uniform(0.0, 1.0, (2, TILE, TILE, 1)).astype(np.float32)
    flat = x.reshape(2, -1).astype(np.float64)
    p1, p99 = np.percentile(flat, [1.0, 99.8], axis=1)
    by_hand = (x - p1[:, None, None, None]) / (p99 - p1 + 1e-20)[:, None, None, None]
    np.testing.assert_allclose(apply_numpy([op], x), by_hand, atol=1e-12)
    expected = np.asarray(model(by_hand.astype(np.float32)))

    import onnxruntime as ort

    artifact = read_artifact(_artifact(project, "pct"))
    session = ort.InferenceSession(artifact.model_bytes, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # Legacy 3.0.0 carries the percentile maths inside a TF SavedModel (TopKV2).
    assert read_artifact(_artifact(project, "pct_legacy")).payload == "savedmodel_zip"
