"""Bounded tiling checks for builds: proxy tiles and when the overlap analysis runs (NumPy only)."""

from __future__ import annotations

import numpy as np
import pytest

from czbuild.verify import receptive
from czbuild.verify.info import ModelInfo
from czbuild.verify.inputs import BLOB_DENSITY, BLOB_RADIUS, sample_image
from czbuild.verify.report import FAILED, PASSED, SKIPPED, WARNING, VerifyReport
from czbuild.verify.source import freeze_statistics
from czbuild.verify.tiling import (
    ALWAYS,
    FIELD,
    MIN_OVERLAP,
    NEVER,
    ON_FAILURE,
    PROXY_MODULUS,
    SEAMS,
    check_tiling,
    proxy_tile,
)
from support.numpy_models import box_filter

RADIUS = 3


class BoxReference:
    """A reference 'source model' without per-tile statistics: a box filter."""

    preprocessing: tuple = ()
    postprocessing: tuple = ()
    tiling_dependent = False

    def __init__(self) -> None:
        self.sizes: set[tuple[int, int]] = set()
        self._predict = box_filter(RADIUS)

    def predict(self, x: np.ndarray, *, preprocessing=None) -> np.ndarray:
        self.sizes.add(tuple(x.shape[1:3]))
        return self._predict(x)


class PackagedModel:
    """The packaged model: runs only at its own tile size, like a fixed-shape ONNX file."""

    def __init__(self, tile: int) -> None:
        self.tile = tile
        self.calls = 0
        self._predict = box_filter(RADIUS)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        assert x.shape[1:3] == (self.tile, self.tile)
        self.calls += 1
        return self._predict(x)


def _info(tile: int, overlap: int) -> ModelInfo:
    return ModelInfo(
        family="czann",
        version="2.1.0",
        type="Regression",
        input_shape=(tile, tile, 1),
        output_shape=(tile, tile, 1),
        overlap=(overlap, overlap),
    )


def _run(tile: int, overlap: int, **kwargs):
    report = VerifyReport(path=None)  # type: ignore[arg-type]
    runner, reference = PackagedModel(tile), BoxReference()
    check_tiling(runner, reference, _info(tile, overlap), report, tolerance=1e-9, seed=0, **kwargs)
    return report, runner, reference


@pytest.mark.parametrize(
    ("tile", "overlap", "max_tile", "expected"),
    [
        (1024, 32, 256, 256),
        (1000, 40, 256, 232),
        (512, 16, 256, 256),
        (256, 16, 256, 256),
        (1024, 300, 256, 384),
        (300, 290, 256, 300),
        (1024, 32, None, 1024),
        (1024, 32, 0, 1024),
        (4096, 8, 128, 128),
    ],
    ids=[
        "1024",
        "1000-congruent",
        "512",
        "not-exceeded",
        "above-overlap",
        "capped-at-tile",
        "none",
        "zero",
        "large",
    ],
)
def test_proxy_tile(tile: int, overlap: int, max_tile: int | None, expected: int) -> None:
    size = proxy_tile(tile, overlap, max_tile)
    assert size == expected
    assert size % PROXY_MODULUS == tile % PROXY_MODULUS or size == tile
    assert overlap < size <= tile


def test_large_tiles_are_checked_on_a_proxy_with_the_reference() -> None:
    report, runner, reference = _run(512, 2 * RADIUS, analysis=ON_FAILURE, max_tile=128)
    seams = report.get(SEAMS)
    assert seams.status == PASSED
    assert seams.details["proxy_tile"] == [128, 128]
    assert seams.details["artifact_tile"] == [512, 512]
    assert seams.details["image_size"] == [128 + 2 * (128 - 6)] * 2  # 3 tiles a side
    assert seams.details["tiles_predicted_by"] == "reference"
    assert "proxy tiles [128, 128]" in seams.message
    assert runner.calls == 0 and max(reference.sizes) == (372, 372)
    assert {report.get(FIELD).status, report.get(MIN_OVERLAP).status} == {SKIPPED}


def test_small_tiles_use_the_packaged_model() -> None:
    report, runner, _ = _run(64, 2 * RADIUS, analysis=NEVER, max_tile=128)
    assert report.get(SEAMS).status == PASSED and "proxy_tile" not in report.get(SEAMS).details
    assert runner.calls > 0


def test_a_failed_seam_check_runs_the_overlap_analysis() -> None:
    report, _, _ = _run(512, 2, analysis=ON_FAILURE, max_tile=128)
    assert report.get(SEAMS).status == FAILED
    assert report.get(MIN_OVERLAP).status == PASSED
    assert report.get(MIN_OVERLAP).details["minimal_overlap"] == 2 * RADIUS
    assert report.get(FIELD).details["radius"] == [RADIUS, RADIUS]


@pytest.mark.parametrize(
    ("analysis", "ran"), [(ALWAYS, True), (NEVER, False)], ids=["always", "never"]
)
def test_analysis_modes(analysis: str, ran: bool) -> None:
    report, _, _ = _run(64, 2, analysis=analysis)
    assert report.get(SEAMS).status == FAILED
    assert (report.get(MIN_OVERLAP).status != SKIPPED) is ran
    assert (report.get(FIELD).status != SKIPPED) is ran


def _sample_image_everywhere(info: ModelInfo, shape: tuple[int, int, int], seed: int):
    """The synthetic test image with every blob evaluated on every pixel (the definition)."""
    rng = np.random.default_rng(seed)
    h, w, c = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    image = np.empty((h, w, c))
    for ch in range(c):
        base = 0.15 + 0.2 * (yy / max(h - 1, 1)) * (0.5 + 0.5 * ch / max(c, 1))
        for _ in range(max(3, round(h * w * BLOB_DENSITY))):
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            radius = rng.uniform(*BLOB_RADIUS)
            base = base + rng.uniform(0.25, 0.5) * np.exp(
                -((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2)
            )
        image[..., ch] = base + rng.normal(0.0, 0.05, size=(h, w))
    low, high = info.input_range
    image = low + np.clip(image, 0.0, 1.0) * (high - low)
    if info.integer_input:
        image = np.round(image)
    return image[np.newaxis].astype(np.float32)


@pytest.mark.parametrize(
    "shape", [(96, 80, 3), (200, 120, 1), (40, 400, 1)], ids=["rgb", "tall", "wide"]
)
def test_windowed_blobs_give_the_same_image(shape: tuple[int, int, int]) -> None:
    info = ModelInfo(
        family="czmodel",
        version="3.1.0",
        type="SemanticSegmentation",
        input_shape=shape,
        output_shape=shape,
        input_range=(0.0, 65535.0),
        integer_input=True,
    )
    assert np.array_equal(sample_image(info, shape, 5), _sample_image_everywhere(info, shape, 5))


def _gray(size: int) -> ModelInfo:
    return ModelInfo(
        family="czann",
        version="2.1.0",
        type="Regression",
        input_shape=(size, size, 1),
        output_shape=(size, size, 1),
    )


def test_sample_image_statistics_do_not_depend_on_its_size() -> None:
    stats = []
    for size in (64, 256, 1024):
        image = sample_image(_gray(size), (size, size, 1), 11)
        saturated = float(np.mean((image <= 0.0) | (image >= 1.0)))
        stats.append((saturated, float(image.std()), float(image.mean())))
    for saturated, std, mean in stats:
        assert saturated < 0.01
        assert 0.08 < std < 0.2
        assert 0.2 < mean < 0.4
    stds = [s[1] for s in stats]
    assert max(stds) / min(stds) < 1.5
    assert np.array_equal(
        sample_image(_gray(256), (256, 256, 1), 11), sample_image(_gray(256), (256, 256, 1), 11)
    )


def _three_convs(x: np.ndarray) -> np.ndarray:
    """Three 3x3 convolutions with a saturating activation each: receptive radius 3."""
    for _ in range(3):
        x = np.tanh(box_filter(1)(x))
    return x


def test_receptive_field_with_statistics_frozen_on_a_large_image() -> None:
    size = 1024
    image = sample_image(_gray(size), (size, size, 1), 5)
    chain = freeze_statistics([{"op": "per_image_standardization"}], image)

    def predict(x: np.ndarray) -> np.ndarray:
        from czbuild import ops

        return _three_convs(ops.apply_numpy(chain, x))

    field = receptive.measure(predict, (32, 32, 1), (0.0, 1.0), seed=12)
    assert field.radius == (3, 3) and field.bounded


PER_IMAGE = ({"op": "per_image_standardization"},)


class StandardisingReference(BoxReference):
    """A box filter after per-image standardisation (frozen when the tiling checks ask)."""

    preprocessing = PER_IMAGE
    tiling_dependent = True

    def predict(self, x: np.ndarray, *, preprocessing=None) -> np.ndarray:
        from czbuild import ops

        chain = self.preprocessing if preprocessing is None else tuple(preprocessing)
        return super().predict(ops.apply_numpy(chain, np.asarray(x, np.float64)))


class StandardisingModel(PackagedModel):
    def __call__(self, x: np.ndarray) -> np.ndarray:
        from czbuild import ops

        return super().__call__(ops.apply_numpy(PER_IMAGE, np.asarray(x, np.float64)))


@pytest.mark.parametrize(
    ("tile", "max_tile", "by"),
    [(64, None, "packaged model"), (512, 128, "reference")],
    ids=["full", "bounded"],
)
def test_per_tile_statistics_make_the_seams_a_warning(tile: int, max_tile, by: str) -> None:
    report = VerifyReport(path=None)  # type: ignore[arg-type]
    runner = StandardisingModel(tile)
    check_tiling(
        runner,
        StandardisingReference(),
        _info(tile, 2 * RADIUS),
        report,
        tolerance=1e-4,
        seed=0,
        analysis=ON_FAILURE,
        max_tile=max_tile,
    )
    seams = report.get(SEAMS)
    effect = seams.details["per_tile_statistics_effect"]
    assert seams.status == WARNING, seams.message
    assert effect > 1e-2 and seams.details["max_seam_error"] <= 1e-4
    assert f"{effect:.2g}" in seams.figure and "tile boundaries" in seams.message
    assert seams.details["per_tile_statistics_predicted_by"] == by
    assert (runner.calls > 0) is (max_tile is None)
