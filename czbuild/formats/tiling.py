"""How ZEN cuts an image into tiles and stitches the tile outputs: the one layout rule.

Per axis, tiles of the model's input size ``T`` start every ``T - overlap`` pixels and the
last tile is aligned with the image end. Between two neighbouring tiles the cut lies in the
middle of their overlap, so with overlap ``O`` (``MinOverlap``; legacy ``2 × BorderSize``)
each tile keeps its centre minus ``O / 2`` on every side that faces another tile, and
everything on sides at the image border. The verifier's tiled simulation
(:mod:`czbuild.verify.tiles`) and ``czbuild predict`` (:mod:`czbuild.predict`) both use these
functions. Pure Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product


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


@dataclass(frozen=True)
class Axis:
    """The layout along one axis: tile starts and the range each tile keeps."""

    starts: tuple[int, ...]
    kept: tuple[tuple[int, int], ...]


def axis_layout(size: int, tile: int, overlap: int) -> Axis:
    """:func:`tile_starts` and :func:`kept_ranges` of one axis together."""
    starts = tile_starts(size, tile, overlap)
    return Axis(tuple(starts), tuple(kept_ranges(starts, tile, size)))


@dataclass(frozen=True)
class Placement:
    """One tile: where it is cut (``start``) and which image box it fills (``lo``..``hi``)."""

    start: tuple[int, ...]
    lo: tuple[int, ...]
    hi: tuple[int, ...]

    def source(self, tile: Sequence[int]) -> tuple[slice, ...]:
        """Slices of the image the tile is cut from."""
        return tuple(slice(s, s + t) for s, t in zip(self.start, tile))

    def kept(self) -> tuple[slice, ...]:
        """Slices of the tile output that are kept."""
        return tuple(slice(lo - s, hi - s) for s, lo, hi in zip(self.start, self.lo, self.hi))

    def target(self, offset: Sequence[int] | None = None) -> tuple[slice, ...]:
        """Slices of the stitched image (minus ``offset``) the kept part fills."""
        offset = offset or (0,) * len(self.lo)
        return tuple(slice(lo - o, hi - o) for lo, hi, o in zip(self.lo, self.hi, offset))


def placements(axes: Sequence[Axis]) -> list[Placement]:
    """Every tile of the layout, row-major (the last axis fastest)."""
    out = []
    for picks in product(*(range(len(a.starts)) for a in axes)):
        start = tuple(a.starts[i] for a, i in zip(axes, picks))
        lo = tuple(a.kept[i][0] for a, i in zip(axes, picks))
        hi = tuple(a.kept[i][1] for a, i in zip(axes, picks))
        out.append(Placement(start, lo, hi))
    return out
