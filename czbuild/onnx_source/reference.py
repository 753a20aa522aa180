"""The verifier's reference for ONNX sources: onnxruntime on the *unmodified* source model.

The artifact bakes the op chains, the opset conversion and (for channels-first models) two
transposes into one graph; the reference runs the source file as given, channels-first where
it is, and the verifier applies the chains with :func:`czbuild.ops.apply_numpy` around it.
A mistake in any of those steps therefore shows up as a difference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from czbuild.errors import ModelError
from czbuild.onnx_source.graph import SourceGraph

__all__ = ["OnnxReference"]


class OnnxReference:
    """A source ONNX model callable on channels-last batches, like a ``keras.Model``.

    Attributes:
        graph: The checked source model.
        name: For messages.
        input_shape: ``(None, *spatial, channels)`` channels-last, None where free.
    """

    def __init__(self, graph: SourceGraph) -> None:
        self.graph = graph
        self.name = graph.origin
        self.input_shape = (None, *graph.input_shape)
        self._runner: Any = None

    def at(self, spatial: tuple[int, ...]) -> OnnxReference:
        """Itself, if the source model runs at ``spatial`` (its dims are free or equal).

        Raises:
            ModelError: The source has other fixed spatial dims.
        """
        dims = self.graph.spatial
        fits = len(dims) == len(spatial) and all(
            d is None or d == s for d, s in zip(dims, spatial, strict=True)
        )
        if not fits:
            raise ModelError(
                f"{self.name} has the fixed spatial size {list(dims)} and cannot run at "
                f"{list(spatial)}"
            )
        return self

    def __call__(self, x: Any, training: bool = False) -> np.ndarray:
        """The source's output for channels-last float32 ``x`` (channels-last, float32)."""
        if self._runner is None:
            from czbuild.formats.runner import OnnxRunner

            self._runner = OnnxRunner(self.graph.proto.SerializeToString())
        batch = np.asarray(x, dtype=np.float32)
        rank = batch.ndim
        if self.graph.channels_first:
            batch = np.transpose(batch, (0, rank - 1, *range(1, rank - 1)))
        y = self._runner(batch)
        if self.graph.channels_first:
            y = np.transpose(y, (0, *range(2, rank), 1))
        return np.asarray(y)
