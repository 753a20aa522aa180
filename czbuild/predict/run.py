"""``predict_image``: an artifact on an image file → OME-TIFF result (+ probabilities, preview).

The outputs are streamed: every band of stitched tiles (:func:`~czbuild.predict.engine.
stitched_bands`) is cut into the writer's 256 × 256 tiles at once, so neither the image nor the
result is ever whole in memory. Files appear only when complete.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from czbuild.errors import ImageError
from czbuild.files.atomic import atomic_write
from czbuild.formats.reader import read_artifact
from czbuild.formats.runner import open_runner
from czbuild.images import open_image
from czbuild.images.png import encode_png
from czbuild.images.tiff import WRITE_TILE, write_ome_tiff
from czbuild.predict.engine import (
    PREVIEW_SIDE,
    REGRESSION,
    SEGMENTATION,
    Band,
    Feeder,
    ModelPlan,
    class_palette,
    model_plan,
    stitched_bands,
    threaded_writer,
)


@dataclass
class PredictResult:
    """What :func:`predict_image` wrote and saw.

    Attributes:
        out: The label (segmentation) or value (regression) OME-TIFF.
        probabilities: The class-probability OME-TIFF, if asked for.
        preview: The PNG, if asked for.
        plan: The model's tiling plan.
        shape: The image ``[Z, Y, X, C]``.
        tiles: Tiles predicted.
        fractions: Segmentation: share of pixels per class name.
        value_range: Regression: (min, max) of the output.
    """

    out: Path
    probabilities: Path | None
    preview: Path | None
    plan: ModelPlan
    shape: tuple[int, int, int, int]
    tiles: int = 0
    fractions: dict[str, float] = field(default_factory=dict)
    value_range: tuple[float, float] | None = None


def default_out(image: Path, kind: str) -> Path:
    """``cells.czi`` → ``cells.labels.ome.tif`` (regression: ``cells.prediction.ome.tif``)."""
    stem = image.name.split(".")[0]
    return image.with_name(f"{stem}.{'labels' if kind == SEGMENTATION else 'prediction'}.ome.tif")


def predict_image(
    artifact: str | Path,
    image: str | Path,
    out: str | Path | None = None,
    *,
    scene: int | None = None,
    channels: Sequence[int] | None = None,
    input_range: tuple[float, float] | None = None,
    probabilities: bool = False,
    preview: str | Path | None = None,
    threads: int | None = None,
    on_tiles: Callable[[int, int], None] | None = None,
) -> PredictResult:
    """Run ``artifact`` on ``image`` with ZEN's tiling and write the results.

    Raises:
        ArchiveError: The artifact is unreadable.
        ModelError: Its payload does not run or is not a per-pixel model.
        ImageError: The image is unreadable or does not fit the model (names the fix).
    """
    artifact_path, image_path = Path(artifact), Path(image)
    art = read_artifact(artifact_path)
    runner = open_runner(art.model_bytes, threads=threads)
    source = None
    try:
        plan = model_plan(art, runner)
        if probabilities and plan.kind == REGRESSION:
            raise ImageError(
                "--probabilities: a regression model has no class probabilities; its output "
                "already holds the values"
            )
        source = open_image(image_path, scene=scene, channels=channels)
        if len(plan.tile) == 3 and source.shape[0] < plan.tile[0]:
            raise ImageError(
                f"{image_path}: the 3D model takes tiles of {plan.tile[0]} Z planes; the image "
                f"has {source.shape[0]}"
            )
        feed = Feeder(plan, source, input_range)
        target = Path(out) if out is not None else default_out(image_path, plan.kind)
        prob_path = (
            target.with_name(target.name.split(".")[0] + ".probabilities.ome.tif")
            if probabilities
            else None
        )
        outputs = [Path(p).resolve() for p in (target, prob_path, preview) if p is not None]
        for p in outputs:
            if p == image_path.resolve() or outputs.count(p) > 1:
                raise ImageError(f"{p}: an output would overwrite the image or another output")
        result = PredictResult(
            target, prob_path, Path(preview) if preview else None, plan, source.shape
        )
        z, h, w, _ = source.shape
        plane = z // 2
        shot = _Preview(h, w, plane) if preview else None

        def counting(done: int, total: int) -> None:
            result.tiles = done
            if on_tiles is not None:
                on_tiles(done, total)

        bands = stitched_bands(
            runner,
            plan,
            source,
            feed,
            on_tiles=counting,
            keep_input_plane=plane if shot else None,
        )
        _write(bands, plan, (z, h, w), target, prob_path, result, shot)
        if shot is not None and result.preview is not None:
            atomic_write(result.preview, shot.png(plan))
        return result
    finally:
        runner.close()
        if source is not None:
            source.close()


def _write(
    bands: Iterator[Band],
    plan: ModelPlan,
    size: tuple[int, int, int],
    target: Path,
    prob_path: Path | None,
    result: PredictResult,
    shot: _Preview | None,
) -> None:
    z, h, w = size
    n = plan.outputs
    dtype: np.dtype
    if plan.kind == SEGMENTATION:
        shape: tuple[int, ...] = (z, h, w)
        axes, dtype = "ZYX", np.dtype(np.uint8 if n <= 256 else np.uint16)
    else:
        shape = (z, h, w) if n == 1 else (z, h, w, n)
        axes, dtype = ("ZYX" if n == 1 else "ZYXS"), np.dtype("float32")
    put, finish = threaded_writer(
        lambda tiles: write_ome_tiff(target, tiles, shape=shape, dtype=dtype, axes=axes)
    )
    put_p = finish_p = None
    if prob_path is not None:
        put_p, finish_p = threaded_writer(
            lambda tiles: write_ome_tiff(
                prob_path,
                tiles,
                shape=(z, h, w, n),
                dtype=np.float32,
                axes="ZYXS",
                channel_names=plan.classes,
            )
        )
    counts = np.zeros(max(n, 1), np.int64)
    low, high = math.inf, -math.inf
    ok = False
    try:
        for rows in _rows(bands, shot):
            # rows: [rows, W, N] of one plane, in writing order
            if plan.kind == SEGMENTATION:
                labels = np.argmax(rows, axis=-1).astype(dtype)
                counts += np.bincount(labels.ravel(), minlength=len(counts))[: len(counts)]
                main = labels
            else:
                main = rows[..., 0] if n == 1 else rows
                low, high = min(low, float(rows.min())), max(high, float(rows.max()))
            for x in range(0, w, WRITE_TILE):
                put(main[:, x : x + WRITE_TILE])
                if put_p is not None:
                    put_p(rows[:, x : x + WRITE_TILE])
        ok = True
    finally:
        # a failure aborts the writers: their temporary files go, no partial output appears
        first_error: BaseException | None = None
        for f in [finish] + ([finish_p] if finish_p is not None else []):
            try:
                f(not ok)
            except BaseException as exc:
                first_error = first_error or exc
        if ok and first_error is not None:
            raise first_error
    if plan.kind == SEGMENTATION:
        total = max(int(counts.sum()), 1)
        names = plan.classes or tuple(f"class {i}" for i in range(n))
        result.fractions = {names[i]: float(counts[i]) / total for i in range(n)}
    else:
        result.value_range = (low, high)


def _rows(bands: Iterator[Band], shot: _Preview | None) -> Iterator[np.ndarray]:
    """Regroup bands into groups of :data:`WRITE_TILE` rows of one plane, in page order.

    2D (one plane per band): rows leave as soon as a group is complete. 3D bands span several
    planes: a tile depth of planes is gathered before its pages are written.
    """
    pending: list[Band] = []

    def flush(final_rows_only: bool) -> Iterator[np.ndarray]:
        nonlocal pending
        if not pending:
            return
        data = np.concatenate([b.data for b in pending], axis=1)
        depth, rows = data.shape[:2]
        if final_rows_only:  # one plane, emit complete groups only
            full = rows - rows % WRITE_TILE
            for r in range(0, full, WRITE_TILE):
                yield data[0, r : r + WRITE_TILE]
            rest = data[:, full:]
            pending = [Band(pending[0].z0, pending[0].y0 + full, rest)] if rest.shape[1] else []
            return
        for k in range(depth):
            for r in range(0, rows, WRITE_TILE):
                yield data[k, r : r + WRITE_TILE]
        pending = []

    z0 = None
    for band in bands:
        if shot is not None:
            shot.add(band)
        if band.z0 != z0:
            yield from flush(False)
            z0 = band.z0
        pending.append(band)
        if band.data.shape[0] == 1:
            yield from flush(True)
    yield from flush(False)


class _Preview:
    """A subsampled picture of one plane: input grey with the classes over it.

    Classes in ZEN's colours (class n: colour n), except the first (usually the background);
    regression: input and output side by side.
    """

    def __init__(self, h: int, w: int, plane: int) -> None:
        self.step = max(1, math.ceil(max(h, w) / PREVIEW_SIDE))
        self.plane = plane
        self.inputs: list[np.ndarray] = []
        self.outputs: list[np.ndarray] = []

    def add(self, band: Band) -> None:
        k = self.plane - band.z0
        if not 0 <= k < band.data.shape[0] or band.source is None:
            return
        first = (-band.y0) % self.step
        self.outputs.append(band.data[k, first :: self.step, :: self.step])
        self.inputs.append(band.source[first :: self.step, :: self.step])

    def png(self, plan: ModelPlan) -> bytes:
        x = np.concatenate(self.inputs, axis=0)
        y = np.concatenate(self.outputs, axis=0)
        grey = x[..., :3].mean(axis=-1) if x.shape[-1] >= 3 else x[..., 0]
        lo, hi = np.percentile(grey, [0.5, 99.5]) if grey.size else (0.0, 1.0)
        grey = np.clip((grey - lo) / max(hi - lo, 1e-12), 0, 1)
        base = np.repeat(grey[..., None] * 255.0, 3, axis=-1)
        if plan.kind == SEGMENTATION:
            colours = class_palette(plan).astype(np.float64)
            labels = np.argmax(y, axis=-1)
            tint = colours[np.clip(labels, 0, len(colours) - 1)]
            # the first class (usually the background) stays untinted, so the image shows
            alpha = np.where(labels[..., None] > 0, 0.45, 0.0)
            picture = (1 - alpha) * base + alpha * tint
        else:
            value = np.clip(y[..., 0], 0, 1) * 255.0
            picture = np.concatenate([base, np.repeat(value[..., None], 3, axis=-1)], axis=1)
        return encode_png(np.clip(np.round(picture), 0, 255).astype(np.uint8))
