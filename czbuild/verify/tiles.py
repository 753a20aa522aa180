"""ZEN-style tiled inference, simulated: stitching and border-effect depth.

The layout is :mod:`czbuild.formats.tiling`'s, the one rule ``czbuild predict`` uses too:
per axis, tiles of the model's input size ``T`` start every ``T - overlap`` pixels, the last
tile is aligned with the image end, and each tile keeps its centre minus ``O / 2`` on every
side that faces another tile. The same holds per axis for 3D volumes (tiles in z, y and x;
``[1, Z, H, W, C]``). Pure NumPy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from czbuild.formats.tiling import axis_layout, kept_ranges, placements, tile_starts

#: The layout functions, re-exported for the verifier's modules (their owner: formats.tiling).
__all__ = [
    "MAX_BATCH_3D",
    "MAX_TILES",
    "TiledRun",
    "TooManyTiles",
    "error_map",
    "kept_ranges",
    "needed_overlap",
    "run_tiled",
    "tile_count",
    "tile_starts",
]

#: Tiles per model call: up to 16, fewer for large tiles (about 1 Mpixel per call).
_MAX_BATCH = 16
#: 3D tiles per model call: at most two tile-sized activation sets at once.
MAX_BATCH_3D = 2
_PIXELS_PER_CALL = 1 << 20


#: Most tiles one simulation may cut: 12 x 12, 16 times the pixels of the 3 x 3-tile image
#: (overlaps up to about 80 % of the tile); larger overlaps are beyond the overlap search.
MAX_TILES = 144


class TooManyTiles(ValueError):
    """A layout would cut more than :data:`MAX_TILES` tiles."""


def tile_count(size: tuple[int, ...], tile: tuple[int, ...], overlap: tuple[int, ...]) -> int:
    """Tiles ZEN cuts from an image (or volume) of ``size`` with ``tile`` and ``overlap``."""
    count = 1
    for s, t, o in zip(size, tile, overlap):
        count *= len(tile_starts(s, t, o))
    return count


@dataclass
class TiledRun:
    """Result of a simulated tiled inference.

    Attributes:
        output: The stitched output ``[H, W, N]`` (3D: ``[Z, H, W, N]``).
        starts: Tile start offsets per spatial axis (``(ys, xs)``; 3D ``(zs, ys, xs)``).
        tile: The tile size per spatial axis.
        overlap: The overlap per spatial axis.
        need: With a reference: the smallest even overlap that discards every tile pixel off
            by more than the tolerance (:func:`needed_overlap`); None when no overlap below
            the tile size does, or without a reference.
    """

    output: np.ndarray
    starts: tuple[list[int], ...]
    tile: tuple[int, ...]
    overlap: tuple[int, ...]
    need: int | None = None

    @property
    def ys(self) -> list[int]:
        """Tile starts along y."""
        return self.starts[-2]

    @property
    def xs(self) -> list[int]:
        """Tile starts along x."""
        return self.starts[-1]

    @property
    def count(self) -> int:
        """Number of tiles."""
        return int(np.prod([len(s) for s in self.starts]))


def run_tiled(
    predict: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    tile: tuple[int, ...],
    overlap: tuple[int, ...],
    *,
    reference: np.ndarray | None = None,
    tolerance: float = 0.0,
    max_tiles: int = MAX_TILES,
) -> TiledRun:
    """Tile ``image`` (``[1, H, W, C]`` or ``[1, Z, H, W, C]``), predict every tile, stitch.

    Streams: tiles are cut, predicted and stitched a batch at a time (about a megapixel; 3D
    at most :data:`MAX_BATCH_3D` tiles), so memory holds one batch of tiles beside the
    stitched output whatever the layout.

    Args:
        predict: The model on a batch of tiles.
        image: The whole image.
        tile: Tile size per spatial axis.
        overlap: Overlap per spatial axis.
        reference: The whole-image prediction ``[H, W, N]``: also measure how deep border
            effects reach into the tiles (:attr:`TiledRun.need`).
        tolerance: Errors up to this are not border effects (with ``reference``).
        max_tiles: Refuse layouts with more tiles.

    Raises:
        TooManyTiles: The layout needs more than ``max_tiles`` tiles.
        ValueError: Impossible layout, or tile outputs not of the tile's spatial size.
    """
    size = tuple(int(d) for d in image.shape[1:-1])
    tile = tuple(int(t) for t in tile)
    if len(tile) != len(size) or len(overlap) != len(size):
        raise ValueError(f"tile {list(tile)} / overlap {list(overlap)} do not fit image {size}")
    axes = [axis_layout(s, t, o) for s, t, o in zip(size, tile, overlap)]
    starts = tuple(list(a.starts) for a in axes)
    count = int(np.prod([len(s) for s in starts]))
    if count > max_tiles:
        raise TooManyTiles(
            f"overlap {list(overlap)} cuts {count} tiles of {list(tile)} from a "
            f"{'x'.join(map(str, size))} image (at most {max_tiles} are simulated)"
        )
    places = placements(axes)  # the stitching rule czbuild predict uses too
    voxels = int(np.prod(tile))
    batch = max(1, min(_MAX_BATCH if len(tile) == 2 else MAX_BATCH_3D, _PIXELS_PER_CALL // voxels))
    stitched: np.ndarray | None = None
    worst: int | None = 0
    for i in range(0, len(places), batch):
        chunk = places[i : i + batch]
        crops = np.stack([image[0][p.source(tile)] for p in chunk])
        outs = np.asarray(predict(crops))
        del crops
        if tuple(outs.shape[1:-1]) != tile:
            raise ValueError(
                f"tile output {list(outs.shape[1:])} is not of the tile's spatial size"
            )
        if stitched is None:
            stitched = np.zeros((*size, outs.shape[-1]))
        for out, p in zip(outs, chunk):
            stitched[p.target()] = out[p.kept()]
            if reference is not None and worst is not None:
                depth = _border_depth(out, reference, p.start, tolerance)
                worst = None if depth is None else max(worst, depth)
    assert stitched is not None
    need = None
    if reference is not None and worst is not None and 2 * worst < min(tile):
        need = 2 * worst
    return TiledRun(stitched, starts, tile, tuple(int(o) for o in overlap), need)


def _border_depth(
    out: np.ndarray, reference: np.ndarray, origin: tuple[int, ...], tolerance: float
) -> int | None:
    """How deep (px) errors above ``tolerance`` reach from the tile's interior sides.

    A pixel off by more than the tolerance is discarded by overlap ``O`` when it lies within
    ``O / 2`` of a side facing another tile; None when a pixel is off and no side faces one.
    """
    size = reference.shape[:-1]
    tile = out.shape[:-1]
    window = tuple(slice(a, a + t) for a, t in zip(origin, tile))
    err = error_map(out, reference[window])
    where = np.nonzero(err > tolerance)
    if where[0].size == 0:
        return 0
    sides = []
    for axis, (a, t, s) in enumerate(zip(origin, tile, size)):
        if a > 0:
            sides.append(where[axis] + 1)
        if a + t < s:
            sides.append(t - where[axis])
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
