"""What a trained model tells about itself: run it and look (``czbuild init --from``).

Everything here is measured on the model's outputs, framework-neutral: the model is loaded
through the verifier's reference (:func:`czbuild.verify.source.load_source`, which goes
through :mod:`czbuild.sources.dispatch` for ONNX and PyTorch sources) and run on seeded
images, so a Keras file, a SavedModel and an ONNX export of the same network give the same
answers.

* **Layout** (ONNX): channels-last or channels-first, from which reading of the input dims
  loads (both load when every dim is fixed: the smaller one is the channel axis).
* **Head**: on seeded images in ZEN's input range [0, 1] and on wide-range ones
  (:data:`WIDE_RANGE`), per-pixel scores that stay in [0, 1] and sum to 1 over >= 2 channels
  are a softmax; scores that stay in [0, 1] otherwise are sigmoids; anything else is a
  linear (or other unbounded) head. A linear head trained on [0, 1] targets still leaves
  [0, 1] on the wide-range images, which is why they are used.
* **Down-sampling factor**: the model runs at ``BASE`` px (3D: ``BASE_3D`` voxels a side);
  the smallest ``f`` (a power of two) for which it also runs at ``BASE + f`` with an output
  of the input's size is the factor every tile must be a multiple of.
* **Receptive field**: :func:`czbuild.verify.receptive.measure` (the one probe the tiling
  checks use, 2D and 3D), on ever larger probes until it is bounded; ``2 × radius`` rounded
  up to the factor is the overlap.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from czbuild.errors import ModelError

__all__ = ["HEADS", "ModelFacts", "probe_model"]

#: The head kinds: what the output activation looks like.
HEADS = ("softmax", "sigmoid", "linear")
#: Side of the square the model is first run at (a multiple of every factor up to it).
BASE = 256
#: The same for 3D models (each of z, h, w); also the largest 3D factor looked for.
BASE_3D = 32
#: The largest side of a 3D receptive-field probe (voxels; a 128^3 volume per call).
PROBE_MAX_SIDE_3D = 128
#: Inputs in this range (besides ZEN's [0, 1]) tell a linear head from a bounded one.
WIDE_RANGE = (-50.0, 50.0)
#: Scores within this of [0, 1] and of a sum of 1 count as probabilities (float32 rounding).
PROB_TOLERANCE = 1e-3
SEED = 0

Dims = tuple[int | None, ...]


@dataclass(frozen=True)
class ModelFacts:
    """What :func:`probe_model` found.

    Attributes:
        path: The model file or SavedModel folder.
        family: ``"keras"`` or ``"onnx"``.
        channels_first: ONNX: the model takes ``[N, C, H, W]`` (None for Keras).
        layout_certain: False when both layouts load and the guess rests on dim sizes.
        input_channels: Input channel count.
        spatial: The declared input spatial dims (None where free).
        output_channels: Output channel count.
        head: One of :data:`HEADS`.
        output_range: ``(min, max)`` of the outputs over all probe images.
        max_sum_error: Largest ``|sum over channels - 1|`` seen (softmax evidence).
        factor: Tiles must be multiples of this (None: the model runs at its fixed size only).
        radius: Receptive radius ``(ry, rx)`` (3D ``(rz, ry, rx)``) in px (None: not measured).
        radius_bounded: False when the receptive field reached the largest probe's border.
        probe_side: Side of the probe the radius was measured on.
    """

    path: Path
    family: str
    channels_first: bool | None
    layout_certain: bool
    input_channels: int
    spatial: Dims
    output_channels: int
    head: str
    output_range: tuple[float, float]
    max_sum_error: float
    factor: int | None
    radius: tuple[int, ...] | None
    radius_bounded: bool
    probe_side: int

    @property
    def fixed(self) -> tuple[int, ...] | None:
        """The declared spatial size when every spatial dim is fixed."""
        if all(d is not None for d in self.spatial):
            return tuple(int(d) for d in self.spatial if d is not None)
        return None

    @property
    def overlap(self) -> tuple[int, ...] | None:
        """``2 × radius`` per axis rounded up to a multiple of the down-sampling factor (and
        even), None when not measured.

        The rounding keeps ZEN's tile stride (tile - overlap) on the model's pooling grid: a
        misaligned stride changes what each tile's pooling windows see, and the tiles then
        disagree with the whole image (``tiling.seams``) whatever the receptive field.
        """
        if self.radius is None:
            return None
        step = max(2, self.factor or 2)
        return tuple(_round_up(2 * r, step) for r in self.radius)


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def _family(path: Path) -> str:
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if path.is_dir() or path.suffix.lower() in (".keras", ".h5", ".hdf5"):
        return "keras"
    raise ModelError(
        f"{path}: not a model czbuild init reads; give a .keras or .h5 file, a SavedModel "
        "folder or an .onnx file"
    )


def _load(path: Path, family: str) -> tuple[Any, bool | None, bool]:
    """The reference chain, whether it is channels-first (ONNX) and whether that is certain."""
    from czbuild.sources.kinds import OnnxFile
    from czbuild.verify.source import load_source

    if family == "keras":
        return load_source(os.fspath(path)), None, True
    loaded: dict[bool, Any] = {}
    errors: dict[bool, ModelError] = {}
    for first in (False, True):
        try:
            loaded[first] = load_source(OnnxFile(os.fspath(path), channels_first=first))
        except ModelError as exc:
            errors[first] = exc
    if not loaded:
        raise errors[False]
    if len(loaded) == 1:
        ((first, chain),) = loaded.items()
        return chain, first, True
    # every dim fixed: the channel axis is the smaller of axis 1 and the last one
    last, first_ = (int(loaded[f].model.input_shape[-1]) for f in (False, True))
    choice = first_ < last
    return loaded[choice], choice, False


def _base(rank: int) -> int:
    """The side the model is first run at: :data:`BASE` (2D) or :data:`BASE_3D`."""
    return BASE if rank == 2 else BASE_3D


def _runs_at(chain: Any, size: tuple[int, ...], channels: int) -> bool:
    """Whether the model runs at ``size`` (spatial) with an output of that size."""
    shape = (1, *size, channels)
    x = np.random.default_rng(SEED).uniform(0.0, 1.0, size=shape).astype(np.float32)
    try:
        out = chain.predict(x)
    except Exception:  # the model cannot run there: shape errors from any framework
        return False
    return tuple(out.shape[1:-1]) == tuple(size)


def _factor(chain: Any, channels: int, rank: int, fixed: tuple[int, ...] | None) -> int | None:
    """The down-sampling factor tiles must be a multiple of; None: fixed size only."""
    base = _base(rank)
    if not _runs_at(chain, (base,) * rank, channels):
        if fixed is not None:
            return None
        raise ModelError(
            f"the model does not run at {' x '.join([str(base)] * rank)} px with an output of "
            "that size; czbuild init needs a fully convolutional image-to-image model"
        )
    f = 1
    while f < base and not _runs_at(chain, (base + f,) * rank, channels):
        f *= 2
    return f


def _head(chain: Any, size: tuple[int, ...], channels: int) -> tuple[str, int, float, float, float]:
    """``(head, output channels, min, max, max |sum - 1|)`` on seeded images."""
    rng = np.random.default_rng(SEED)
    shape = (2, *size, channels)
    low, high = WIDE_RANGE
    batches = [
        rng.uniform(0.0, 1.0, size=shape).astype(np.float32),
        rng.uniform(low, high, size=shape).astype(np.float32),
    ]
    lo, hi, sum_error, out_channels = math.inf, -math.inf, 0.0, 0
    for x in batches:
        out = chain.predict(x)
        if not np.all(np.isfinite(out)):
            raise ModelError(
                "the model outputs NaN or infinite values on seeded test images; check that "
                "it loads its trained weights"
            )
        out_channels = int(out.shape[-1])
        lo, hi = min(lo, float(out.min())), max(hi, float(out.max()))
        sum_error = max(sum_error, float(np.max(np.abs(out.sum(axis=-1) - 1.0))))
    bounded = lo >= -PROB_TOLERANCE and hi <= 1.0 + PROB_TOLERANCE
    if bounded and out_channels >= 2 and sum_error <= PROB_TOLERANCE:
        head = "softmax"
    elif bounded:
        head = "sigmoid"
    else:
        head = "linear"
    return head, out_channels, lo, hi, sum_error


def _field(
    chain: Any, channels: int, rank: int, factor: int | None, fixed: tuple[int, ...] | None
) -> tuple[tuple[int, ...], bool, int]:
    """Receptive radius, whether it is bounded, and the probe side it was measured on."""
    from czbuild.verify import receptive

    if factor is None:
        assert fixed is not None
        sizes = [fixed]
    else:
        sizes = []
        side = _base(rank)
        while side <= (receptive.PROBE_MAX_SIDE if rank == 2 else PROBE_MAX_SIDE_3D):
            sizes.append((side,) * rank)
            side *= 2
    field = None
    for size in sizes:
        field = receptive.measure(chain.predict, (*size, channels), (0.0, 1.0), seed=SEED)
        if field.bounded:
            break
    assert field is not None
    return field.radius, field.bounded, int(max(field.size))


def probe_model(path: Path | str) -> ModelFacts:
    """Load the model at ``path`` and measure what a first recipe needs.

    Args:
        path: A ``.keras`` / ``.h5`` file, a SavedModel folder or an ``.onnx`` file.

    Returns:
        The facts; every guess among them is named as such by the recipe writer.

    Raises:
        ModelError: The model cannot be loaded, is not an image-to-image model of one input
            and one output, or gives non-finite outputs (names the file).
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such model file or folder")
    family = _family(path)
    try:
        chain, channels_first, certain = _load(path, family)
        declared = tuple(chain.model.input_shape[1:])
        spatial: Dims = tuple(None if d is None else int(d) for d in declared[:-1])
        if declared[-1] is None:
            raise ModelError("the input's channel count is not fixed")
        channels = int(declared[-1])
        rank = len(spatial)
        if rank not in (2, 3):
            raise ModelError(
                f"input shape {list(declared)}: ZEN models take 2D images or 3D volumes"
            )
        fixed = tuple(int(d) for d in spatial if d is not None) if None not in spatial else None
        factor = _factor(chain, channels, rank, fixed)
        if factor is None:
            assert fixed is not None
            size = fixed
        else:
            size = (_base(rank),) * rank
        head, out_channels, lo, hi, sum_error = _head(chain, size, channels)
        radius, bounded, probe_side = _field(chain, channels, rank, factor, fixed)
    except ModelError as exc:
        text = str(exc)
        raise ModelError(text if text.startswith(str(path)) else f"{path}: {text}") from exc
    return ModelFacts(
        path=path,
        family=family,
        channels_first=channels_first,
        layout_certain=certain,
        input_channels=channels,
        spatial=spatial,
        output_channels=out_channels,
        head=head,
        output_range=(lo, hi),
        max_sum_error=sum_error,
        factor=factor,
        radius=radius,
        radius_bounded=bounded,
        probe_side=probe_side,
    )
