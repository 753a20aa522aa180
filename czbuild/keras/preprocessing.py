"""Keras 3 layers for the pre- and postprocessing ops of :mod:`czbuild.ops` (format §5).

Each op of the closed registry :data:`czbuild.ops.OPS` has exactly one layer here; the
arguments are validated by :func:`czbuild.ops.validate_op`, so a layer and its op dict can
never disagree. The layers are registered as ``czbuild>ClassName`` (so models containing them
save to and reload from ``.keras`` once this module is imported) and use only ``keras.ops``
that tf2onnx converts at opsets 12 and 18 (Gather, Sub, Div, Mul, Add, ReduceMean, Sqrt, Max,
Min, ReduceMin/ReduceMax, Sigmoid, TopK, Concat, Shape/ReduceProd for undefined tile sizes) and
that a TF 2.0 SavedModel can hold (legacy 3.0.0: TopKV2, GatherV2, Min/Max).

These classes are separate from Keras's own ``keras.layers.Normalization`` etc.

Channel counts must be static: ``build`` checks them with :func:`czbuild.ops.out_channels`.
Non-float input is cast to float32 unchanged, except in :class:`PerImageStandardization`,
which divides integers by their type maximum (as ``tf.image.per_image_standardization``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import keras
import numpy as np
from keras import ops as kops

from czbuild import ops as czops

__all__ = [
    "LAYER_CLASSES",
    "Clip",
    "MinMaxNormalization",
    "Normalization",
    "PerImageStandardization",
    "PercentileNormalization",
    "RgbToBgr",
    "RgbaToBgra",
    "Scale",
    "ScaleRange",
    "Shift",
    "Sigmoid",
    "SigmoidToSoftmaxScores",
    "TransposeChannels",
    "layer_from_op",
    "op_from_layer",
]

Numbers = float | Sequence[float]


class _OpLayer(keras.layers.Layer):
    """Base class: holds the normalised op dict and checks channel counts at build time."""

    op_name: ClassVar[str]

    def __init__(self, op_args: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        # Validate before Layer.__init__ so that argument errors name the class, not Keras.
        op = czops.validate_op({"op": self.op_name, **(op_args or {})}, where=type(self).__name__)
        super().__init__(**kwargs)
        # Kept as a JSON string: Keras/TF attribute tracking would wrap a dict and its lists.
        self._op_json = json.dumps(op)

    @property
    def op(self) -> dict[str, Any]:
        """The normalised op dict this layer computes (a new dict on every access)."""
        return json.loads(self._op_json)

    def _out_channels(self, input_shape: Sequence[int | None]) -> int:
        channels = input_shape[-1] if len(input_shape) else None
        if channels is None:
            raise ValueError(
                f"{self.name} ({type(self).__name__}): the channel count of its input is "
                f"undefined (shape {tuple(input_shape)}); czbuild needs a static channel axis"
            )
        return czops.op_out_channels(self.op, int(channels), where=self.name)

    def build(self, input_shape: Sequence[int | None]) -> None:
        self._out_channels(input_shape)
        super().build(input_shape)

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        return (*tuple(input_shape)[:-1], self._out_channels(input_shape))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({k: v for k, v in self.op.items() if k != "op"})
        return config

    # helpers for subclasses ----------------------------------------------------------------

    def _as_float(self, x: Any) -> Any:
        if keras.backend.is_float_dtype(x.dtype):
            return x
        return kops.cast(x, self.compute_dtype)

    def _constant(self, values: list[float], x: Any) -> Any:
        return kops.convert_to_tensor(np.asarray(values, dtype=np.float64), dtype=x.dtype)


@keras.saving.register_keras_serializable(package="czbuild")
class RgbToBgr(_OpLayer):
    """Reverse the channel axis: ``out[c] = x[C-1-c]`` (RGB -> BGR; identity for C=1)."""

    op_name = "rgb_to_bgr"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__({}, **kwargs)

    def call(self, inputs: Any) -> Any:
        x = self._as_float(inputs)
        channels = int(x.shape[-1])
        return kops.take(x, list(range(channels - 1, -1, -1)), axis=-1)


@keras.saving.register_keras_serializable(package="czbuild")
class RgbaToBgra(_OpLayer):
    """RGBA -> BGRA: reverse the colour channels, keep alpha last (needs exactly 4 channels)."""

    op_name = "rgba_to_bgra"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__({}, **kwargs)

    def call(self, inputs: Any) -> Any:
        return kops.take(self._as_float(inputs), [2, 1, 0, 3], axis=-1)


@keras.saving.register_keras_serializable(package="czbuild")
class PerImageStandardization(_OpLayer):
    """Per image ``(x - mean) / max(std, 1/sqrt(n))`` over all ``n = H*W*C`` values.

    Integer input is divided by its type's maximum first (255 for uint8, 65535 for uint16).
    Works with undefined height and width (``n`` is then computed from the runtime shape).
    """

    op_name = "per_image_standardization"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__({}, **kwargs)

    def call(self, inputs: Any) -> Any:
        x = inputs
        dtype = keras.backend.standardize_dtype(x.dtype)
        if not keras.backend.is_float_dtype(dtype):
            x = kops.cast(x, self.compute_dtype)
            if dtype != "bool":
                x = x / float(np.iinfo(dtype).max)
        axes = tuple(range(1, len(x.shape)))
        mean = kops.mean(x, axis=axes, keepdims=True)
        centred = x - mean
        std = kops.sqrt(kops.mean(kops.square(centred), axis=axes, keepdims=True))
        static = [d for d in x.shape[1:]]
        if all(d is not None for d in static):
            count = float(np.prod(static))
            min_std = kops.convert_to_tensor(1.0 / np.sqrt(count), dtype=x.dtype)
        else:
            dynamic = kops.shape(x)
            count = kops.cast(dynamic[1], x.dtype)
            for d in dynamic[2:]:
                count = count * kops.cast(d, x.dtype)
            min_std = 1.0 / kops.sqrt(count)
        return centred / kops.maximum(std, min_std)


def _per_image(values: Any, x: Any) -> Any:
    """Reshape per-image values ``[B]`` to ``[B, 1, ..., 1]`` (broadcast over ``x``)."""
    return kops.reshape(values, (-1,) + (1,) * (len(x.shape) - 1))


def _spread(high: Any, low: Any, eps: Any) -> Any:
    """``high - low + eps`` (``high >= low``), safe from graph rewriting.

    TensorFlow's graph optimiser turns ``(high - low) + eps`` into ``high + (eps - low)``,
    where a tiny ``eps`` is lost against ``low``: a constant tile then divides 0 by 0. The
    ``maximum`` with 0 (a no-op, as ``high >= low``) keeps the subtraction first.
    """
    return kops.maximum(high - low, 0.0) + eps


def _flatten_images(x: Any) -> tuple[Any, int | None]:
    """``x`` as ``[B, n]`` (all values of each image) and ``n`` when it is static."""
    static = list(x.shape[1:])
    if all(d is not None for d in static):
        n = int(np.prod(static))
        return kops.reshape(x, (-1, n)), n
    return kops.reshape(x, (kops.shape(x)[0], -1)), None


def _percentiles_static(flat: Any, n: int, q: float) -> Any:
    """The ``q``-th percentile (numpy "linear") of each row of ``flat`` ``[B, n]``: ``[B]``.

    Only the order statistics needed are computed: ``top_k`` over the smaller end of the
    distribution (k = about ``n * min(q, 100 - q) / 100``), not a full sort.
    """
    h = (n - 1) * q / 100.0
    i = int(np.floor(h))
    j = min(i + 1, n - 1)
    frac = h - i
    if j + 1 <= n - i:  # low end: ascending order statistics 0..j of x = -(top_k of -x)
        values = -kops.top_k(-flat, j + 1, sorted=True)[0]
        vi, vj = values[:, i], values[:, j]
    else:  # high end: ascending index a is descending index n - 1 - a
        values = kops.top_k(flat, n - i, sorted=True)[0]
        vi, vj = values[:, n - 1 - i], values[:, n - 1 - j]
    return vi + frac * (vj - vi) if frac else vi


def _percentiles_dynamic(flat: Any, q: float) -> Any:
    """Like :func:`_percentiles_static` for a tile size only known at run time (full sort)."""
    n = kops.shape(flat)[1]
    descending = kops.top_k(flat, n, sorted=True)[0]
    h = kops.cast(n - 1, "float32") * (q / 100.0)
    i = kops.cast(kops.floor(h), "int32")
    j = kops.minimum(i + 1, n - 1)
    frac = kops.cast(h - kops.floor(h), flat.dtype)
    vi = kops.take(descending, n - 1 - i, axis=1)
    vj = kops.take(descending, n - 1 - j, axis=1)
    return vi + frac * (vj - vi)


@keras.saving.register_keras_serializable(package="czbuild")
class PercentileNormalization(_OpLayer):
    """Per image ``(x - p_low) / (p_high - p_low + eps)`` (the CSBDeep / CARE convention).

    The percentiles are taken over all ``H*W*C`` values of each image with numpy's default
    ``"linear"`` method: for sorted values ``v[0] <= ... <= v[n-1]`` and ``h = (n-1) q/100``,
    ``p = v[floor(h)] + (h - floor(h)) (v[floor(h)+1] - v[floor(h)])``. Order statistics come
    from ``top_k`` (TopKV2 / ONNX TopK), over only the end of the distribution each percentile
    needs when the tile size is static.

    Args:
        low: Lower percentile in ``[0, 100)`` (default 1.0).
        high: Upper percentile in ``(low, 100]`` (default 99.8).
        eps: Added to the divisor, > 0 (default 1e-20).
    """

    op_name = "percentile_normalization"

    def __init__(
        self, low: float = 1.0, high: float = 99.8, eps: float = czops.DEFAULT_EPS, **kwargs: Any
    ) -> None:
        super().__init__({"low": low, "high": high, "eps": eps}, **kwargs)

    def call(self, inputs: Any) -> Any:
        x = self._as_float(inputs)
        op = self.op
        flat, n = _flatten_images(x)
        if n is not None:
            low = _percentiles_static(flat, n, op["low"])
            high = _percentiles_static(flat, n, op["high"])
        else:
            low = _percentiles_dynamic(flat, op["low"])
            high = _percentiles_dynamic(flat, op["high"])
        low, high = _per_image(low, x), _per_image(high, x)
        return (x - low) / _spread(high, low, self._constant([op["eps"]], x))


@keras.saving.register_keras_serializable(package="czbuild")
class MinMaxNormalization(_OpLayer):
    """Per image ``(x - min) / (max - min + eps)`` over all ``H*W*C`` values.

    Args:
        eps: Added to the divisor, > 0 (default 1e-20): a constant tile maps to 0.
    """

    op_name = "min_max_normalization"

    def __init__(self, eps: float = czops.DEFAULT_EPS, **kwargs: Any) -> None:
        super().__init__({"eps": eps}, **kwargs)

    def call(self, inputs: Any) -> Any:
        x = self._as_float(inputs)
        axes = tuple(range(1, len(x.shape)))
        low = kops.min(x, axis=axes, keepdims=True)
        high = kops.max(x, axis=axes, keepdims=True)
        return (x - low) / _spread(high, low, self._constant([self.op["eps"]], x))


@keras.saving.register_keras_serializable(package="czbuild")
class ScaleRange(_OpLayer):
    """Map the fixed range ``[a, b]`` linearly onto ``[c, d]`` (no clipping).

    ``c + (x - a) * (d - c) / (b - a)``, e.g. Gray16 ``[0, 65535]`` -> ``[0, 1]``. The op
    keys are ``in`` and ``out`` (``ScaleRange(**{"in": [0, 65535], "out": [0, 1]})``); the
    constructor also takes them as ``in_range`` / ``out_range``.
    """

    op_name = "scale_range"

    def __init__(
        self,
        in_range: Sequence[float] | None = None,
        out_range: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> None:
        args = {"in": kwargs.pop("in", in_range), "out": kwargs.pop("out", out_range)}
        super().__init__({k: v for k, v in args.items() if v is not None}, **kwargs)

    def call(self, inputs: Any) -> Any:
        x = self._as_float(inputs)
        (a, b), (c, d) = self.op["in"], self.op["out"]
        return (x - self._constant([a], x)) * self._constant([(d - c) / (b - a)], x) + (
            self._constant([c], x)
        )


@keras.saving.register_keras_serializable(package="czbuild")
class Clip(_OpLayer):
    """``min(max(x, min), max)`` with scalar or per-channel bounds.

    Args:
        min: Lower bound; one value or one per channel.
        max: Upper bound (>= min); one value or one per channel.
    """

    op_name = "clip"

    def __init__(self, min: Numbers, max: Numbers, **kwargs: Any) -> None:
        super().__init__({"min": min, "max": max}, **kwargs)

    def call(self, inputs: Any) -> Any:
        x = self._as_float(inputs)
        op = self.op
        return kops.minimum(
            kops.maximum(x, self._constant(op["min"], x)), self._constant(op["max"], x)
        )


@keras.saving.register_keras_serializable(package="czbuild")
class Sigmoid(_OpLayer):
    """The logistic function ``1 / (1 + exp(-x))``, element-wise (e.g. for a linear head)."""

    op_name = "sigmoid"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__({}, **kwargs)

    def call(self, inputs: Any) -> Any:
        return kops.sigmoid(self._as_float(inputs))


@keras.saving.register_keras_serializable(package="czbuild")
class Normalization(_OpLayer):
    """``(x - mean) / std`` with scalar or per-channel constants (not keras.layers.Normalization).

    Args:
        mean: Subtracted first; one value or one per channel.
        std: Divisor; one value or one per channel; non-zero and finite.
    """

    op_name = "normalization"

    def __init__(self, mean: Numbers, std: Numbers, **kwargs: Any) -> None:
        super().__init__({"mean": mean, "std": std}, **kwargs)

    def call(self, inputs: Any) -> Any:
        x = self._as_float(inputs)
        op = self.op
        return (x - self._constant(op["mean"], x)) / self._constant(op["std"], x)


@keras.saving.register_keras_serializable(package="czbuild")
class TransposeChannels(_OpLayer):
    """Reorder channels: ``out[k] = x[order[k]]``; surplus input channels are dropped.

    Args:
        order: A permutation of ``0..len(order)-1``; the input needs more than
            ``max(order)`` channels.
    """

    op_name = "transpose_channels"

    def __init__(self, order: Sequence[int], **kwargs: Any) -> None:
        super().__init__({"order": order}, **kwargs)

    def call(self, inputs: Any) -> Any:
        return kops.take(self._as_float(inputs), list(self.op["order"]), axis=-1)


@keras.saving.register_keras_serializable(package="czbuild")
class Shift(_OpLayer):
    """``x + shift`` with a scalar or per-channel constant.

    Args:
        shift: One value or one per channel; finite.
    """

    op_name = "shift"

    def __init__(self, shift: Numbers, **kwargs: Any) -> None:
        super().__init__({"shift": shift}, **kwargs)

    def call(self, inputs: Any) -> Any:
        x = self._as_float(inputs)
        return x + self._constant(self.op["shift"], x)


@keras.saving.register_keras_serializable(package="czbuild")
class Scale(_OpLayer):
    """``x * scale`` with a scalar or per-channel constant (e.g. ``1/255`` for 8-bit input).

    Args:
        scale: One value or one per channel; finite.
    """

    op_name = "scale"

    def __init__(self, scale: Numbers, **kwargs: Any) -> None:
        super().__init__({"scale": scale}, **kwargs)

    def call(self, inputs: Any) -> Any:
        x = self._as_float(inputs)
        return x * self._constant(self.op["scale"], x)


@keras.saving.register_keras_serializable(package="czbuild")
class SigmoidToSoftmaxScores(_OpLayer):
    """1 sigmoid channel ``p`` -> 2 class scores: ``[p, 1 - p]`` (default) or ``[1 - p, p]``.

    The default (``positive_channel=0``) is ZEISS's layer: class 0 is the one the sigmoid
    scores. Recipes name that class instead (``positive: Cell``) and czbuild picks the channel
    from ``metadata.classes`` (:func:`czbuild.ops.bind_positive`).

    Args:
        positive: Name of the class the sigmoid scores (a label; needs ``positive_channel``).
        positive_channel: Output channel holding ``p``: 0 or 1 (default 0).
    """

    op_name = "sigmoid_to_softmax_scores"

    def __init__(
        self, positive: str | None = None, positive_channel: int | None = None, **kwargs: Any
    ) -> None:
        args = {"positive": positive, "positive_channel": positive_channel}
        super().__init__({k: v for k, v in args.items() if v is not None}, **kwargs)

    def call(self, inputs: Any) -> Any:
        p = self._as_float(inputs)
        scores = [p, 1.0 - p]
        if self.op.get("positive_channel", 0) == 1:
            scores.reverse()
        return kops.concatenate(scores, axis=-1)


# --- dispatch -----------------------------------------------------------------------------------

LAYER_CLASSES: dict[str, type[_OpLayer]] = {
    cls.op_name: cls
    for cls in (
        RgbToBgr,
        RgbaToBgra,
        PerImageStandardization,
        PercentileNormalization,
        MinMaxNormalization,
        ScaleRange,
        Normalization,
        TransposeChannels,
        Shift,
        Scale,
        Clip,
        Sigmoid,
        SigmoidToSoftmaxScores,
    )
}

# The dispatch must cover the registry exactly, and names must agree with OpDef.layer.
if set(LAYER_CLASSES) != set(czops.OPS) or any(  # pragma: no cover - guards future edits
    czops.OPS[name].layer != cls.__name__ for name, cls in LAYER_CLASSES.items()
):
    raise ImportError("czbuild.keras.preprocessing.LAYER_CLASSES does not match czbuild.ops.OPS")


def layer_from_op(op: Mapping[str, Any] | str, *, where: str = "", **layer_kwargs: Any) -> _OpLayer:
    """Create the Keras layer for one op dict.

    Args:
        op: An op dict such as ``{"op": "scale", "scale": 0.5}`` (or a bare op name).
        where: Location prefix for error messages, e.g. ``"preprocessing[0]"``.
        **layer_kwargs: Passed to the layer (``name``, ``dtype``).

    Returns:
        A new, unbuilt layer.

    Raises:
        ValueError: The op is invalid (see :func:`czbuild.ops.validate_op`).
    """
    checked = czops.validate_op(op, where=where)
    args = {k: v for k, v in checked.items() if k != "op"}
    return LAYER_CLASSES[checked["op"]](**args, **layer_kwargs)


def op_from_layer(layer: Any) -> dict[str, Any]:
    """The normalised op dict of a czbuild preprocessing layer (e.g. for cache keys).

    Args:
        layer: An instance of one of this module's layer classes.

    Returns:
        ``{"op": name, **args}`` exactly as :func:`czbuild.ops.validate_op` returns it, so
        ``op_from_layer(layer_from_op(op)) == validate_op(op)``.

    Raises:
        TypeError: ``layer`` is not a czbuild preprocessing layer (arbitrary Keras layers have
            no op form).
    """
    if not isinstance(layer, _OpLayer):
        raise TypeError(
            f"op_from_layer: {type(layer).__name__} is not a czbuild preprocessing layer; "
            f"only {', '.join(c.__name__ for c in LAYER_CLASSES.values())} have an op form"
        )
    return layer.op
