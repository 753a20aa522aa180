"""``CachingConverter``: what every adapter's converter shares.

The public :class:`~czbuild.sources.dispatch.Converter` methods are implemented once here:
normalise the two op chains into a key, resolve the tile, answer from the payloads already
made (least recently used dropped beyond ``max_cached``) and otherwise ask the adapter for a
new one. An adapter (``czbuild/keras/``, ``czbuild/onnx_source/``, ``czbuild/torch_source/``)
implements the hooks: :meth:`_chains`, :meth:`_tile`, :meth:`_convert_onnx` and
:meth:`_convert_savedmodel`. One conversion at a time per adapter (its ``_lock``): the
frameworks name things from process-global counters.

Plain Python: no framework is imported here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from czbuild.errors import ModelError
from czbuild.sources.kinds import ConvertedModel

__all__ = ["CachingConverter", "positive_dims"]

Chains = tuple[str, tuple[Any, ...], tuple[Any, ...]]


def positive_dims(spatial_dims: Sequence[int]) -> tuple[int, ...]:
    """``spatial_dims`` as a tuple of positive integers.

    Raises:
        ModelError: A value is not a positive integer (names ``spatial_dims``).
    """
    dims = tuple(spatial_dims)
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims):
        raise ModelError(f"spatial_dims: values must be positive integers, got {dims!r}")
    return dims


class CachingConverter:
    """Base of the adapters' converters: the public conversions and the payload cache.

    Args:
        source: The model source.
        max_cached: How many finished payloads to keep (least recently used are dropped).
    """

    #: Held while converting (a subclass shares one per framework).
    _lock: threading.RLock = threading.RLock()

    def __init__(self, source: Any, *, max_cached: int = 8) -> None:
        self.source = source
        self.max_cached = max_cached
        self._results: OrderedDict[tuple[Any, ...], ConvertedModel] = OrderedDict()

    # --- the public conversions --------------------------------------------------------------

    def onnx(
        self,
        *,
        preprocessing: Any = (),
        postprocessing: Any = (),
        spatial_dims: Sequence[int] | None = None,
        opset: int,
    ) -> ConvertedModel:
        """Canonical ONNX for one variant.

        Args:
            preprocessing: Op dicts (Keras: also layers) applied before the model.
            postprocessing: Applied after the model.
            spatial_dims: The tile; None uses the model's own fixed input size.
            opset: ONNX opset.

        Raises:
            ModelError: The source or an op is unusable, or the model cannot run at the tile.
            ConversionError: The conversion or the ONNX checks fail.
        """
        key, pre, post = self._chains(preprocessing, postprocessing)
        with self._lock:
            tile = self._tile(spatial_dims)
            return self._cached(
                ("onnx", key, tile, int(opset)),
                lambda: self._convert_onnx(key, pre, post, tile, int(opset)),
            )

    def savedmodel_zip(
        self,
        *,
        preprocessing: Any = (),
        postprocessing: Any = (),
        spatial_dims: Sequence[int] | None = None,
    ) -> ConvertedModel:
        """A zipped SavedModel (legacy 3.0.0 payload) of one variant, at fixed dims.

        Raises:
            ModelError: As :meth:`onnx`, or the source cannot become a SavedModel.
            ConversionError: TensorFlow cannot save the model.
        """
        key, pre, post = self._chains(preprocessing, postprocessing)
        with self._lock:
            tile = self._tile(spatial_dims)
            return self._cached(
                ("savedmodel", key, tile), lambda: self._convert_savedmodel(pre, post, tile)
            )

    def clear(self) -> None:
        """Drop every cached payload (the loaded model is kept)."""
        self._results.clear()

    # --- the adapter's hooks -----------------------------------------------------------------

    def _chains(self, preprocessing: Any, postprocessing: Any) -> Chains:
        """``(key, pre, post)``: the validated chains and a key equal for equal chains."""
        raise NotImplementedError

    def _tile(self, spatial_dims: Sequence[int] | None) -> tuple[int, ...]:
        """The tile of a conversion: ``spatial_dims`` or the model's own fixed dims."""
        raise NotImplementedError

    def _convert_onnx(
        self,
        key: str,
        pre: tuple[Any, ...],
        post: tuple[Any, ...],
        tile: tuple[int, ...],
        opset: int,
    ) -> ConvertedModel:
        raise NotImplementedError

    def _convert_savedmodel(
        self, pre: tuple[Any, ...], post: tuple[Any, ...], tile: tuple[int, ...]
    ) -> ConvertedModel:
        raise NotImplementedError

    # --- the payload cache -------------------------------------------------------------------

    def _cached(self, key: tuple[Any, ...], make: Callable[[], ConvertedModel]) -> ConvertedModel:
        result = self._results.get(key)
        if result is not None:
            self._results.move_to_end(key)
            return result
        result = self._results[key] = make()
        while len(self._results) > self.max_cached:
            self._results.popitem(last=False)
        return result
