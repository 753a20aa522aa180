"""Fidelity: every format's packaged payload vs Keras model + NumPy reference preprocessing.

The payload is read back from the written file and run with onnxruntime (3.0.0: the
SavedModel with TensorFlow) on seeded random tiles; the reference is the Keras model applied
to :func:`czbuild.ops.apply_numpy` of the preprocessing (and postprocessing). Tolerance:
max abs diff <= 1e-5.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from czbuild import ops as czops

pytestmark = pytest.mark.slow

ATOL = 1e-5
TILES = (16, 24)
CLASSES = ("Background", "Cells", "Nuclei")
CZANN_PRE = (
    {"op": "rgb_to_bgr"},
    {"op": "normalization", "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]},
)
LEGACY_PRE = ({"op": "scale", "scale": 1 / 255}, {"op": "rgb_to_bgr"})
VERSIONS = ("1.0.0", "1.1.0", "2.0.0", "2.1.0", "3.1.0", "3.0.0")


def _model(head: int):
    import keras

    keras.utils.set_random_seed(21)
    inputs = keras.Input((None, None, 3))
    a = keras.layers.Conv2D(6, 3, padding="same", activation="relu")(inputs)
    a = keras.layers.BatchNormalization()(a)
    b = keras.layers.MaxPooling2D()(a)
    b = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(b)
    b = keras.layers.Conv2DTranspose(6, 2, strides=2, padding="same")(b)
    x = keras.layers.Concatenate()([a, b])
    x = keras.layers.Dropout(0.5)(x)
    activation = "softmax" if head > 1 else "sigmoid"
    model = keras.Model(inputs, keras.layers.Conv2D(head, 1, activation=activation)(x))
    # Non-trivial BatchNorm statistics, so inference mode matters.
    bn = model.layers[2]
    rng = np.random.default_rng(0)
    gamma, beta, mean, var = bn.get_weights()
    bn.set_weights(
        [
            gamma * 1.5,
            beta + 0.1,
            rng.random(mean.shape).astype("float32"),
            (rng.random(var.shape) + 0.5).astype("float32"),
        ]
    )
    return model


@pytest.fixture(scope="module")
def models():
    return {"softmax": _model(3), "sigmoid": _model(1)}


def _metadata(version: str, classes=CLASSES):
    from czbuild.formats import CzannMetadata, LegacyMetadata

    if version.startswith("3."):
        return LegacyMetadata(
            name="Fidelity",
            color_handling="SplitRgb",
            pixel_types=("Bgr24",),
            classes=classes,
            border_size=2,
            version=version,
        )
    return CzannMetadata(
        type="SingleClassSemanticSegmentation",
        input_shape=None,
        output_shape=None,
        classes=classes,
        format_version=version,
    )


@pytest.fixture(scope="module")
def artifacts(models, tmp_path_factory):
    """Every version at every tile, through one converter (as a sweep would)."""
    from czbuild.convert import ConversionRequest, convert
    from czbuild.keras.converter import ModelConverter

    out = tmp_path_factory.mktemp("fidelity")
    converter = ModelConverter(models["softmax"])
    built = {}
    for version in VERSIONS:
        pre = LEGACY_PRE if version.startswith("3.") else CZANN_PRE
        for tile in TILES:
            request = ConversionRequest(
                source=models["softmax"],
                metadata=_metadata(version),
                preprocessing=pre,
                spatial_dims=(tile, tile),
            )
            ext = ".czmodel" if version.startswith("3.") else ".czann"
            built[version, tile] = convert(
                request, out / f"m-{version}-{tile}{ext}", converter=converter
            ).path
    return built


def _run_payload(path: Path, x: np.ndarray, tmp_path: Path) -> np.ndarray:
    from czbuild.formats import read_artifact

    artifact = read_artifact(path)
    if artifact.payload == "savedmodel_zip":
        import tensorflow as tf

        folder = tmp_path / "saved_model"
        with zipfile.ZipFile(io.BytesIO(artifact.model_bytes)) as zf:
            zf.extractall(folder)
        serve = tf.saved_model.load(str(folder)).signatures["serving_default"]
        return serve(input=tf.constant(x))["output"].numpy()
    import onnxruntime as ort

    session = ort.InferenceSession(artifact.model_bytes, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _reference(model, pre, post, x: np.ndarray) -> np.ndarray:
    y = np.asarray(model(czops.apply_numpy(pre, x).astype(np.float32), training=False))
    return czops.apply_numpy(post, y) if post else y


@pytest.mark.parametrize("tile", TILES, ids=[f"tile{t}" for t in TILES])
@pytest.mark.parametrize("version", VERSIONS)
def test_payload_matches_keras(models, artifacts, tmp_path, version, tile):
    legacy = version.startswith("3.")
    pre = LEGACY_PRE if legacy else CZANN_PRE
    rng = np.random.default_rng(VERSIONS.index(version) * 100 + tile)
    scale = 255.0 if legacy else 1.0
    x = (rng.random((3, tile, tile, 3)) * scale).astype(np.float32)
    got = _run_payload(artifacts[version, tile], x, tmp_path)
    expected = _reference(models["softmax"], pre, (), x)
    assert got.shape == (3, tile, tile, 3)
    assert np.max(np.abs(got - expected)) <= ATOL


@pytest.mark.parametrize("version", ["2.1.0", "3.1.0"])
def test_postprocessing_sigmoid_head(models, tmp_path, version):
    from czbuild.convert import ConversionRequest, convert

    post = ({"op": "sigmoid_to_softmax_scores"},)
    pre = LEGACY_PRE if version.startswith("3.") else CZANN_PRE
    request = ConversionRequest(
        source=models["sigmoid"],
        metadata=_metadata(version, ("Cells", "Background")),
        preprocessing=pre,
        postprocessing=post,
        spatial_dims=(16, 16),
    )
    ext = ".czmodel" if version.startswith("3.") else ".czann"
    path = convert(request, tmp_path / f"sigmoid{ext}").path
    x = np.random.default_rng(8).random((2, 16, 16, 3), dtype=np.float32)
    if version.startswith("3."):
        x *= 255
    got = _run_payload(path, x, tmp_path)
    expected = _reference(models["sigmoid"], pre, post, x)
    assert got.shape == (2, 16, 16, 2)
    assert np.max(np.abs(got - expected)) <= ATOL
