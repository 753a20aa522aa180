"""CZI images through ZEISS's own ``pylibCZIrw`` (imported here only).

One scene (its bounding rectangle at pyramid level 0), the first time point, every Z plane,
the selected channels. Each read asks libCZI for exactly the box needed, so images larger
than memory are read tile by tile. Colour pixel types (``Bgr24``, ``Bgr48``, ``Bgr96Float``)
come as B, G, R samples, as ZEN feeds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from czbuild.errors import ImageError
from czbuild.images.source import Channel, select

#: ZEN pixel type -> (dtype, samples) of what pylibCZIrw returns.
PIXEL_TYPES: dict[str, tuple[str, int]] = {
    "Gray8": ("uint8", 1),
    "Gray16": ("uint16", 1),
    "Gray32Float": ("float32", 1),
    "Bgr24": ("uint8", 3),
    "Bgr48": ("uint16", 3),
    "Bgr96Float": ("float32", 3),
}


class CziSource:
    """A scene of a CZI file as ``[Z, Y, X, C]``."""

    def __init__(
        self, path: Path, *, scene: int | None = None, channels: Sequence[int] | None = None
    ) -> None:
        from pylibCZIrw import czi

        self.path = path
        try:
            self._stack = czi.open_czi(str(path))
            self._reader: Any = self._stack.__enter__()
        except Exception as exc:
            raise ImageError(f"{path}: not a readable CZI file ({str(exc)[:200]})") from exc
        try:
            self._setup(scene, channels)
        except BaseException:
            self.close()
            raise

    def _setup(self, scene: int | None, channels: Sequence[int] | None) -> None:
        reader, path = self._reader, self.path
        box = reader.total_bounding_box_no_pyramid
        scenes = dict(reader.scenes_bounding_rectangle_no_pyramid)
        if scenes:
            indices = sorted(scenes)
            chosen = indices[0] if scene is None else scene
            if chosen not in scenes:
                raise ImageError(
                    f"{path}: --scene {scene} is out of range: the file has scene(s) "
                    + ", ".join(map(str, indices))
                )
            self.scene: int | None = chosen
            rect = scenes[chosen]
        else:
            if scene not in (None, 0):
                raise ImageError(f"{path}: --scene {scene} is out of range: the file has no scenes")
            self.scene = None
            rect = reader.total_bounding_rectangle_no_pyramid
        self._x0, self._y0 = int(rect.x), int(rect.y)
        z0, z1 = box.get("Z", (0, 1))
        c0, c1 = box.get("C", (0, 1))
        t0, _ = box.get("T", (0, 1))
        self._z0, self._t0 = int(z0), int(t0)
        all_channels = []
        for c in range(int(c0), int(c1)):
            pixel_type = reader.get_channel_pixel_type(c)
            if pixel_type not in PIXEL_TYPES:
                raise ImageError(
                    f"{path}: channel {c - int(c0)} has pixel type {pixel_type}, which czbuild "
                    "cannot feed a model (" + ", ".join(PIXEL_TYPES) + ")"
                )
            dtype, samples = PIXEL_TYPES[pixel_type]
            all_channels.append(
                (c, Channel(f"C{c - int(c0)}", np.dtype(dtype), samples, pixel_type))
            )
        names = [ch.name for _, ch in all_channels]
        picked = select(len(all_channels), channels, path, names)
        self._planes = [all_channels[i][0] for i in picked]
        self.channels = tuple(all_channels[i][1] for i in picked)
        width = sum(ch.samples for ch in self.channels)
        self.shape = (int(z1) - int(z0), int(rect.h), int(rect.w), width)
        self._dtype = np.result_type(*(ch.dtype for ch in self.channels))

    def read(self, z: tuple[int, int], y: tuple[int, int], x: tuple[int, int]) -> np.ndarray:
        out = np.empty((z[1] - z[0], y[1] - y[0], x[1] - x[0], self.shape[3]), dtype=self._dtype)
        roi = (self._x0 + x[0], self._y0 + y[0], x[1] - x[0], y[1] - y[0])
        for k, zi in enumerate(range(z[0], z[1])):
            at = 0
            for plane, channel in zip(self._planes, self.channels):
                data = self._reader.read(
                    roi=roi,
                    plane={"C": plane, "Z": self._z0 + zi, "T": self._t0},
                    scene=self.scene,
                )
                out[k, :, :, at : at + channel.samples] = data.reshape(
                    data.shape[0], data.shape[1], -1
                )[..., : channel.samples]
                at += channel.samples
        return out

    def close(self) -> None:
        stack, self._stack = getattr(self, "_stack", None), None
        if stack is not None:
            stack.__exit__(None, None, None)


def write_czi(path: Path, image: np.ndarray, *, scene: int = 0) -> None:
    """Write ``image`` ``[Z, Y, X, C]`` (grey channels) as a CZI (for tests, tools, benchmarks).

    Writes row bands so a large image never needs a second copy in memory.
    """
    from pylibCZIrw import czi

    z, h, w, c = image.shape
    band = max(1, (1 << 24) // max(1, w * image.itemsize))
    with czi.create_czi(str(path), exist_ok=True) as writer:
        for ci in range(c):
            for zi in range(z):
                for y in range(0, h, band):
                    tile = np.ascontiguousarray(image[zi, y : y + band, :, ci : ci + 1])
                    writer.write(
                        tile, plane={"C": ci, "Z": zi, "T": 0}, location=(0, y), scene=scene
                    )
