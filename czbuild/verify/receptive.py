"""Empirical receptive field: perturb one pixel, see how far the output changes.

More robust than adding up kernel sizes (it sees dilations, pooling, resizes, custom layers
and whatever the exporter did): the centre pixel of a seeded image is replaced by its mirror
value in the input range, and the outputs that change by more than :data:`THRESHOLD` (times
the output scale) mark the receptive field. Several seeded base images are used so a dead
ReLU at one place cannot hide a path. The radius is the largest distance (per axis) from the
perturbed pixel to a changed output; ``2 × radius`` is the overlap that hides every border
effect for certain. The trials run one at a time (a base image and its probe per call), so
the probe holds two images whatever the number of trials; callers cap the probe size
(:data:`PROBE_MAX_SIDE`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Output changes below this (relative to max(1, |output|)) count as float rounding noise.
THRESHOLD = 1e-6
TRIALS = 3
#: The largest probe side (px): radii up to half of it are measured, larger ones are reported
#: as "at least" (unbounded).
PROBE_MAX_SIDE = 1024


@dataclass(frozen=True)
class ReceptiveField:
    """Measured receptive field.

    Attributes:
        radius: ``(ry, rx)`` in pixels: outputs up to this far from an input pixel depend on it.
        size: The probe image size ``(H, W)``.
        bounded: False when the change reached the probe border (radius is a lower bound).
    """

    radius: tuple[int, int]
    size: tuple[int, int]
    bounded: bool

    @property
    def overlap(self) -> tuple[int, int]:
        """``2 × radius`` per axis: an overlap that discards every border effect."""
        return (2 * self.radius[0], 2 * self.radius[1])


def measure(
    predict: Callable[[np.ndarray], np.ndarray],
    shape: tuple[int, int, int],
    input_range: tuple[float, float],
    *,
    seed: int,
) -> ReceptiveField:
    """Measure the receptive field of ``predict`` on probe images of ``shape`` ``(H, W, C)``."""
    h, w, c = shape
    low, high = input_range
    rng = np.random.default_rng(seed)
    cy, cx = h // 2, w // 2
    changed = np.zeros((h, w), dtype=bool)
    for _ in range(TRIALS):  # one base/probe pair per call: two probe images in memory
        base = rng.uniform(low, high, size=(1, h, w, c)).astype(np.float32)
        probe = base.copy()
        value = probe[0, cy, cx, :]
        flipped = (low + high) - value
        # Make sure the perturbation is large even where the base value sits mid-range.
        mid = np.abs(flipped - value) < 0.25 * (high - low)
        probe[0, cy, cx, :] = np.where(mid, np.where(value < (low + high) / 2, high, low), flipped)
        out = np.asarray(predict(np.concatenate([base, probe])), dtype=np.float64)
        scale = max(1.0, float(np.max(np.abs(out[0]))))
        changed |= np.max(np.abs(out[1] - out[0]), axis=-1) > THRESHOLD * scale
        del out
    rows, cols = np.nonzero(changed)
    if rows.size == 0:
        return ReceptiveField((0, 0), (h, w), True)
    ry = int(max(cy - rows.min(), rows.max() - cy))
    rx = int(max(cx - cols.min(), cols.max() - cx))
    bounded = rows.min() > 0 and rows.max() < h - 1 and cols.min() > 0 and cols.max() < w - 1
    return ReceptiveField((ry, rx), (h, w), bool(bounded))
