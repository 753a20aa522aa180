"""Tests for czbuild.ops: the TensorFlow-free op registry and its NumPy reference maths."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from czbuild import ops

ALL_NAMES = (
    "rgb_to_bgr",
    "rgba_to_bgra",
    "per_image_standardization",
    "percentile_normalization",
    "min_max_normalization",
    "scale_range",
    "normalization",
    "transpose_channels",
    "shift",
    "scale",
    "clip",
    "sigmoid",
    "sigmoid_to_softmax_scores",
)


def _rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# --- registry -----------------------------------------------------------------------------------


def test_registry_is_exactly_the_documented_ops() -> None:
    assert tuple(ops.OPS) == ALL_NAMES
    for name, definition in ops.OPS.items():
        assert definition.name == name
        assert definition.doc and "\n" not in definition.doc
        assert definition.layer


def test_module_does_not_import_tensorflow() -> None:
    code = "import sys, czbuild.ops; assert 'tensorflow' not in sys.modules, 'tf imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- validate_op: normalisation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ({"op": "rgb_to_bgr"}, {"op": "rgb_to_bgr"}),
        ("rgba_to_bgra", {"op": "rgba_to_bgra"}),
        (
            {"op": "normalization", "std": 2, "mean": 0.5},
            {"op": "normalization", "mean": [0.5], "std": [2.0]},
        ),
        (
            {"op": "normalization", "mean": (1, 2, 3), "std": np.array([1.0, 2.0, 4.0])},
            {"op": "normalization", "mean": [1.0, 2.0, 3.0], "std": [1.0, 2.0, 4.0]},
        ),
        ({"op": "shift", "shift": -3}, {"op": "shift", "shift": [-3.0]}),
        ({"op": "scale", "scale": np.float32(0.5)}, {"op": "scale", "scale": [0.5]}),
        (
            {"op": "transpose_channels", "order": (2, 1, 0, 3)},
            {"op": "transpose_channels", "order": [2, 1, 0, 3]},
        ),
        (
            {"op": "transpose_channels", "order": np.array([1, 0])},
            {"op": "transpose_channels", "order": [1, 0]},
        ),
    ],
    ids=[
        "no-args",
        "bare-string",
        "scalars-to-lists",
        "per-channel-tuple-and-array",
        "int-shift",
        "numpy-scalar",
        "order-tuple",
        "order-array",
    ],
)
def test_validate_op_normalises(op: object, expected: dict) -> None:
    result = ops.validate_op(op)  # type: ignore[arg-type]
    assert result == expected
    for key, values in result.items():
        if key != "op":
            wanted = int if key == "order" else float
            assert all(type(item) is wanted for item in values), (key, values)


def test_validate_op_returns_new_dict_and_is_idempotent() -> None:
    op = {"op": "scale", "scale": [2.0]}
    once = ops.validate_op(op)
    assert once is not op
    assert ops.validate_op(once) == once


# --- validate_op: errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "fragments"),
    [
        (
            {"op": "scael", "scale": 1},
            ["pre[2].op", "'scael'", "did you mean 'scale'", "rgb_to_bgr"],
        ),
        ({"op": "zzzz"}, ["pre[2].op", "valid ops:", "sigmoid_to_softmax_scores"]),
        ({"scale": 1}, ["pre[2].op", "missing"]),
        ({"op": 3}, ["pre[2].op", "must be a string"]),
        (["scale"], ["pre[2]", "mapping"]),
        ({"op": "scale"}, ["pre[2].scale", "missing required"]),
        ({"op": "scale", "scale": 1, "factor": 2}, ["pre[2].factor", "allowed arguments: scale"]),
        ({"op": "rgb_to_bgr", "x": 1}, ["pre[2].x", "allowed arguments: none"]),
        ({"op": "normalization", "mean": 0, "std": 0}, ["pre[2].std[0]", "must not be 0"]),
        ({"op": "normalization", "mean": 0, "std": [1, 0.0]}, ["pre[2].std[1]", "must not be 0"]),
        ({"op": "normalization", "mean": math.nan, "std": 1}, ["pre[2].mean[0]", "finite"]),
        ({"op": "normalization", "mean": 0, "std": math.inf}, ["pre[2].std[0]", "finite"]),
        (
            {"op": "normalization", "mean": [1, 2, 3], "std": [1, 2]},
            ["pre[2].std", "differ in length", "mean: 3", "std: 2"],
        ),
        ({"op": "shift", "shift": -math.inf}, ["pre[2].shift[0]", "finite"]),
        ({"op": "shift", "shift": "1"}, ["pre[2].shift", "str"]),
        ({"op": "shift", "shift": True}, ["pre[2].shift", "bool"]),
        ({"op": "scale", "scale": []}, ["pre[2].scale", "non-empty"]),
        ({"op": "scale", "scale": [1, "a"]}, ["pre[2].scale[1]", "number"]),
        ({"op": "scale", "scale": [[1, 2]]}, ["pre[2].scale[0]", "number"]),
        ({"op": "transpose_channels", "order": []}, ["pre[2].order", "must not be empty"]),
        ({"op": "transpose_channels", "order": [0, 2]}, ["pre[2].order", "permutation of 0..1"]),
        ({"op": "transpose_channels", "order": [0, 0]}, ["pre[2].order", "permutation"]),
        ({"op": "transpose_channels", "order": [-1, 0]}, ["pre[2].order", "permutation"]),
        ({"op": "transpose_channels", "order": [1.0, 0]}, ["pre[2].order[0]", "integer"]),
        ({"op": "transpose_channels", "order": 2}, ["pre[2].order", "list of channel indices"]),
    ],
    ids=[
        "typo-suggests",
        "unknown-no-suggestion",
        "missing-op",
        "op-not-string",
        "not-a-mapping",
        "missing-arg",
        "unknown-arg",
        "arg-for-argless-op",
        "std-zero",
        "std-zero-per-channel",
        "mean-nan",
        "std-inf",
        "length-mismatch",
        "shift-inf",
        "shift-string",
        "shift-bool",
        "scale-empty",
        "scale-non-number-item",
        "scale-nested",
        "order-empty",
        "order-gap",
        "order-duplicate",
        "order-negative",
        "order-float",
        "order-scalar",
    ],
)
def test_validate_op_errors_name_where_and_key(op: object, fragments: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        ops.validate_op(op, where="pre[2]")  # type: ignore[arg-type]
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message


def test_validate_op_without_where_names_the_key() -> None:
    with pytest.raises(ValueError, match=r"^std\[0\]: must not be 0"):
        ops.validate_op({"op": "normalization", "mean": 0, "std": 0})


# --- out_channels -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chain", "channels", "expected"),
    [
        ([], 3, 3),
        (["rgb_to_bgr"], 1, 1),
        (["rgb_to_bgr", "per_image_standardization"], 3, 3),
        (["rgba_to_bgra"], 4, 4),
        ([{"op": "transpose_channels", "order": [1, 0]}], 5, 2),
        ([{"op": "normalization", "mean": [1, 2, 3], "std": 2}], 3, 3),
        (["sigmoid_to_softmax_scores"], 1, 2),
        ([{"op": "scale", "scale": 0.5}, "sigmoid_to_softmax_scores", "rgb_to_bgr"], 1, 2),
    ],
    ids=[
        "empty",
        "bgr-on-gray",
        "chain",
        "rgba",
        "transpose-drops-surplus",
        "per-channel",
        "sigmoid",
        "post-chain",
    ],
)
def test_out_channels(chain: list, channels: int, expected: int) -> None:
    assert ops.out_channels(chain, channels) == expected


@pytest.mark.parametrize(
    ("chain", "channels", "fragments"),
    [
        (["rgba_to_bgra"], 3, ["pre[0].op", "needs 4", "got 3", "rgb_to_bgr"]),
        (["scale"], 1, ["pre[0].scale", "missing"]),
        (["rgb_to_bgr", "sigmoid_to_softmax_scores"], 3, ["pre[1].op", "needs 1", "got 3"]),
        (
            [{"op": "transpose_channels", "order": [2, 1, 0]}],
            2,
            ["pre[0].order", "channel 2", "only 2"],
        ),
        ([{"op": "shift", "shift": [1, 2]}], 3, ["pre[0].shift", "2 values", "3 channel"]),
        (
            [{"op": "transpose_channels", "order": [0]}, {"op": "scale", "scale": [1, 2]}],
            3,
            ["pre[1].scale", "1 channel"],
        ),
    ],
    ids=[
        "rgba-on-rgb",
        "invalid-op",
        "sigmoid-needs-one",
        "transpose-out-of-range",
        "length-vs-channels",
        "length-after-transpose",
    ],
)
def test_out_channels_errors(chain: list, channels: int, fragments: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        ops.out_channels(chain, channels, where="pre")
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


@pytest.mark.parametrize("channels", [0, -1, 2.0, True], ids=["zero", "negative", "float", "bool"])
def test_out_channels_rejects_bad_channel_count(channels: object) -> None:
    with pytest.raises(ValueError, match="channels"):
        ops.out_channels([], channels)  # type: ignore[arg-type]


# --- apply_numpy --------------------------------------------------------------------------------


def test_apply_numpy_channel_ops() -> None:
    x = np.arange(2 * 2 * 3 * 4, dtype=np.float32).reshape(2, 2, 3, 4)
    np.testing.assert_array_equal(ops.apply_numpy(["rgb_to_bgr"], x), x[..., [3, 2, 1, 0]])
    np.testing.assert_array_equal(ops.apply_numpy(["rgba_to_bgra"], x), x[..., [2, 1, 0, 3]])
    order = {"op": "transpose_channels", "order": [1, 0]}
    np.testing.assert_array_equal(ops.apply_numpy([order], x), x[..., [1, 0]])


def test_apply_numpy_arithmetic() -> None:
    x = _rng().normal(size=(2, 4, 5, 3))
    mean, std = [0.1, 0.2, 0.3], [2.0, 4.0, 8.0]
    got = ops.apply_numpy([{"op": "normalization", "mean": mean, "std": std}], x)
    np.testing.assert_allclose(got, (x - np.array(mean)) / np.array(std), rtol=0, atol=1e-12)
    got = ops.apply_numpy([{"op": "shift", "shift": -1.5}, {"op": "scale", "scale": [1, 2, 3]}], x)
    np.testing.assert_allclose(got, (x - 1.5) * np.array([1, 2, 3]), rtol=0, atol=1e-12)
    # normalization == shift(-mean) then scale(1/std), as §5 says
    shifted = ops.apply_numpy(
        [
            {"op": "shift", "shift": [-m for m in mean]},
            {"op": "scale", "scale": [1 / s for s in std]},
        ],
        x,
    )
    np.testing.assert_allclose(
        shifted,
        ops.apply_numpy([{"op": "normalization", "mean": mean, "std": std}], x),
        rtol=0,
        atol=1e-12,
    )


def test_apply_numpy_sigmoid_to_softmax_scores() -> None:
    p = _rng().random((2, 3, 3, 1))
    got = ops.apply_numpy(["sigmoid_to_softmax_scores"], p)
    assert got.shape == (2, 3, 3, 2)
    np.testing.assert_array_equal(got[..., 0], p[..., 0])
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=0, atol=1e-12)


def test_per_image_standardization_statistics_per_image() -> None:
    x = _rng().normal(loc=[[[[3.0]]], [[[-7.0]]]], scale=5.0, size=(2, 6, 5, 2))
    got = ops.apply_numpy(["per_image_standardization"], x)
    for image in got:
        assert abs(image.mean()) < 1e-12
        assert abs(image.std() - 1.0) < 1e-12
    assert got.dtype == np.float64


def test_per_image_standardization_constant_tile_is_zero() -> None:
    x = np.full((1, 4, 4, 1), 0.7)
    np.testing.assert_array_equal(ops.apply_numpy(["per_image_standardization"], x), 0.0)


def test_per_image_standardization_uses_min_stddev() -> None:
    # n = 4 values, std tiny: divisor is 1/sqrt(4) = 0.5, not the std
    x = np.array([0.0, 0.0, 0.0, 1e-6]).reshape(1, 2, 2, 1)
    got = ops.apply_numpy(["per_image_standardization"], x)
    np.testing.assert_allclose(got, (x - x.mean()) / 0.5, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("dtype", "maximum"),
    [(np.uint8, 255.0), (np.uint16, 65535.0), (np.int16, 32767.0)],
    ids=["uint8", "uint16", "int16"],
)
def test_per_image_standardization_divides_integers_by_type_max(
    dtype: type, maximum: float
) -> None:
    x = _rng().integers(0, 200, size=(1, 3, 3, 1)).astype(dtype)
    got = ops.apply_numpy(["per_image_standardization"], x)
    f = x.astype(np.float64) / maximum
    expected = (f - f.mean()) / max(f.std(), 1 / 3)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_apply_numpy_integers_are_not_rescaled_by_other_ops() -> None:
    x = np.full((1, 1, 1, 1), 200, dtype=np.uint8)
    np.testing.assert_array_equal(ops.apply_numpy([{"op": "scale", "scale": 2}], x), 400.0)


def test_apply_numpy_empty_chain_returns_float64_copy_values() -> None:
    x = np.arange(4, dtype=np.uint8).reshape(1, 2, 2, 1)
    got = ops.apply_numpy([], x)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, x)


def test_apply_numpy_does_not_modify_input() -> None:
    x = _rng().random((1, 2, 2, 3))
    before = x.copy()
    ops.apply_numpy(["rgb_to_bgr", "per_image_standardization", {"op": "shift", "shift": 1}], x)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize(
    ("chain", "shape", "fragment"),
    [
        (["rgba_to_bgra"], (1, 2, 2, 3), "needs 4"),
        (["sigmoid_to_softmax_scores"], (1, 2, 2, 2), "needs 1"),
        ([{"op": "scale", "scale": [1, 2]}], (1, 2, 2, 3), "2 values"),
        ([], (3,), "batch and a channel axis"),
    ],
    ids=["rgba-on-3", "sigmoid-on-2", "length", "rank"],
)
def test_apply_numpy_errors(chain: list, shape: tuple, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        ops.apply_numpy(chain, np.zeros(shape))


def test_every_op_has_numpy_reference() -> None:
    examples = {
        "normalization": {"mean": 0.5, "std": 2},
        "transpose_channels": {"order": [0]},
        "shift": {"shift": 1},
        "scale": {"scale": 2},
        "scale_range": {"in": [0, 255], "out": [0, 1]},
        "clip": {"min": 0, "max": 1},
    }
    x = _rng().random((1, 2, 2, 1))
    for name, definition in ops.OPS.items():
        channels = definition.in_channels or 1
        data = x if channels == 1 else np.repeat(x, channels, axis=-1)
        out = ops.apply_numpy([{"op": name, **examples.get(name, {})}], data)
        assert out.shape[-1] == ops.out_channels([{"op": name, **examples.get(name, {})}], channels)


def test_op_out_channels_uses_where_as_is() -> None:
    assert ops.op_out_channels({"op": "transpose_channels", "order": [1, 0]}, 3) == 2
    with pytest.raises(ValueError, match=r"^layer_7\.op: 'rgba_to_bgra' needs 4"):
        ops.op_out_channels("rgba_to_bgra", 3, where="layer_7")


# --- ops for real models: per-image normalisations, fixed ranges, output ops ---------------


def test_new_ops_normalise_with_defaults() -> None:
    assert ops.validate_op("percentile_normalization") == {
        "op": "percentile_normalization",
        "low": 1.0,
        "high": 99.8,
        "eps": 1e-20,
    }
    assert ops.validate_op({"op": "min_max_normalization", "eps": 1}) == {
        "op": "min_max_normalization",
        "eps": 1.0,
    }
    assert ops.validate_op({"op": "scale_range", "out": (0, 1), "in": [0, 255]}) == {
        "op": "scale_range",
        "in": [0.0, 255.0],
        "out": [0.0, 1.0],
    }
    assert ops.validate_op({"op": "clip", "max": [1, 2], "min": 0}) == {
        "op": "clip",
        "min": [0.0],
        "max": [1.0, 2.0],
    }
    assert {
        "per_image_standardization",
        "percentile_normalization",
        "min_max_normalization",
    } == ops.PER_TILE_OPS


@pytest.mark.parametrize(
    ("op", "fragments"),
    [
        ({"op": "percentile_normalization", "low": 50, "high": 50}, ["p[0].high", "above low"]),
        ({"op": "percentile_normalization", "low": -1}, ["p[0].low", "[0, 100)"]),
        ({"op": "percentile_normalization", "high": 100.5}, ["p[0].high", "at most 100"]),
        ({"op": "percentile_normalization", "low": [1]}, ["p[0].low", "must be a number"]),
        ({"op": "min_max_normalization", "eps": 0}, ["p[0].eps", "must be > 0"]),
        ({"op": "scale_range", "in": [3, 3], "out": [0, 1]}, ["p[0].in", "a == b"]),
        ({"op": "scale_range", "in": [0], "out": [0, 1]}, ["p[0].in", "two numbers"]),
        ({"op": "scale_range", "in": [0, 255]}, ["p[0].out", "missing required"]),
        ({"op": "clip", "min": [0, 2], "max": 1}, ["p[0].max", "below min 2"]),
        (
            {"op": "sigmoid_to_softmax_scores", "positive_channel": 2},
            ["positive_channel", "0 or 1"],
        ),
        ({"op": "sigmoid_to_softmax_scores", "positive": ""}, ["p[0].positive", "class name"]),
        ({"op": "sigmoid_to_softmax_scores", "positive": "Cell"}, ["positive_channel: missing"]),
    ],
)
def test_new_op_errors(op: dict, fragments: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        ops.validate_op(op, where="p[0]")
    for fragment in fragments:
        assert fragment in str(info.value)


def test_bind_positive_orders_scores_by_classes() -> None:
    op = {"op": "sigmoid_to_softmax_scores", "positive": "Cell"}
    second = ops.bind_positive(op, ("Background", "Cell"))
    first = ops.bind_positive(op, ["Cell", "Background"])
    assert second["positive_channel"] == 1 and first["positive_channel"] == 0
    p = np.array([[[[0.9]], [[0.2]]]])  # two images, 1x1, one channel
    # ZEN's label: argmax over channels -> class index; p > 0.5 must be Cell both ways.
    for bound, classes in ((second, ("Background", "Cell")), (first, ("Cell", "Background"))):
        labels = np.argmax(ops.apply_numpy([bound], p), axis=-1).ravel()
        assert [classes[i] for i in labels] == ["Cell", "Background"]
    assert ops.validate_op(second) == second  # the bound form is a valid op


@pytest.mark.parametrize(
    ("op", "classes", "fragment"),
    [
        ({"op": "sigmoid_to_softmax_scores"}, ("bg", "fg"), "positive: fg gives [bg, fg] = [1 - p"),
        ({"op": "sigmoid_to_softmax_scores", "positive": "x"}, ("bg", "fg"), "not one of"),
        ({"op": "sigmoid_to_softmax_scores", "positive": "fg"}, None, "has no classes"),
        ({"op": "sigmoid_to_softmax_scores", "positive": "a"}, ("a", "b", "c"), "3 classes"),
        (
            {"op": "sigmoid_to_softmax_scores", "positive": "fg", "positive_channel": 0},
            ("bg", "fg"),
            "disagrees",
        ),
        ({"op": "scale", "scale": 1}, ("bg", "fg"), "takes 'sigmoid_to_softmax_scores' only"),
    ],
)
def test_bind_positive_errors(op: dict, classes: tuple | None, fragment: str) -> None:
    with pytest.raises(ValueError, match=r"^post\[0\]\.") as info:
        ops.bind_positive(op, classes, where="post[0]")
    assert fragment in str(info.value)


def test_percentile_normalization_reference_is_numpy_linear_percentile() -> None:
    # 0..99 in one image: the linear percentile at q is 0.99 * q; per image, not per batch.
    x = np.stack([np.arange(100.0), 10 * np.arange(100.0)]).reshape(2, 10, 10, 1)
    op = {"op": "percentile_normalization", "low": 10, "high": 90, "eps": 1e-9}
    got = ops.apply_numpy([op], x)
    for image, factor in zip(got, (1.0, 10.0)):
        low, high = 9.9 * factor, 89.1 * factor
        np.testing.assert_allclose(
            image.ravel(), (np.arange(100.0) * factor - low) / (high - low + 1e-9)
        )
    constant = ops.apply_numpy(["percentile_normalization"], np.full((1, 4, 4, 2), 7.0))
    assert np.all(constant == 0.0)


def test_min_max_scale_range_clip_sigmoid_references() -> None:
    x = _rng().normal(0, 3, (2, 4, 4, 2))
    mm = ops.apply_numpy(["min_max_normalization"], x)
    for image in mm:
        assert image.min() == 0.0 and abs(image.max() - 1.0) < 1e-12
    gray16 = ops.apply_numpy([{"op": "scale_range", "in": [0, 65535], "out": [0, 1]}], x)
    np.testing.assert_allclose(gray16, x / 65535)
    flipped = ops.apply_numpy([{"op": "scale_range", "in": [-1, 1], "out": [1, 0]}], x)
    np.testing.assert_allclose(flipped, 0.5 - 0.5 * x)
    clipped = ops.apply_numpy([{"op": "clip", "min": [0, -1], "max": 1}], x)
    assert clipped[..., 0].min() >= 0 and clipped[..., 1].min() >= -1 and clipped.max() <= 1
    np.testing.assert_array_equal(clipped, np.clip(x, [0, -1], 1))
    s = ops.apply_numpy(["sigmoid"], np.array([[-1000.0, 0.0, 2.0, 1000.0]]))
    np.testing.assert_allclose(s, [[0.0, 0.5, 1 / (1 + np.exp(-2.0)), 1.0]])
