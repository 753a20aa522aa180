"""``CachingConverter``: the public conversions every adapter's converter shares.

:meth:`~CachingConverter.onnx` and :meth:`~CachingConverter.savedmodel_zip` are written once:
normalise the two chains into a key, resolve the tile, answer from the payloads already made
(least recently used dropped beyond ``max_cached``), else ask the adapter's hook. One
conversion at a time per adapter (its ``_lock``: frameworks name things from process-global
counters). Plain Python: no framework is imported here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from czbuild.errors import ModelError
from czbuild.sources.kinds import ConvertedModel

__all__ = ["CachingConverter", "Chains", "positive_dims"]

#: ``(key, pre, post)``: the validated chains and a key that is equal for equal chains.
Chains = tuple[str, tuple[Any, ...], tuple[Any, ...]]


def positive_dims(spatial_dims: Sequence[int]) -> tuple[int, ...]:
    """``spatial_dims`` as a tuple; ModelError naming ``spatial_dims`` unless all are ints >= 1."""
    dims = tuple(spatial_dims)
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims):
        raise ModelError(f"spatial_dims: values must be positive integers, got {dims!r}")
    return dims


class CachingConverter:
    """Base of the adapters' converters (see :class:`czbuild.sources.dispatch.Converter`).

    An adapter implements :meth:`_chains`, :meth:`_tile` and :meth:`_convert_onnx` (and
    :meth:`_convert_savedmodel` or its own ``savedmodel_zip``), plus ``name``,
    ``input_shape`` and ``model``.
    """

    _lock: threading.RLock = threading.RLock()

    def __init__(self, source: Any, *, max_cached: int = 8) -> None:
        self.source = source
        self.max_cached = max_cached
        self._results: OrderedDict[tuple[Any, ...], ConvertedModel] = OrderedDict()

    def onnx(
        self,
        *,
        preprocessing: Any = (),
        postprocessing: Any = (),
        spatial_dims: Sequence[int] | None = None,
        opset: int,
    ) -> ConvertedModel:
        """Canonical ONNX of one variant (``spatial_dims`` None: the model's own fixed tile).

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
        """A zipped SavedModel (legacy 3.0.0 payload) of one variant, at fixed dims."""
        key, pre, post = self._chains(preprocessing, postprocessing)
        with self._lock:
            tile = self._tile(spatial_dims)
            return self._cached(
                ("savedmodel", key, tile), lambda: self._convert_savedmodel(pre, post, tile)
            )

    def clear(self) -> None:
        """Drop every cached payload (the loaded model is kept)."""
        self._results.clear()

    def _chains(self, preprocessing: Any, postprocessing: Any) -> Chains:
        raise NotImplementedError

    def _tile(self, spatial_dims: Sequence[int] | None) -> tuple[int, ...]:
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

    def _cached(self, key: tuple[Any, ...], make: Callable[[], ConvertedModel]) -> ConvertedModel:
        result = self._results.get(key)
        if result is not None:
            self._results.move_to_end(key)
            return result
        result = self._results[key] = make()
        while len(self._results) > self.max_cached:
            self._results.popitem(last=False)
        return result
