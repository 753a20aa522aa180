"""The independent reference: source model in Keras, pre/postprocessing in NumPy.

The packaged model bakes its preprocessing into the network; the reference computes the same
chain with :func:`czbuild.ops.apply_numpy` (float64) around the *unwrapped* source model, so
a mistake in the Keras layers, the wrapping or the export shows up as a difference. The
source model runs at whatever spatial size the input has: directly when its input dims allow
it, else rebuilt at that size with :func:`czbuild.keras.wrap.wrap_model`.

The model runs as a traced ``tf.function`` (graph mode): TensorFlow then frees each
activation as soon as its last consumer ran, where an eager call keeps every layer's output
of the functional graph alive until the call returns (a 7.8M-parameter U-Net on a 1024-px
tile: ~0.8 GB instead of ~2 GB). At most about a megapixel goes through the model per call,
and each distinct preprocessed input runs once (:class:`czbuild.verify.runs.RunMemo`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from czbuild import ops as ops_mod
from czbuild.errors import ModelError
from czbuild.verify.runs import RunMemo

#: Images per Keras call: up to 8, fewer for large images (about 1 Mpixel per call).
_MAX_BATCH = 8
_PIXELS_PER_CALL = 1 << 20


@dataclass
class SourceChain:
    """A loaded source model and its op chains.

    Attributes:
        model: The Keras model.
        preprocessing: Normalised op dicts applied before the model.
        postprocessing: Normalised op dicts applied after it.
        origin: Where the model came from (for messages).
    """

    model: Any
    preprocessing: tuple[dict[str, Any], ...] = ()
    postprocessing: tuple[dict[str, Any], ...] = ()
    origin: str = "source model"
    _sized: dict[tuple[int, ...], Any] = field(default_factory=dict, repr=False)
    _runs: RunMemo | None = field(default=None, repr=False)

    @property
    def runs(self) -> RunMemo:
        """The memo of the model's runs (each distinct preprocessed input runs once)."""
        if self._runs is None:
            self._runs = RunMemo(self._run_model)
        return self._runs

    @property
    def tiling_dependent(self) -> bool:
        """Whether the preprocessing uses per-tile statistics (its output depends on tiling)."""
        return any(op["op"] in ops_mod.PER_TILE_OPS for op in self.preprocessing)

    def predict(
        self,
        x: np.ndarray,
        *,
        preprocessing: Sequence[Mapping[str, Any]] | None = None,
        postprocessing: Sequence[Mapping[str, Any]] | None = None,
    ) -> np.ndarray:
        """Reference output for raw input ``x`` (batch, spatial..., channels).

        Args:
            x: Raw input as ZEN feeds it.
            preprocessing: Use this chain instead of :attr:`preprocessing` (tiling analysis
                freezes per-tile statistics).
            postprocessing: Use this chain instead of :attr:`postprocessing` (the class-order
                check stops before ``sigmoid_to_softmax_scores``).

        Returns:
            float64 output after postprocessing.

        Raises:
            ModelError: The model cannot run at the input's spatial size.
        """
        chain = self.preprocessing if preprocessing is None else tuple(preprocessing)
        post = self.postprocessing if postprocessing is None else tuple(postprocessing)
        pre = ops_mod.apply_numpy(chain, np.asarray(x)).astype(np.float32)
        return ops_mod.apply_numpy(post, self.runs(pre))

    def _run_model(self, pre: np.ndarray) -> np.ndarray:
        """The model's float64 output on a preprocessed batch, about a megapixel per call."""
        model = self.at(tuple(pre.shape[1:-1]))
        pixels = int(np.prod(pre.shape[1:-1]))
        batch = max(1, min(_MAX_BATCH, _PIXELS_PER_CALL // max(pixels, 1)))
        if pre.shape[0] <= batch:
            return model(pre[: pre.shape[0]])
        outs = [model(pre[i : i + batch]) for i in range(0, pre.shape[0], batch)]
        return np.concatenate(outs, axis=0)

    def at(self, spatial: tuple[int, ...]) -> Any:
        """The model runnable at ``spatial`` size as a NumPy callable (cached)."""
        if spatial in self._sized:
            return self._sized[spatial]
        if hasattr(self.model, "at"):  # an ONNX / PyTorch reference (czbuild.sources)
            model = self.model.at(spatial)
            self._sized[spatial] = model
            return model
        dims = tuple(self.model.input_shape[1:-1])
        if len(dims) == len(spatial) and all(d is None or d == s for d, s in zip(dims, spatial)):
            model = self.model
        else:
            from czbuild.keras.wrap import wrap_model

            try:
                model = wrap_model(self.model, spatial_dims=spatial)
            except Exception as exc:
                raise ModelError(f"{self.origin} cannot run at {list(spatial)}: {exc}") from exc
        # one traced function per Keras model: sizes it runs at share it (shape-generic trace)
        runner = next((r for r in self._sized.values() if r.model is model), None)
        self._sized[spatial] = runner or _GraphCall(model)
        return self._sized[spatial]


def freeze_statistics(ops: Sequence[Mapping[str, Any]], image: np.ndarray) -> list[dict]:
    """Replace each per-tile op by a fixed normalisation with ``image``'s statistics.

    ``per_image_standardization``, ``percentile_normalization`` and ``min_max_normalization``
    (:data:`czbuild.ops.PER_TILE_OPS`) become ``normalization`` with the statistics of the
    whole image at that step, so tiles and the whole image see the same affine map and a
    tiled-vs-whole comparison measures only the model's border effects.
    """
    frozen: list[dict[str, Any]] = []
    x = np.asarray(image, dtype=np.float64)
    for op in ops:
        step = dict(op)
        if step["op"] in ops_mod.PER_TILE_OPS:
            mean, std = _whole_image_affine(step, x)
            step = {"op": "normalization", "mean": [mean], "std": [std]}
        frozen.append(step)
        x = ops_mod.apply_numpy([step], x)
    return frozen


def _whole_image_affine(op: Mapping[str, Any], x: np.ndarray) -> tuple[float, float]:
    """``(mean, std)`` such that the per-tile op equals ``(x - mean) / std`` on all of ``x``."""
    name = op["op"]
    if name == "per_image_standardization":
        n = int(np.prod(x.shape[1:]))
        return float(x.mean()), max(float(x.std()), 1.0 / math.sqrt(n))
    if name == "percentile_normalization":
        low, high = np.percentile(x, [op["low"], op["high"]], method="linear")
    else:  # min_max_normalization
        low, high = x.min(), x.max()
    return float(low), float(high) - float(low) + float(op["eps"])


def load_source(
    source: Any,
    *,
    preprocessing: Sequence[Any] = (),
    postprocessing: Sequence[Any] = (),
    custom_objects: Mapping[str, Any] | None = None,
) -> SourceChain:
    """Load the source model and normalise both chains.

    Args:
        source: Any model source (:mod:`czbuild.sources`): ``keras.Model``, model path,
            ``"file.py:function"``, ONNX file, PyTorch factory or module, or an already
            loaded reference (``Converter.model``).
        preprocessing: Op dicts (or czbuild Keras preprocessing layers, converted back).
        postprocessing: Same, applied after the model.
        custom_objects: For loading models with custom layers.

    Raises:
        ModelError: The model cannot be loaded, has several inputs/outputs, or an op is invalid.
    """
    from czbuild.sources.dispatch import open_reference
    from czbuild.sources.kinds import source_family

    if hasattr(source, "at") and hasattr(source, "input_shape"):
        model = source  # an ONNX / PyTorch reference already loaded
    elif source_family(source) != "keras":
        model = open_reference(source)
    else:
        from czbuild.keras.sources import load_model

        model = load_model(source, custom_objects=custom_objects)
    if hasattr(model, "at"):
        pass
    elif len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(
            f"source model has {len(model.inputs)} inputs and "
            f"{len(model.outputs)} outputs; the reference needs one each"
        )
    origin = source if isinstance(source, (str, os.PathLike)) else getattr(source, "name", None)
    origin = origin or "source model"
    return SourceChain(
        model,
        _ops(preprocessing, "preprocessing"),
        _ops(postprocessing, "postprocessing"),
        str(origin),
    )


def from_variant(variant: Any, *, source: Any = None) -> SourceChain:
    """The reference of a recipe :class:`~czbuild.recipe.Variant` (its model and chains).

    Args:
        variant: A resolved recipe variant.
        source: An already loaded ``keras.Model`` to use instead of loading the recipe's.
    """
    spec = variant.spec
    custom = None
    if source is None:
        source = variant.model_source
        if variant.custom_object_files:
            from czbuild.keras.sources import load_custom_objects

            custom = load_custom_objects(variant.custom_object_files)
    return load_source(
        source,
        preprocessing=spec.preprocessing,
        postprocessing=spec.postprocessing,
        custom_objects=custom,
    )


def _ops(chain: Sequence[Any], where: str) -> tuple[dict[str, Any], ...]:
    out = []
    for i, op in enumerate(ops_mod.as_chain(chain)):
        if not isinstance(op, (Mapping, str)):
            from czbuild.keras.preprocessing import op_from_layer

            op = op_from_layer(op)
        try:
            out.append(ops_mod.validate_op(op, where=f"{where}[{i}]"))
        except ValueError as exc:
            raise ModelError(str(exc)) from exc
    return tuple(out)


class _GraphCall:
    """Call a Keras model as a traced ``tf.function`` (eagerly if it cannot be traced)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._graph: Any = None
        self._traceable = True

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self._traceable:
            try:
                import tensorflow as tf

                if self._graph is None:
                    self._graph = tf.function(
                        lambda t: self.model(t, training=False),
                        reduce_retracing=True,
                        autograph=False,
                    )
                return _output(self._graph(tf.convert_to_tensor(x)))
            except ModelError:
                raise
            except Exception:
                # a model graph mode cannot trace: eager gives the same values, or the error
                self._traceable = False
        return _output(self.model(x, training=False))


def _output(y: Any) -> np.ndarray:
    if isinstance(y, (list, tuple)):
        if len(y) != 1:
            raise ModelError(f"source model returns {len(y)} outputs; expected one")
        y = y[0]
    if isinstance(y, dict):
        if len(y) != 1:
            raise ModelError(f"source model returns {len(y)} outputs; expected one")
        (y,) = y.values()
    return np.asarray(y, dtype=np.float64)
