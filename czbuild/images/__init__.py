"""Microscope images in and out: CZI (ZEISS ``pylibCZIrw``) and TIFF / OME-TIFF (``tifffile``).

* :func:`open_image` — a scene of a file as a ``[Z, Y, X, C]`` source that reads any box
  (pyramid level 0, colour as B, G, R), without loading the whole image;
* :func:`write_ome_tiff` — a tiled OME-TIFF written from an iterator of tiles, atomically;
* :func:`write_czi` / :func:`write_tiff` / :func:`read_tiff` — whole small images (tests,
  tools, reference outputs).

Imports only :mod:`czbuild.errors` and :mod:`czbuild.files`; the readers' libraries are
imported when a file is opened, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import Any

from czbuild.images.reader import open_image
from czbuild.images.source import Channel, ImageSource, sample_maxima

__all__ = [
    "Channel",
    "ImageSource",
    "open_image",
    "read_tiff",
    "sample_maxima",
    "write_czi",
    "write_ome_tiff",
    "write_tiff",
]


def __getattr__(name: str) -> Any:
    if name == "write_czi":
        from czbuild.images.czi import write_czi

        return write_czi
    if name in ("write_ome_tiff", "write_tiff", "read_tiff"):
        from czbuild.images import tiff

        return getattr(tiff, name)
    raise AttributeError(name)
