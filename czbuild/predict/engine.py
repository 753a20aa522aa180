"""Run an artifact on a whole image the way ZEN's tiled inference does.

* Tiles of the artifact's input size, overlap ``MinOverlap`` (legacy ``2 × BorderSize``),
  stitched by keeping each tile's centre (:mod:`czbuild.formats.tiling`, the rule the
  verifier simulates). 2D models run on every Z plane; 3D models tile Z as well.
* Input values: CZANN models get float32 in [0, 1]; integer pixels are divided by their
  type's maximum (255, 65535) unless an input range is given (``--input-range 12`` for a
  12-bit camera: 0..4095 → 0..1, clipped). ZEN's exact mapping is unconfirmed (format
  reference §3.3); this is czbuild's assumption. Float pixels are fed as they are (assumed
  to be in [0, 1] already). Legacy models get the raw values.
* Colour: channels arrive as B, G, R(, A) (:mod:`czbuild.images`). A legacy model with
  ``ConvertToMonochrome`` and one input channel gets colour pixels as grey
  (0.114 B + 0.587 G + 0.299 R; ZEN's weights are unconfirmed).
* Streaming: the image is read one band of tile rows at a time and the output leaves as
  tiles of the OME-TIFF writer, so memory holds about one band (3D: one tile depth of
  planes), whatever the image size.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from czbuild.errors import ImageError, ModelError
from czbuild.formats import vocab
from czbuild.formats.czann import CzannMetadata
from czbuild.formats.legacy import LegacyMetadata, class_colors
from czbuild.formats.tiling import Axis, axis_layout, placements
from czbuild.images.source import ImageSource, sample_maxima
from czbuild.progress import phase

SEGMENTATION = "segmentation"
REGRESSION = "regression"
#: Longer side of the preview PNG (the image is subsampled down to it).
PREVIEW_SIDE = 1024
#: BT.601 luma weights in B, G, R order (ConvertToMonochrome; ZEN's weights unconfirmed).
GREY_BGR = (0.114, 0.587, 0.299)


@dataclass(frozen=True)
class ModelPlan:
    """What tiled inference needs to know about an artifact.

    Attributes:
        name: Display name.
        family: ``"czann"`` or ``"czmodel"``.
        kind: :data:`SEGMENTATION` or :data:`REGRESSION`.
        tile: Spatial tile size (``(H, W)`` or ``(Z, H, W)``).
        channels: Input channels.
        overlap: Per spatial dim.
        outputs: Output channels (classes).
        classes: Class names (segmentation).
        monochrome: Legacy ``ConvertToMonochrome``.
    """

    name: str
    family: str
    kind: str
    tile: tuple[int, ...]
    channels: int
    overlap: tuple[int, ...]
    outputs: int
    classes: tuple[str, ...] = ()
    monochrome: bool = False

    @property
    def legacy(self) -> bool:
        return self.family == "czmodel"


def model_plan(artifact: Any, runner: Any) -> ModelPlan:
    """The plan of a read artifact and its open runner.

    Raises:
        ModelError: A type czbuild cannot predict with, or an input shape it cannot tile.
    """
    meta = artifact.metadata
    if isinstance(meta, CzannMetadata):
        if meta.type in vocab.SEGMENTATION_TYPES:
            kind = SEGMENTATION
        elif meta.type in vocab.REGRESSION_TYPES:
            kind = REGRESSION
        else:
            raise ModelError(
                f"{artifact.path}: Type {meta.type}: czbuild predict runs segmentation and "
                "regression models only"
            )
        if meta.input_shape is None or meta.output_shape is None:
            raise ModelError(f"{artifact.path}: the metadata has no InputShape / OutputShape")
        tile = tuple(int(d) for d in meta.input_shape[:-1])
        overlap = tuple(meta.min_overlap) if meta.min_overlap else (0,) * len(tile)
        return ModelPlan(
            meta.model_name or artifact.path.stem,
            "czann",
            kind,
            tile,
            int(meta.input_shape[-1]),
            tuple(int(o) for o in overlap),
            int(meta.output_shape[-1]),
            tuple(meta.classes or ()),
        )
    assert isinstance(meta, LegacyMetadata)
    dims = list(runner.input_dims)
    if len(dims) != 4 or any(d is None for d in dims[1:3]):
        raise ModelError(f"{artifact.path}: the payload's input {dims} has no fixed tile size")
    tile = (int(dims[1]), int(dims[2]))
    channels = int(dims[3]) if dims[3] is not None else len(meta.pixel_types)
    return ModelPlan(
        meta.name,
        "czmodel",
        SEGMENTATION,
        tile,
        channels,
        (2 * meta.border_size,) * 2,
        len(meta.classes),
        tuple(meta.classes),
        monochrome=meta.color_handling == "ConvertToMonochrome",
    )


def parse_input_range(text: str) -> tuple[float, float]:
    """``"12"`` (bit depth: 0..4095) or ``"LOW,HIGH"`` / ``"LOW:HIGH"``.

    Raises:
        ImageError: Anything else (says the two forms).
    """
    text = text.strip()
    try:
        if text.isdigit():
            bits = int(text)
            if not 1 <= bits <= 32:
                raise ValueError
            return 0.0, float(2**bits - 1)
        low, high = (float(v) for v in text.replace(":", ",").split(","))
    except ValueError:
        raise ImageError(
            f"--input-range {text!r}: give a camera bit depth (12: 0..4095) or LOW,HIGH"
        ) from None
    if not np.isfinite([low, high]).all() or high <= low:
        raise ImageError(f"--input-range {text!r}: HIGH must be larger than LOW")
    return low, high


class Feeder:
    """Turns raw image boxes ``[z, y, x, C_image]`` into model input ``[z, y, x, C_model]``."""

    def __init__(
        self,
        plan: ModelPlan,
        source: ImageSource,
        input_range: tuple[float, float] | None = None,
    ) -> None:
        channels = source.shape[3]
        self.grey = False
        if channels != plan.channels:
            colour = [c for c in source.channels if c.samples >= 3]
            if plan.monochrome and plan.channels == 1 and len(source.channels) == 1 and colour:
                self.grey = True
            else:
                names = ", ".join(
                    f"{i}={c.name} ({c.pixel_type})" for i, c in enumerate(source.channels)
                )
                raise ImageError(
                    f"{source.path}: the image has {channels} channel value(s) per pixel "
                    f"({names}); the model takes {plan.channels}: choose channels with "
                    "--channel (e.g. --channel 0)"
                )
        if plan.legacy:
            if input_range is not None:
                raise ImageError(
                    "--input-range: legacy .czmodel files get the raw pixel values "
                    "(their own scaling is inside the model); leave it out"
                )
            self.low = np.zeros(channels, np.float32)
            self.scale = np.ones(channels, np.float32)
            self.clip = False
        elif input_range is not None:
            low, high = input_range
            self.low = np.full(channels, low, np.float32)
            self.scale = np.full(channels, 1.0 / (high - low), np.float32)
            self.clip = True
        else:
            maxima = sample_maxima(source.channels)
            self.low = np.zeros(channels, np.float32)
            self.scale = np.asarray([1.0 / m if m else 1.0 for m in maxima], np.float32)
            self.clip = False

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        x = (raw.astype(np.float32) - self.low) * self.scale
        if self.clip:
            np.clip(x, 0.0, 1.0, out=x)
        if self.grey:
            w = np.asarray(GREY_BGR, np.float32)
            x = (x[..., :3] @ w)[..., None]
        return x


@dataclass
class Band:
    """Stitched output for image box ``[z0, z1) × [y0, y1) × all x``: ``[z, y, x, N]``."""

    z0: int
    y0: int
    data: np.ndarray
    source: np.ndarray | None = None  # the model input at the preview's plane, if asked


def tile_layout(
    plan: ModelPlan, shape: tuple[int, int, int, int]
) -> tuple[Axis, Axis, Axis, tuple[int, int, int]]:
    """Z, Y, X layouts and the 3D tile ``(tz, th, tw)`` for an image ``[Z, Y, X, C]``.

    Raises:
        ImageError: The image is smaller than a tile, or a 3D model meets a 2D image.
    """
    z, h, w, _ = shape
    if len(plan.tile) == 3:
        tz, th, tw = plan.tile
        oz, oy, ox = plan.overlap
    else:
        (th, tw), tz = plan.tile, 1
        oz, (oy, ox) = 0, plan.overlap
    for size, t, what in ((z, tz, "Z planes"), (h, th, "rows"), (w, tw, "columns")):
        if size < t:
            raise ImageError(
                f"the image has {size} {what}, fewer than the model's tile of {t}: "
                "ZEN needs images at least one tile large"
            )
    return (
        axis_layout(z, tz, oz),
        axis_layout(h, th, oy),
        axis_layout(w, tw, ox),
        (tz, th, tw),
    )


def stitched_bands(
    runner: Callable[[np.ndarray], np.ndarray],
    plan: ModelPlan,
    source: ImageSource,
    feed: Callable[[np.ndarray], np.ndarray],
    *,
    on_tiles: Callable[[int, int], None] | None = None,
    keep_input_plane: int | None = None,
) -> Iterator[Band]:
    """Predict ``source`` tile by tile; yield the stitched output band after band, in order.

    One band is one row of tiles (3D: one row of one tile depth): the tiles are read from the
    source, predicted in one batched call and their kept centres (:meth:`Placement.kept`)
    written into the band.
    """
    zax, yax, xax, (tz, th, tw) = tile_layout(plan, source.shape)
    width = source.shape[2]
    three_d = len(plan.tile) == 3
    total = len(zax.starts) * len(yax.starts) * len(xax.starts)
    done = 0
    for zi, zs in enumerate(zax.starts):
        for yi, ys in enumerate(yax.starts):
            raw = source.read((zs, zs + tz), (ys, ys + th), (0, width))
            x = feed(raw)
            row = placements(
                [
                    Axis((zs,), (zax.kept[zi],)),
                    Axis((ys,), (yax.kept[yi],)),
                    xax,
                ]
            )
            crops = np.stack([x[:, :, p.start[2] : p.start[2] + tw] for p in row])
            if not three_d:
                crops = crops[:, 0]
            outs = np.asarray(runner(crops), dtype=np.float32)
            if not three_d:
                outs = outs[:, None]
            expected = (tz, th, tw)
            if outs.shape[1:4] != expected:
                raise ModelError(
                    f"the model's output tile {list(outs.shape[1:])} is not of the input "
                    f"tile's size {list(expected)}: czbuild predict needs per-pixel outputs"
                )
            first = row[0]
            band = np.empty(
                (first.hi[0] - first.lo[0], first.hi[1] - first.lo[1], width, outs.shape[-1]),
                np.float32,
            )
            offset = (first.lo[0], first.lo[1], 0)
            for p, out in zip(row, outs):
                band[p.target(offset)] = out[p.kept()]
            kept_input = None
            if keep_input_plane is not None and first.lo[0] <= keep_input_plane < first.hi[0]:
                k = keep_input_plane - zs
                kept_input = x[k, first.lo[1] - ys : first.hi[1] - ys]
            done += len(row)
            if on_tiles is not None:
                on_tiles(done, total)
            phase(f"predicting: {done}/{total} tiles")
            yield Band(first.lo[0], first.lo[1], band, kept_input)


def predict_array(
    runner: Callable[[np.ndarray], np.ndarray],
    plan: ModelPlan,
    source: ImageSource,
    feed: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """The whole stitched output ``[Z, Y, X, N]`` in memory (small images: verification)."""
    z, h, w, _ = source.shape
    out: np.ndarray | None = None
    for band in stitched_bands(runner, plan, source, feed):
        if out is None:
            out = np.empty((z, h, w, band.data.shape[-1]), np.float32)
        dz, dy = band.data.shape[:2]
        out[band.z0 : band.z0 + dz, band.y0 : band.y0 + dy] = band.data
    assert out is not None
    return out


class ArraySource:
    """An in-memory ``[Z, Y, X, C]`` array as an :class:`ImageSource` (tests, references)."""

    def __init__(self, image: np.ndarray, channels: Sequence[Any] = (), path: str = "<array>"):
        from czbuild.images.source import Channel

        self.path = Path(path)
        self._image = image
        z, y, x, c = image.shape
        self.shape = (int(z), int(y), int(x), int(c))
        dtype = np.dtype(image.dtype)
        self.channels = tuple(channels) or tuple(
            Channel(f"C{i}", dtype, 1, dtype.name) for i in range(image.shape[-1])
        )

    def read(self, z: tuple[int, int], y: tuple[int, int], x: tuple[int, int]) -> np.ndarray:
        return np.asarray(self._image[z[0] : z[1], y[0] : y[1], x[0] : x[1]])

    def close(self) -> None:
        pass


def class_palette(plan: ModelPlan) -> np.ndarray:
    """ZEN's class colours (R, G, B) per class index."""
    return np.asarray(class_colors(max(plan.outputs, 1)), np.uint8)


class WriteAborted(Exception):
    """The producer failed: the writer stops and its temporary file is removed."""


_ABORT = object()


def threaded_writer(
    write: Callable[[Iterator[np.ndarray]], None],
) -> tuple[Callable[[np.ndarray], None], Callable[[bool], None]]:
    """Run ``write(tiles)`` in a thread fed through a bounded queue: ``(put, finish)``.

    ``finish(False)`` ends the stream, waits for the writer and re-raises its error in the
    caller; ``finish(True)`` aborts it (the iterator raises :class:`WriteAborted` inside the
    writer, so an atomic writer never installs a partial file).
    """
    tiles: queue.Queue[Any] = queue.Queue(maxsize=64)
    errors: list[BaseException] = []

    def items() -> Iterator[np.ndarray]:
        while True:
            item = tiles.get()
            if item is None:
                return
            if item is _ABORT:
                raise WriteAborted
            yield item

    def run() -> None:
        try:
            write(items())
        except BaseException as exc:
            errors.append(exc)
            item = None if isinstance(exc, WriteAborted) else tiles.get()
            while item is not None and item is not _ABORT:  # drain: the producer never blocks
                item = tiles.get()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def put(tile: np.ndarray) -> None:
        if errors:
            raise errors[0]
        tiles.put(tile)

    def finish(abort: bool) -> None:
        tiles.put(_ABORT if abort else None)
        thread.join()
        if errors and not abort:
            raise errors[0]

    return put, finish
