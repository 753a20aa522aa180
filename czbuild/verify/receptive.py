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
        radius: ``(ry, rx)`` in pixels (3D: ``(rz, ry, rx)``): outputs up to this far from an
            input pixel depend on it.
        size: The probe image size ``(H, W)`` (3D: ``(Z, H, W)``).
        bounded: False when the change reached the probe border (radius is a lower bound).
    """

    radius: tuple[int, ...]
    size: tuple[int, ...]
    bounded: bool

    @property
    def overlap(self) -> tuple[int, ...]:
        """``2 × radius`` per axis: an overlap that discards every border effect."""
        return tuple(2 * r for r in self.radius)


def measure(
    predict: Callable[[np.ndarray], np.ndarray],
    shape: tuple[int, ...],
    input_range: tuple[float, float],
    *,
    seed: int,
) -> ReceptiveField:
    """Measure the receptive field of ``predict`` on probe images of ``shape`` ``(H, W, C)``.

    3D probes (``(Z, H, W, C)``) perturb the centre voxel and run the base and the probe
    volume in separate calls (one probe-sized activation set per call).
    """
    spatial, c = tuple(int(d) for d in shape[:-1]), int(shape[-1])
    low, high = input_range
    rng = np.random.default_rng(seed)
    centre = tuple(d // 2 for d in spatial)
    changed = np.zeros(spatial, dtype=bool)
    for _ in range(TRIALS):  # one base/probe pair per call: two probe images in memory
        base = rng.uniform(low, high, size=(1, *spatial, c)).astype(np.float32)
        probe = base.copy()
        at = (0, *centre)
        value = probe[at]
        flipped = (low + high) - value
        # Make sure the perturbation is large even where the base value sits mid-range.
        mid = np.abs(flipped - value) < 0.25 * (high - low)
        probe[at] = np.where(mid, np.where(value < (low + high) / 2, high, low), flipped)
        if len(spatial) == 2:
            out = np.asarray(predict(np.concatenate([base, probe])), dtype=np.float64)
            first, second = out[0], out[1]
        else:
            first = np.asarray(predict(base), dtype=np.float64)[0]
            second = np.asarray(predict(probe), dtype=np.float64)[0]
        scale = max(1.0, float(np.max(np.abs(first))))
        changed |= np.max(np.abs(second - first), axis=-1) > THRESHOLD * scale
        del first, second
    where = np.nonzero(changed)
    if where[0].size == 0:
        return ReceptiveField((0,) * len(spatial), spatial, True)
    radius = tuple(int(max(c0 - w.min(), w.max() - c0)) for c0, w in zip(centre, where))
    bounded = all(w.min() > 0 and w.max() < d - 1 for w, d in zip(where, spatial))
    return ReceptiveField(radius, spatial, bool(bounded))
