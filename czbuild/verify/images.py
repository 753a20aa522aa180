"""Pictures for the verification report: PNG encoding and colour maps, NumPy only.

PNG bytes come from :func:`czbuild.images.png.encode_png` (no imaging dependency).
Renderers turn model inputs and outputs into uint8 images: channel-first grey or BGR→RGB
inputs, class maps coloured with ZEN's class colours, regression images, and a heat map of
the seam error with the tile cuts drawn in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from czbuild.images.png import encode_png

__all__ = ["encode_png"]  # its owner is czbuild.images.png

#: Pictures are enlarged (nearest neighbour) until the longer side reaches this many pixels.
MIN_DISPLAY = 256
_CUT_COLOUR = (60, 120, 255)


def enlarge(image: np.ndarray, minimum: int = MIN_DISPLAY) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor so tiny tiles stay visible."""
    factor = max(1, -(-minimum // max(image.shape[:2])))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def _to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    span = high - low if high > low else 1.0
    return np.clip(np.round((values - low) / span * 255.0), 0, 255).astype(np.uint8)


def render_input(image: np.ndarray, input_range: tuple[float, float]) -> np.ndarray:
    """``[H, W, C]`` model input → grey (1 channel) or RGB (3/4 channels, stored BGR(A))."""
    low, high = input_range
    if image.shape[-1] in (3, 4):
        return _to_uint8(image[..., 2::-1], low, high)
    return _to_uint8(image[..., 0], low, high)


def render_classes(
    probabilities: np.ndarray, colours: Sequence[tuple[int, int, int]]
) -> np.ndarray:
    """Per-pixel argmax coloured with one (R, G, B) colour per class."""
    palette = np.asarray(list(colours) or [(255, 255, 255)], dtype=np.uint8)
    labels = np.argmax(probabilities, axis=-1)
    return palette[np.clip(labels, 0, len(palette) - 1)]


def render_regression(values: np.ndarray) -> np.ndarray:
    """Regression output in [0, 1]: grey for one channel, RGB (stored BGR) for three."""
    if values.shape[-1] == 3:
        return _to_uint8(values[..., ::-1], 0.0, 1.0)
    return _to_uint8(values[..., 0], 0.0, 1.0)


def render_error(
    error: np.ndarray, tolerance: float, cuts: tuple[Sequence[int], Sequence[int]] | None = None
) -> np.ndarray:
    """Seam-error heat map: black (0) → dark red (tolerance) → yellow → white (maximum).

    Below the tolerance the scale is linear and dark; above it logarithmic from red to
    white, so pixels over the tolerance stand out and their size is still readable. Tile
    cuts are drawn as thin blue lines where the error is within the tolerance.
    """
    error = np.asarray(error, np.float64)
    top = max(float(error.max()), tolerance * 10)
    ratio = np.log(np.maximum(error, tolerance) / tolerance) / np.log(top / tolerance)
    t = np.where(
        error > tolerance,
        0.4 + 0.6 * np.clip(ratio, 0.0, 1.0),
        0.3 * np.clip(error / tolerance, 0.0, 1.0),
    )
    r = np.clip(t * 3, 0, 1)
    g = np.clip(t * 3 - 1, 0, 1)
    b = np.clip(t * 3 - 2, 0, 1)
    rgb = (np.stack([r, g, b], axis=-1) * 255).astype(np.uint8)
    if cuts is not None:
        ycuts, xcuts = cuts
        for y in ycuts:
            row = rgb[y, :]
            row[error[y, :] <= tolerance] = _CUT_COLOUR
        for x in xcuts:
            col = rgb[:, x]
            col[error[:, x] <= tolerance] = _CUT_COLOUR
    return rgb
