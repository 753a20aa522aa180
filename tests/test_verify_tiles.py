"""Tiling simulation, overlap search, receptive field, pictures, report model (NumPy only)."""

from __future__ import annotations

import itertools
import json
import struct
import zlib

import numpy as np
import pytest

from czbuild.formats.tiling import kept_ranges, tile_starts
from czbuild.verify import images, receptive
from czbuild.verify.report import FAILED, PASSED, SKIPPED, WARNING, Check, VerifyReport
from czbuild.verify.source import freeze_statistics
from czbuild.verify.tiles import needed_overlap, run_tiled
from czbuild.verify.tiling import search
from support.numpy_models import box_filter


@pytest.mark.parametrize(
    ("size", "tile", "overlap", "starts"),
    [
        (48, 16, 0, [0, 16, 32]),
        (48, 16, 2, [0, 14, 28, 32]),
        (48, 16, 6, [0, 10, 20, 30, 32]),
        (16, 16, 4, [0]),
        (20, 16, 0, [0, 4]),
    ],
    ids=["exact", "end-aligned", "wide", "one-tile", "partial"],
)
def test_tile_starts(size, tile, overlap, starts):
    assert tile_starts(size, tile, overlap) == starts


@pytest.mark.parametrize(
    ("size", "tile", "overlap"),
    [(48, 16, 16), (48, 16, -2), (8, 16, 0)],
    ids=["overlap-equals-tile", "negative", "image-smaller"],
)
def test_tile_starts_rejects_impossible_layouts(size, tile, overlap):
    with pytest.raises(ValueError):
        tile_starts(size, tile, overlap)


def test_kept_ranges_discard_half_the_overlap_and_cover_the_image():
    starts = tile_starts(48, 16, 4)  # 0, 12, 24, 32
    ranges = kept_ranges(starts, 16, 48)
    assert ranges[0] == (0, 14)  # first tile drops 2 px (overlap / 2) on its interior side
    assert ranges[1] == (14, 26)
    assert ranges[-1][1] == 48
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))


@pytest.mark.parametrize("radius", [0, 1, 3], ids=["pointwise", "r1", "r3"])
def test_tiled_box_filter_needs_twice_its_radius(radius):
    predict = box_filter(radius)
    image = np.random.default_rng(0).uniform(size=(1, 48, 48, 1))
    whole = predict(image)[0]
    enough = run_tiled(predict, image, (16, 16), (2 * radius, 2 * radius))
    assert np.max(np.abs(enough.output - whole)) < 1e-12
    if radius:
        short = run_tiled(predict, image, (16, 16), (2 * radius - 2, 2 * radius - 2))
        assert np.max(np.abs(short.output - whole)) > 1e-3


@pytest.mark.parametrize("radius", [1, 2, 3], ids=["r1", "r2", "r3"])
def test_needed_overlap_and_search_find_twice_the_radius(radius):
    predict = box_filter(radius)
    image = np.random.default_rng(1).uniform(size=(1, 48, 48, 1))
    whole = predict(image)[0]
    first = run_tiled(predict, image, (16, 16), (0, 0), reference=whole, tolerance=1e-9)
    candidate = needed_overlap(first)
    assert candidate == 2 * radius

    def seam(o: int) -> float:
        run = run_tiled(predict, image, (16, 16), (o, o), max_tiles=400)
        return float(np.abs(run.output - whole).max())

    for start in (candidate, 0, 14, None):
        found, tried = search(seam, start, 14, 1e-9)
        assert found == 2 * radius, (start, tried)


def test_search_reports_none_when_nothing_works():
    found, tried = search(lambda o: 1.0, 4, 14, 1e-5)
    assert found is None and set(tried) >= {4, 6, 14}


@pytest.mark.parametrize("radius", [0, 2, 5], ids=["r0", "r2", "r5"])
def test_receptive_field_of_a_box_filter(radius):
    field = receptive.measure(box_filter(radius), (32, 32, 1), (0.0, 1.0), seed=0)
    assert field.radius == (radius, radius) and field.bounded
    assert field.overlap == (2 * radius, 2 * radius)


def test_receptive_field_of_a_global_operation_is_unbounded():
    def global_mean(x):
        return np.broadcast_to(x.mean(axis=(1, 2), keepdims=True), x.shape)

    field = receptive.measure(global_mean, (16, 16, 1), (0.0, 1.0), seed=0)
    assert not field.bounded and field.radius == (8, 8)


def test_freeze_statistics_turns_per_image_standardisation_into_a_fixed_map():
    image = np.random.default_rng(0).uniform(size=(1, 8, 8, 1))
    chain = [{"op": "scale", "scale": [2.0]}, {"op": "per_image_standardization"}]
    frozen = freeze_statistics(chain, image)
    assert frozen[0] == chain[0] and frozen[1]["op"] == "normalization"
    scaled = image * 2
    assert frozen[1]["mean"] == [pytest.approx(scaled.mean())]
    assert frozen[1]["std"] == [pytest.approx(scaled.std())]


# --- pictures -------------------------------------------------------------------------------


def _decode_png(data: bytes) -> tuple[int, int, int, bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    w, h, _, colour_type = header[:4]
    return w, h, colour_type, zlib.decompress(idat)


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 3)], ids=["grey", "rgb"])
def test_png_round_trip(shape):
    image = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    w, h, colour_type, raw = _decode_png(images.encode_png(image))
    assert (h, w) == shape[:2] and colour_type == (0 if len(shape) == 2 else 2)
    stride = 1 + image[0].size
    rows = [raw[i * stride + 1 : (i + 1) * stride] for i in range(h)]
    assert all(raw[i * stride] == 0 for i in range(h))
    assert b"".join(rows) == image.tobytes()


def test_class_map_uses_the_given_colours():
    probs = np.zeros((2, 2, 3))
    probs[0, 0, 2] = probs[0, 1, 0] = probs[1, 0, 1] = probs[1, 1, 2] = 1
    rgb = images.render_classes(probs, [(255, 0, 0), (0, 255, 0), (0, 0, 255)])
    assert rgb[0, 0].tolist() == [0, 0, 255] and rgb[0, 1].tolist() == [255, 0, 0]


def test_error_map_highlights_pixels_over_tolerance_and_draws_cuts():
    error = np.zeros((8, 8))
    error[3, 3] = 1e-3
    rgb = images.render_error(error, 1e-5, ([6], [6]))
    assert rgb[3, 3, 0] == 255 and rgb[0, 0].tolist() == [0, 0, 0]
    assert rgb[6, 0].tolist() == list(images._CUT_COLOUR)


def test_input_rendering_flips_bgr_to_rgb():
    bgr = np.zeros((1, 1, 3))
    bgr[..., 0] = 1.0  # blue in BGR order
    assert images.render_input(bgr, (0.0, 1.0))[0, 0].tolist() == [0, 0, 255]


# --- report model ---------------------------------------------------------------------------


def test_report_ok_only_fails_on_failed_checks():
    report = VerifyReport(path=__import__("pathlib").Path("x.czann"))
    report.add("a.b", PASSED, 1.0)
    report.add("c", WARNING)
    report.add("d", SKIPPED)
    assert report.ok
    report.add("e.f", FAILED, np.float32(2.5), "bad", worst=np.array([1, 2]), where=(1, 2))
    assert not report.ok and [c.name for c in report.failed] == ["e.f"]
    doc = json.loads(json.dumps(report.to_dict()))
    assert doc["summary"] == {"passed": 1, "failed": 1, "skipped": 1, "warning": 1}
    assert doc["checks"][-1]["figure"] == 2.5
    assert doc["checks"][-1]["details"] == {"worst": [1, 2], "where": [1, 2]}
    assert report.group("e") == [report.checks[-1]]


def test_unknown_status_is_refused():
    with pytest.raises(ValueError):
        Check("x", "fine")
