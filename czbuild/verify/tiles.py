"""ZEN-style tiled inference, simulated: tile layout, stitching, border-effect depth.

Layout per axis: tiles of the model's input size ``T`` start every ``T - overlap`` pixels;
the last tile is aligned with the image end. Between two neighbouring tiles the cut lies in
the middle of their overlap, so with overlap ``O`` each tile discards ``O / 2`` pixels on
every side that faces another tile (and nothing on sides at the image border). Pure NumPy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Tiles per model call: up to 16, fewer for large tiles (about 1 Mpixel per call).
_MAX_BATCH = 16
_PIXELS_PER_CALL = 1 << 20


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of the tiles along one axis.

    Raises:
        ValueError: ``overlap`` is negative or not smaller than ``tile``, or ``size < tile``.
    """
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap {overlap} must be in [0, tile size {tile})")
    if size < tile:
        raise ValueError(f"image size {size} is smaller than the tile {tile}")
    stride = tile - overlap
    starts = list(range(0, size - tile, stride)) + [size - tile]
    return sorted(set(starts))


def kept_ranges(starts: list[int], tile: int, size: int) -> list[tuple[int, int]]:
    """The image range ``[lo, hi)`` each tile contributes: cuts mid-way through overlaps."""
    cuts = [(starts[i] + tile + starts[i + 1]) // 2 for i in range(len(starts) - 1)]
    lows = [0] + cuts
    highs = cuts + [size]
    return list(zip(lows, highs))


@dataclass
class TiledRun:
    """Result of a simulated tiled inference.

    Attributes:
        output: The stitched output ``[H, W, N]``.
        ys / xs: Tile start offsets per axis.
        tiles: Per-tile outputs ``[len(ys) * len(xs), T_h, T_w, N]`` in row-major order.
        overlap: ``(overlap_y, overlap_x)`` used.
    """

    output: np.ndarray
    ys: list[int]
    xs: list[int]
    tiles: np.ndarray
    overlap: tuple[int, int]

    @property
    def count(self) -> int:
        """Number of tiles."""
        return len(self.ys) * len(self.xs)


def run_tiled(
    predict: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    tile: tuple[int, int],
    overlap: tuple[int, int],
) -> TiledRun:
    """Tile ``image`` (``[1, H, W, C]``), predict every tile, stitch the centre regions."""
    _, h, w, _ = image.shape
    th, tw = tile
    ys, xs = tile_starts(h, th, overlap[0]), tile_starts(w, tw, overlap[1])
    crops = np.stack([image[0, y : y + th, x : x + tw] for y in ys for x in xs])
    batch = max(1, min(_MAX_BATCH, _PIXELS_PER_CALL // (th * tw)))
    outs = np.concatenate(
        [np.asarray(predict(crops[i : i + batch])) for i in range(0, len(crops), batch)]
    ).astype(np.float64)
    if outs.shape[1:3] != (th, tw):
        raise ValueError(f"tile output {list(outs.shape[1:])} is not of the tile's spatial size")
    stitched = np.zeros((h, w, outs.shape[-1]))
    k = 0
    for (y0, y1), y in zip(kept_ranges(ys, th, h), ys):
        for (x0, x1), x in zip(kept_ranges(xs, tw, w), xs):
            stitched[y0:y1, x0:x1] = outs[k, y0 - y : y1 - y, x0 - x : x1 - x]
            k += 1
    return TiledRun(stitched, ys, xs, outs, (overlap[0], overlap[1]))


def error_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel maximum absolute difference over the channel axis."""
    return np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)), axis=-1)


def needed_overlap(run: TiledRun, reference: np.ndarray, tolerance: float) -> int | None:
    """Smallest even overlap that would discard every above-tolerance pixel of ``run``'s tiles.

    Each tile output is compared with the whole-image reference at the same place. A pixel
    off by more than ``tolerance`` is discarded by overlap ``O`` when it lies within ``O / 2``
    of a side facing another tile. Assumes border effects depend only on the distance to the
    tile edge (translation equivariance), which the caller confirms by simulation.

    Returns:
        The even overlap, 0 if no pixel is off, or None if some pixel is off too far from
        every interior side (or next to an image border) for any overlap below the tile size.
    """
    h, w = reference.shape[:2]
    th, tw = run.tiles.shape[1:3]
    worst = 0
    k = 0
    for y in run.ys:
        for x in run.xs:
            err = error_map(run.tiles[k], reference[y : y + th, x : x + tw])
            k += 1
            rows, cols = np.nonzero(err > tolerance)
            if rows.size == 0:
                continue
            sides = []
            if y > 0:
                sides.append(rows + 1)
            if y + th < h:
                sides.append(th - rows)
            if x > 0:
                sides.append(cols + 1)
            if x + tw < w:
                sides.append(tw - cols)
            if not sides:
                return None
            need = int(np.max(np.min(np.stack(sides), axis=0)))
            worst = max(worst, need)
    overlap = 2 * worst
    return overlap if overlap < min(th, tw) else None
