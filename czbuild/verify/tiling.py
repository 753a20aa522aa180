"""The tiling checks: does ZEN's tiled inference reproduce the whole-image prediction?

* ``tiling.seams``: a synthetic image of 3 × 3 tiles is cut into tiles of the model's input
  size with the declared overlap (``MinOverlap``; legacy ``2 × BorderSize``; 0 if none is
  declared), each tile is predicted by the packaged model, the centre regions are stitched
  (:mod:`czbuild.verify.tiles`), and the result is compared with the source model run once on
  the whole image. Figure: the maximum seam error; fails above the tolerance.
* ``tiling.receptive_field``: the empirically measured receptive radius
  (:mod:`czbuild.verify.receptive`); a warning when the declared overlap is below
  ``2 × radius`` (the seam error is what decides).
* ``tiling.min_overlap``: the smallest even overlap whose seam error stays within the
  tolerance, found by a guided search, so a recipe author can pick ``MinOverlap`` from evidence.

Per-tile statistics (``per_image_standardization``, ``percentile_normalization``,
``min_max_normalization``) make the output depend on the tiling itself, which no overlap can
fix. For such chains both the tiles and the whole image are
standardised with the *whole image's* statistics (running the source model for the tiles
too), so the checks measure the model's border effects only; when the real per-tile
statistics change the tiled output by more than the tolerance, ``tiling.seams`` is a
``warning`` with that figure (visible tile boundaries in ZEN that no overlap fixes).

3D volumes (``[Z, H, W, C]``) are tiled in z, y and x alike: the test volume holds
:func:`tiles_per_side` (2) tiles per axis, so every axis has seams; tiles are predicted at
most :data:`~czbuild.verify.tiles.MAX_BATCH_3D` at a time, the receptive-field probe runs
its base and probe volumes one per call, and neither is larger than the test volume; in
bounded mode each axis of a 3D tile is capped at half of ``max_tile`` (:func:`proxy_tiles`).

Bounded mode (what builds use): ``max_tile`` replaces a large tile by a *proxy tile* — the
largest size up to ``max_tile`` that equals the artifact's tile modulo :data:`PROXY_MODULUS`
(so every tile start keeps its alignment with down-sampling by up to 128) — and predicts the
proxy tiles with the reference (the packaged model only runs at its own tile size; fidelity
ties it to the reference). ``analysis`` decides whether the receptive-field probe and the
minimal-overlap search run always, only when ``tiling.seams`` fails, or never.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from czbuild.formats.tiling import kept_ranges
from czbuild.verify import receptive
from czbuild.verify.info import OTHER, ModelInfo
from czbuild.verify.inputs import sample_image
from czbuild.verify.report import FAILED, PASSED, SKIPPED, WARNING, VerifyReport
from czbuild.verify.settings import ALWAYS, NEVER, ON_FAILURE, PROXY_MODULUS
from czbuild.verify.source import SourceChain, freeze_statistics
from czbuild.verify.tiles import (
    MAX_TILES,
    TiledRun,
    error_map,
    needed_overlap,
    run_tiled,
    tile_count,
)

SEAMS = "tiling.seams"
FIELD = "tiling.receptive_field"
MIN_OVERLAP = "tiling.min_overlap"
NAMES = (SEAMS, FIELD, MIN_OVERLAP)
TILES_PER_SIDE = 3
#: Tiles per axis of the 3D test volume (2 x 2 x 2 tiles: seams in z, y and x).
TILES_PER_SIDE_3D = 2
#: At most this many tiled simulations while searching for the minimal overlap.
SEARCH_BUDGET = 12

Predict = Callable[[np.ndarray], np.ndarray]


def skip_all(report: VerifyReport, reason: str, names: tuple[str, ...] = NAMES) -> None:
    """Add the tiling checks as skipped with ``reason``."""
    for name in names:
        report.add(name, SKIPPED, None, reason)


def tiles_per_side(rank: int) -> int:
    """Tiles per axis of the synthetic test image: 3 for 2D, 2 for 3D volumes."""
    return TILES_PER_SIDE if rank == 2 else TILES_PER_SIDE_3D


def seam_image_size(tile: tuple[int, ...], overlap: tuple[int, ...]) -> tuple[int, ...]:
    """The synthetic test image (3D: volume) of the seam check.

    2D: the image ZEN cuts into exactly :data:`TILES_PER_SIDE` (3) tiles per axis at the
    declared overlap, ``tile + 2 * (tile - overlap)``: every tile boundary is a seam between
    two tiles at the declared overlap, at the smallest image that has seams on both sides of a
    tile (``3 * tile`` at overlap 96 and tile 256 cut 5 x 5 tiles, 2.8 times the pixels). The
    minimal-overlap search still sees a smaller overlap: the first two tiles of an axis are
    then that overlap apart. 3D: ``2 * tile`` per axis (with two tiles per axis the image must
    be larger than the declared overlap requires, or a smaller overlap could never show).
    """
    n = tiles_per_side(len(tile))
    if len(tile) == 3:
        return tuple(n * int(t) for t in tile)
    return tuple(int(t) + (n - 1) * (int(t) - int(o)) for t, o in zip(tile, overlap))


def proxy_tile(tile: int, overlap: int, max_tile: int | None) -> int:
    """The tile size the seam check simulates for an artifact tile of ``tile`` pixels.

    ``tile`` itself when ``max_tile`` is None/0 or not exceeded; else the largest size up to
    ``max_tile`` congruent to ``tile`` modulo :data:`PROXY_MODULUS`, raised by the modulus
    until it exceeds ``overlap`` (never above ``tile``).
    """
    if not max_tile or tile <= max_tile:
        return tile
    steps = -(-(tile - max_tile) // PROXY_MODULUS)
    size = tile - steps * PROXY_MODULUS
    while size <= overlap or size < 1:
        size += PROXY_MODULUS
    return min(size, tile)


def proxy_tiles(
    tile: tuple[int, ...], overlap: tuple[int, ...], max_tile: int | None
) -> tuple[int, ...]:
    """The simulated tile per axis (:func:`proxy_tile`).

    A 3D tile caps each axis at half of ``max_tile``: a volume grows with the cube of its
    side, and the whole test volume (8 tiles) goes through the reference in one call.
    """
    if max_tile and len(tile) == 3:
        max_tile = max(1, max_tile // 2)
    return tuple(proxy_tile(int(t), int(o), max_tile) for t, o in zip(tile, overlap))


def check_tiling(
    runner: Predict,
    reference: SourceChain | None,
    info: ModelInfo,
    report: VerifyReport,
    *,
    tolerance: float,
    seed: int,
    reference_tiles: bool = False,
    analysis: str = ALWAYS,
    max_tile: int | None = None,
) -> dict[str, Any]:
    """Add the three tiling checks.

    Args:
        runner: The packaged model.
        reference: Source model + chains, or None (then only the receptive field is measured,
            on the packaged model at its tile size).
        info: Shapes, overlap and input range.
        report: Receives the checks.
        tolerance: Maximum absolute seam error.
        seed: Seed of the synthetic image and the probes.
        reference_tiles: Predict the tiles with the reference instead of the packaged model
            (used when fidelity failed, so the seams measure border effects only).
        analysis: :data:`ALWAYS`, :data:`ON_FAILURE` (only when ``tiling.seams`` failed) or
            :data:`NEVER`: when to probe the receptive field and search the minimal overlap.
        max_tile: Simulate a proxy tile (:func:`proxy_tile`) for larger tiles; None: never.

    Returns:
        Arrays for report pictures: ``input``, ``output``, ``seam_error``, ``cuts``.
    """
    if info.kind == OTHER:
        skip_all(report, f"Type {info.type}: the output is not an image, nothing is tiled")
        return {}
    assert info.input_shape is not None
    artifact_tile = tuple(int(d) for d in info.input_shape[:-1])
    rank, channels = len(artifact_tile), int(info.input_shape[-1])
    if rank not in (2, 3):
        skip_all(report, f"input shape {list(info.input_shape)}: not a 2D image or 3D volume")
        return {}
    declared = info.overlap is not None
    overlap = tuple(int(o) for o in info.overlap) if info.overlap is not None else (0,) * rank
    if len(overlap) != rank or any(o >= t for o, t in zip(overlap, artifact_tile)):
        report.add(
            SEAMS,
            FAILED,
            f"overlap {list(overlap)}",
            f"the overlap {list(overlap)} is not smaller than the tile {list(artifact_tile)}: "
            "ZEN cannot tile with it",
        )
        skip_all(report, "the declared overlap is not smaller than the tile", (FIELD, MIN_OVERLAP))
        return {}
    if reference is None:
        reason = (
            "no source model: verify with a recipe (--recipe) or a source model to "
            "compare tiled inference with the whole-image prediction"
        )
        skip_all(report, reason, (SEAMS,))
        _field_on_packaged(runner, info, report, overlap, seed)
        skip_all(report, reason, (MIN_OVERLAP,))
        return {}
    tile = proxy_tiles(artifact_tile, overlap, max_tile)
    proxy = tile != artifact_tile
    size = seam_image_size(tile, overlap)
    image = sample_image(info, (*size, channels), seed)
    chain = freeze_statistics(reference.preprocessing, image)
    try:
        whole = reference.predict(image, preprocessing=chain)[0]
    except Exception as exc:
        skip_all(
            report,
            f"the source model cannot predict the whole {_dims(size)} "
            f"{'image' if rank == 2 else 'volume'} ({type(exc).__name__}: {str(exc)[:200]}); "
            "not fully convolutional?",
        )
        return {}
    dependent = reference.tiling_dependent
    use_reference = dependent or reference_tiles or proxy
    tile_predict: Predict = (
        (lambda t: reference.predict(t, preprocessing=chain)) if use_reference else runner
    )
    runs: dict[int, float] = {}

    def seam_error(o: int) -> float:
        if o not in runs:
            runs[o] = float(
                error_map(run_tiled(tile_predict, image, tile, (o,) * rank).output, whole).max()
            )
        return runs[o]

    run = run_tiled(tile_predict, image, tile, overlap)
    err = error_map(run.output, whole)
    if len(set(overlap)) == 1:
        runs[overlap[0]] = float(err.max())
    per_tile: Predict = reference.predict if (reference_tiles or proxy) else runner
    _seams(
        report,
        run,
        err,
        whole,
        overlap,
        declared,
        dependent,
        per_tile,
        image,
        tolerance,
        reference_tiles,
        artifact_tile if proxy else None,
    )
    shown = run.output
    if use_reference and not proxy:
        shown = run_tiled(runner, image, tile, overlap).output
    images = _pictures(image[0], shown, err, run, size)
    del shown
    seams = report.get(SEAMS)
    if analysis == NEVER or (
        analysis == ON_FAILURE and seams is not None and seams.status != FAILED
    ):
        skip_all(
            report,
            "overlap analysis not requested (it runs when tiling.seams fails; "
            "`czbuild verify` or the recipe's verify.overlap_analysis: true run it always)",
            (FIELD, MIN_OVERLAP),
        )
        return images
    # radii up to a tile (every overlap below the tile size), at most PROBE_MAX_SIDE px a side;
    # never larger than the test image (3D: the test volume is 2 tiles a side)
    probe = tuple(min(2 * t, receptive.PROBE_MAX_SIDE) for t in tile)
    field = receptive.measure(
        lambda x: reference.predict(x, preprocessing=chain),
        (*probe, channels),
        info.input_range,
        seed=seed + 7,
    )
    _field(report, field, overlap, f"source model ({_dims(probe)} probe)")
    if field.bounded:
        found = _min_overlap(
            report, tile_predict, image, whole, tile, overlap, tolerance, seam_error, field
        )
    else:  # global context: no overlap can help, so no search (time) is spent on one
        found = None
        report.add(
            MIN_OVERLAP,
            WARNING,
            "none",
            f"not searched: a one-pixel change reaches the whole {_dims(field.size)} probe "
            "(global context), so no overlap removes the seams",
            declared=list(overlap),
            tolerance=tolerance,
        )
    _global_context(report, field, found, tile, artifact_tile, size)
    return images


def _dims(size: tuple[int, ...]) -> str:
    return "x".join(str(int(d)) for d in size)


def _pictures(
    image: np.ndarray, output: np.ndarray, err: np.ndarray, run: TiledRun, size: tuple[int, ...]
) -> dict[str, Any]:
    """Arrays for the report pictures; of a 3D volume the z slice with the largest seam error."""
    if len(size) == 3:
        z = int(np.argmax(err.reshape(err.shape[0], -1).max(axis=1)))
        image, output, err = image[z], output[z], err[z]
    return {"input": image, "output": output, "seam_error": err, "cuts": _cuts(run, size)}


def largest_overlap(size: tuple[int, ...], tile: tuple[int, ...]) -> int:
    """The largest even overlap below the tile whose layout stays within :data:`MAX_TILES`."""
    limit = min(tile) - 1
    limit -= limit % 2
    while limit > 0 and tile_count(size, tile, (limit,) * len(tile)) > MAX_TILES:
        limit -= 2
    return limit


def _global_context(
    report: VerifyReport,
    field: receptive.ReceptiveField,
    found: int | None,
    tile: tuple[int, ...],
    artifact_tile: tuple[int, ...],
    size: tuple[int, ...],
) -> None:
    """Amend a failed ``tiling.seams`` when no overlap can fix it: one clear finding.

    That is when the receptive field reaches past the probe (global pooling, image-level
    context) or needs more overlap than any layout simulated here allows, and the search
    found no overlap. The finding names the receptive field, the tile that would hold it
    with at most half the tile as overlap, and how to accept the seams by name.
    """
    seams = report.get(SEAMS)
    if seams is None or seams.status != FAILED or found is not None:
        return
    limit = largest_overlap(size, tile)
    need = max(field.overlap)
    if field.bounded and need <= limit:
        return  # a local model whose overlap search ran out of budget: no claim to make
    at_least = "" if field.bounded else " (a one-pixel change reaches the whole probe)"
    grain = 64
    tile_needed = -(-max(2 * need, max(artifact_tile) + grain) // grain) * grain
    finding = (
        f"receptive field >= {need} px{at_least}: tiles will show seams whatever the overlap; "
        f"raise the tile to >= {tile_needed}, or accept it by name with "
        f"verify.accept: [{SEAMS}]"
    )
    seams.message = f"{seams.message}; {finding}"
    seams.details.update(
        receptive_field_px=need,
        receptive_field_bounded=field.bounded,
        largest_simulated_overlap=limit,
        tile_needed=tile_needed,
        fix=finding,
    )


def _seams(
    report: VerifyReport,
    run: TiledRun,
    err: np.ndarray,
    whole: np.ndarray,
    overlap: tuple[int, ...],
    declared: bool,
    dependent: bool,
    runner: Predict,
    image: np.ndarray,
    tolerance: float,
    reference_tiles: bool,
    artifact_tile: tuple[int, ...] | None = None,
) -> None:
    seam = float(err.max())
    where = np.unravel_index(int(np.argmax(err)), err.shape)
    unit = "pixel" if err.ndim == 2 else "voxel"
    details: dict[str, Any] = {
        "max_seam_error": seam,
        "overlap": list(overlap),
        "overlap_declared": declared,
        "tolerance": tolerance,
        "image_size": list(err.shape),
        "tiles": run.count,
        **({"tile_starts_z": run.starts[0]} if err.ndim == 3 else {}),
        "tile_starts_y": run.ys,
        "tile_starts_x": run.xs,
        "max_at": [int(w) for w in where],
        "pixels_over_tolerance": int(np.count_nonzero(err > tolerance)),
        "tiling_dependent_preprocessing": dependent,
        "tiles_predicted_by": (
            "reference" if dependent or reference_tiles or artifact_tile else "packaged model"
        ),
    }
    note = "" if declared else " (no overlap declared: simulated with 0)"
    if artifact_tile is not None:
        tile = list(run.tile)
        details["proxy_tile"] = tile
        details["artifact_tile"] = list(artifact_tile)
        note += (
            f"; simulated on proxy tiles {tile} (the artifact's {list(artifact_tile)} "
            f"modulo {PROXY_MODULUS}, bounded for builds) predicted with the source model, "
            "which fidelity ties to the artifact"
        )
    if reference_tiles and not dependent:
        note += (
            "; fidelity failed, so the tiles were predicted with the source model to "
            "measure border effects alone"
        )
    effect = None
    if dependent:
        # The real per-tile statistics: the packaged model (or, when it cannot run these
        # tiles or failed fidelity, the reference with its unfrozen chain) on every tile.
        tiled = run_tiled(runner, image, run.tile, overlap)
        effect = float(error_map(tiled.output, whole).max())
        details["per_tile_statistics_effect"] = effect
        details["per_tile_statistics_predicted_by"] = (
            "reference" if reference_tiles or artifact_tile is not None else "packaged model"
        )
        note += (
            f"; per-tile preprocessing measured with whole-image statistics (per-tile "
            f"statistics change the output by up to {effect:.3g}, which no overlap fixes)"
        )
    figure = f"max seam error {seam:.2g}"
    if seam > tolerance:
        report.add(
            SEAMS,
            FAILED,
            figure,
            f"tiled inference with overlap {list(overlap)} differs from the whole-image "
            f"prediction by up to {seam:.3g} (> {tolerance:g}) at {unit} "
            f"{list(details['max_at'])}: overlap too small for the model's border "
            f"effects{note}",
            **details,
        )
    elif effect is not None and effect > tolerance:
        report.add(
            SEAMS,
            WARNING,
            f"per-tile statistics {effect:.2g}",
            f"per-tile statistics (per-image normalisation in the preprocessing) change the tiled "
            f"output by up to {effect:.3g} (> {tolerance:g}) against whole-image "
            f"statistics: ZEN shows tile boundaries, and no overlap fixes that "
            f"(border effects alone: max seam error {seam:.2g} with overlap "
            f"{list(overlap)}){note}",
            **details,
        )
    else:
        report.add(
            SEAMS,
            PASSED,
            figure,
            f"{run.count} tiles with overlap {list(overlap)} stitch to the whole-image "
            f"prediction within {tolerance:g}{note}",
            **details,
        )


def _field(
    report: VerifyReport, field: receptive.ReceptiveField, overlap: tuple[int, ...], method: str
) -> None:
    bound = "" if field.bounded else ">= "
    figure = f"radius {bound}{max(field.radius)} px"
    details = {
        "radius": list(field.radius),
        "bounded": field.bounded,
        "probe_size": list(field.size),
        "method": method,
        "overlap": list(overlap),
        "overlap_for_radius": list(field.overlap),
        "threshold": receptive.THRESHOLD,
    }
    if not field.bounded:
        report.add(
            FIELD,
            WARNING,
            figure,
            f"a one-pixel change reaches the border of the {_dims(field.size)} probe "
            f"({method}): the model is not local at this scale "
            "(global pooling, per-tile statistics or a very deep network)",
            **details,
        )
    elif any(o < f for o, f in zip(overlap, field.overlap)):
        report.add(
            FIELD,
            WARNING,
            figure,
            f"overlap {list(overlap)} is below 2 x receptive radius "
            f"(= {list(field.overlap)}): border effects can reach the stitched output "
            "(tiling.seams measures by how much)",
            **details,
        )
    else:
        report.add(
            FIELD,
            PASSED,
            figure,
            f"overlap {list(overlap)} covers 2 x receptive radius "
            f"(= {list(field.overlap)}) ({method})",
            **details,
        )


def _field_on_packaged(
    runner: Predict, info: ModelInfo, report: VerifyReport, overlap: tuple[int, ...], seed: int
) -> None:
    assert info.input_shape is not None
    try:
        field = receptive.measure(
            runner,
            tuple(info.input_shape),
            info.input_range,
            seed=seed + 7,
        )
    except Exception as exc:
        report.add(FIELD, SKIPPED, None, f"could not probe the packaged model: {exc}")
        return
    _field(report, field, overlap, "packaged model (one-tile probe)")


def _min_overlap(
    report: VerifyReport,
    tile_predict: Predict,
    image: np.ndarray,
    whole: np.ndarray,
    tile: tuple[int, ...],
    overlap: tuple[int, ...],
    tolerance: float,
    seam_error: Callable[[int], float],
    field: receptive.ReceptiveField,
) -> int | None:
    """Add ``tiling.min_overlap``; returns the overlap found (None: none works)."""
    rank = len(tile)
    limit = largest_overlap(tuple(whole.shape[:-1]), tile)
    first = run_tiled(tile_predict, image, tile, (0,) * rank, reference=whole, tolerance=tolerance)
    candidate = needed_overlap(first)
    found, tried = search(seam_error, candidate, limit, tolerance)
    details = {
        "candidate": candidate,
        "tried": {str(k): v for k, v in sorted(tried.items())},
        "declared": list(overlap),
        "tolerance": tolerance,
        "largest_possible": limit,
    }
    if found is None:
        report.add(
            MIN_OVERLAP,
            WARNING,
            "none",
            f"no even overlap up to {limit} px (the largest whose layout stays within "
            f"{MAX_TILES} tiles) keeps the seam error within {tolerance:g}: the model is not "
            "tiling-invariant (misaligned pooling, global operations or a receptive field "
            "larger than the tile)",
            **details,
        )
        return None
    verdict = "enough" if min(overlap) >= found else "too small"
    note = ""
    if field.bounded and found > max(field.overlap):
        note = (
            f"; more than 2 x receptive radius ({max(field.overlap)} px) because the tile "
            "stride must stay aligned with the model's downsampling"
        )
    elif field.bounded and found < max(field.overlap):
        note = (
            f"; less than 2 x receptive radius ({max(field.overlap)} px): the outermost "
            "border effects are below the tolerance"
        )
    report.add(
        MIN_OVERLAP,
        PASSED,
        f"{found} px",
        f"smallest overlap keeping the seam error within {tolerance:g}: {found} px "
        f"(MinOverlap {[found] * rank}, legacy BorderSize {found // 2}); the declared "
        f"{list(overlap)} is {verdict}{note}",
        minimal_overlap=found,
        **details,
    )
    return found


def search(
    seam_error: Callable[[int], float],
    candidate: int | None,
    limit: int,
    tolerance: float,
    budget: int = SEARCH_BUDGET,
) -> tuple[int | None, dict[int, float]]:
    """Smallest even overlap in ``[0, limit]`` with ``seam_error(o) <= tolerance``.

    Starts at ``candidate`` (from the border-depth analysis; ``limit`` when None), walks down
    while the error stays within tolerance and up while it does not, within ``budget``
    simulations.

    Returns:
        The overlap (or None) and every ``{overlap: seam error}`` tried.
    """
    tried: dict[int, float] = {}

    def ok(o: int) -> bool:
        tried[o] = seam_error(o)
        return tried[o] <= tolerance

    start = limit if candidate is None else min(max(candidate, 0), limit)
    start -= start % 2
    if ok(start):
        found = start
        while found - 2 >= 0 and len(tried) < budget and ok(found - 2):
            found -= 2
        return found, tried
    o = start
    while o + 2 <= limit and len(tried) < budget:
        o += 2
        if ok(o):
            return o, tried
    return None, tried


def _cuts(run: TiledRun, size: tuple[int, ...]) -> tuple[list[int], list[int]]:
    """Cut positions along y and x (the last two axes) for the seam picture."""
    th, tw = run.tile[-2:]
    ycuts = [lo for lo, _ in kept_ranges(run.ys, th, size[-2])][1:]
    xcuts = [lo for lo, _ in kept_ranges(run.xs, tw, size[-1])][1:]
    return ycuts, xcuts
