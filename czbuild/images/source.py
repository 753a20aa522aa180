"""The image-source protocol every reader implements (:func:`czbuild.images.reader.open_image`
opens one).

A source is a 4D view ``[Z, Y, X, C]`` of one scene of one file at full resolution (pyramid
level 0): ``read`` returns any box of it without loading the rest. Channels are the selected
channels' samples in file order; colour samples are always **B, G, R(, A)** — the order ZEN
feeds models (CZI stores colour that way; RGB TIFFs are flipped).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from czbuild.errors import ImageError


@dataclass(frozen=True)
class Channel:
    """One channel of a source.

    Attributes:
        name: As the file names it (``"C0"`` when it does not).
        dtype: NumPy dtype of its samples.
        samples: 1 (grey) or 3 / 4 (colour, B, G, R(, A)).
        pixel_type: ZEN's pixel type name (``Gray16``, ``Bgr24`` ...).
    """

    name: str
    dtype: np.dtype
    samples: int
    pixel_type: str

    @property
    def maximum(self) -> float | None:
        """The integer type's largest value; None for float samples."""
        return float(np.iinfo(self.dtype).max) if self.dtype.kind in "ui" else None


class ImageSource(Protocol):
    """An open image: shape, channels and box reads."""

    path: Path
    shape: tuple[int, int, int, int]  # Z, Y, X, C (C: samples of the selected channels)
    channels: tuple[Channel, ...]

    def read(self, z: tuple[int, int], y: tuple[int, int], x: tuple[int, int]) -> np.ndarray:
        """The box ``[z0, z1) × [y0, y1) × [x0, x1)``, all channels: ``[z, y, x, C]``."""
        ...

    def close(self) -> None: ...


def sample_maxima(channels: Sequence[Channel]) -> list[float | None]:
    """Per sample (channels expanded by their samples): the integer maximum or None."""
    return [c.maximum for c in channels for _ in range(c.samples)]


def select(count: int, chosen: Sequence[int] | None, path: Path, names: Sequence[str]) -> list[int]:
    """Channel indices ``chosen`` (default: all), checked against ``count``.

    Raises:
        ImageError: An index is out of range or repeated.
    """
    if not chosen:
        return list(range(count))
    listing = ", ".join(f"{i}={n}" for i, n in enumerate(names))
    for c in chosen:
        if not 0 <= c < count:
            raise ImageError(
                f"{path}: --channel {c} is out of range: the image has {count} channel(s) "
                f"({listing})"
            )
    if len(set(chosen)) != len(chosen):
        raise ImageError(f"{path}: --channel names a channel twice: {list(chosen)}")
    return list(chosen)
