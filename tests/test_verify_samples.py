"""``verify.samples`` / ``verify.expect``: checks on the user's own images, pinned results.

A real project with an ONNX source (no TensorFlow): built in-process, its sample predicted
with ``czbuild predict`` to pin the expected labels; a changed weight must make
``czbuild check`` name the class whose agreement dropped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from czbuild.images import write_tiff
from czbuild.verify.settings import VerifySettings
from support.cli import run_cli
from support.onnx_models import unet_onnx

RECIPE = """\
name: seg
model:
  onnx: ../models/seg.onnx
  channels_first: true
format: czann
tile: 64
metadata:
  type: SingleClassSemanticSegmentation
  classes: [Background, Nucleus]
  min_overlap: [16, 16]
verify:
  tiling_max_tile: 0
  samples: [../samples/cells.ome.tif]
"""


def _project(root: Path) -> Path:
    (root / "recipes").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "samples").mkdir()
    model = unet_onnx(channels=1, classes=2, channels_first=True, opset=13, seed=5)
    onnx.save(model, root / "models" / "seg.onnx")
    rng = np.random.default_rng(0)
    image = (rng.random((1, 128, 160, 1)) * 65535).astype(np.uint16)
    write_tiff(root / "samples" / "cells.ome.tif", image)
    (root / "recipes" / "seg.yaml").write_text(RECIPE)
    return root


def _change_a_weight(path: Path) -> None:
    model = onnx.load(path)
    for init in model.graph.initializer:
        if init.name == "head_b":
            value = numpy_helper.to_array(init).copy()
            value[1] += 0.3  # more Nucleus
            init.CopyFrom(numpy_helper.from_array(value, init.name))
    onnx.save(model, path)


def test_settings_keep_old_digests_and_need_samples_for_expect():
    assert "samples" not in VerifySettings().to_plain()
    assert "expect_tolerance" not in VerifySettings().to_plain()
    plain = VerifySettings(samples=("a.czi",), expect="a.tif").to_plain()
    assert plain["samples"] == ["a.czi"] and plain["expect"] == "a.tif"
    with pytest.raises(ValueError, match="expect: pins the output"):
        VerifySettings(expect="a.tif")


def test_missing_sample_names_the_key(tmp_path):
    root = _project(tmp_path / "p")
    (root / "samples" / "cells.ome.tif").unlink()
    result = run_cli("show", "seg", "--project", str(root), cwd=root)
    assert result.returncode != 0
    assert "verify.samples[0]" in result.stderr and "sample image not found" in result.stderr


@pytest.mark.slow  # three in-process builds and two lock checks (~10 s, no TensorFlow)
def test_changed_weight_makes_check_name_the_class_whose_agreement_dropped(tmp_path):
    root = _project(tmp_path / "p")
    first = run_cli("build", "--in-process", "--project", str(root), cwd=root)
    assert first.returncode == 0, first.stdout + first.stderr
    artifact = root / "build" / "seg" / "default" / "seg.czann"
    assert artifact.is_file(), list((root / "build").rglob("*.czann"))
    record = (
        root / "build" / ".czbuild" / "reports" / "seg" / "default" / "seg.czann.verify.json"
    ).read_text()
    assert '"samples.seams"' in record and '"samples.fidelity"' in record
    pinned = run_cli(
        "predict",
        str(artifact),
        "samples/cells.ome.tif",
        "--out",
        "samples/cells.labels.ome.tif",
        "-q",
        cwd=root,
    )
    assert pinned.returncode == 0, pinned.stderr
    recipe = root / "recipes" / "seg.yaml"
    recipe.write_text(RECIPE + "  expect: ../samples/cells.labels.ome.tif\n")
    second = run_cli("build", "--in-process", "--project", str(root), cwd=root)
    assert second.returncode == 0, second.stdout + second.stderr
    lock = (root / "czbuild.lock").read_text()
    assert "samples/cells.ome.tif" in lock and "samples/cells.labels.ome.tif" in lock
    ok = run_cli("check", "--in-process", "--project", str(root), cwd=root)
    assert ok.returncode == 0, ok.stdout + ok.stderr

    _change_a_weight(root / "models" / "seg.onnx")
    check = run_cli("check", "--in-process", "--project", str(root), cwd=root)
    text = check.stdout + check.stderr
    assert check.returncode != 0, text
    assert "verification failed: samples.expect (Nucleus IoU" in text, text
    assert "input models/seg.onnx changed" in text
