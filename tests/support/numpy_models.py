"""Stand-in "models" in plain NumPy for the verification tests (no TensorFlow).

A model here is a function from an NHWC float batch to an NHWC batch, which is what the
tiling and receptive-field checks of :mod:`czbuild.verify` run.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

__all__ = ["box_filter", "global_mean"]


def box_filter(radius: int | tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray]:
    """A model whose output is the mean over a (2r+1)^2 window (3D: (2r+1)^3), zero-padded.

    Its receptive radius is exactly ``radius``, so tiling needs an overlap of twice that.
    ``radius`` may be given per spatial axis (e.g. ``(3, 0, 0)``: only along z). Works on
    NHWC and NZHWC batches.
    """

    def predict(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        spatial = x.shape[1:-1]
        radii = (radius,) * len(spatial) if isinstance(radius, int) else tuple(radius)
        pad = np.pad(x, ((0, 0), *((r, r) for r in radii), (0, 0)))
        out = np.zeros_like(x)
        for offset in itertools.product(*(range(2 * r + 1) for r in radii)):
            window = tuple(slice(o, o + n) for o, n in zip(offset, spatial))
            out += pad[(slice(None), *window)]
        return out / float(np.prod([2 * r + 1 for r in radii]))

    return predict


def global_mean(x: np.ndarray) -> np.ndarray:
    """A model with global context: every output is the input plus its image's mean."""
    x = np.asarray(x, np.float64)
    axes = tuple(range(1, x.ndim - 1))
    return x + x.mean(axis=axes, keepdims=True)
