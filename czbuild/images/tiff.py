"""TIFF / OME-TIFF through ``tifffile`` (imported here only): reading and tile-wise writing.

Reading: one series, axes normalised to ``[Z, Y, X, C]``. ``Z`` comes from the ``Z`` axis,
or from a plain page stack (``I`` / ``Q``) when the file does not say what its pages are;
``C`` from ``C`` and ``S`` (samples; photometric RGB samples are flipped to B, G, R(, A), the
order ZEN feeds). A leading time axis is cut to its first point. Uncompressed files are
memory-mapped; compressed ones are decoded once into a memory-mapped temporary file, so the
image never needs to fit in RAM.

Writing: :func:`write_ome_tiff` takes the output as an iterator of tiles and writes a tiled,
zlib-compressed OME-TIFF through a temporary file (a failed run leaves no partial output).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from czbuild.errors import ImageError
from czbuild.files.atomic import atomic_path
from czbuild.images.source import Channel, select

#: Axes a time / page stack may carry that czbuild folds away or reads as Z.
_STACK = "IQ"
#: Side of the tiles czbuild writes (a multiple of 16, as TIFF requires).
WRITE_TILE = 256

_PIXEL = {
    ("uint8", 1): "Gray8",
    ("uint16", 1): "Gray16",
    ("float32", 1): "Gray32Float",
    ("uint8", 3): "Bgr24",
    ("uint16", 3): "Bgr48",
    ("float32", 3): "Bgr96Float",
    ("uint8", 4): "Bgra32",
}


class TiffSource:
    """A TIFF series as ``[Z, Y, X, C]``."""

    def __init__(
        self, path: Path, *, series: int | None = None, channels: Sequence[int] | None = None
    ) -> None:
        import tifffile

        self.path = path
        try:
            with tifffile.TiffFile(str(path)) as tif:
                count = len(tif.series)
                index = 0 if series is None else series
                if not 0 <= index < count:
                    raise ImageError(
                        f"{path}: --scene {series} is out of range: the file has {count} "
                        "series (0.." + str(count - 1) + ")"
                    )
                s = tif.series[index]
                axes, shape = s.axes.upper(), tuple(s.shape)
                rgb = s.keyframe.photometric == tifffile.PHOTOMETRIC.RGB
                dtype = np.dtype(s.dtype)
                try:
                    data: Any = tifffile.memmap(str(path), series=index, mode="r")
                except (ValueError, OSError):
                    data = s.asarray(out="memmap")
        except ImageError:
            raise
        except Exception as exc:
            raise ImageError(f"{path}: not a readable TIFF file ({str(exc)[:200]})") from exc
        data = data.reshape(shape)
        self._data, self._axes = self._normalise(data, axes, path)
        z, h, w, c = self._data.shape
        if dtype.kind not in "uif" or (dtype.itemsize > 4 and dtype.kind != "f"):
            raise ImageError(f"{path}: pixel type {dtype} cannot be fed to a model")
        samples = 1
        if "S" in axes:
            samples = shape[axes.index("S")]
        self._flip = rgb and samples in (3, 4)
        per = samples if samples in (3, 4) else 1
        groups = c // per
        kind = _PIXEL.get((dtype.name, per), f"{dtype.name}x{per}")
        names = [f"C{i}" for i in range(groups)]
        picked = select(groups, channels, path, names)
        self.channels = tuple(Channel(names[i], dtype, per, kind) for i in picked)
        self._columns = [i * per + k for i in picked for k in range(per)]
        self.shape = (z, h, w, len(self._columns))

    @staticmethod
    def _normalise(data: Any, axes: str, path: Path) -> tuple[Any, str]:
        """``data`` as a ``[Z, Y, X, C]`` view; refuses axes czbuild cannot place."""
        for i in range(len(axes) - 1, -1, -1):
            letter = axes[i]
            if letter == "T" or (letter in _STACK and "Z" in axes):
                data = data.take(0, axis=i)
                axes = axes[:i] + axes[i + 1 :]
        for letter in _STACK:
            if letter in axes:
                axes = axes.replace(letter, "Z")
        if "S" in axes and "C" in axes:
            # channels of colour samples: C outer, S inner
            data = np.moveaxis(data, axes.index("S"), -1)
            axes = axes.replace("S", "") + "S"
            data = np.moveaxis(data, axes.index("C"), -2)
            axes = axes.replace("C", "")[:-1] + "CS"
            data = data.reshape(*data.shape[:-2], -1)
            axes = axes[:-2] + "C"
        axes = axes.replace("S", "C")
        unknown = set(axes) - set("ZYXC")
        if unknown or len(set(axes)) != len(axes) or not {"Y", "X"} <= set(axes):
            raise ImageError(
                f"{path}: image axes {axes!r} are not supported (czbuild reads Y, X with "
                "optional Z, C / samples and a leading time axis)"
            )
        for letter in "ZC":
            if letter not in axes:
                data = data[..., None]
                axes += letter
        order = [axes.index(a) for a in "ZYXC"]
        return np.transpose(data, order), "ZYXC"

    def read(self, z: tuple[int, int], y: tuple[int, int], x: tuple[int, int]) -> np.ndarray:
        box = np.asarray(self._data[z[0] : z[1], y[0] : y[1], x[0] : x[1]])
        box = box[..., self._columns]
        if self._flip:
            per = self.channels[0].samples
            box = box.reshape(*box.shape[:-1], -1, per)
            box = np.concatenate([box[..., 2::-1], box[..., 3:]], axis=-1).reshape(
                *box.shape[:-2], -1
            )
        return np.ascontiguousarray(box)

    def close(self) -> None:
        self._data = None


def write_ome_tiff(
    path: Path,
    tiles: Iterable[np.ndarray],
    *,
    shape: tuple[int, ...],
    dtype: Any,
    axes: str,
    channel_names: Sequence[str] = (),
    tile: int = WRITE_TILE,
) -> None:
    """Write an OME-TIFF from its tiles, page after page, each page's tiles row-major.

    Args:
        path: Output file; replaced only when complete.
        tiles: ``[tile, tile(, S)]`` arrays (edge tiles may be smaller).
        shape: Full shape, e.g. ``[Z, Y, X]`` or ``[Z, Y, X, S]``.
        dtype: Sample type.
        axes: OME axes of ``shape`` (``"ZYX"`` / ``"ZYXS"``).
        channel_names: Names of the samples (OME ``Channel`` names), optional.
        tile: Tile side.
    """
    import tifffile

    metadata: dict[str, Any] = {"axes": axes}
    if channel_names:
        metadata["Channel"] = {"Name": list(channel_names)}
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            str(tmp),
            iter(tiles),
            shape=tuple(shape),
            dtype=np.dtype(dtype),
            tile=(tile, tile),
            ome=True,
            metadata=metadata,
            photometric="minisblack",
            planarconfig="contig" if axes.endswith("S") else None,
            compression="zlib",
            bigtiff=_bigtiff(shape, dtype),
        )


def _bigtiff(shape: Sequence[int], dtype: Any) -> bool:
    return int(np.prod(shape)) * np.dtype(dtype).itemsize > 2**31


def write_tiff(path: Path, image: np.ndarray, *, rgb: bool = False) -> None:
    """Write a whole (small) ``[Z, Y, X, C]`` image as an OME-TIFF (tests, tools, samples).

    ``rgb``: the three channels are R, G, B samples (photometric RGB); else grey channels.
    """
    import tifffile

    if rgb:
        data, axes, photometric = image, "ZYXS", "rgb"
    else:
        data, axes, photometric = np.moveaxis(image, -1, 0), "CZYX", "minisblack"
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            str(tmp),
            np.ascontiguousarray(data),
            ome=True,
            metadata={"axes": axes},
            photometric=photometric,
            compression="zlib",
        )


def read_tiff(path: Path) -> np.ndarray:
    """A whole (small) TIFF as an array in its stored axes (reference outputs, tests)."""
    import tifffile

    try:
        return np.asarray(tifffile.imread(str(path)))
    except Exception as exc:
        raise ImageError(f"{path}: not a readable TIFF file ({str(exc)[:200]})") from exc
