"""``open_image``: the one entry point to the readers, chosen by file suffix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from czbuild.errors import ImageError
from czbuild.images.source import ImageSource

#: File suffixes per reader.
CZI_SUFFIXES = (".czi",)
TIFF_SUFFIXES = (".tif", ".tiff", ".ome.tif", ".ome.tiff", ".btf", ".tf8")


def open_image(
    path: str | Path, *, scene: int | None = None, channels: Sequence[int] | None = None
) -> ImageSource:
    """Open a CZI (pylibCZIrw) or TIFF / OME-TIFF (tifffile) image.

    Args:
        path: The image file.
        scene: CZI scene index (default: the first scene); TIFF: series index (default 0).
        channels: Channel indices to keep, in this order (default: all).

    Raises:
        ImageError: Missing or unreadable file, unknown suffix, scene or channel out of range,
            unsupported pixel type or dimension.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if not path.is_file():
        raise ImageError(f"{path}: not a file")
    name = path.name.lower()
    if name.endswith(CZI_SUFFIXES):
        from czbuild.images.czi import CziSource

        return CziSource(path, scene=scene, channels=channels)
    if name.endswith(TIFF_SUFFIXES):
        from czbuild.images.tiff import TiffSource

        return TiffSource(path, series=scene, channels=channels)
    raise ImageError(
        f"{path}: unknown image type {path.suffix!r}: czbuild reads .czi and .tif/.tiff "
        "(OME-TIFF included)"
    )
