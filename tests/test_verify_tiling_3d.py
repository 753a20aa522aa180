"""Tiling checks on 3D volumes: tiles in z, y and x, seams in all three axes (NumPy only).

The models are NumPy stand-ins (``support.numpy_models``): a 3D box filter whose receptive
radius is known exactly, one that only looks along z, and one with global context.
"""

from __future__ import annotations

import numpy as np

from czbuild.verify import receptive
from czbuild.verify.info import ModelInfo
from czbuild.verify.inputs import sample_image
from czbuild.verify.memory import needed_bytes
from czbuild.verify.report import FAILED, PASSED, SKIPPED, WARNING, VerifyReport
from czbuild.verify.settings import VerifySettings
from czbuild.verify.tiles import MAX_BATCH_3D, error_map, kept_ranges, run_tiled, tile_count
from czbuild.verify.tiling import (
    ALWAYS,
    FIELD,
    MIN_OVERLAP,
    ON_FAILURE,
    SEAMS,
    check_tiling,
    proxy_tiles,
    tiles_per_side,
)
from support.numpy_models import box_filter, global_mean


class Reference:
    """A 'source model' (no op chains) that records the batch shapes it is called with."""

    preprocessing: tuple = ()
    postprocessing: tuple = ()
    tiling_dependent = False

    def __init__(self, predict) -> None:
        self._predict = predict
        self.shapes: list[tuple[int, ...]] = []

    def predict(self, x: np.ndarray, *, preprocessing=None) -> np.ndarray:
        self.shapes.append(tuple(x.shape))
        return self._predict(x)


class Packaged:
    """The packaged model: runs at its own tile only, records its batch sizes."""

    def __init__(self, predict, tile: tuple[int, ...]) -> None:
        self._predict, self.tile, self.batches = predict, tile, []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        assert tuple(x.shape[1:-1]) == self.tile
        self.batches.append(x.shape[0])
        return self._predict(x)


def _info(tile: tuple[int, int, int], overlap: int | None) -> ModelInfo:
    return ModelInfo(
        family="czann",
        version="2.1.0",
        type="Regression",
        input_shape=(*tile, 1),
        output_shape=(*tile, 1),
        overlap=None if overlap is None else (overlap,) * 3,
    )


def _check(predict, tile, overlap, **kwargs):
    report = VerifyReport(path=None)  # type: ignore[arg-type]
    runner, reference = Packaged(predict, tile), Reference(predict)
    arrays = check_tiling(
        runner, reference, _info(tile, overlap), report, tolerance=1e-9, seed=0, **kwargs
    )
    return report, runner, reference, arrays


def test_tiled_volume_needs_twice_the_radius_along_every_axis() -> None:
    image = np.random.default_rng(0).uniform(size=(1, 24, 24, 24, 1))
    for radius in ((2, 0, 0), (0, 2, 0), (0, 0, 2)):
        predict = box_filter(radius)
        whole = predict(image)[0]
        exact = run_tiled(predict, image, (12, 12, 12), (4, 4, 4))
        assert error_map(exact.output, whole).max() < 1e-12
        short = run_tiled(predict, image, (12, 12, 12), (2, 2, 2))
        err = error_map(short.output, whole)
        assert err.max() > 1e-3
        # the seam lies across the axis the filter looks along, and nowhere else
        axis = radius.index(2)
        profile = err.max(axis=tuple(a for a in range(3) if a != axis))
        assert np.count_nonzero(profile > 1e-9) <= 4, profile
        assert len(short.starts) == 3 and short.count == 27


def test_3d_batches_hold_at_most_two_tiles() -> None:
    batches: list[int] = []

    def predict(x: np.ndarray) -> np.ndarray:
        batches.append(x.shape[0])
        return x

    run_tiled(predict, np.zeros((1, 16, 16, 16, 1)), (8, 8, 8), (2, 2, 2))
    assert max(batches) <= MAX_BATCH_3D and sum(batches) == tile_count(
        (16,) * 3, (8,) * 3, (2,) * 3
    )


def test_receptive_field_in_3d() -> None:
    field = receptive.measure(box_filter((1, 2, 3)), (16, 16, 16, 1), (0.0, 1.0), seed=0)
    assert field.bounded and field.radius == (1, 2, 3) and field.overlap == (2, 4, 6)
    unbounded = receptive.measure(global_mean, (8, 8, 8, 1), (0.0, 1.0), seed=0)
    assert not unbounded.bounded


def test_sample_volume_is_seeded_and_in_range() -> None:
    info = _info((8, 8, 8), None)
    a = sample_image(info, (12, 20, 16, 2), 3)
    assert a.shape == (1, 12, 20, 16, 2) and a.dtype == np.float32
    assert np.array_equal(a, sample_image(info, (12, 20, 16, 2), 3))
    assert a.min() >= 0.0 and a.max() <= 1.0 and a.std() > 0.05


def test_a_plain_3d_conv_net_passes_with_enough_overlap() -> None:
    tile = (8, 12, 12)
    report, runner, reference, arrays = _check(box_filter(2), tile, 4, analysis=ALWAYS)
    seams = report.get(SEAMS)
    assert seams.status == PASSED, seams.message
    assert seams.details["tiles_predicted_by"] == "packaged model"
    assert len(seams.details["tile_starts_z"]) >= tiles_per_side(3)
    assert len(seams.details["max_at"]) == 3
    assert report.get(FIELD).status == PASSED
    assert report.get(FIELD).details["radius"] == [2, 2, 2]
    assert report.get(MIN_OVERLAP).details["minimal_overlap"] == 4
    # never more than two tile-sized sets through the packaged model at once; the whole
    # volume (2 tiles a side) and the probes are the largest inputs of the reference
    assert max(runner.batches) <= 2
    volume = tuple(tiles_per_side(3) * t for t in tile)
    assert max(s[0] * int(np.prod(s[1:-1])) for s in reference.shapes) == int(np.prod(volume))
    assert arrays["seam_error"].shape == volume[1:]  # a z slice for the report picture


def test_a_too_small_3d_overlap_fails_and_the_search_finds_it() -> None:
    report, *_ = _check(box_filter(2), (8, 12, 12), 2, analysis=ON_FAILURE)
    seams = report.get(SEAMS)
    assert seams.status == FAILED and "voxel" in seams.message
    assert report.get(FIELD).status == WARNING
    found = report.get(MIN_OVERLAP)
    assert found.details["minimal_overlap"] == 4 and "too small" in found.message
    assert "MinOverlap [4, 4, 4]" in found.message


def test_only_z_border_effects_fail_in_z() -> None:
    report, *_ = _check(box_filter((2, 0, 0)), (8, 12, 12), 2, analysis=ON_FAILURE)
    seams = report.get(SEAMS)
    assert seams.status == FAILED
    z = seams.details["max_at"][0]
    cuts = [lo for lo, _ in kept_ranges(seams.details["tile_starts_z"], 8, 16)][1:]
    assert min(abs(z - c) for c in cuts) <= 2, (z, cuts)  # next to a cut across z
    assert report.get(FIELD).details["radius"] == [2, 0, 0]


def test_global_context_in_3d_fails_with_the_finding() -> None:
    report, *_ = _check(global_mean, (8, 8, 8), 4, analysis=ON_FAILURE)
    seams = report.get(SEAMS)
    assert seams.status == FAILED
    assert "whatever the overlap" in seams.message and "verify.accept" in seams.message
    assert report.get(FIELD).status == WARNING and not report.get(FIELD).details["bounded"]
    assert report.get(MIN_OVERLAP).status == WARNING


def test_large_3d_tiles_run_on_a_proxy_volume_with_the_reference() -> None:
    tile = (8, 160, 160)
    report, runner, reference, _ = _check(box_filter(1), tile, 2, max_tile=64)
    seams = report.get(SEAMS)
    assert seams.status == PASSED, seams.message
    assert seams.details["proxy_tile"] == [8, 32, 32]
    assert seams.details["artifact_tile"] == list(tile)
    assert runner.batches == []  # the packaged model only runs at its own tile
    assert max(int(np.prod(s[1:-1])) for s in reference.shapes) == 16 * 64 * 64


def test_3d_proxy_tiles_take_half_the_limit_per_axis() -> None:
    assert proxy_tiles((16, 512, 512), (12, 12, 12), 256) == (16, 128, 128)
    assert proxy_tiles((512, 512), (12, 12), 256) == (256, 256)
    assert proxy_tiles((16, 512, 512), (12, 12, 12), 0) == (16, 512, 512)


def test_overlap_not_below_the_tile_and_no_reference() -> None:
    report = VerifyReport(path=None)  # type: ignore[arg-type]
    check_tiling(
        Packaged(box_filter(1), (8, 8, 8)), None, _info((8, 8, 8), 8), report,
        tolerance=1e-9, seed=0,
    )  # fmt: skip
    assert report.get(SEAMS).status == FAILED and report.get(FIELD).status == SKIPPED
    report = VerifyReport(path=None)  # type: ignore[arg-type]
    check_tiling(
        Packaged(box_filter(1), (8, 8, 8)), None, _info((8, 8, 8), 2), report,
        tolerance=1e-9, seed=0,
    )  # fmt: skip
    assert report.get(SEAMS).status == SKIPPED
    assert report.get(FIELD).details["radius"] == [1, 1, 1]


def test_memory_estimate_counts_the_test_volume() -> None:
    info = _info((16, 64, 64), 4)
    on, off = (
        needed_bytes(info, VerifySettings(tiling=t, tiling_max_tile=0)) for t in (True, False)
    )
    volume = 8 * 16 * 64 * 64  # 2 x 2 x 2 tiles
    assert on > off and on >= volume * 8 * 4
