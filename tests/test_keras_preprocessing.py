"""Tests for czbuild.keras.preprocessing: every layer against the NumPy reference of czbuild.ops,
serialisation, argument errors and ONNX conversion at opsets 12 and 18.

Every test imports TensorFlow (through the module under test) and is marked slow; the import
happens inside the tests so that ``-m 'not slow'`` does not load TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from czbuild import ops

pytestmark = pytest.mark.slow

TOL = 1e-5

# (op dict, input channels) per layer; constants chosen so that every channel differs.
CASES: list[tuple[dict[str, Any], int]] = [
    ({"op": "rgb_to_bgr"}, 3),
    ({"op": "rgb_to_bgr"}, 1),
    ({"op": "rgba_to_bgra"}, 4),
    ({"op": "per_image_standardization"}, 3),
    ({"op": "normalization", "mean": [0.1, 0.5, 0.9], "std": [0.2, 0.5, 2.0]}, 3),
    ({"op": "normalization", "mean": 0.25, "std": 0.125}, 2),
    ({"op": "transpose_channels", "order": [2, 0, 1]}, 3),
    ({"op": "transpose_channels", "order": [1, 0]}, 4),
    ({"op": "shift", "shift": [-1.0, 2.5]}, 2),
    ({"op": "scale", "scale": 1 / 255}, 1),
    ({"op": "sigmoid_to_softmax_scores"}, 1),
    ({"op": "sigmoid_to_softmax_scores", "positive": "Cell", "positive_channel": 1}, 1),
    ({"op": "percentile_normalization"}, 3),
    ({"op": "percentile_normalization", "low": 0.0, "high": 100.0, "eps": 1e-6}, 1),
    ({"op": "percentile_normalization", "low": 37.5, "high": 62.5}, 2),
    ({"op": "min_max_normalization"}, 2),
    ({"op": "scale_range", "in": [0, 65535], "out": [0, 1]}, 1),
    ({"op": "scale_range", "in": [1.0, -1.0], "out": [-2.0, 5.0]}, 2),
    ({"op": "clip", "min": 0.0, "max": 1.0}, 2),
    ({"op": "clip", "min": [-1.0, 0.0, 0.5], "max": [0.0, 1.0, 0.5]}, 3),
    ({"op": "sigmoid"}, 2),
]
CASE_IDS = [
    "rgb_to_bgr",
    "rgb_to_bgr-gray",
    "rgba_to_bgra",
    "per_image_standardization",
    "normalization-per-channel",
    "normalization-scalar",
    "transpose_channels",
    "transpose_channels-drops",
    "shift",
    "scale",
    "sigmoid_to_softmax_scores",
    "sigmoid_to_softmax_scores-positive-second",
    "percentile_normalization",
    "percentile_normalization-full-range",
    "percentile_normalization-middle",
    "min_max_normalization",
    "scale_range-gray16",
    "scale_range-reversed",
    "clip",
    "clip-per-channel",
    "sigmoid",
]


def _data(channels: int, *, hw: int = 8, batch: int = 2) -> np.ndarray:
    rng = np.random.default_rng(20240601 + channels)
    return rng.normal(0.3, 2.0, size=(batch, hw, hw, channels)).astype(np.float32)


def _chain(steps: list[dict[str, Any]], channels: int, hw: int | None = 8) -> Any:
    import keras

    from czbuild.keras.preprocessing import layer_from_op

    inputs = keras.Input((hw, hw, channels))
    x = inputs
    for step in steps:
        x = layer_from_op(step)(x)
    return keras.Model(inputs, x)


@pytest.mark.parametrize(("op", "channels"), CASES, ids=CASE_IDS)
def test_layer_matches_numpy_reference(op: dict[str, Any], channels: int) -> None:
    x = _data(channels)
    model = _chain([op], channels)
    got = np.asarray(model(x))
    expected = ops.apply_numpy([op], x)
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= TOL
    assert model.output.shape[-1] == ops.out_channels([op], channels)


@pytest.mark.parametrize(("op", "channels"), CASES, ids=CASE_IDS)
def test_layer_works_with_undefined_tile_size(op: dict[str, Any], channels: int) -> None:
    model = _chain([op], channels, hw=None)
    for hw in (4, 6):
        x = _data(channels, hw=hw)
        assert np.max(np.abs(np.asarray(model(x)) - ops.apply_numpy([op], x))) <= TOL


@pytest.mark.parametrize(("op", "channels"), CASES, ids=CASE_IDS)
def test_get_config_round_trip(op: dict[str, Any], channels: int) -> None:
    from czbuild.keras.preprocessing import layer_from_op, op_from_layer

    layer = layer_from_op(op, name="my_step")
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.name == "my_step"
    assert clone.get_config() == config
    assert op_from_layer(clone) == ops.validate_op(op)
    x = _data(channels)
    np.testing.assert_array_equal(np.asarray(layer(x)), np.asarray(clone(x)))


def test_registered_under_czbuild_package() -> None:
    import keras

    from czbuild.keras import preprocessing

    for cls in preprocessing.LAYER_CLASSES.values():
        assert keras.saving.get_registered_name(cls) == f"czbuild>{cls.__name__}"
    assert preprocessing.Normalization is not keras.layers.Normalization


def test_dispatch_covers_registry() -> None:
    from czbuild.keras.preprocessing import LAYER_CLASSES

    assert set(LAYER_CLASSES) == set(ops.OPS)
    for name, cls in LAYER_CLASSES.items():
        assert cls.op_name == name
        assert ops.OPS[name].layer == cls.__name__


def test_wrapped_model_saves_and_reloads_as_keras(tmp_path: Path) -> None:
    import keras

    from czbuild.keras.wrap import wrap_model

    keras.utils.set_random_seed(3)
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inputs)
    model = keras.Model(inputs, outputs)
    pre = [
        {"op": "rgb_to_bgr"},
        {"op": "transpose_channels", "order": [2, 1, 0]},
        {"op": "per_image_standardization"},
        {"op": "normalization", "mean": [0.1, 0.2, 0.3], "std": 2.0},
        {"op": "shift", "shift": 0.5},
        {"op": "scale", "scale": [1.0, 0.5, 0.25]},
    ]
    post = [{"op": "sigmoid_to_softmax_scores"}]
    wrapped = wrap_model(model, preprocessing=pre, postprocessing=post, spatial_dims=(8, 8))
    wrapped.save(tmp_path / "wrapped.keras")
    reloaded = keras.models.load_model(tmp_path / "wrapped.keras")
    x = _data(3)
    np.testing.assert_allclose(np.asarray(reloaded(x)), np.asarray(wrapped(x)), rtol=0, atol=1e-7)
    kinds = [type(layer).__name__ for layer in reloaded.layers]
    assert kinds[1:7] == [
        "RgbToBgr",
        "TransposeChannels",
        "PerImageStandardization",
        "Normalization",
        "Shift",
        "Scale",
    ]
    assert kinds[-1] == "SigmoidToSoftmaxScores"


def test_rgba_to_bgra_on_rgba_model_round_trips(tmp_path: Path) -> None:
    import keras

    from czbuild.keras.preprocessing import RgbaToBgra

    inputs = keras.Input((4, 4, 4))
    model = keras.Model(inputs, RgbaToBgra()(inputs))
    model.save(tmp_path / "m.keras")
    x = _data(4, hw=4)
    np.testing.assert_array_equal(
        np.asarray(keras.models.load_model(tmp_path / "m.keras")(x)), x[..., [2, 1, 0, 3]]
    )


@pytest.mark.parametrize(
    ("dtype", "maximum"), [("uint8", 255), ("uint16", 65535)], ids=["uint8", "uint16"]
)
def test_per_image_standardization_integer_input(dtype: str, maximum: int) -> None:
    import keras

    from czbuild.keras.preprocessing import PerImageStandardization

    inputs = keras.Input((8, 8, 1), dtype=dtype)
    model = keras.Model(inputs, PerImageStandardization()(inputs))
    x = np.random.default_rng(5).integers(0, maximum, size=(2, 8, 8, 1)).astype(dtype)
    got = np.asarray(model(x))
    assert np.max(np.abs(got - ops.apply_numpy(["per_image_standardization"], x))) <= TOL


def test_per_image_standardization_constant_tile() -> None:
    model = _chain([{"op": "per_image_standardization"}], 1)
    np.testing.assert_array_equal(np.asarray(model(np.full((1, 8, 8, 1), 0.4, np.float32))), 0.0)


def test_scale_casts_integer_input_without_rescaling() -> None:
    import keras

    from czbuild.keras.preprocessing import Scale

    inputs = keras.Input((2, 2, 1), dtype="uint8")
    model = keras.Model(inputs, Scale(2.0)(inputs))
    got = np.asarray(model(np.full((1, 2, 2, 1), 200, np.uint8)))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, 400.0)


# --- argument errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda m: m.Normalization(mean=0.0, std=0.0), r"Normalization\.std\[0\]: must not be 0"),
        (lambda m: m.Normalization(mean=[1, 2], std=[1, 2, 3]), r"Normalization\.std: .*differ"),
        (lambda m: m.Shift(float("inf")), r"Shift\.shift\[0\]: must be finite"),
        (lambda m: m.Scale("2"), r"Scale\.scale: must be a number"),
        (lambda m: m.TransposeChannels([]), r"TransposeChannels\.order: must not be empty"),
        (lambda m: m.TransposeChannels([0, 2]), r"TransposeChannels\.order: .*permutation"),
        (lambda m: m.layer_from_op({"op": "scael"}), r"did you mean 'scale'"),
        (lambda m: m.layer_from_op({"op": "shift"}, where="pre[0]"), r"pre\[0\]\.shift: missing"),
    ],
    ids=[
        "std-zero",
        "length-mismatch",
        "shift-inf",
        "scale-string",
        "order-empty",
        "order-gap",
        "unknown-op",
        "missing-arg",
    ],
)
def test_argument_errors(make: Any, fragment: str) -> None:
    from czbuild.keras import preprocessing

    with pytest.raises(ValueError, match=fragment):
        make(preprocessing)


@pytest.mark.parametrize(
    ("op", "channels", "fragment"),
    [
        ({"op": "rgba_to_bgra"}, 3, "needs 4 input channel"),
        ({"op": "sigmoid_to_softmax_scores"}, 2, "needs 1 input channel"),
        ({"op": "transpose_channels", "order": [0, 1, 2]}, 2, "refers to channel 2"),
        ({"op": "scale", "scale": [1, 2]}, 3, "2 values"),
        ({"op": "rgb_to_bgr"}, None, "channel count of its input is undefined"),
    ],
    ids=["rgba-on-3", "sigmoid-on-2", "transpose-out-of-range", "length", "undefined-channels"],
)
def test_channel_errors_at_build(op: dict[str, Any], channels: int | None, fragment: str) -> None:
    import keras

    from czbuild.keras.preprocessing import layer_from_op

    layer = layer_from_op(op, name="step_x")
    with pytest.raises(ValueError, match=fragment) as info:
        layer(keras.Input((8, 8, channels)))
    assert "step_x" in str(info.value)


def test_op_from_layer_rejects_foreign_layers() -> None:
    import keras

    from czbuild.keras.preprocessing import op_from_layer

    with pytest.raises(TypeError, match="not a czbuild preprocessing layer"):
        op_from_layer(keras.layers.Normalization(mean=0.0, variance=1.0))


def test_op_from_layer_returns_independent_copy() -> None:
    from czbuild.keras.preprocessing import Shift, op_from_layer

    layer = Shift([1.0, 2.0])
    op = op_from_layer(layer)
    op["shift"].append(3.0)
    assert op_from_layer(layer) == {"op": "shift", "shift": [1.0, 2.0]}


# --- ONNX ---------------------------------------------------------------------------------------

FULL_CHAIN: list[dict[str, Any]] = [
    {"op": "rgba_to_bgra"},
    {"op": "rgb_to_bgr"},
    {"op": "transpose_channels", "order": [2, 1, 0, 3]},
    {"op": "scale_range", "in": [-4.0, 4.0], "out": [0.0, 1.0]},
    {"op": "percentile_normalization", "low": 2.0, "high": 99.5},
    {"op": "min_max_normalization"},
    {"op": "per_image_standardization"},
    {"op": "normalization", "mean": [0.1, 0.2, 0.3, 0.4], "std": [1.0, 2.0, 4.0, 8.0]},
    {"op": "shift", "shift": [1.0, -2.0, 3.0, -4.0]},
    {"op": "scale", "scale": 0.25},
    {"op": "clip", "min": -0.5, "max": [1.0, 2.0, 3.0, 4.0]},
    {"op": "sigmoid"},
    {"op": "transpose_channels", "order": [0]},
    {"op": "sigmoid_to_softmax_scores", "positive_channel": 1},
]


@pytest.mark.parametrize("opset", [12, 18], ids=["opset12", "opset18"])
@pytest.mark.parametrize("hw", [8, None], ids=["fixed", "undefined"])
def test_every_layer_converts_to_onnx(opset: int, hw: int | None) -> None:
    import onnx
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    assert {step["op"] for step in FULL_CHAIN} == set(ops.OPS)
    model = _chain(FULL_CHAIN, 4, hw=hw)
    spec = [tf.TensorSpec((None, hw, hw, 4), tf.float32, name="input")]
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    onnx.checker.check_model(proto)
    assert all(node.domain in ("", "ai.onnx") for node in proto.graph.node)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == opset
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = _data(4)
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert np.max(np.abs(got - ops.apply_numpy(FULL_CHAIN, x))) <= TOL


@pytest.mark.parametrize("opset", [12, 18], ids=["opset12", "opset18"])
def test_per_tile_normalisations_keep_constant_tiles_finite_in_onnx(opset: int) -> None:
    """A constant tile maps to 0, also after TF's graph optimiser rewrote the divisor."""
    import onnxruntime as ort

    from czbuild.keras.onnx_export import export_onnx

    for op in ({"op": "percentile_normalization"}, {"op": "min_max_normalization"}):
        data = export_onnx(_chain([op], 1), opset=opset, input_shape=(1, 8, 8, 1))
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        for value in (0.0, 0.3, 1.0, 65535.0):
            x = np.full((1, 8, 8, 1), value, np.float32)
            got = session.run(None, {session.get_inputs()[0].name: x})[0]
            np.testing.assert_array_equal(got, ops.apply_numpy([op], x))
