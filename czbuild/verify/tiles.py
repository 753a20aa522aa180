"""ZEN-style tiled inference, simulated: stitching and border-effect depth.

The layout (tile starts, the range each tile keeps) is :mod:`czbuild.formats.tiling`'s, the
one rule ``czbuild predict`` uses too. Pure NumPy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from czbuild.formats.tiling import axis_layout, placements, tile_starts

#: Tiles per model call: up to 16, fewer for large tiles (about 1 Mpixel per call).
_MAX_BATCH = 16
_PIXELS_PER_CALL = 1 << 20


#: Most tiles one simulation may cut: 12 x 12, 16 times the pixels of the 3 x 3-tile image
#: (overlaps up to about 80 % of the tile); larger overlaps are beyond the overlap search.
MAX_TILES = 144


class TooManyTiles(ValueError):
    """A layout would cut more than :data:`MAX_TILES` tiles."""


def tile_count(size: tuple[int, int], tile: tuple[int, int], overlap: tuple[int, int]) -> int:
    """Tiles ZEN cuts from an image of ``size`` with ``tile`` and ``overlap`` (per axis)."""
    return len(tile_starts(size[0], tile[0], overlap[0])) * len(
        tile_starts(size[1], tile[1], overlap[1])
    )


@dataclass
class TiledRun:
    """Result of a simulated tiled inference.

    Attributes:
        output: The stitched output ``[H, W, N]``.
        ys / xs: Tile start offsets per axis.
        tile: The tile size ``(T_h, T_w)``.
        overlap: ``(overlap_y, overlap_x)`` used.
        need: With a reference: the smallest even overlap that discards every tile pixel off
            by more than the tolerance (:func:`needed_overlap`); None when no overlap below
            the tile size does, or without a reference.
    """

    output: np.ndarray
    ys: list[int]
    xs: list[int]
    tile: tuple[int, int]
    overlap: tuple[int, int]
    need: int | None = None

    @property
    def count(self) -> int:
        """Number of tiles."""
        return len(self.ys) * len(self.xs)


def run_tiled(
    predict: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    tile: tuple[int, int],
    overlap: tuple[int, int],
    *,
    reference: np.ndarray | None = None,
    tolerance: float = 0.0,
    max_tiles: int = MAX_TILES,
) -> TiledRun:
    """Tile ``image`` (``[1, H, W, C]``), predict every tile, stitch the centre regions.

    Streams: tiles are cut, predicted and stitched a batch at a time (about a megapixel), so
    memory holds one batch of tiles beside the stitched output whatever the layout.

    Args:
        predict: The model on a batch of tiles.
        image: The whole image.
        tile: Tile size.
        overlap: Overlap per axis.
        reference: The whole-image prediction ``[H, W, N]``: also measure how deep border
            effects reach into the tiles (:attr:`TiledRun.need`).
        tolerance: Errors up to this are not border effects (with ``reference``).
        max_tiles: Refuse layouts with more tiles.

    Raises:
        TooManyTiles: The layout needs more than ``max_tiles`` tiles.
        ValueError: Impossible layout, or tile outputs not of the tile's spatial size.
    """
    _, h, w, _ = image.shape
    th, tw = tile
    yax, xax = axis_layout(h, th, overlap[0]), axis_layout(w, tw, overlap[1])
    ys, xs = list(yax.starts), list(xax.starts)
    if len(ys) * len(xs) > max_tiles:
        raise TooManyTiles(
            f"overlap {list(overlap)} cuts {len(ys) * len(xs)} tiles of {list(tile)} from a "
            f"{h}x{w} image (at most {max_tiles} are simulated)"
        )
    places = placements([yax, xax])  # the stitching rule czbuild predict uses too
    batch = max(1, min(_MAX_BATCH, _PIXELS_PER_CALL // (th * tw)))
    stitched: np.ndarray | None = None
    worst: int | None = 0
    for i in range(0, len(places), batch):
        chunk = places[i : i + batch]
        crops = np.stack([image[0][p.source(tile)] for p in chunk])
        outs = np.asarray(predict(crops))
        if outs.shape[1:3] != (th, tw):
            raise ValueError(
                f"tile output {list(outs.shape[1:])} is not of the tile's spatial size"
            )
        if stitched is None:
            stitched = np.zeros((h, w, outs.shape[-1]))
        for out, p in zip(outs, chunk):
            stitched[p.target()] = out[p.kept()]
            if reference is not None and worst is not None:
                depth = _border_depth(out, reference, p.start[0], p.start[1], tolerance)
                worst = None if depth is None else max(worst, depth)
    assert stitched is not None
    need = None
    if reference is not None and worst is not None and 2 * worst < min(th, tw):
        need = 2 * worst
    return TiledRun(stitched, ys, xs, (th, tw), (overlap[0], overlap[1]), need)


def _border_depth(
    out: np.ndarray, reference: np.ndarray, y: int, x: int, tolerance: float
) -> int | None:
    """How deep (px) errors above ``tolerance`` reach from the tile's interior sides.

    A pixel off by more than the tolerance is discarded by overlap ``O`` when it lies within
    ``O / 2`` of a side facing another tile; None when a pixel is off and no side faces one.
    """
    h, w = reference.shape[:2]
    th, tw = out.shape[:2]
    err = error_map(out, reference[y : y + th, x : x + tw])
    rows, cols = np.nonzero(err > tolerance)
    if rows.size == 0:
        return 0
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
    return int(np.max(np.min(np.stack(sides), axis=0)))


def error_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel maximum absolute difference over the channel axis."""
    return np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)), axis=-1)


def needed_overlap(run: TiledRun) -> int | None:
    """Smallest even overlap that would discard every above-tolerance pixel of ``run``'s tiles.

    Measured while ``run`` was stitched (:func:`run_tiled` with ``reference=``): each tile
    output is compared with the whole-image reference at the same place. Assumes border
    effects depend only on the distance to the tile edge (translation equivariance), which
    the caller confirms by simulation.

    Returns:
        The even overlap, 0 if no pixel is off, or None if some pixel is off too far from
        every interior side (or next to an image border) for any overlap below the tile size.
    """
    return run.need
