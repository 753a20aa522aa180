"""Tests for czbuild.keras.wrap: tile sizes, pre/post chains, tiling checks and every error case.

All tests import TensorFlow (inside the tests, so ``-m 'not slow'`` collects without it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from czbuild import ops
from czbuild.errors import ModelError

pytestmark = pytest.mark.slow

TOL = 1e-5


def _x(hw: int, channels: int = 1, batch: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((batch, hw, hw, channels), dtype=np.float32)


def _conv_layers(keras: Any, channels_out: int = 2) -> list[Any]:
    keras.utils.set_random_seed(11)
    return [
        keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(channels_out, 1, activation="softmax"),
    ]


def _functional(keras: Any, layers: list[Any], shape: tuple, name: str = "fcn") -> Any:
    inputs = keras.Input(shape, name="image")
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x, name=name)


@pytest.fixture()
def fcn_pair() -> tuple[Any, Any]:
    """The same conv layers (shared weights) behind a fixed 16x16 and an undefined input."""
    import keras

    layers = _conv_layers(keras)
    flexible = _functional(keras, layers, (None, None, 1), name="flexible")
    fixed = _functional(keras, layers, (16, 16, 1), name="fixed")
    return fixed, flexible


def _unet(
    keras: Any, tile: int | None, depth: int, *, skips: bool, skip_first: bool = False
) -> Any:
    """Tiny U-Net (4 filters) with ``depth`` poolings; optional skip concatenations."""
    layers = keras.layers
    inputs = keras.Input((tile, tile, 1))
    x = inputs
    saved = []
    for _ in range(depth):
        x = layers.Conv2D(4, 3, padding="same")(x)
        saved.append(x)
        x = layers.MaxPooling2D()(x)
    for level in reversed(range(depth)):
        x = layers.UpSampling2D()(x)
        if skips:
            pair = [saved[level], x] if skip_first else [x, saved[level]]
            x = layers.Concatenate()(pair)
    return keras.Model(inputs, layers.Conv2D(2, 1, activation="softmax")(x), name="unet")


# --- shapes -------------------------------------------------------------------------------------


def test_io_shapes(fcn_pair: tuple[Any, Any]) -> None:
    from czbuild.keras.wrap import io_shapes

    fixed, flexible = fcn_pair
    assert io_shapes(fixed) == ((16, 16, 1), (16, 16, 2))
    assert io_shapes(flexible) == ((None, None, 1), (None, None, 2))


@pytest.mark.parametrize(
    ("which", "spatial_dims", "expected"),
    [
        ("flexible", (8, 12), (8, 12, 1)),
        ("fixed", (8, 8), (8, 8, 1)),
        ("fixed", (32, 24), (32, 24, 1)),
        ("fixed", (16, 16), (16, 16, 1)),
        ("fixed", None, (16, 16, 1)),
        ("flexible", None, (None, None, 1)),
        ("fixed", (None, None), (None, None, 1)),
        ("flexible", [8, 8], (8, 8, 1)),
    ],
    ids=[
        "flexible-to-fixed",
        "fixed-smaller",
        "fixed-larger-non-square",
        "fixed-same",
        "fixed-kept",
        "flexible-kept",
        "fixed-to-undefined",
        "list-dims",
    ],
)
def test_spatial_dims(
    fcn_pair: tuple[Any, Any], which: str, spatial_dims: Any, expected: tuple
) -> None:
    from czbuild.keras.wrap import io_shapes, wrap_model

    fixed, flexible = fcn_pair
    model = fixed if which == "fixed" else flexible
    wrapped = wrap_model(model, spatial_dims=spatial_dims)
    assert wrapped.inputs[0].name == "input"
    in_shape, out_shape = io_shapes(wrapped)
    assert in_shape == expected
    assert out_shape == (*expected[:-1], 2)
    hw = expected[0] or 8
    wd = expected[1] or 8
    x = np.random.default_rng(1).random((1, hw, wd, 1), dtype=np.float32)
    reference = np.asarray(flexible(x))
    assert np.max(np.abs(np.asarray(wrapped(x)) - reference)) <= TOL


def test_source_model_is_unchanged_and_reusable(fcn_pair: tuple[Any, Any]) -> None:
    from czbuild.keras.wrap import io_shapes, wrap_model

    fixed, _ = fcn_pair
    x16 = _x(16)
    before = np.asarray(fixed(x16))
    first = wrap_model(fixed, spatial_dims=(8, 8))
    second = wrap_model(fixed, spatial_dims=(24, 24), preprocessing=[{"op": "scale", "scale": 2}])
    third = wrap_model(fixed, spatial_dims=(8, 8))
    assert io_shapes(fixed) == ((16, 16, 1), (16, 16, 2))
    np.testing.assert_array_equal(np.asarray(fixed(x16)), before)
    assert io_shapes(first)[0] == (8, 8, 1) and io_shapes(second)[0] == (24, 24, 1)
    np.testing.assert_array_equal(np.asarray(first(_x(8))), np.asarray(third(_x(8))))
    assert first is not third


def test_input_dtype_is_kept() -> None:
    import keras

    from czbuild.keras.wrap import wrap_model

    inputs = keras.Input((None, None, 1), dtype="uint8")
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(keras.layers.Rescaling(1 / 255)(inputs)))
    wrapped = wrap_model(model, spatial_dims=(8, 8))
    assert wrapped.inputs[0].dtype == "uint8"


# --- chains -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pre", "post"),
    [
        ([{"op": "shift", "shift": 1.0}, {"op": "scale", "scale": 2.0}], []),
        ([{"op": "scale", "scale": 2.0}, {"op": "shift", "shift": 1.0}], []),
        (
            [{"op": "per_image_standardization"}, {"op": "normalization", "mean": 0.5, "std": 2}],
            [{"op": "rgb_to_bgr"}],
        ),
        ([], [{"op": "scale", "scale": 0.5}, {"op": "shift", "shift": [0.25, 0.5]}]),
    ],
    ids=["shift-then-scale", "scale-then-shift", "standardize-and-flip", "post-only"],
)
def test_chains_apply_in_list_order(
    fcn_pair: tuple[Any, Any], pre: list[dict], post: list[dict]
) -> None:
    from czbuild.keras.wrap import wrap_model

    fixed, flexible = fcn_pair
    wrapped = wrap_model(fixed, preprocessing=pre, postprocessing=post, spatial_dims=(8, 8))
    x = _x(8)
    model_out = np.asarray(flexible(ops.apply_numpy(pre, x).astype(np.float32)))
    expected = ops.apply_numpy(post, model_out)
    assert np.max(np.abs(np.asarray(wrapped(x)) - expected)) <= TOL
    names = [layer.name for layer in wrapped.layers]
    for i, step in enumerate(pre):
        assert f"preprocessing_{i}_{step['op']}" in names
    for i, step in enumerate(post):
        assert f"postprocessing_{i}_{step['op']}" in names


def test_shift_then_scale_differs_from_scale_then_shift(fcn_pair: tuple[Any, Any]) -> None:
    from czbuild.keras.wrap import wrap_model

    _, flexible = fcn_pair
    a = wrap_model(
        flexible, preprocessing=[{"op": "shift", "shift": 1}, {"op": "scale", "scale": 3}]
    )
    b = wrap_model(
        flexible, preprocessing=[{"op": "scale", "scale": 3}, {"op": "shift", "shift": 1}]
    )
    assert np.max(np.abs(np.asarray(a(_x(8))) - np.asarray(b(_x(8))))) > 1e-4


def test_keras_layers_and_sigmoid_head() -> None:
    import keras

    from czbuild.keras.preprocessing import Scale
    from czbuild.keras.wrap import io_shapes, wrap_model

    keras.utils.set_random_seed(2)
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inputs)
    model = keras.Model(inputs, outputs)
    wrapped = wrap_model(
        model,
        preprocessing=[keras.layers.Rescaling(0.5), Scale([1.0, 2.0, 3.0]), "rgb_to_bgr"],
        postprocessing=[{"op": "sigmoid_to_softmax_scores"}],
        spatial_dims=(8, 8),
        require_fixed=True,
        require_same_spatial=True,
    )
    assert io_shapes(wrapped) == ((8, 8, 3), (8, 8, 2))
    probs = np.asarray(wrapped(_x(8, channels=3)))
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=0, atol=1e-6)
    x = _x(8, channels=3)
    pre = ops.apply_numpy([{"op": "scale", "scale": [0.5, 1.0, 1.5]}, "rgb_to_bgr"], x)
    expected = ops.apply_numpy(["sigmoid_to_softmax_scores"], np.asarray(model(pre.astype("f4"))))
    assert np.max(np.abs(np.asarray(wrapped(x)) - expected)) <= TOL


def test_wrapped_model_converts_to_onnx(fcn_pair: tuple[Any, Any]) -> None:
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    from czbuild.keras.wrap import wrap_model

    fixed, flexible = fcn_pair
    wrapped = wrap_model(fixed, spatial_dims=(8, 8), preprocessing=[{"op": "scale", "scale": 0.5}])
    spec = [tf.TensorSpec((None, 8, 8, 1), tf.float32, name="input")]
    proto, _ = tf2onnx.convert.from_keras(wrapped, input_signature=spec, opset=12)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = _x(8)
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert np.max(np.abs(got - np.asarray(flexible(x * 0.5)))) <= TOL


# --- nested / sequential / SavedModel sources ---------------------------------------------------


def test_nested_fixed_submodel_is_replayed(fcn_pair: tuple[Any, Any]) -> None:
    import keras

    from czbuild.keras.wrap import io_shapes, is_tiling_invariant, wrap_model

    fixed, flexible = fcn_pair
    inputs = keras.Input((16, 16, 1))
    outer = keras.Model(inputs, fixed(keras.layers.Rescaling(2.0)(inputs)), name="outer")
    wrapped = wrap_model(outer, spatial_dims=(8, 8))
    assert io_shapes(wrapped) == ((8, 8, 1), (8, 8, 2))
    x = _x(8)
    assert np.max(np.abs(np.asarray(wrapped(x)) - np.asarray(flexible(2 * x)))) <= TOL
    assert is_tiling_invariant(outer)


def test_sequential_model() -> None:
    import keras

    from czbuild.keras.wrap import io_shapes, wrap_model

    model = keras.Sequential([keras.Input((16, 16, 1)), *_conv_layers(keras)])
    assert io_shapes(wrap_model(model, spatial_dims=(8, 8))) == ((8, 8, 1), (8, 8, 2))


def test_saved_model_source_with_fixed_signature(tmp_path: Path, fcn_pair: tuple[Any, Any]) -> None:
    from czbuild.keras.sources import load_model
    from czbuild.keras.wrap import is_tiling_invariant, wrap_model

    fixed, _ = fcn_pair
    fixed.export(tmp_path / "sm", verbose=False)
    loaded = load_model(tmp_path / "sm")
    wrapped = wrap_model(loaded, preprocessing=[{"op": "scale", "scale": 0.5}])
    x = _x(16)
    assert np.max(np.abs(np.asarray(wrapped(x)) - np.asarray(fixed(x * 0.5)))) <= TOL
    assert not is_tiling_invariant(loaded)
    with pytest.raises(ModelError, match=r"cannot be rebuilt for input \(8, 8, 1\)"):
        wrap_model(loaded, spatial_dims=(8, 8))


# --- tiling invariance --------------------------------------------------------------------------


def _dense_model(keras: Any) -> Any:
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(16 * 16 * 2, activation="softmax")(x)
    return keras.Model(inputs, keras.layers.Reshape((16, 16, 2))(x), name="dense")


def _classifier(keras: Any) -> Any:
    inputs = keras.Input((None, None, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(inputs))
    return keras.Model(inputs, x, name="classifier")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda k: _functional(k, _conv_layers(k), (None, None, 1)), True),
        (lambda k: _functional(k, _conv_layers(k), (16, 16, 1)), True),
        (lambda k: _unet(k, 16, 2, skips=True), True),
        (_dense_model, False),
        (_classifier, False),
    ],
    ids=["flexible-fcn", "fixed-fcn", "unet", "flatten-dense", "global-pooling"],
)
def test_is_tiling_invariant(make: Any, expected: bool) -> None:
    import keras

    from czbuild.keras.wrap import is_tiling_invariant

    model = make(keras)
    assert is_tiling_invariant(model) is expected
    assert is_tiling_invariant(model) is expected  # no state carried between calls


# --- errors -------------------------------------------------------------------------------------


def test_flatten_dense_model_cannot_be_resized() -> None:
    import keras

    from czbuild.keras.wrap import wrap_model

    with pytest.raises(ModelError) as info:
        wrap_model(_dense_model(keras), spatial_dims=(8, 8))
    message = str(info.value)
    assert "'dense' (built for input (16, 16, 1)) cannot be rebuilt for input (8, 8, 1)" in message
    assert "Flatten/Dense" in message and "omit spatial_dims" in message
    assert wrap_model(_dense_model(keras), spatial_dims=(16, 16)) is not None


@pytest.mark.parametrize(
    ("skips", "skip_first", "tile", "fragment"),
    [
        (True, False, 30, "cannot run at input (30, 30, 1)"),
        (True, True, 30, "cannot run at input (30, 30, 1)"),
        (False, False, 30, "output spatial size (28, 28) differs from the input's (30, 30)"),
        (True, False, 18, "cannot run at input (18, 18, 1)"),
    ],
    ids=["skips-30", "skips-first-30", "no-skips-30", "skips-18"],
)
@pytest.mark.parametrize("built", [16, None], ids=["built-fixed", "built-undefined"])
def test_tile_not_divisible_by_pooling_depth(
    skips: bool, skip_first: bool, tile: int, fragment: str, built: int | None
) -> None:
    import keras

    from czbuild.keras.wrap import wrap_model

    model = _unet(keras, built, 2, skips=skips, skip_first=skip_first)
    with pytest.raises(ModelError) as info:
        wrap_model(model, spatial_dims=(tile, tile), require_same_spatial=True)
    assert fragment in str(info.value)
    assert "divisible by its total down-sampling factor" in str(info.value)
    ok = wrap_model(model, spatial_dims=(32, 32), require_same_spatial=True)
    assert ok.outputs[0].shape[1:3] == (32, 32)


def test_output_size_differs_from_input() -> None:
    import keras

    from czbuild.keras.wrap import wrap_model

    inputs = keras.Input((None, None, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, padding="valid")(inputs), name="valid")
    wrapped = wrap_model(model, spatial_dims=(16, 16))  # allowed unless required
    assert wrapped.outputs[0].shape[1:3] == (14, 14)
    with pytest.raises(ModelError, match=r"'valid': output spatial size \(14, 14\) differs"):
        wrap_model(model, spatial_dims=(16, 16), require_same_spatial=True)
    with pytest.raises(ModelError, match="not an image of the input's rank"):
        wrap_model(_classifier(keras), spatial_dims=(16, 16), require_same_spatial=True)


def test_require_fixed(fcn_pair: tuple[Any, Any]) -> None:
    from czbuild.keras.wrap import wrap_model

    fixed, flexible = fcn_pair
    with pytest.raises(ModelError, match=r"undefined height/width .*pass spatial_dims=\(h, w\)"):
        wrap_model(flexible, require_fixed=True)
    with pytest.raises(ModelError, match="undefined height/width"):
        wrap_model(fixed, spatial_dims=(None, 8), require_fixed=True)
    assert wrap_model(fixed, require_fixed=True).inputs[0].shape[1:3] == (16, 16)


@pytest.mark.parametrize(
    ("spatial_dims", "fragment"),
    [
        ((0, 8), "positive integers"),
        ((8.0, 8), "positive integers"),
        ((True, 8), "positive integers"),
        ((8, 8, 8), r"a 2D model: give 2 values \(height, width\)"),
        ((8, 8, 8, 8), "got 4 values"),
        ("88", r"must be \(height, width\)"),
        (8, r"must be \(height, width\)"),
    ],
    ids=["zero", "float", "bool", "three", "four", "string", "int"],
)
def test_bad_spatial_dims(fcn_pair: tuple[Any, Any], spatial_dims: Any, fragment: str) -> None:
    from czbuild.keras.wrap import wrap_model

    with pytest.raises(ModelError, match=r"spatial_dims: .*" + fragment):
        wrap_model(fcn_pair[0], spatial_dims=spatial_dims)


def test_spatial_dims_on_3d_model() -> None:
    import keras

    from czbuild.keras.wrap import wrap_model

    inputs = keras.Input((4, 8, 8, 1))
    model = keras.Model(inputs, keras.layers.Conv3D(2, 1)(inputs))
    with pytest.raises(ModelError, match=r"a 3D model: give 3 values \(depth, height, width\)"):
        wrap_model(model, spatial_dims=(8, 8))
    assert wrap_model(model).inputs[0].shape[1:] == (4, 8, 8, 1)
    assert wrap_model(model, spatial_dims=(2, 6, 10)).outputs[0].shape[1:] == (2, 6, 10, 2)
    flat = keras.Input((8, 1))
    with pytest.raises(ModelError, match=r"applies to 2D models .* and 3D models"):
        wrap_model(keras.Model(flat, keras.layers.Conv1D(2, 1)(flat)), spatial_dims=(8, 8))


def test_several_inputs_or_outputs() -> None:
    import keras

    from czbuild.keras.wrap import io_shapes, wrap_model

    a, b = keras.Input((8, 8, 1), name="a"), keras.Input((8, 8, 1), name="b")
    two_in = keras.Model([a, b], keras.layers.Add()([a, b]))
    with pytest.raises(ModelError, match=r"has 2 inputs \(a, b\).*exactly one input"):
        wrap_model(two_in)
    c = keras.Input((8, 8, 1))
    two_out = keras.Model(c, [keras.layers.Conv2D(1, 1)(c), keras.layers.Conv2D(1, 1)(c)])
    with pytest.raises(ModelError, match="has 2 outputs"):
        io_shapes(two_out)


def test_subclassed_model_without_inputs() -> None:
    import keras

    from czbuild.keras.wrap import wrap_model

    class Net(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.conv = keras.layers.Conv2D(2, 1)

        def call(self, x: Any) -> Any:
            return self.conv(x)

    with pytest.raises(ModelError, match="no symbolic inputs/outputs.*keras.Input"):
        wrap_model(Net())


def test_not_a_model() -> None:
    from czbuild.keras.wrap import wrap_model

    with pytest.raises(ModelError, match="expected a keras.Model, got str"):
        wrap_model("model.keras")


def test_undefined_channel_count() -> None:
    import keras

    from czbuild.keras.wrap import wrap_model

    inputs = keras.Input((8, 8, None))
    model = keras.Model(inputs, keras.layers.Activation("sigmoid")(inputs))
    with pytest.raises(ModelError, match="no static channel axis"):
        wrap_model(model)


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        (
            {"preprocessing": [{"op": "shift", "shift": 1}, {"op": "scael", "scale": 2}]},
            ["preprocessing[1].op", "did you mean 'scale'"],
        ),
        (
            {"preprocessing": [{"op": "normalization", "mean": 0, "std": 0}]},
            ["preprocessing[0].std[0]", "must not be 0"],
        ),
        ({"preprocessing": ["rgba_to_bgra"]}, ["preprocessing[0].op", "needs 4", "got 1"]),
        ({"preprocessing": [42]}, ["preprocessing[0]", "op dict", "got int"]),
        ({"preprocessing": {"op": "rgb_to_bgr"}}, ["preprocessing", "must be a list"]),
        (
            {"postprocessing": ["sigmoid_to_softmax_scores"]},
            ["postprocessing[0].op", "needs 1", "got 2"],
        ),
        (
            {"postprocessing": [{"op": "scale", "scale": [1, 2, 3]}]},
            ["postprocessing[0].scale", "3 values", "2 channel"],
        ),
    ],
    ids=[
        "unknown-op",
        "std-zero",
        "rgba-on-gray",
        "not-a-step",
        "not-a-list",
        "sigmoid-on-two",
        "scale-length",
    ],
)
def test_invalid_steps(fcn_pair: tuple[Any, Any], kwargs: dict, fragments: list[str]) -> None:
    from czbuild.keras.wrap import wrap_model

    with pytest.raises(ModelError) as info:
        wrap_model(fcn_pair[1], **kwargs)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_preprocessing_must_keep_channel_count() -> None:
    import keras

    from czbuild.keras.wrap import wrap_model

    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs), name="rgb")
    with pytest.raises(ModelError, match="preprocessing outputs 2 channel.*'rgb' expects 3"):
        wrap_model(model, preprocessing=[{"op": "transpose_channels", "order": [1, 0]}])


def test_foreign_layer_failure_names_position(fcn_pair: tuple[Any, Any]) -> None:
    import keras

    from czbuild.keras.wrap import wrap_model

    with pytest.raises(ModelError, match=r"postprocessing\[0\] \(bad_reshape\): cannot be applied"):
        wrap_model(
            fcn_pair[0],
            postprocessing=[keras.layers.Reshape((5, 5, 5), name="bad_reshape")],
        )
