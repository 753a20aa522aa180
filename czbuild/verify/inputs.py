"""Seeded test inputs in the value range ZEN feeds a model.

CZANN models get float32 in [0, 1]; legacy models get raw values in the pixel type's native
range (whole numbers 0..255 or 0..65535 for integer types). Every function takes a seed, so
a report is reproducible.
"""

from __future__ import annotations

import numpy as np

from czbuild.verify.info import ModelInfo

#: Blob extent in radii: 0.6 * exp(-reach**2 / 2) < 2**-60, far below half an ulp of 0.15.
_BLOB_REACH = 10.0
#: Blob radii in pixels (fixed, so the image looks the same at every size).
BLOB_RADIUS = (4.0, 12.0)
#: Blobs per pixel of area (one per 2500 px: about 10% of the area inside a blob radius).
BLOB_DENSITY = 1.0 / 2500
#: Blobs per voxel of a 3D volume (one per 50000 voxels; the blobs are balls).
BLOB_DENSITY_3D = 1.0 / 50000
#: Random tiles of the seeded batch when they fit the pixel budget.
RANDOM_TILES = 4
#: Pixels the seeded batch holds at most (beyond its first tile): four random and two
#: constant tiles up to 170 x 170 px, one random tile from 1024 x 1024 px on.
SEEDED_PIXELS = 1 << 20


def seeded_batch(info: ModelInfo, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """The one seeded batch ``semantics`` and ``fidelity`` share (the model runs on it once).

    In order: a random tile, the darkest and the brightest constant tile, then up to three
    more random tiles -- as many as fit :data:`SEEDED_PIXELS`, at least the first. Small tiles
    get all six; a 512-px tile four (random, dark, bright, random); a megapixel tile one, so
    verifying it costs one pass of the packaged model and one of the source model.

    Returns:
        float32 array ``[n, *shape]``, ``1 <= n <= RANDOM_TILES + 2``.
    """
    pixels = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    count = max(1, min(RANDOM_TILES + 2, SEEDED_PIXELS // max(pixels, 1)))
    tiles = random_tiles(info, shape, RANDOM_TILES, seed)
    order = [0, RANDOM_TILES, RANDOM_TILES + 1, *range(1, RANDOM_TILES)]
    return tiles[order[:count]]


def random_tiles(info: ModelInfo, shape: tuple[int, ...], count: int, seed: int) -> np.ndarray:
    """``count`` uniformly random tiles of ``shape`` (no batch) plus a darkest and a brightest tile.

    Constant tiles are edge cases worth running: per-image standardisation maps them to 0.

    Returns:
        float32 array ``[count + 2, *shape]``.
    """
    rng = np.random.default_rng(seed)
    low, high = info.input_range
    if info.integer_input:
        tiles = rng.integers(int(low), int(high) + 1, size=(count, *shape)).astype(np.float32)
    else:
        tiles = rng.uniform(low, high, size=(count, *shape)).astype(np.float32)
    constant = np.stack([np.full(shape, low, np.float32), np.full(shape, high, np.float32)])
    return np.concatenate([tiles, constant], axis=0)


def sample_image(info: ModelInfo, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A synthetic microscopy-like image: bright blobs on a gradient background, with noise.

    Its statistics do not depend on its size: blob radii are fixed in pixels
    (:data:`BLOB_RADIUS`), the number of blobs grows with the area (:data:`BLOB_DENSITY`), so
    the mean, the standard deviation and the fraction of clipped pixels are about the same at
    64 px and at 4096 px (frozen whole-image statistics then suit any tile). Deterministic
    from ``seed``.

    Args:
        info: Gives the value range.
        shape: ``(H, W, C)``, or ``(Z, H, W, C)`` for a volume (:func:`_sample_volume`).
        seed: Random seed.

    Returns:
        float32 array ``[1, H, W, C]`` (``[1, Z, H, W, C]``) within the input range.
    """
    if len(shape) == 4:
        return _scaled(info, _sample_volume(shape, seed))
    rng = np.random.default_rng(seed)
    h, w, c = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    image = np.empty((h, w, c))
    count = max(3, round(h * w * BLOB_DENSITY))
    for ch in range(c):
        base = 0.15 + 0.2 * (yy / max(h - 1, 1)) * (0.5 + 0.5 * ch / max(c, 1))
        for _ in range(count):
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            radius = rng.uniform(*BLOB_RADIUS)
            amplitude = rng.uniform(0.25, 0.5)
            # Only where the blob can change the sum: beyond _BLOB_REACH radii its value is
            # below half an ulp of the background (>= 0.15), so the image is the same as if
            # every blob were added to every pixel -- at a fraction of the cost.
            reach = _BLOB_REACH * radius
            ys = slice(max(0, int(cy - reach)), min(h, int(cy + reach) + 2))
            xs = slice(max(0, int(cx - reach)), min(w, int(cx + reach) + 2))
            base[ys, xs] = base[ys, xs] + amplitude * np.exp(
                -((yy[ys, xs] - cy) ** 2 + (xx[ys, xs] - cx) ** 2) / (2 * radius**2)
            )
        image[..., ch] = base + rng.normal(0.0, 0.05, size=(h, w))
    return _scaled(info, image)


def _scaled(info: ModelInfo, image: np.ndarray) -> np.ndarray:
    """``image`` (values about [0, 1]) clipped, mapped to the input range, with a batch dim."""
    image = np.clip(image, 0.0, 1.0)
    low, high = info.input_range
    image = low + image * (high - low)
    if info.integer_input:
        image = np.round(image)
    return image[np.newaxis].astype(np.float32)


def _sample_volume(shape: tuple[int, int, int, int], seed: int) -> np.ndarray:
    """The 3D counterpart of :func:`sample_image`: balls on a gradient background, with noise.

    Ball radii are fixed in voxels (:data:`BLOB_RADIUS`), their number grows with the volume
    (:data:`BLOB_DENSITY_3D`); each ball is a separable Gaussian added within
    :data:`_BLOB_REACH` radii of its centre. Values about [0, 1], ``[Z, H, W, C]`` float64.
    """
    rng = np.random.default_rng(seed)
    z, h, w, c = shape
    volume = np.empty((z, h, w, c))
    count = max(3, round(z * h * w * BLOB_DENSITY_3D))
    axes = [np.arange(n, dtype=np.float64) for n in (z, h, w)]
    for ch in range(c):
        gradient = 0.15 + 0.2 * (axes[1] / max(h - 1, 1)) * (0.5 + 0.5 * ch / max(c, 1))
        base = np.broadcast_to(gradient[None, :, None], (z, h, w)).copy()
        for _ in range(count):
            centre = [rng.uniform(0, n) for n in (z, h, w)]
            radius = rng.uniform(*BLOB_RADIUS)
            amplitude = rng.uniform(0.25, 0.5)
            reach = _BLOB_REACH * radius
            box = tuple(
                slice(max(0, int(m - reach)), min(n, int(m + reach) + 2))
                for m, n in zip(centre, (z, h, w))
            )
            gz, gy, gx = (
                np.exp(-((a[b] - m) ** 2) / (2 * radius**2)) for a, b, m in zip(axes, box, centre)
            )
            base[box] += amplitude * gz[:, None, None] * gy[None, :, None] * gx[None, None, :]
        volume[..., ch] = base + rng.normal(0.0, 0.05, size=(z, h, w))
    return volume
