"""The closed registry of pre- and postprocessing ops, as plain data (czmodel-format.md §5).

An op is a mapping such as ``{"op": "normalization", "mean": [0.5], "std": [0.25]}``. This
module knows every op czbuild can bake into a model: its arguments, how to validate them and
what it computes. It has no TensorFlow dependency, so the recipe schema can validate ops
cheaply and the verifier can use :func:`apply_numpy` as an independent reference for the
Keras layers in :mod:`czbuild.keras.preprocessing`.

Normalised op dicts hold lists: every numeric argument (``mean``, ``std``, ``shift``,
``scale``) becomes a list of floats of length 1 (broadcast over all channels) or C (one per
channel); ``order`` becomes a list of ints.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

__all__ = [
    "OPS",
    "ArgDef",
    "OpDef",
    "apply_numpy",
    "op_out_channels",
    "out_channels",
    "validate_op",
]

# Argument kinds: "floats" = a finite number or a non-empty list of finite numbers;
# "order" = a non-empty list of ints forming a permutation of 0..len-1.
_FLOATS: Final = "floats"
_ORDER: Final = "order"


@dataclass(frozen=True)
class ArgDef:
    """One argument of an op.

    Attributes:
        name: Key in the op dict.
        kind: ``"floats"`` (number or list of numbers, normalised to a list of floats) or
            ``"order"`` (list of ints, a permutation of ``0..len-1``).
        required: Whether the key must be present.
        doc: One-line description.
        nonzero: For ``"floats"``: reject zeros (divisors).
    """

    name: str
    kind: str
    required: bool
    doc: str
    nonzero: bool = False


@dataclass(frozen=True)
class OpDef:
    """Definition of one op in the registry.

    Attributes:
        name: The op name (``op`` key).
        args: The op's arguments, in canonical order.
        doc: One-line description of what the op computes.
        layer: Name of the Keras layer class implementing it (czbuild.keras.preprocessing).
        in_channels: Channel count the op requires, or None for any.
        out_channels: Channel count the op produces, or None for "same as input" (or, for
            ``transpose_channels``, ``len(order)``).
    """

    name: str
    args: tuple[ArgDef, ...]
    doc: str
    layer: str
    in_channels: int | None = None
    out_channels: int | None = None

    @property
    def arg_names(self) -> tuple[str, ...]:
        """Names of all arguments, in canonical order."""
        return tuple(a.name for a in self.args)

    def signature(self) -> str:
        """Human-readable signature, e.g. ``normalization(mean, std)``."""
        parts = [a.name if a.required else f"{a.name}?" for a in self.args]
        return f"{self.name}({', '.join(parts)})"


def _floats_arg(name: str, doc: str, *, nonzero: bool = False) -> ArgDef:
    return ArgDef(name=name, kind=_FLOATS, required=True, doc=doc, nonzero=nonzero)


OPS: Final[Mapping[str, OpDef]] = {
    d.name: d
    for d in (
        OpDef(
            "rgb_to_bgr",
            (),
            "Reverse the whole channel axis (RGB -> BGR); identity for one channel.",
            "RgbToBgr",
        ),
        OpDef(
            "rgba_to_bgra",
            (),
            "RGBA -> BGRA: reverse the first three channels, keep alpha last (needs 4 channels).",
            "RgbaToBgra",
            in_channels=4,
            out_channels=4,
        ),
        OpDef(
            "per_image_standardization",
            (),
            "Per image (x - mean) / max(std, 1/sqrt(n)) over all H*W*C values; ints / type max.",
            "PerImageStandardization",
        ),
        OpDef(
            "normalization",
            (
                _floats_arg("mean", "Subtracted first: scalar or one value per channel."),
                _floats_arg(
                    "std", "Divisor: scalar or one value per channel, non-zero.", nonzero=True
                ),
            ),
            "(x - mean) / std, constants broadcast on the channel axis.",
            "Normalization",
        ),
        OpDef(
            "transpose_channels",
            (
                ArgDef(
                    "order",
                    _ORDER,
                    True,
                    "Output channel k is input channel order[k]; a permutation of 0..len-1.",
                ),
            ),
            "Reorder channels: out[k] = x[order[k]] (e.g. [2, 1, 0] swaps RGB and BGR).",
            "TransposeChannels",
        ),
        OpDef(
            "shift",
            (_floats_arg("shift", "Added: scalar or one value per channel."),),
            "x + shift, broadcast on the channel axis.",
            "Shift",
        ),
        OpDef(
            "scale",
            (_floats_arg("scale", "Multiplier: scalar or one value per channel."),),
            "x * scale, broadcast on the channel axis (e.g. 1/255 for 8-bit legacy input).",
            "Scale",
        ),
        OpDef(
            "sigmoid_to_softmax_scores",
            (),
            "Turn a 1-channel sigmoid p into 2-channel scores concat(p, 1 - p); class 0 positive.",
            "SigmoidToSoftmaxScores",
            in_channels=1,
            out_channels=2,
        ),
    )
}


# --- validation ---------------------------------------------------------------------------------


def _key(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _op_names() -> str:
    return ", ".join(OPS)


def _unknown_op_message(name: str, where: str) -> str:
    close = difflib.get_close_matches(name, list(OPS), n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{_key(where, 'op')}: unknown op {name!r}; {hint}valid ops: {_op_names()}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _check_floats(value: Any, arg: ArgDef, where: str) -> list[float]:
    key = _key(where, arg.name)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if _is_number(value):
        items = [value]
    elif isinstance(value, (list, tuple)):
        items = list(value)
        if not items:
            raise ValueError(f"{key}: must be a number or a non-empty list of numbers, got []")
    else:
        raise ValueError(
            f"{key}: must be a number or a list of numbers (one per channel), "
            f"got {type(value).__name__} {value!r}"
        )
    out: list[float] = []
    for i, item in enumerate(items):
        if not _is_number(item):
            raise ValueError(f"{key}[{i}]: must be a number, got {type(item).__name__} {item!r}")
        f = float(item)
        if not math.isfinite(f):
            raise ValueError(f"{key}[{i}]: must be finite, got {f!r}")
        if arg.nonzero and f == 0.0:
            raise ValueError(
                f"{key}[{i}]: must not be 0 (division by zero); use 1 to leave a channel unscaled"
            )
        out.append(f)
    return out


def _check_order(value: Any, arg: ArgDef, where: str) -> list[int]:
    key = _key(where, arg.name)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise ValueError(
            f"{key}: must be a list of channel indices such as [2, 1, 0], "
            f"got {type(value).__name__} {value!r}"
        )
    if not value:
        raise ValueError(f"{key}: must not be empty; give the new channel order, e.g. [2, 1, 0]")
    order: list[int] = []
    for i, item in enumerate(value):
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, np.integer)):
            raise ValueError(f"{key}[{i}]: must be an integer, got {type(item).__name__} {item!r}")
        order.append(int(item))
    if sorted(order) != list(range(len(order))):
        raise ValueError(
            f"{key}: {order} is not a permutation of 0..{len(order) - 1}; every channel index "
            f"from 0 to {len(order) - 1} must appear exactly once"
        )
    return order


def validate_op(op: Mapping[str, Any] | str, *, where: str = "") -> dict[str, Any]:
    """Validate one op and return its normalised form.

    Args:
        op: A mapping with key ``"op"`` (the op name) and the op's arguments. A bare string is
            accepted as shorthand for an op without arguments (``"rgb_to_bgr"``).
        where: Location prefix for error messages, e.g. ``"preprocessing[1]"``.

    Returns:
        A new dict ``{"op": name, **args}`` with arguments in canonical order, numbers as
        lists of floats and ``order`` as a list of ints.

    Raises:
        ValueError: The op is not a mapping, its name is unknown (the message lists the valid
            names and suggests the closest), an argument is missing, unknown or invalid. The
            message starts with ``where`` and the offending key.
    """
    if isinstance(op, str):
        op = {"op": op}
    if not isinstance(op, Mapping):
        raise ValueError(
            f"{where or 'op'}: must be a mapping like {{'op': 'scale', 'scale': 0.5}}, "
            f"got {type(op).__name__} {op!r}"
        )
    if "op" not in op:
        raise ValueError(
            f"{_key(where, 'op')}: missing; every step needs an 'op' key, one of: {_op_names()}"
        )
    name = op["op"]
    if not isinstance(name, str):
        raise ValueError(
            f"{_key(where, 'op')}: must be a string, got {type(name).__name__}; "
            f"valid ops: {_op_names()}"
        )
    if name not in OPS:
        raise ValueError(_unknown_op_message(name, where))
    definition = OPS[name]
    extra = [k for k in op if k != "op" and k not in definition.arg_names]
    if extra:
        allowed = ", ".join(definition.arg_names) or "none"
        raise ValueError(
            f"{_key(where, str(extra[0]))}: unknown argument of {name!r}; "
            f"allowed arguments: {allowed} ({definition.signature()})"
        )
    result: dict[str, Any] = {"op": name}
    for arg in definition.args:
        if arg.name not in op:
            if arg.required:
                raise ValueError(
                    f"{_key(where, arg.name)}: missing required argument of {name!r} "
                    f"({definition.signature()}): {arg.doc}"
                )
            continue
        value = op[arg.name]
        if arg.kind == _FLOATS:
            result[arg.name] = _check_floats(value, arg, where)
        else:
            result[arg.name] = _check_order(value, arg, where)
    lengths = {len(v) for k, v in result.items() if k != "op" and len(v) > 1}
    if name != "transpose_channels" and len(lengths) > 1:
        detail = ", ".join(f"{k}: {len(v)}" for k, v in result.items() if k != "op")
        raise ValueError(
            f"{_key(where, definition.args[-1].name)}: per-channel lists of {name!r} differ in "
            f"length ({detail}); give each as one value or one value per channel"
        )
    return result


# --- channel bookkeeping ------------------------------------------------------------------------


def _check_length(values: list[float], key: str, name: str, channels: int, where: str) -> None:
    if len(values) not in (1, channels):
        raise ValueError(
            f"{_key(where, key)}: {len(values)} values but the input to {name!r} has "
            f"{channels} channel(s); give one value or one per channel"
        )


def _step_channels(op: dict[str, Any], channels: int, where: str) -> int:
    """Channel count after one *validated* op; ValueError if it cannot take ``channels``."""
    name = op["op"]
    definition = OPS[name]
    if definition.in_channels is not None and channels != definition.in_channels:
        hint = {
            "rgba_to_bgra": "; for 3-channel RGB use rgb_to_bgr",
            "sigmoid_to_softmax_scores": "; it turns a single sigmoid channel into two scores "
            "(a softmax head needs no conversion)",
        }.get(name, "")
        raise ValueError(
            f"{_key(where, 'op')}: {name!r} needs {definition.in_channels} input channel(s), "
            f"got {channels}{hint}"
        )
    if name == "transpose_channels":
        order = op["order"]
        if channels <= max(order):
            raise ValueError(
                f"{_key(where, 'order')}: refers to channel {max(order)} but the input has only "
                f"{channels} channel(s) (indices 0..{channels - 1})"
            )
        return len(order)
    for arg in definition.args:
        if arg.kind == _FLOATS and arg.name in op:
            _check_length(op[arg.name], arg.name, name, channels, where)
    return definition.out_channels if definition.out_channels is not None else channels


def op_out_channels(op: Mapping[str, Any] | str, channels: int, *, where: str = "") -> int:
    """Channel count after one op; like :func:`out_channels` for a single step.

    Args:
        op: One op dict (validated here).
        channels: Channel count of its input.
        where: Location prefix for error messages (used as is, no index appended).

    Returns:
        The channel count the op produces.

    Raises:
        ValueError: The op is invalid or cannot take ``channels`` channels.
    """
    count = _channel_count(channels)
    return _step_channels(validate_op(op, where=where), count, where)


def _channel_count(channels: Any) -> int:
    if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or channels < 1:
        raise ValueError(f"channels: must be a positive integer, got {channels!r}")
    return int(channels)


def _where_at(where: str, index: int) -> str:
    return f"{where}[{index}]" if where else f"[{index}]"


def out_channels(ops: Sequence[Mapping[str, Any] | str], channels: int, *, where: str = "") -> int:
    """Channel count after applying ``ops`` in order to an input with ``channels`` channels.

    Args:
        ops: Op dicts (validated here).
        channels: Channel count of the input to the first op (>= 1).
        where: Location prefix for error messages, e.g. ``"preprocessing"``; step ``i`` is
            reported as ``where[i]``.

    Returns:
        The channel count the last op produces (``channels`` for an empty list).

    Raises:
        ValueError: An op is invalid or cannot take the channel count it receives
            (``rgba_to_bgra`` needs 4, ``sigmoid_to_softmax_scores`` needs 1,
            ``transpose_channels`` needs more channels than ``max(order)``, per-channel
            constants need length 1 or C).
    """
    c = _channel_count(channels)
    for i, op in enumerate(ops):
        step_where = _where_at(where, i)
        c = _step_channels(validate_op(op, where=step_where), c, step_where)
    return c


# --- NumPy reference maths ----------------------------------------------------------------------


def _to_float(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64, copy=False)


def _per_image_standardization(x: np.ndarray) -> np.ndarray:
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float64) / float(np.iinfo(x.dtype).max)
    elif x.dtype == np.bool_:
        x = x.astype(np.float64)
    else:
        x = _to_float(x)
    axes = tuple(range(1, x.ndim))
    n = int(np.prod(x.shape[1:]))
    mean = x.mean(axis=axes, keepdims=True)
    std = np.sqrt(np.mean(np.square(x - mean), axis=axes, keepdims=True))
    return (x - mean) / np.maximum(std, 1.0 / math.sqrt(n))


def _apply_one(op: dict[str, Any], x: np.ndarray) -> np.ndarray:
    name = op["op"]
    if name == "per_image_standardization":
        return _per_image_standardization(x)
    x = _to_float(x)
    if name == "rgb_to_bgr":
        return x[..., ::-1]
    if name == "rgba_to_bgra":
        return x[..., [2, 1, 0, 3]]
    if name == "transpose_channels":
        return x[..., op["order"]]
    if name == "normalization":
        return (x - np.asarray(op["mean"])) / np.asarray(op["std"])
    if name == "shift":
        return x + np.asarray(op["shift"])
    if name == "scale":
        return x * np.asarray(op["scale"])
    if name == "sigmoid_to_softmax_scores":
        return np.concatenate([x, 1.0 - x], axis=-1)
    raise AssertionError(f"op {name!r} is in OPS but has no NumPy reference")  # pragma: no cover


def apply_numpy(ops: Sequence[Mapping[str, Any] | str], x: np.ndarray) -> np.ndarray:
    """Reference implementation of ``ops`` in float64 NumPy.

    Args:
        ops: Op dicts, applied in order (validated here).
        x: Channels-last array with a leading batch axis (NHWC; any rank >= 2 works, the
            statistics of ``per_image_standardization`` are taken over all non-batch axes).
            Integer input reaching ``per_image_standardization`` is divided by its type's
            maximum (255, 65535, ...); for every other op integers are converted to float
            unchanged.

    Returns:
        A new float64 array (the input itself, as float64, for an empty list).

    Raises:
        ValueError: An op is invalid or does not fit the channel count (see
            :func:`out_channels`), or ``x`` has fewer than 2 dimensions.
    """
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"x: needs a batch and a channel axis (NHWC), got shape {x.shape}")
    channels = x.shape[-1]
    for i, op in enumerate(ops):
        where = f"[{i}]"
        checked = validate_op(op, where=where)
        channels = _step_channels(checked, channels, where)
        x = _apply_one(checked, x)
    return _to_float(x)
