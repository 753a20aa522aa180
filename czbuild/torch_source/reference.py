"""The verifier's reference for PyTorch sources: the module itself, run by PyTorch.

Independent of the export: a wrong export, transpose, op chain or opset shows up as a
difference between the artifact (onnxruntime) and this reference (PyTorch, float32).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from czbuild.torch_source.module import import_torch

__all__ = ["TorchReference"]


class TorchReference:
    """A module callable on channels-last batches, like a ``keras.Model``.

    Attributes:
        name: For messages.
        input_shape: ``(None, None..., channels)``: PyTorch modules take any spatial size.
    """

    def __init__(self, module: Any, *, name: str, channels: int, rank: int, channels_first: bool):
        self.module = module
        self.name = name
        self.channels_first = channels_first
        self.input_shape = (None, *(None,) * rank, channels)

    def at(self, spatial: tuple[int, ...]) -> TorchReference:
        """Itself: a module runs at any size its layers accept."""
        return self

    def __call__(self, x: Any, training: bool = False) -> np.ndarray:
        """The module's output for channels-last float32 ``x`` (channels-last)."""
        torch = import_torch()
        batch = np.asarray(x, dtype=np.float32)
        rank = batch.ndim
        if self.channels_first:
            batch = np.transpose(batch, (0, rank - 1, *range(1, rank - 1)))
        with torch.no_grad():
            y = self.module(torch.from_numpy(np.ascontiguousarray(batch))).numpy()
        if self.channels_first:
            y = np.transpose(y, (0, *range(2, rank), 1))
        return np.asarray(y)
