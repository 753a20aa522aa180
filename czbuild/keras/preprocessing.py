"""Keras 3 layers for the pre- and postprocessing ops of :mod:`czbuild.ops` (format §5).

Each op of the closed registry :data:`czbuild.ops.OPS` has exactly one layer here; the
arguments are validated by :func:`czbuild.ops.validate_op`, so a layer and its op dict can
never disagree. The layers are registered as ``czbuild>ClassName`` (so models containing them
save to and reload from ``.keras`` once this module is imported) and use only ``keras.ops``
that tf2onnx converts at opsets 12 and 18 (Gather, Sub, Div, Mul, Add, ReduceMean, Sqrt, Max,
Concat, Shape/ReduceProd for undefined tile sizes).

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
    "Normalization",
    "PerImageStandardization",
    "RgbToBgr",
    "RgbaToBgra",
    "Scale",
    "Shift",
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
    """``concat(p, 1 - p)`` on the channel axis: 1 sigmoid channel -> 2 scores (class 0 = p)."""

    op_name = "sigmoid_to_softmax_scores"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__({}, **kwargs)

    def call(self, inputs: Any) -> Any:
        p = self._as_float(inputs)
        return kops.concatenate([p, 1.0 - p], axis=-1)


# --- dispatch -----------------------------------------------------------------------------------

LAYER_CLASSES: dict[str, type[_OpLayer]] = {
    cls.op_name: cls
    for cls in (
        RgbToBgr,
        RgbaToBgra,
        PerImageStandardization,
        Normalization,
        TransposeChannels,
        Shift,
        Scale,
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
