"""``czbuild predict`` and the images layer on tiny CZI / TIFF files and ONNX models.

The models are built with ``onnx.helper`` (no TensorFlow) with free spatial dims, so the very
payload packaged in the artifact also predicts the whole image at once: the reference the
stitched output must equal away from the image border.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import tifffile
from onnx import TensorProto, helper, numpy_helper

from czbuild.errors import ImageError
from czbuild.formats.archive import write_czann
from czbuild.formats.czann import CzannMetadata
from czbuild.formats.runner import OnnxRunner
from czbuild.images import open_image, write_czi, write_tiff
from czbuild.predict import parse_input_range, predict_image
from support.cli import run_cli
from support.onnx_models import unet_onnx


def _segmenter(tmp: Path, *, channels=2, classes=3, dims=2, tile=(48, 48), overlap=(16, 16)):
    model = unet_onnx(channels=channels, classes=classes, dims=dims, channels_first=False)
    data = model.SerializeToString()
    meta = CzannMetadata(
        type="SingleClassSemanticSegmentation",
        input_shape=(*tile, channels),
        output_shape=(*tile, classes),
        classes=tuple(f"class{i}" for i in range(classes)),
        min_overlap=overlap,
        format_version="2.1.0",
    )
    path = tmp / f"seg{dims}d.czann"
    write_czann(path, meta, data)
    return path, data


def _regressor(tmp: Path) -> tuple[Path, bytes]:
    """Conv 3x3 (two layers) + sigmoid, NHWC with free spatial dims: 1 channel in, 1 out."""
    rng = np.random.default_rng(3)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(0, 0.5, (1, 4, 3, 3)).astype(np.float32), "w2"),
    ]
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["xt", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c2"], ["s"]),
        helper.make_node("Transpose", ["s"], ["y"], perm=[0, 2, 3, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "reg",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "h", "w", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "h", "w", 1])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    model.ir_version = 7
    data = model.SerializeToString()
    meta = CzannMetadata(
        type="Regression",
        input_shape=(32, 32, 1),
        output_shape=(32, 32, 1),
        min_overlap=(8, 8),
        format_version="2.1.0",
    )
    path = tmp / "reg.czann"
    write_czann(path, meta, data)
    onnx.checker.check_model(model)
    return path, data


def _image(shape, dtype=np.uint16, seed=1):
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    smooth = rng.random(shape)
    return (smooth * top).astype(dtype)


def test_czi_prediction_equals_the_whole_image_prediction_away_from_the_border(tmp_path):
    artifact, payload = _segmenter(tmp_path)
    image = _image((1, 150, 204, 2))
    czi = tmp_path / "cells.czi"
    write_czi(czi, image)
    result = predict_image(artifact, czi, probabilities=True, preview=tmp_path / "p.png")
    assert result.out == tmp_path / "cells.labels.ome.tif"
    assert result.probabilities == tmp_path / "cells.probabilities.ome.tif"
    whole = OnnxRunner(payload)(image[0:1].astype(np.float32) / 65535.0)[0]
    probabilities = tifffile.imread(result.probabilities)
    labels = tifffile.imread(result.out)
    assert labels.shape == (150, 204) and labels.dtype == np.uint8
    inner = (slice(8, -8), slice(8, -8))
    assert np.abs(probabilities[inner] - whole[inner]).max() < 1e-5
    assert np.array_equal(labels, np.argmax(probabilities, axis=-1))
    assert result.tiles == 5 * 6  # rows 0 32 64 96 102, columns 0 32 64 96 128 156
    assert abs(sum(result.fractions.values()) - 1) < 1e-9
    with tifffile.TiffFile(result.out) as tif:
        assert tif.is_ome and tif.pages[0].is_tiled
    assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_wrong_overlap_shows_as_seams(tmp_path):
    """The check above would catch a stitching bug: no overlap leaves border effects."""
    artifact, payload = _segmenter(tmp_path, overlap=(0, 0))
    image = _image((1, 96, 96, 2))
    write_czi(tmp_path / "a.czi", image)
    result = predict_image(artifact, tmp_path / "a.czi", probabilities=True)
    whole = OnnxRunner(payload)(image[0:1].astype(np.float32) / 65535.0)[0]
    assert np.abs(tifffile.imread(result.probabilities) - whole).max() > 1e-3


def test_3d_model_tiles_z_stacks(tmp_path):
    artifact, payload = _segmenter(
        tmp_path, channels=1, classes=2, dims=3, tile=(16, 32, 32), overlap=(12, 12, 12)
    )
    image = _image((24, 40, 44, 1), seed=2)  # z starts 0 4 8: three tile depths
    tif = tmp_path / "stack.ome.tif"
    write_tiff(tif, image)
    result = predict_image(artifact, tif, tmp_path / "out.ome.tif", probabilities=True)
    whole = OnnxRunner(payload)(image[None].astype(np.float32) / 65535.0)[0]
    got = tifffile.imread(result.probabilities)
    assert got.shape == (24, 40, 44, 2)
    inner = (slice(6, -6), slice(6, -6), slice(6, -6))
    assert np.abs(got[inner] - whole[inner]).max() < 1e-5
    assert np.array_equal(tifffile.imread(result.out), np.argmax(got, axis=-1))


def test_2d_model_runs_on_every_plane_of_a_z_stack(tmp_path):
    artifact, payload = _segmenter(tmp_path, channels=1, classes=2)
    image = _image((3, 64, 64, 1), dtype=np.uint8)
    write_tiff(tmp_path / "z.tif", image)
    result = predict_image(artifact, tmp_path / "z.tif", probabilities=True)
    got = tifffile.imread(result.probabilities)
    for z in range(3):
        whole = OnnxRunner(payload)(image[z : z + 1].astype(np.float32) / 255.0)[0]
        assert np.abs(got[z][8:-8, 8:-8] - whole[8:-8, 8:-8]).max() < 1e-5


def test_regression_writes_values_and_honours_the_input_range(tmp_path):
    artifact, payload = _regressor(tmp_path)
    image = (_image((1, 70, 90, 1), seed=4) // 16).astype(np.uint16)  # a 12-bit camera
    write_tiff(tmp_path / "r.tif", image)
    result = predict_image(
        artifact,
        tmp_path / "r.tif",
        input_range=parse_input_range("12"),
        preview=tmp_path / "r.png",
    )
    assert result.out.name == "r.prediction.ome.tif"
    values = tifffile.imread(result.out)
    assert values.dtype == np.float32 and values.shape == (70, 90)
    whole = OnnxRunner(payload)(image[0:1].astype(np.float32) / 4095.0)[0, ..., 0]
    assert np.abs(values[4:-4, 4:-4] - whole[4:-4, 4:-4]).max() < 1e-5
    assert result.value_range is not None
    assert parse_input_range("0,4095") == (0.0, 4095.0)
    with pytest.raises(ImageError, match="bit depth"):
        parse_input_range("twelve")


def test_channels_are_selected_in_the_order_given(tmp_path):
    image = _image((1, 20, 30, 3))
    write_czi(tmp_path / "c.czi", image)
    source = open_image(tmp_path / "c.czi", channels=[2, 0])
    try:
        assert np.array_equal(source.read((0, 1), (0, 20), (0, 30)), image[..., [2, 0]])
    finally:
        source.close()


def test_rgb_tiff_is_fed_as_bgr(tmp_path):
    rgb = _image((1, 16, 16, 3), dtype=np.uint8)
    write_tiff(tmp_path / "rgb.tif", rgb, rgb=True)
    source = open_image(tmp_path / "rgb.tif")
    assert source.channels[0].pixel_type == "Bgr24"
    assert np.array_equal(source.read((0, 1), (0, 16), (0, 16)), rgb[..., ::-1])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.czi"], "missing.czi: no such file"),
        (["img.czi", "--channel", "0"], "the model takes 2: choose channels with --channel"),
        (["img.czi", "--channel", "5"], "--channel 5 is out of range"),
        (["img.czi", "--scene", "3"], "--scene 3 is out of range"),
        (["img.tif", "--scene", "1"], "--scene 1 is out of range"),
        (["img.czi", "--input-range", "x"], "--input-range 'x'"),
        (["notes.txt"], "unknown image type"),
        (["img.czi", "--out", "img.czi"], "would overwrite the image"),
    ],
)
def test_bad_input_is_one_line_and_a_nonzero_exit(tmp_path, args, message):
    artifact, _ = _segmenter(tmp_path)
    write_czi(tmp_path / "img.czi", _image((1, 64, 64, 2)))
    write_tiff(tmp_path / "img.tif", _image((1, 64, 64, 2)))
    (tmp_path / "notes.txt").write_text("x")
    result = run_cli("predict", str(artifact), *args, cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not list(tmp_path.glob("*.ome.tif")) and not list(tmp_path.glob(".*.tmp"))


def test_cli_prints_outputs_and_class_shares(tmp_path):
    artifact, _ = _segmenter(tmp_path)
    write_czi(tmp_path / "img.czi", _image((1, 64, 64, 2)))
    result = run_cli(
        "predict",
        str(artifact),
        "img.czi",
        "--out",
        "o.ome.tif",
        "--preview",
        "o.png",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "o.ome.tif: segmentation of img.czi (64x64, 4 tiles)" in result.stdout
    assert "class0:" in result.stdout and "o.png: preview" in result.stdout
    assert "predicting: 4/4 tiles" in result.stderr


def test_legacy_model_gets_raw_values_and_colour_as_grey(tmp_path):
    """ConvertToMonochrome: a Bgr24 CZI feeds a one-channel legacy model grey, unscaled."""
    from czbuild.formats.archive import write_czmodel
    from czbuild.formats.legacy import LegacyMetadata

    fixed = unet_onnx(channels=1, classes=2, channels_first=False, spatial=(48, 48), seed=9)
    free = unet_onnx(channels=1, classes=2, channels_first=False, seed=9)
    meta = LegacyMetadata(
        name="Legacy",
        color_handling="ConvertToMonochrome",
        pixel_types=("Bgr24",),
        classes=("Background", "Cells"),
        border_size=8,
    )
    artifact = tmp_path / "legacy.czmodel"
    write_czmodel(artifact, meta, fixed.SerializeToString())
    bgr = (
        _image((64, 96, 3), dtype=np.uint8, seed=5) // 64
    )  # raw 0..3: the toy softmax stays finite
    from pylibCZIrw import czi

    with czi.create_czi(str(tmp_path / "rgb.czi"), exist_ok=True) as writer:
        writer.write(bgr, plane={"C": 0, "Z": 0, "T": 0})
    result = predict_image(artifact, tmp_path / "rgb.czi", probabilities=True)
    grey = bgr.astype(np.float32) @ np.asarray([0.114, 0.587, 0.299], np.float32)
    whole = OnnxRunner(free.SerializeToString())(grey[None, ..., None])[0]
    got = tifffile.imread(result.probabilities)
    assert np.abs(got[8:-8, 8:-8] - whole[8:-8, 8:-8]).max() < 1e-4
    with pytest.raises(ImageError, match="legacy"):
        predict_image(artifact, tmp_path / "rgb.czi", input_range=(0.0, 255.0))


def test_a_failure_midway_leaves_no_output(tmp_path, monkeypatch):
    from czbuild.predict import run

    artifact, _ = _segmenter(tmp_path)
    write_czi(tmp_path / "img.czi", _image((1, 300, 64, 2)))
    real = run.stitched_bands

    def failing(*args, **kwargs):
        for i, band in enumerate(real(*args, **kwargs)):
            if i == 3:
                raise KeyboardInterrupt
            yield band

    monkeypatch.setattr(run, "stitched_bands", failing)
    with pytest.raises(KeyboardInterrupt):
        predict_image(artifact, tmp_path / "img.czi", probabilities=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.czi", "seg2d.czann"]


def test_sample_checks_on_a_regression_model(tmp_path):
    """samples.fidelity / seams / expect through the verifier's own entry, regression flavour."""
    from czbuild.verify.report import VerifyReport
    from czbuild.verify.samples import check_samples
    from czbuild.verify.settings import VerifySettings

    artifact, payload = _regressor(tmp_path)
    write_tiff(tmp_path / "r.tif", _image((1, 70, 90, 1), seed=6))
    pinned = predict_image(artifact, tmp_path / "r.tif", tmp_path / "r.expect.ome.tif")

    class Reference:
        tiling_dependent = False

        def __init__(self) -> None:
            self.run = OnnxRunner(payload)

        def predict(self, x):
            return self.run(x)

    def checks(expect: str) -> dict:
        report = VerifyReport(path=artifact)
        settings = VerifySettings(samples=("r.tif",), expect=expect)
        check_samples(OnnxRunner(payload), Reference(), artifact, report, settings, tmp_path)
        return {c.name: c for c in report.checks}

    ok = checks(pinned.out.name)
    assert [ok[n].status for n in ("samples.fidelity", "samples.seams", "samples.expect")] == [
        "passed"
    ] * 3
    changed = tifffile.imread(pinned.out)
    changed[10:20, 10:20] += 0.05
    write = tmp_path / "changed.ome.tif"
    tifffile.imwrite(write, changed)
    failed = checks(write.name)["samples.expect"]
    assert failed.status == "failed" and "max abs error 0.05" in failed.figure
