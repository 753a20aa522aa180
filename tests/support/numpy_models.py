"""Stand-in "models" in plain NumPy for the verification tests (no TensorFlow).

A model here is a function from an NHWC float batch to an NHWC batch, which is what the
tiling and receptive-field checks of :mod:`czbuild.verify` run.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["box_filter"]


def box_filter(radius: int) -> Callable[[np.ndarray], np.ndarray]:
    """A model whose output is the mean over a (2r+1)^2 window, with zero padding.

    Its receptive radius is exactly ``radius``, so tiling needs an overlap of twice that.
    """

    def predict(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        pad = np.pad(x, ((0, 0), (radius, radius), (radius, radius), (0, 0)))
        out = np.zeros_like(x)
        h, w = x.shape[1:3]
        for dy in range(2 * radius + 1):
            for dx in range(2 * radius + 1):
                out += pad[:, dy : dy + h, dx : dx + w]
        return out / (2 * radius + 1) ** 2

    return predict
