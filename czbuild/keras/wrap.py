"""Wrap a model for conversion: tile size, preprocessing and postprocessing (format §5).

``wrap_model`` builds a new functional model::

    Input "input" (H, W, C)  ->  preprocessing layers in order  ->  model  ->  postprocessing

(3D models: ``(Z, H, W, C)``; everything below holds for both spatial ranks.)

Every check happens while this graph is built symbolically, i.e. before anything is
exported or written, and fails with a :class:`~czbuild.errors.ModelError` that says why and
what to do: more than one input/output, a model that cannot run at the requested size
(Flatten/Dense, fixed reshapes), a tile size the model's down-sampling cannot take, an
output whose spatial size differs from the input's.

A model built for a fixed tile size is re-run at another size by replaying its layer graph
on the new input (nested functional / sequential sub-models are replayed too), bypassing
Keras's check of the original input shape; weights are shared with the source model, which
stays usable and can be wrapped any number of times.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import keras

from czbuild import ops as czops
from czbuild.errors import ModelError
from czbuild.keras.preprocessing import layer_from_op

__all__ = ["channels_last", "data_format", "io_shapes", "is_tiling_invariant", "wrap_model"]

Shape = tuple[int | None, ...]
_DIVISIBILITY_HINT = (
    "If the model down-samples (pooling or strided convolutions), the tile size must be "
    "divisible by its total down-sampling factor (2**depth for a U-Net of that depth)"
)


# --- inspection ---------------------------------------------------------------------------------


def _single_io(model: Any) -> tuple[Any, Any]:
    """The model's only symbolic input and output; ModelError otherwise."""
    if not isinstance(model, keras.Model):
        raise ModelError(f"model: expected a keras.Model, got {type(model).__name__}")
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise ModelError(
            f"model {model.name!r} has no symbolic inputs/outputs (a subclassed model, or a "
            "Sequential model without an Input): build it functionally, e.g. "
            "inputs = keras.Input((None, None, C)); keras.Model(inputs, model(inputs))"
        )
    for what, tensors in (("inputs", inputs), ("outputs", outputs)):
        if len(tensors) != 1:
            names = ", ".join(str(getattr(t, "name", "?")) for t in tensors)
            raise ModelError(
                f"model {model.name!r} has {len(tensors)} {what} ({names}); czbuild needs "
                "exactly one input and one output"
            )
    return inputs[0], outputs[0]


def _shape(tensor: Any) -> Shape:
    return tuple(None if d is None else int(d) for d in tensor.shape[1:])


def io_shapes(model: Any) -> tuple[Shape, Shape]:
    """Input and output shape without the batch dimension (None for undefined dims).

    Args:
        model: A keras.Model with one input and one output.

    Returns:
        ``(input_shape, output_shape)``, e.g. ``((None, None, 1), (None, None, 2))``.

    Raises:
        ModelError: The model does not have exactly one input and one output.
    """
    x, y = _single_io(model)
    return _shape(x), _shape(y)


# --- channels-first models ---------------------------------------------------------------------


def _layers_of(model: Any) -> list[Any]:
    """Every layer of ``model``, nested models' layers included."""
    found = []
    for layer in getattr(model, "layers", ()):
        found.append(layer)
        if isinstance(layer, keras.Model):
            found.extend(_layers_of(layer))
    return found


def data_format(model: Any) -> str | None:
    """``"channels_first"`` when every layer with a ``data_format`` uses it, else
    ``"channels_last"``; None when no layer has one (e.g. a model of Dense layers).

    A model built after ``keras.config.set_image_data_format("channels_first")`` -- common
    under the PyTorch and JAX backends -- stores that in each convolution/pooling layer's
    config, and a ``.keras`` file keeps it whatever backend loads the file.
    """
    formats = {
        f
        for layer in _layers_of(model)
        if (f := getattr(layer, "data_format", None)) in ("channels_first", "channels_last")
    }
    if not formats:
        return None
    return "channels_first" if formats == {"channels_first"} else "channels_last"


#: Layers whose weights do not depend on the data format (besides those with a
#: ``data_format``): a channels-first model of only these is cloned channels-last.
_LAYOUT_FREE = frozenset(
    {
        "InputLayer", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
        "Activation", "ReLU", "LeakyReLU", "ELU", "Dropout", "Identity",
    }
)  # fmt: skip
#: Layers with a channel ``axis`` argument, mapped to the channels-last axis when cloned.
_AXIS_LAYERS = frozenset({"BatchNormalization", "Concatenate", "Softmax"})


def _channels_last_axis(axis: int, rank: int) -> int:
    """The channels-last axis of channels-first ``axis`` in a tensor of ``rank`` (batch incl.)."""
    position = axis % rank
    if position == 0:
        return 0
    return -1 if position == 1 else position - 1


def _unclonable(model: Any) -> list[str]:
    """Class names of the layers a channels-last clone cannot take (sorted, unique)."""
    bad = set()
    for layer in model.layers:
        name = type(layer).__name__
        if name in _AXIS_LAYERS:
            if not isinstance(layer.get_config().get("axis"), int):
                bad.add(name)
        elif name not in _LAYOUT_FREE and (
            isinstance(layer, keras.Model) or "data_format" not in layer.get_config()
        ):
            bad.add(name)
    return sorted(bad)


def _clone_channels_last(model: Any, shape: Shape, dtype: Any) -> Any:
    """``model`` rebuilt with channels-last layers and the same weights."""

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        if "data_format" in config:
            config["data_format"] = "channels_last"
        if type(layer).__name__ in _AXIS_LAYERS:
            first = layer.input[0] if isinstance(layer.input, (list, tuple)) else layer.input
            config["axis"] = _channels_last_axis(int(config["axis"]), len(first.shape))
        return type(layer).from_config(config)

    inputs = keras.Input((*shape[1:], shape[0]), dtype=dtype, name="input")
    cloned = keras.models.clone_model(model, input_tensors=inputs, clone_function=clone)
    for old, new in zip(model.layers, cloned.layers):
        new.set_weights(old.get_weights())
    return keras.Model(cloned.inputs[0], cloned.outputs[0], name=model.name)


def channels_last(model: Any) -> Any:
    """``model`` itself, or -- for a channels-first image model -- its channels-last clone.

    ZEN feeds channels-last tiles, and every later step (chains, spatial dims, export,
    verification) assumes the channel axis last; TensorFlow on CPU does not run
    channels-first convolutions at all (3D ones only through XLA, which tf2onnx cannot
    convert). A channels-first model of convolution, pooling, up-sampling, padding/cropping,
    normalisation, merge and activation layers is therefore cloned with channels-last layers
    and the same weights (Keras kernels do not depend on the data format; channel ``axis``
    arguments are mapped). Models with several inputs/outputs, mixed data formats or
    another rank are returned unchanged.

    Raises:
        ModelError: A channels-first model with layers the clone cannot take (named).
    """
    if data_format(model) != "channels_first":
        return model
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        return model
    if not inputs or not outputs or len(inputs) != 1 or len(outputs) != 1:
        return model
    shape, out_rank = _shape(inputs[0]), len(outputs[0].shape) - 1
    if len(shape) not in (3, 4) or out_rank != len(shape) or shape[0] is None:
        return model
    fix = (
        "build and save the model with keras.config.set_image_data_format('channels_last') "
        "(the weights are the same)"
    )
    bad = _unclonable(model)
    if bad:
        raise ModelError(
            f"model {model.name!r} is channels-first (input {shape}); czbuild converts it by "
            f"rebuilding it channels-last, which these layers do not allow: {', '.join(bad)}; "
            + fix
        )
    try:
        return _clone_channels_last(model, shape, inputs[0].dtype)
    except Exception as exc:
        raise ModelError(
            f"model {model.name!r} is channels-first (input {shape}) and cannot be rebuilt "
            f"channels-last: {_short(exc)}; {fix}"
        ) from exc


# --- replaying a model at another size ----------------------------------------------------------


def _graph_of(layer: Any) -> Any:
    """The functional graph (Functional) behind a model layer, or None for plain layers."""
    if isinstance(layer, keras.Sequential):
        layer = getattr(layer, "_functional", None)
    if isinstance(layer, keras.Model) and hasattr(layer, "_run_through_graph"):
        try:
            if layer.inputs and layer.outputs:
                return layer
        except (AttributeError, ValueError):
            return None
    return None


def _call_unchecked(layer: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``layer``; for (nested) functional models replay their graph leaf by leaf.

    Replaying skips the input-shape check a functional model makes against the shape it was
    built with; the individual layers still check what they can really take.
    """
    graph = _graph_of(layer)
    if graph is None:
        return layer(*args, **kwargs)
    outputs = graph._run_through_graph(
        args[0] if len(args) == 1 else list(args),
        operation_fn=lambda op: functools.partial(_call_unchecked, op),
    )
    if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
        return outputs[0]
    return outputs


def _needs_replay(declared: Shape, wanted: Shape) -> bool:
    return any(d is not None and d != w for d, w in zip(declared, wanted))


# --- wrapping ----------------------------------------------------------------------------------


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RAISED_LINE = re.compile(r"^\s*(?:\w+\.)*\w+(?:Error|Exception): ", re.MULTILINE)


def _short(exc: BaseException) -> str:
    """One readable line from a Keras / TensorFlow exception (no traceback, no colours)."""
    text = _ANSI.sub("", str(exc))
    if "in user code:" in text:  # tf.function error: keep the innermost raised message
        starts = [m.start() for m in _RAISED_LINE.finditer(text)]
        if starts:
            text = text[starts[-1] :]
    text = " ".join(text.split())
    text = re.sub(r"Exception encountered when calling [^.]*\.call\(\)\.\s*", "", text)
    text = text.split(" Arguments received by")[0].split(" for '{{node ")[0]
    if len(text) > 400:
        text = text[:400] + " ..."
    return text if _RAISED_LINE.match(text) else f"{type(exc).__name__}: {text}"


def _check_spatial_dims(spatial_dims: Any, declared: Shape) -> tuple[int | None, ...]:
    """``spatial_dims`` checked against the model's spatial rank (2D (h, w), 3D (z, h, w))."""
    if not isinstance(spatial_dims, Sequence) or isinstance(spatial_dims, str):
        raise ModelError(
            f"spatial_dims: must be (height, width) or, 3D, (depth, height, width), got "
            f"{spatial_dims!r}"
        )
    dims = tuple(spatial_dims)
    if len(dims) not in (2, 3):
        raise ModelError(
            f"spatial_dims: must be (height, width) for 2D models or (depth, height, width) "
            f"for 3D models, got {len(dims)} values {dims!r}"
        )
    for d in dims:
        if d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 1):
            raise ModelError(f"spatial_dims: values must be positive integers, got {dims!r}")
    rank = len(declared) - 1
    if rank not in (2, 3):
        raise ModelError(
            f"spatial_dims: the model input has shape {declared} (without batch), but "
            "spatial_dims applies to 2D models with input (H, W, C) and 3D models with input "
            "(Z, H, W, C) only; omit spatial_dims"
        )
    if len(dims) != rank:
        want = "(height, width)" if rank == 2 else "(depth, height, width)"
        raise ModelError(
            f"spatial_dims: the model input has shape {declared} (without batch), a {rank}D "
            f"model: give {rank} values {want}, got {len(dims)} {list(dims)}"
        )
    return dims


def _make_layer(step: Any, where: str, channels: int | None) -> Any:
    if isinstance(step, keras.layers.Layer):
        return step
    if isinstance(step, (Mapping, str)):
        try:
            op = czops.validate_op(step, where=where)
            if channels is not None:
                czops.op_out_channels(op, channels, where=where)
            name = where.replace("[", "_").replace("]", "") + "_" + op["op"]
            return layer_from_op(op, where=where, name=name)
        except ValueError as exc:
            raise ModelError(str(exc)) from exc
    raise ModelError(
        f"{where}: must be an op dict such as {{'op': 'scale', 'scale': 0.5}} or a keras "
        f"Layer, got {type(step).__name__}"
    )


def _apply_chain(x: Any, steps: Sequence[Any], what: str) -> Any:
    if isinstance(steps, (str, Mapping)):
        raise ModelError(f"{what}: must be a list of steps, got a single {type(steps).__name__}")
    for i, step in enumerate(steps):
        where = f"{what}[{i}]"
        layer = _make_layer(step, where, x.shape[-1])
        try:
            x = layer(x)
        except Exception as exc:
            raise ModelError(
                f"{where} ({layer.name}): cannot be applied to a tensor of shape "
                f"{tuple(x.shape)}: {_short(exc)}"
            ) from exc
        if isinstance(x, (list, tuple, dict)):
            raise ModelError(f"{where} ({layer.name}): must return one tensor, got several")
    return x


def _rebuild(
    model: Any,
    shape: Shape,
    *,
    preprocessing: Sequence[Any] = (),
    postprocessing: Sequence[Any] = (),
    hint: str = "",
) -> Any:
    """Build Input(shape) -> preprocessing -> model -> postprocessing; ModelError on failure."""
    source_in, _ = _single_io(model)
    declared = _shape(source_in)
    inputs = keras.Input(shape=shape, dtype=source_in.dtype, name="input")
    x = _apply_chain(inputs, preprocessing, "preprocessing")
    if tuple(x.shape[1:-1]) != tuple(shape[:-1]) or len(x.shape) != len(shape) + 1:
        raise ModelError(
            f"preprocessing changes the tensor shape from {shape} to {tuple(x.shape[1:])}; "
            "preprocessing may only transform values and channels"
        )
    if declared[-1] is not None and x.shape[-1] != declared[-1]:
        raise ModelError(
            f"preprocessing outputs {x.shape[-1]} channel(s) but model {model.name!r} expects "
            f"{declared[-1]}; fix the channel ops (e.g. transpose_channels order length)"
        )
    try:
        if _needs_replay(declared, tuple(x.shape[1:])):
            y = _call_unchecked(model, x)
        else:
            y = model(x)
    except Exception as exc:
        raise ModelError(
            f"model {model.name!r} (built for input {declared}) cannot be rebuilt for input "
            f"{tuple(x.shape[1:])}: {_short(exc).rstrip('.')}. Models with Flatten/Dense layers or "
            "fixed "
            "reshapes only run at the size they were built for: omit spatial_dims or use a "
            f"fully convolutional model{hint}"
        ) from exc
    if isinstance(y, (list, tuple, dict)):
        raise ModelError(f"model {model.name!r}: returned several outputs; czbuild needs one")
    y = _apply_chain(y, postprocessing, "postprocessing")
    try:
        return keras.Model(inputs, y, name=f"{model.name}_wrapped")
    except Exception as exc:
        raise ModelError(
            f"model {model.name!r}: cannot assemble the wrapped model: {_short(exc)}"
        ) from exc


def wrap_model(
    model: Any,
    *,
    preprocessing: Sequence[Any] = (),
    postprocessing: Sequence[Any] = (),
    spatial_dims: Sequence[int | None] | None = None,
    require_fixed: bool = False,
    require_same_spatial: bool = False,
    trace_check: bool = True,
) -> keras.Model:
    """Wrap ``model`` with a new input, preprocessing and postprocessing (format §5).

    Args:
        model: A keras.Model with exactly one input and one output. It is not modified and
            can be wrapped again (layers and weights are shared).
        preprocessing: Steps applied to the new input in list order: op dicts (see
            :mod:`czbuild.ops`) or Keras layers. They must keep the channel count.
        postprocessing: Steps applied to the model output in list order.
        spatial_dims: ``(height, width)`` of the new input, ``(depth, height, width)`` for a
            3D model (input ``(Z, H, W, C)``); ``None`` keeps the model's input shape. A
            ``None`` entry makes that dimension undefined.
        require_fixed: Fail if the resulting height/width are undefined.
        require_same_spatial: Fail if the output's spatial size differs from the input's
            (semantic segmentation and regression need equal sizes).
        trace_check: When height and width are fixed, trace the wrapped model once with
            TensorFlow (no computation) so that shape conflicts Keras does not see
            symbolically (skip connections after pooling an indivisible tile) fail here.

    Returns:
        A new functional keras.Model whose input is named ``"input"``, shape
        ``(batch, H, W, C)`` (3D: ``(batch, Z, H, W, C)``) with ``C`` from the model's input.

    Raises:
        ModelError: Several inputs/outputs; undefined channel count; bad ``spatial_dims``;
            undefined height/width with ``require_fixed``; an invalid step (names
            ``preprocessing[i]`` / ``postprocessing[i]``); a model that cannot run at the
            requested size; output spatial size differing from the input's with
            ``require_same_spatial``.
    """
    source_in, _ = _single_io(model)
    declared = _shape(source_in)
    if not declared or declared[-1] is None:
        raise ModelError(
            f"model {model.name!r}: input shape {declared} has no static channel axis; czbuild "
            "needs channels-last input with a known channel count"
        )
    if spatial_dims is not None:
        shape: Shape = (*_check_spatial_dims(spatial_dims, declared), declared[-1])
    else:
        shape = declared
    if require_fixed and any(d is None for d in shape[:-1]):
        raise ModelError(
            f"model {model.name!r}: the model input has undefined height/width "
            f"{shape[:-1]}; pass spatial_dims=(h, w) (3D: (z, h, w))"
        )
    hint = f". {_DIVISIBILITY_HINT}" if spatial_dims is not None else ""
    wrapped = _rebuild(
        model, shape, preprocessing=preprocessing, postprocessing=postprocessing, hint=hint
    )
    in_shape, out_shape = io_shapes(wrapped)
    if trace_check and all(d is not None for d in shape):
        out_shape = _traced_output_shape(wrapped, model.name, shape, hint)
    if require_same_spatial:
        _check_same_spatial(in_shape, out_shape, model.name, hint)
    return wrapped


def _traced_output_shape(wrapped: Any, name: str, shape: Shape, hint: str) -> Shape:
    """Trace the wrapped model at its fixed input shape; TensorFlow's shape inference
    catches what Keras's symbolic build lets through (e.g. skip connections whose sizes
    no longer match after pooling an indivisible tile)."""
    import tensorflow as tf

    spec = tf.TensorSpec((None, *shape), wrapped.inputs[0].dtype)
    try:
        concrete = tf.function(lambda x: wrapped(x, training=False)).get_concrete_function(spec)
    except Exception as exc:
        raise ModelError(
            f"model {name!r} cannot run at input {shape}: {_short(exc).rstrip('.')}{hint}"
        ) from exc
    (output,) = tf.nest.flatten(concrete.structured_outputs)
    return tuple(None if d is None else int(d) for d in output.shape[1:])


def _check_same_spatial(in_shape: Shape, out_shape: Shape, name: str, hint: str) -> None:
    if len(out_shape) != len(in_shape):
        raise ModelError(
            f"model {name!r}: output shape {out_shape} is not an image of the input's rank "
            f"(input {in_shape}); segmentation and regression need (H, W, N) outputs"
        )
    for i, (a, b) in enumerate(zip(in_shape[:-1], out_shape[:-1])):
        if a is not None and b is not None and a != b:
            raise ModelError(
                f"model {name!r}: output spatial size {out_shape[:-1]} differs from the input's "
                f"{in_shape[:-1]} (axis {i + 1}); segmentation and regression need equal sizes"
                f"{hint}"
            )


def is_tiling_invariant(model: Any) -> bool:
    """Whether the model can be rebuilt with undefined spatial dims and keeps them undefined.

    True means one export with undefined height/width serves every tile size the model can
    take (the output's spatial dims follow the input's). Nothing is cached: each call builds
    a throw-away graph.

    Args:
        model: A keras.Model with one input and one output.

    Returns:
        True if ``Input((None, ..., None, C))`` runs through the model and the output has the
        same rank with all spatial dims undefined.

    Raises:
        ModelError: The model does not have exactly one input and one output, or its
            channel count is undefined.
    """
    source_in, _ = _single_io(model)
    declared = _shape(source_in)
    if len(declared) < 2 or declared[-1] is None:
        return False
    shape: Shape = (*([None] * (len(declared) - 1)), declared[-1])
    try:
        probe = _rebuild(model, shape)
    except ModelError:
        return False
    _, out_shape = io_shapes(probe)
    return len(out_shape) == len(shape) and all(d is None for d in out_shape[:-1])
