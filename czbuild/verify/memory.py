"""Can this machine verify a tile of this size? Refuse up front, naming the memory needed.

A recipe can ask for a tile no machine verifies (``tile: 100000`` is 10^10 pixels: its seeded
tiles alone need hundreds of GiB). Without this check the first NumPy allocation fails deep
inside a check and the user reads ``semantics (verifier error)``. :func:`needed_bytes` is a
lower bound of what verification holds at once -- the seeded batch's inputs and outputs (the
packaged model's float32, the reference's float64 and their difference), the synthetic test
image the tiling checks stitch, and one input and output set of the models' own activations
-- and :func:`check_memory` fails ``semantics`` when it exceeds the memory the system reports
available (``MemAvailable`` of ``/proc/meminfo``; elsewhere the check is skipped).

:func:`release` hands freed memory back to the system between the model runs of a
verification (and before it, after a conversion): glibc keeps large freed blocks in its heap
once its dynamic mmap threshold has grown, so without it the peak of each run stacks on the
freed remains of the one before (a 7.8M-parameter U-Net at 1024 px: ~0.2 GB after the
conversion, ~0.15 GB after each megapixel run).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from pathlib import Path

import numpy as np

from czbuild.verify.info import ModelInfo
from czbuild.verify.inputs import RANDOM_TILES, SEEDED_PIXELS
from czbuild.verify.report import FAILED, VerifyReport
from czbuild.verify.settings import VerifySettings

NAME = "semantics"
_MEMINFO = Path("/proc/meminfo")
GiB = 1 << 30


_libc: ctypes.CDLL | bool | None = None


def release(*, collect: bool = False) -> None:
    """Return the allocator's free memory to the system (glibc ``malloc_trim``; else nothing).

    Args:
        collect: Run the garbage collector first (0.3 s with TensorFlow loaded; model runs
            leave no reference cycles, so the stages of a verification do not need it).
    """
    global _libc
    if collect:
        gc.collect()
    if _libc is None:
        try:
            name = ctypes.util.find_library("c")
            lib = ctypes.CDLL(name) if name else None
            _libc = lib if lib is not None and hasattr(lib, "malloc_trim") else False
        except OSError:
            _libc = False
    if _libc:
        _libc.malloc_trim(0)  # type: ignore[union-attr]


def available_bytes() -> int | None:
    """Memory the system can give this process now (``MemAvailable``), or None if unknown."""
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def needed_bytes(info: ModelInfo, settings: VerifySettings) -> int:
    """A lower bound of the bytes verification of ``info``'s tile holds at once.

    Args:
        info: The artifact's input and output shapes (without batch).
        settings: Whether the tiling checks run and on which tile (proxy or own).
    """
    assert info.input_shape is not None and info.output_shape is not None
    pixels = int(np.prod(info.input_shape[:-1], dtype=np.float64))
    cin, cout = int(info.input_shape[-1]), int(info.output_shape[-1])
    tiles = max(1, min(RANDOM_TILES + 2, SEEDED_PIXELS // max(pixels, 1)))
    # seeded tiles (float32 in; float32 packaged, float64 reference and difference out)
    batch = tiles * pixels * (4 * cin + 20 * cout)
    # one tile through a model: its input and output at least
    activations = 2 * pixels * 4 * (cin + cout)
    tiling = 0
    rank = len(info.input_shape) - 1
    if settings.tiling and rank in (2, 3):
        from czbuild.verify.tiling import proxy_tiles, seam_image_size

        overlap = tuple(info.overlap or (0,) * rank)
        side = proxy_tiles(tuple(info.input_shape[:-1]), overlap, settings.max_tile)
        # the test image (3D: volume) of tiles_per_side tiles along every axis
        image = int(np.prod(seam_image_size(side, overlap), dtype=np.float64))
        # the float64 test image while it is drawn, its float32 copy, the whole-image
        # reference and the stitched output (float64), the error map
        tiling = image * (8 * (3 + cin) + 4 * cin + 16 * cout + 8)
    return int(max(batch, tiling) + activations)


def check_memory(info: ModelInfo, report: VerifyReport, settings: VerifySettings) -> bool:
    """Fail ``semantics`` when the tile needs more memory than is available; True if it fits."""
    if info.input_shape is None or info.output_shape is None:
        return True
    available = available_bytes()
    if available is None:
        return True
    needed = needed_bytes(info, settings)
    if needed <= available:
        return True
    tile = "x".join(str(d) for d in info.input_shape[:-1])
    fix = "build a smaller tile, or skip verification with --no-verify"
    report.add(
        NAME,
        FAILED,
        f"needs {needed / GiB:.3g} GiB",
        f"verifying a {tile} tile needs at least {needed / GiB:.3g} GiB of memory (its seeded "
        f"test tiles and test image, before the models' own activations) but "
        f"{available / GiB:.3g} GiB are available: {fix}",
        needed_bytes=needed,
        available_bytes=available,
        fix=fix,
    )
    return False
