"""The closed registry of pre- and postprocessing ops, as plain data (czmodel-format.md §5).

An op is a mapping such as ``{"op": "normalization", "mean": [0.5], "std": [0.25]}``. This
module knows every op czbuild can bake into a model: its arguments, how to validate them and
what it computes. It has no TensorFlow dependency, so the recipe schema can validate ops
cheaply and the verifier can use :func:`apply_numpy` as an independent reference for the
Keras layers in :mod:`czbuild.keras.preprocessing`.

Normalised op dicts hold lists: every per-channel argument (``mean``, ``std``, ``shift``,
``scale``, ``min``, ``max``) becomes a list of floats of length 1 (broadcast over all
channels) or C (one per channel); ``order`` becomes a list of ints; single numbers (``low``,
``high``, ``eps``) become floats; ranges (``in``, ``out``) become ``[a, b]`` lists of floats.

``sigmoid_to_softmax_scores`` has two optional arguments: ``positive_channel`` (0 or 1, the
output channel that holds the sigmoid ``p``; default 0, ZEISS's ``[p, 1 - p]``) and
``positive`` (the name of the class the sigmoid scores; a label, no maths).
:func:`bind_positive` derives ``positive_channel`` from ``positive`` and the class list; the
recipe layer requires it, so a recipe's channel order always follows ``metadata.classes``.
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
    "PER_TILE_OPS",
    "SIGMOID_SCORES",
    "ArgDef",
    "OpDef",
    "apply_numpy",
    "as_chain",
    "bind_positive",
    "op_out_channels",
    "out_channels",
    "validate_op",
]

# Argument kinds: "floats" = a finite number or a non-empty list of finite numbers (one per
# channel); "order" = a non-empty list of ints forming a permutation of 0..len-1; "number" =
# one finite number; "range" = two finite numbers [a, b]; "channel" = the int 0 or 1;
# "label" = a non-empty string (a class name).
_FLOATS: Final = "floats"
_ORDER: Final = "order"
_NUMBER: Final = "number"
_RANGE: Final = "range"
_CHANNEL: Final = "channel"
_LABEL: Final = "label"

#: The op turning a 1-channel sigmoid into two class scores.
SIGMOID_SCORES: Final = "sigmoid_to_softmax_scores"
#: Default ``eps`` of the per-tile normalisations (CSBDeep's; keeps a constant tile at 0).
DEFAULT_EPS: Final = 1e-20


@dataclass(frozen=True)
class ArgDef:
    """One argument of an op.

    Attributes:
        name: Key in the op dict.
        kind: ``"floats"`` (number or list of numbers, normalised to a list of floats),
            ``"order"`` (list of ints, a permutation of ``0..len-1``), ``"number"`` (one
            float), ``"range"`` (``[a, b]``, two floats), ``"channel"`` (0 or 1) or
            ``"label"`` (a non-empty string).
        required: Whether the key must be present.
        doc: One-line description.
        nonzero: For ``"floats"``: reject zeros (divisors).
        default: For optional ``"number"`` arguments: the value filled in when absent
            (normalised dicts then always carry it); None: left out when absent.
    """

    name: str
    kind: str
    required: bool
    doc: str
    nonzero: bool = False
    default: float | None = None


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
        per_tile: The op uses statistics of each tile (image), so its output depends on how
            ZEN tiles the image (see :data:`PER_TILE_OPS`).
    """

    name: str
    args: tuple[ArgDef, ...]
    doc: str
    layer: str
    in_channels: int | None = None
    out_channels: int | None = None
    per_tile: bool = False

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


def _eps_arg() -> ArgDef:
    return ArgDef(
        "eps",
        _NUMBER,
        False,
        f"Added to the divisor, > 0 (default {DEFAULT_EPS:g}): a constant tile maps to 0.",
        default=DEFAULT_EPS,
    )


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
            per_tile=True,
        ),
        OpDef(
            "percentile_normalization",
            (
                ArgDef(
                    "low",
                    _NUMBER,
                    False,
                    "Lower percentile in [0, 100) (default 1.0).",
                    default=1.0,
                ),
                ArgDef(
                    "high",
                    _NUMBER,
                    False,
                    "Upper percentile in (low, 100] (default 99.8).",
                    default=99.8,
                ),
                _eps_arg(),
            ),
            "Per image (x - p_low) / (p_high - p_low + eps), percentiles of all H*W*C values "
            "(linear interpolation).",
            "PercentileNormalization",
            per_tile=True,
        ),
        OpDef(
            "min_max_normalization",
            (_eps_arg(),),
            "Per image (x - min) / (max - min + eps) over all H*W*C values.",
            "MinMaxNormalization",
            per_tile=True,
        ),
        OpDef(
            "scale_range",
            (
                ArgDef("in", _RANGE, True, "Input range [a, b], a != b (e.g. [0, 65535])."),
                ArgDef("out", _RANGE, True, "Output range [c, d] (e.g. [0, 1])."),
            ),
            "Map [a, b] linearly onto [c, d]: c + (x - a) * (d - c) / (b - a); no clipping.",
            "ScaleRange",
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
            "clip",
            (
                _floats_arg("min", "Lower bound: scalar or one value per channel."),
                _floats_arg("max", "Upper bound (>= min): scalar or one value per channel."),
            ),
            "min(max(x, min), max), bounds broadcast on the channel axis.",
            "Clip",
        ),
        OpDef(
            "sigmoid",
            (),
            "Logistic function 1 / (1 + exp(-x)), element-wise.",
            "Sigmoid",
        ),
        OpDef(
            SIGMOID_SCORES,
            (
                ArgDef(
                    "positive",
                    _LABEL,
                    False,
                    "Name of the class the sigmoid scores (required in recipes; one of "
                    "metadata.classes).",
                ),
                ArgDef(
                    "positive_channel",
                    _CHANNEL,
                    False,
                    "Output channel holding p: 0 gives [p, 1 - p] (default), 1 gives [1 - p, p].",
                ),
            ),
            "Turn a 1-channel sigmoid p into 2 class scores: [p, 1 - p] (positive_channel 0, "
            "the default) or [1 - p, p] (positive_channel 1).",
            "SigmoidToSoftmaxScores",
            in_channels=1,
            out_channels=2,
        ),
    )
}

#: Ops whose output depends on statistics of the tile they see (so on ZEN's tiling).
PER_TILE_OPS: Final[frozenset[str]] = frozenset(n for n, d in OPS.items() if d.per_tile)


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


def _finite(value: Any, key: str) -> float:
    """``value`` as a float; a ValueError naming ``key`` if it is not a finite number."""
    if not _is_number(value):
        raise ValueError(f"{key}: must be a number, got {type(value).__name__} {value!r}")
    f = float(value)
    if not math.isfinite(f):
        raise ValueError(f"{key}: must be finite, got {f!r}")
    return f


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
        f = _finite(item, f"{key}[{i}]")
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


def _check_number(value: Any, arg: ArgDef, where: str) -> float:
    key = _key(where, arg.name)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    return _finite(value, key)


def _check_range(value: Any, arg: ArgDef, where: str) -> list[float]:
    key = _key(where, arg.name)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(
            f"{key}: must be a range of two numbers [a, b] such as [0, 65535], "
            f"got {type(value).__name__} {value!r}"
        )
    return [_finite(item, f"{key}[{i}]") for i, item in enumerate(value)]


def _check_channel(value: Any, arg: ArgDef, where: str) -> int:
    key = _key(where, arg.name)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{key}: must be 0 or 1, got {type(value).__name__} {value!r}")
    if int(value) not in (0, 1):
        raise ValueError(f"{key}: must be 0 or 1 (the output channel holding p), got {value}")
    return int(value)


def _check_label(value: Any, arg: ArgDef, where: str) -> str:
    key = _key(where, arg.name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            f"{key}: must be a class name (one of metadata.classes), "
            f"got {type(value).__name__} {value!r}"
        )
    return value


_CHECKERS: Final = {
    _FLOATS: _check_floats,
    _ORDER: _check_order,
    _NUMBER: _check_number,
    _RANGE: _check_range,
    _CHANNEL: _check_channel,
    _LABEL: _check_label,
}


def _check_relations(result: dict[str, Any], where: str) -> None:
    """Rules between the arguments of one op (bounds in order, divisors non-zero)."""
    name = result["op"]
    if name == "percentile_normalization":
        low, high = result["low"], result["high"]
        if not 0.0 <= low < 100.0:
            raise ValueError(f"{_key(where, 'low')}: must be in [0, 100), got {low:g}")
        if not low < high <= 100.0:
            raise ValueError(
                f"{_key(where, 'high')}: must be above low ({low:g}) and at most 100, got {high:g}"
            )
    if "eps" in result and not result["eps"] > 0.0:
        raise ValueError(
            f"{_key(where, 'eps')}: must be > 0 (a constant tile would divide 0 by 0), "
            f"got {result['eps']:g}; the default is {DEFAULT_EPS:g}"
        )
    if name == "scale_range" and result["in"][0] == result["in"][1]:
        raise ValueError(
            f"{_key(where, 'in')}: {result['in']} is empty (a == b); give the input's "
            "range, e.g. [0, 65535] for Gray16"
        )
    if name == "clip":
        lo, hi = result["min"], result["max"]
        pairs = zip(lo * len(hi), hi) if len(lo) == 1 else zip(lo, hi * len(lo))
        for i, (a, b) in enumerate(pairs):
            if a > b:
                raise ValueError(f"{_key(where, 'max')}: {b:g} is below min {a:g} (channel {i})")


def as_chain(steps: Any) -> tuple[Any, ...]:
    """A chain as a tuple of steps: None -> (), one step (op dict, op name or a framework
    layer) -> a 1-tuple, a sequence of steps -> a tuple."""
    if steps is None:
        return ()
    if isinstance(steps, (Mapping, str)) or not isinstance(steps, Sequence):
        return (steps,)
    return tuple(steps)


def validate_op(op: Mapping[str, Any] | str, *, where: str = "") -> dict[str, Any]:
    """Validate one op and return its normalised form.

    Args:
        op: A mapping with key ``"op"`` (the op name) and the op's arguments. A bare string is
            accepted as shorthand for an op without arguments (``"rgb_to_bgr"``).
        where: Location prefix for error messages, e.g. ``"preprocessing[1]"``.

    Returns:
        A new dict ``{"op": name, **args}`` with arguments in canonical order, per-channel
        numbers as lists of floats, single numbers as floats (defaults filled in), ranges as
        ``[a, b]`` and ``order`` as a list of ints.

    Raises:
        ValueError: The op is not a mapping, its name is unknown (the message lists the valid
            names and suggests the closest), an argument is missing, unknown or invalid, or
            ``sigmoid_to_softmax_scores`` names a ``positive`` class without saying which
            channel holds it (use :func:`bind_positive`). The message starts with ``where``
            and the offending key.
    """
    result = _validate(op, where)
    if "positive" in result and "positive_channel" not in result:
        raise ValueError(
            f"{_key(where, 'positive_channel')}: missing; positive {result['positive']!r} "
            "alone does not say which output channel holds p (0: [p, 1 - p], 1: [1 - p, p]); "
            "give positive_channel, or build from a recipe, where czbuild derives it from "
            "metadata.classes"
        )
    return result


def _validate(op: Mapping[str, Any] | str, where: str) -> dict[str, Any]:
    """:func:`validate_op` without the ``positive`` / ``positive_channel`` rule."""
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
            if arg.default is not None:
                result[arg.name] = arg.default
            continue
        result[arg.name] = _CHECKERS[arg.kind](op[arg.name], arg, where)
    per_channel = {k: v for k, v in result.items() if _kind(definition, k) == _FLOATS}
    lengths = {len(v) for v in per_channel.values() if len(v) > 1}
    if len(lengths) > 1:
        detail = ", ".join(f"{k}: {len(v)}" for k, v in per_channel.items())
        raise ValueError(
            f"{_key(where, definition.args[-1].name)}: per-channel lists of {name!r} differ in "
            f"length ({detail}); give each as one value or one value per channel"
        )
    _check_relations(result, where)
    return result


def _kind(definition: OpDef, name: str) -> str | None:
    for arg in definition.args:
        if arg.name == name:
            return arg.kind
    return None


def bind_positive(
    op: Mapping[str, Any] | str, classes: Sequence[str] | None, *, where: str = ""
) -> dict[str, Any]:
    """Order the two scores of ``sigmoid_to_softmax_scores`` to match ``classes``.

    The sigmoid ``p`` is the probability of the class named by the op's ``positive``; this
    sets ``positive_channel`` to that class's index in ``classes``, so channel ``k`` of the
    output is the probability of ``classes[k]`` (``[Background, Cell]`` with ``positive:
    Cell`` gives ``[1 - p, p]``).

    Args:
        op: A ``sigmoid_to_softmax_scores`` op with ``positive`` (validated here).
        classes: The model's class names, in output channel order.
        where: Location prefix for error messages, e.g. ``"postprocessing[0]"``.

    Returns:
        The normalised op with ``positive`` and ``positive_channel``.

    Raises:
        ValueError: ``op`` is not this op, ``positive`` is missing (the message explains
            both orders), ``classes`` does not have exactly two names, ``positive`` is not
            one of them, or a given ``positive_channel`` disagrees with ``classes``.
    """
    checked = _validate(op, where)
    if checked["op"] != SIGMOID_SCORES:
        raise ValueError(f"{_key(where, 'op')}: bind_positive takes {SIGMOID_SCORES!r} only")
    if classes is None or len(classes) != 2:
        got = "no classes" if classes is None else f"{len(classes)} classes {list(classes)}"
        raise ValueError(
            f"{_key(where, 'op')}: {SIGMOID_SCORES!r} outputs 2 class scores but the metadata "
            f"has {got}; give metadata.classes two names, e.g. [Background, Foreground]"
        )
    first, second = classes
    if "positive" not in checked:
        raise ValueError(
            f"{_key(where, 'positive')}: missing; name the class the sigmoid scores: "
            f"positive: {second} gives [{first}, {second}] = [1 - p, p], "
            f"positive: {first} gives [p, 1 - p]"
        )
    positive = checked["positive"]
    if positive not in classes:
        raise ValueError(
            f"{_key(where, 'positive')}: {positive!r} is not one of metadata.classes "
            f"[{first}, {second}]"
        )
    channel = list(classes).index(positive)
    if checked.get("positive_channel", channel) != channel:
        raise ValueError(
            f"{_key(where, 'positive_channel')}: {checked['positive_channel']} disagrees with "
            f"positive {positive!r} (channel {channel} of {list(classes)}); remove it, "
            "czbuild derives it from positive"
        )
    checked["positive_channel"] = channel
    return checked


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


def _image_axes(x: np.ndarray) -> tuple[int, ...]:
    return tuple(range(1, x.ndim))


def _percentile_normalization(x: np.ndarray, op: dict[str, Any]) -> np.ndarray:
    flat = x.reshape(x.shape[0], -1)
    # numpy's default "linear" method: order statistics v[i] (ascending), h = (n - 1) * q / 100,
    # value v[floor(h)] + (h - floor(h)) * (v[floor(h) + 1] - v[floor(h)]).
    low, high = np.percentile(flat, [op["low"], op["high"]], axis=1, method="linear")
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    return (x - low.reshape(shape)) / (high.reshape(shape) - low.reshape(shape) + op["eps"])


def _min_max_normalization(x: np.ndarray, op: dict[str, Any]) -> np.ndarray:
    axes = _image_axes(x)
    low = x.min(axis=axes, keepdims=True)
    high = x.max(axis=axes, keepdims=True)
    return (x - low) / (high - low + op["eps"])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # 0.5 * (1 + tanh(x / 2)) is the logistic function without overflow for large |x|.
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _apply_one(op: dict[str, Any], x: np.ndarray) -> np.ndarray:
    name = op["op"]
    if name == "per_image_standardization":
        return _per_image_standardization(x)
    x = _to_float(x)
    if name == "percentile_normalization":
        return _percentile_normalization(x, op)
    if name == "min_max_normalization":
        return _min_max_normalization(x, op)
    if name == "scale_range":
        (a, b), (c, d) = op["in"], op["out"]
        return c + (x - a) * ((d - c) / (b - a))
    if name == "clip":
        return np.minimum(np.maximum(x, np.asarray(op["min"])), np.asarray(op["max"]))
    if name == "sigmoid":
        return _sigmoid(x)
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
    if name == SIGMOID_SCORES:
        scores = [x, 1.0 - x]
        if op.get("positive_channel", 0) == 1:
            scores.reverse()
        return np.concatenate(scores, axis=-1)
    raise AssertionError(f"op {name!r} is in OPS but has no NumPy reference")  # pragma: no cover


def apply_numpy(ops: Sequence[Mapping[str, Any] | str], x: np.ndarray) -> np.ndarray:
    """Reference implementation of ``ops`` in float64 NumPy.

    Args:
        ops: Op dicts, applied in order (validated here).
        x: Channels-last array with a leading batch axis (NHWC; any rank >= 2 works, the
            statistics of ``per_image_standardization`` are taken over all non-batch axes).
            Integer input reaching ``per_image_standardization`` is divided by its type's
            maximum (255, 65535, ...); for every other op integers are converted to float
            unchanged. The per-image ops (``per_image_standardization``,
            ``percentile_normalization``, ``min_max_normalization``) take their statistics
            over all non-batch values of each image.

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
