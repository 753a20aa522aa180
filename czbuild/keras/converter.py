"""``ModelConverter``: load a model once, convert it to as many variants as needed.

A variant is (preprocessing chain, postprocessing chain, spatial dims, payload/opset).

**Route per variant.** ONNX payloads take one of two routes, chosen from the model and the
variant alone -- never from which other variants are requested in the same process -- so an
artifact built alone and the same artifact built in a sweep are byte-identical:

* ``"specialized"``: the chain-wrapped model is tiling-invariant (its output spatial dims
  follow the input's; :func:`czbuild.keras.wrap.is_tiling_invariant`). It is converted *once*
  per (chains, opset) with undefined height/width, and each tile is a cheap
  :func:`~czbuild.onnx_graph.checks.specialize_onnx` of that conversion. If the
  undefined-size conversion fails (some layers trace only at fixed sizes, or tf2onnx declares
  the wrong output rank for the undefined-size graph), or ONNX shape
  inference cannot make the output dims concrete for a tile, the fixed route is taken
  instead -- a property of the model, chains and tile, hence still deterministic (logged).
* ``"fixed"``: otherwise, one conversion per tile at fixed dims.

Legacy 3.0.0 SavedModel payloads are always written at fixed dims.

**Memory.** Only bytes are cached (the undefined-dims ONNX per (chains, opset) and a few
finished payloads); wrapped Keras models are temporary and collected after each conversion.
``keras.backend.clear_session()`` is never called: it resets process-global Keras state that
other loaded models (and other converters) rely on.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from czbuild import ops as czops
from czbuild.errors import ConversionError, ModelError
from czbuild.sources.base import CachingConverter, Chains, positive_dims
from czbuild.sources.kinds import ConvertedModel

logger = logging.getLogger(__name__)

__all__ = ["ConvertedModel", "ModelConverter", "chain_key"]

# tf2onnx and Keras name things from process-global counters: one conversion at a time.
_CONVERT_LOCK = threading.RLock()

Shape = tuple[int, ...]


def _step_form(step: Any, where: str) -> Any:
    """A JSON-able canonical form of one chain step (op dict; or a layer's config + weights)."""
    if isinstance(step, (Mapping, str)):
        try:
            return {"op": czops.validate_op(step, where=where)}
        except ValueError as exc:
            raise ModelError(str(exc)) from exc
    from czbuild.keras.preprocessing import op_from_layer

    try:
        return {"op": op_from_layer(step)}
    except TypeError:
        pass
    import keras

    if not isinstance(step, keras.layers.Layer):
        raise ModelError(
            f"{where}: must be an op dict such as {{'op': 'scale', 'scale': 0.5}} or a keras "
            f"Layer, got {type(step).__name__}"
        )
    config = keras.saving.serialize_keras_object(step)
    config.get("config", {}).pop("name", None)
    config.pop("build_config", None)
    digest = hashlib.sha256()
    for weight in step.get_weights():
        digest.update(str(weight.dtype).encode() + str(weight.shape).encode() + weight.tobytes())
    return {"layer": config, "weights": digest.hexdigest()}


def chain_key(preprocessing: Any = (), postprocessing: Any = ()) -> str:
    """Canonical JSON of the two chains: equal chains (op dicts or layers) give equal keys.

    Raises:
        ModelError: A step is neither a valid op nor a Keras layer (names ``preprocessing[i]``).
    """
    form = {
        what: [_step_form(s, f"{what}[{i}]") for i, s in enumerate(czops.as_chain(steps))]
        for what, steps in (("preprocessing", preprocessing), ("postprocessing", postprocessing))
    }
    return json.dumps(form, sort_keys=True, default=str, separators=(",", ":"))


class ModelConverter(CachingConverter):
    """Converts one model source into payloads; loads the model once, lazily.

    :meth:`onnx` and :meth:`savedmodel_zip` (with the payload cache) come from
    :class:`~czbuild.sources.base.CachingConverter`; this class adds the Keras routes.

    Args:
        source: A ``keras.Model``, a ``.keras`` / ``.h5`` path, a SavedModel directory or a
            ``"file.py:function"`` factory (see :func:`czbuild.keras.sources.load_model`).
        custom_objects: Custom Keras classes/functions needed to load or clone the model.
        max_cached: How many finished payloads to keep (least recently used are dropped).
    """

    def __init__(
        self,
        source: Any,
        *,
        custom_objects: Mapping[str, Any] | None = None,
        max_cached: int = 8,
    ) -> None:
        super().__init__(source, max_cached=max_cached)
        self.custom_objects = dict(custom_objects) if custom_objects else None
        self._model: Any = None
        self._free_onnx: dict[tuple[str, int], bytes | None] = {}
        self._invariant: dict[str, bool] = {}

    _lock = _CONVERT_LOCK

    # --- model -----------------------------------------------------------------------------

    @property
    def model(self) -> Any:
        """The loaded source model (loaded on first use)."""
        if self._model is None:
            from czbuild.keras.sources import load_model

            self._model = load_model(self.source, custom_objects=self.custom_objects)
        return self._model

    @property
    def name(self) -> str:
        """The Keras model's name (loads the model)."""
        return str(self.model.name)

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """The model's input shape without batch, None where undefined (loads the model)."""
        from czbuild.keras.wrap import io_shapes

        return tuple(io_shapes(self.model)[0])

    def clear(self) -> None:
        """Drop every cached payload (the loaded model is kept)."""
        super().clear()
        self._free_onnx.clear()
        gc.collect()

    # --- the conversions (CachingConverter's hooks) -----------------------------------------

    def _chains(self, preprocessing: Any, postprocessing: Any) -> Chains:
        """Op dicts / czbuild layers / Keras layers; equal chains give equal keys."""
        pre, post = czops.as_chain(preprocessing), czops.as_chain(postprocessing)
        return chain_key(pre, post), pre, post

    def _convert_onnx(
        self,
        key: str,
        pre: tuple[Any, ...],
        post: tuple[Any, ...],
        tile: tuple[int, ...],
        opset: int,
    ) -> ConvertedModel:
        """The route of the module docstring: specialised when tiling-invariant, else fixed."""
        result = None
        if self._is_invariant(key, pre, post):
            result = self._specialized(key, pre, post, tile, opset)
        if result is None:
            result = self._fixed_onnx(pre, post, tile, opset)
        return result

    def _convert_savedmodel(
        self, pre: tuple[Any, ...], post: tuple[Any, ...], tile: tuple[int, ...]
    ) -> ConvertedModel:
        """A zipped, normalised SavedModel at fixed dims (2D only)."""
        from czbuild.keras.savedmodel_export import export_savedmodel_zip

        if len(tile) == 3:
            raise ModelError(
                f"model {self.model.name!r} is a 3D model (tile {list(tile)}): legacy format "
                "3.0.0 (a TensorFlow SavedModel in a .czmodel) holds 2D models only; 3D "
                "needs CZANN >= 2.0.0"
            )

        wrapped = self._wrap(pre, post, tile)
        in_shape, out_shape = self._concrete_shapes(wrapped)
        try:
            payload = export_savedmodel_zip(wrapped, custom_objects=self.custom_objects)
        finally:
            del wrapped
            gc.collect()
        return ConvertedModel(payload, in_shape, out_shape, "savedmodel")

    # --- routes ----------------------------------------------------------------------------

    def _specialized(
        self,
        key: str,
        pre: tuple[Any, ...],
        post: tuple[Any, ...],
        tile: tuple[int, ...],
        opset: int,
    ) -> ConvertedModel | None:
        from czbuild.keras.onnx_export import OutputRankError
        from czbuild.onnx_graph.checks import specialize_onnx

        # Wrapping at the tile checks the model can run there (divisibility, ...) and gives
        # the expected output shape; it is symbolic only (no tracing, no conversion).
        wrapped = self._wrap(pre, post, tile)
        in_shape, out_shape = self._concrete_shapes(wrapped)
        del wrapped
        if (key, opset) not in self._free_onnx:
            free_model = self._wrap(pre, post, (None,) * len(tile))
            channels = free_model.inputs[0].shape[-1]
            try:
                self._free_onnx[(key, opset)] = self._export(
                    free_model, (None, *(None,) * len(tile), channels), opset
                )
            except OutputRankError as exc:
                # tf2onnx's optimizers lose the final Squeeze of some undefined-size graphs
                # (e.g. a linear head followed by clip). Conversions are deterministic, so this
                # is a property of the model and chains: every tile takes the fixed route, one
                # conversion each, whose own output rank is checked again (never a retry).
                logger.info("undefined-size conversion unusable (%s); converting per tile", exc)
                self._free_onnx[(key, opset)] = None
            except ConversionError as exc:
                # Some layers only trace at fixed sizes (e.g. Keras bilinear UpSampling2D).
                logger.info("no undefined-size conversion (%s); converting per tile", exc)
                self._free_onnx[(key, opset)] = None
            del free_model
        free = self._free_onnx[(key, opset)]
        if free is None:
            return None
        try:
            payload = specialize_onnx(free, tile, output_spatial_dims=out_shape[:-1])
        except ConversionError as exc:
            # A property of the model, chains and tile (the conversion is deterministic), so
            # the fixed route taken instead is too.
            logger.info("tile %s cannot be specialised (%s); converting at fixed dims", tile, exc)
            return None
        return ConvertedModel(payload, in_shape, out_shape, "specialized", opset)

    def _fixed_onnx(
        self, pre: tuple[Any, ...], post: tuple[Any, ...], tile: tuple[int, ...], opset: int
    ) -> ConvertedModel:
        wrapped = self._wrap(pre, post, tile)
        in_shape, out_shape = self._concrete_shapes(wrapped)
        payload = self._export(wrapped, (None, *in_shape), opset)
        return ConvertedModel(payload, in_shape, out_shape, "fixed", opset)

    def _export(self, wrapped: Any, input_shape: tuple[int | None, ...], opset: int) -> bytes:
        from czbuild.keras.onnx_export import export_onnx

        try:
            return export_onnx(wrapped, opset=opset, input_shape=input_shape)
        finally:
            del wrapped
            gc.collect()

    # --- helpers ---------------------------------------------------------------------------

    def _tile(self, spatial_dims: Sequence[int] | None) -> tuple[int, ...]:
        """``spatial_dims`` or the model's own fixed spatial dims; ModelError when undefined.

        2D models take ``(h, w)``, 3D models (input ``(Z, H, W, C)``) ``(z, h, w)``.
        """
        from czbuild.keras.wrap import io_shapes

        in_shape, _ = io_shapes(self.model)
        spatial = in_shape[:-1]
        want = "(h, w)" if len(spatial) != 3 else "(z, h, w)"
        if spatial_dims is not None:
            if isinstance(spatial_dims, (str, bytes)) or len(tuple(spatial_dims)) not in (2, 3):
                raise ModelError(
                    f"spatial_dims: must be (height, width) or, 3D, (depth, height, width), "
                    f"got {spatial_dims!r}"
                )
            dims = positive_dims(spatial_dims)
            if len(dims) != len(spatial):
                raise ModelError(
                    f"spatial_dims: model {self.model.name!r} takes input {tuple(in_shape)} "
                    f"(a {len(spatial)}D model): give spatial_dims={want}, got {list(dims)}"
                )
            return tuple(int(d) for d in dims)
        if not spatial or any(d is None for d in spatial):
            raise ModelError(
                f"model {self.model.name!r}: the input's spatial dims are undefined "
                f"{tuple(spatial)}; the target format needs a fixed tile size: pass "
                f"spatial_dims={want} (recipe: spatial_dims / tile)"
            )
        return tuple(int(d) for d in spatial)  # type: ignore[arg-type]

    def _is_invariant(self, key: str, pre: tuple[Any, ...], post: tuple[Any, ...]) -> bool:
        if key not in self._invariant:
            from czbuild.keras.wrap import is_tiling_invariant

            try:
                probe = self._wrap(pre, post, None)
                self._invariant[key] = bool(is_tiling_invariant(probe))
            except ModelError:
                self._invariant[key] = False
            finally:
                probe = None
        return self._invariant[key]

    def _wrap(
        self, pre: tuple[Any, ...], post: tuple[Any, ...], tile: tuple[int | None, ...] | None
    ) -> Any:
        """Wrap the model; ``tile`` None keeps the model's own input size."""
        from czbuild.keras.wrap import wrap_model

        return wrap_model(self.model, preprocessing=pre, postprocessing=post, spatial_dims=tile)

    def _concrete_shapes(self, wrapped: Any) -> tuple[Shape, Shape]:
        from czbuild.keras.wrap import io_shapes

        in_shape, out_shape = io_shapes(wrapped)
        dtype = str(wrapped.inputs[0].dtype)
        if dtype != "float32":
            raise ModelError(
                f"model {self.model.name!r}: input dtype is {dtype}; ZEN feeds float32 tensors. "
                "Rebuild the model with a float32 input (cast inside the model if needed)"
            )
        out_dtype = str(wrapped.outputs[0].dtype)
        if out_dtype != "float32":
            raise ModelError(
                f"model {self.model.name!r}: output dtype is {out_dtype}; ZEN expects float32 "
                "(e.g. the model's last layer with dtype='float32' under mixed precision)"
            )
        if any(d is None for d in in_shape) or any(d is None for d in out_shape):
            raise ModelError(
                f"model {self.model.name!r}: shapes {in_shape} -> {out_shape} are not concrete at "
                "this tile size; the model's output size must follow from its input size"
            )
        return tuple(int(d) for d in in_shape), tuple(int(d) for d in out_shape)  # type: ignore[arg-type]
