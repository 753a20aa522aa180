"""PyTorch sources: a seeded NCHW U-Net (2D and 3D) exported, converted, built and verified.

Skipped without PyTorch (``pip install -e '.[test,torch]'``; CI installs the extra).
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from czbuild.formats.archive import read_artifact  # noqa: E402
from czbuild.formats.runner import OnnxRunner  # noqa: E402
from czbuild.sources.kinds import TorchFactory  # noqa: E402
from czbuild.torch_source.converter import TorchConverter  # noqa: E402
from support.cli import run_cli  # noqa: E402

FACTORY = """
import torch
from torch import nn


class TinyUNet(nn.Module):
    def __init__(self, dims=2, channels=1, classes=2, width=4):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        pool = nn.MaxPool2d if dims == 2 else nn.MaxPool3d
        self.enc1 = nn.Sequential(conv(channels, width, 3, padding=1), nn.ReLU())
        self.pool = pool(2)
        self.enc2 = nn.Sequential(conv(width, 2 * width, 3, padding=1), nn.ReLU())
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.dec = nn.Sequential(conv(3 * width, width, 3, padding=1), nn.ReLU())
        self.head = conv(width, classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        d = self.dec(torch.cat([self.up(e2), e1], dim=1))
        return torch.softmax(self.head(d), dim=1)


def build():
    torch.manual_seed(1)
    return TinyUNet()


def build3d():
    torch.manual_seed(2)
    return TinyUNet(dims=3)
"""

RECIPES = {
    "tunet": """
model:
  torch: ../models/tunet.py:build
format: czann
preprocessing:
  - op: normalization
    mean: [0.5]
    std: [0.25]
metadata:
  type: SingleClassSemanticSegmentation
  classes: [bg, fg]
  min_overlap: [12, 12]
sweep:
  tile: [32, 48]
""",
    "tunet_legacy": """
model:
  torch: ../models/tunet.py:build
format_version: 3.1.0
tile: 32
metadata:
  classes: [bg, fg]
  pixel_type: Gray8
  color_handling: ConvertToMonochrome
  border_size: 6
""",
    "tunet3d": """
model:
  torch: ../models/tunet.py:build3d
format_version: 2.0.0
spatial_dims: [16, 16, 24]
metadata:
  type: SingleClassSemanticSegmentation
  classes: [bg, fg]
  min_overlap: [12, 12, 12]
""",
}


@pytest.fixture(scope="module")
def torch_project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("torch_project")
    (root / "recipes").mkdir()
    (root / "models").mkdir()
    (root / "models" / "tunet.py").write_text(FACTORY)
    for name, text in RECIPES.items():
        (root / "recipes" / f"{name}.yaml").write_text(text)
    return root


@pytest.mark.slow
def test_build_and_verify_2d_czann_legacy_and_3d(torch_project) -> None:
    root = torch_project
    run_cli("build", "--in-process", cwd=root, check=True)
    expected = {
        "tunet@tile=32": ((32, 32, 1), (32, 32, 2)),
        "tunet@tile=48": ((48, 48, 1), (48, 48, 2)),
        "tunet_legacy": ((32, 32, 1), None),
        "tunet3d": ((16, 16, 24, 1), (16, 16, 24, 2)),
    }
    manifest = json.loads((root / "build" / "manifest.json").read_text())
    paths = {a["variant"]: root / "build" / a["path"] for a in manifest["artifacts"]}
    assert set(paths) == set(expected)
    # the PyTorch version is part of each variant's toolchain: upgrading torch rebuilds them
    torch_version = importlib.metadata.version("torch")
    assert {a["toolchain"].get("torch") for a in manifest["artifacts"]} == {torch_version}
    for variant, (in_shape, out_shape) in expected.items():
        artifact = read_artifact(paths[variant])
        if out_shape is None:
            assert artifact.family == "czmodel" and artifact.version == "3.1.0"
            assert artifact.payload == "onnx"
        else:
            assert artifact.metadata.input_shape == in_shape
            assert artifact.metadata.output_shape == out_shape
        result = run_cli(
            "verify",
            str(paths[variant]),
            "--recipe",
            variant,
            "--project",
            str(root),
            "--json",
            cwd=root,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
        assert checks["fidelity"]["status"] == "passed", checks["fidelity"]
        # 2D and 3D (tiles in z, y and x) alike
        assert checks["tiling.seams"]["status"] == "passed", checks["tiling.seams"]


def test_one_export_per_model_for_a_tile_sweep(torch_project) -> None:
    converter = TorchConverter(TorchFactory(str(torch_project / "models" / "tunet.py"), "build"))
    chain = [{"op": "scale", "scale": 0.5}]
    for tile in (16, 32, 64):
        result = converter.onnx(preprocessing=chain, spatial_dims=(tile, tile), opset=18)
        x = np.random.default_rng(tile).random((2, tile, tile, 1)).astype(np.float32)
        got = OnnxRunner(result.payload)(x)
        np.testing.assert_allclose(got, converter.model(x * 0.5), atol=1e-5)
    assert converter.exports == 1 and converter.compositions == 1


@pytest.mark.slow
def test_export_bytes_are_the_same_in_a_fresh_process(torch_project) -> None:
    code = (
        "import hashlib, sys\n"
        "from czbuild.sources.kinds import TorchFactory\n"
        "from czbuild.torch_source.converter import TorchConverter\n"
        "c = TorchConverter(TorchFactory(sys.argv[1], 'build'))\n"
        "print(hashlib.sha256(c.onnx(spatial_dims=(32, 32), opset=18).payload).hexdigest())\n"
    )
    factory = str(torch_project / "models" / "tunet.py")
    here = TorchConverter(TorchFactory(factory, "build")).onnx(spatial_dims=(32, 32), opset=18)
    import hashlib

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code, factory],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        env={"PYTHONPATH": str(root), "PYTHONHASHSEED": "7", "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == hashlib.sha256(here.payload).hexdigest()


def test_factory_errors_are_one_line(tmp_path) -> None:
    from czbuild.errors import ModelError

    bad = tmp_path / "bad.py"
    bad.write_text("def build():\n    return 3\n")
    with pytest.raises(ModelError, match=r"returned int; it must return a torch.nn.Module"):
        TorchConverter(TorchFactory(str(bad), "build")).onnx(spatial_dims=(8, 8), opset=18)
    with pytest.raises(ModelError, match="defines no function 'nope'"):
        TorchConverter(TorchFactory(str(bad), "nope")).onnx(spatial_dims=(8, 8), opset=18)
