"""A tile sweep of an ONNX / PyTorch source: one shared converter vs one per tile.

``python bench/bench_sources.py`` prints wall times (in this process, after imports) of
converting the PyTorch U-Net of ``tests/test_torch_source.py``'s shape (``models`` built
here, seeded) and the bundled ``models/cells.onnx`` to CZANN 2.1.0 at tiles 128, 256, 512
and 1024: once through one converter (one export/composition, a specialisation per tile),
once with a fresh converter per tile (what sharing saves).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TILES = (128, 256, 512, 1024)
FACTORY = """
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    c = lambda i, o: nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.ReLU())
    return nn.Sequential(c(1, 16), c(16, 32), c(32, 16), nn.Conv2d(16, 2, 1), nn.Softmax(1))
"""


def _run(make, label: str) -> None:
    chain = [{"op": "per_image_standardization"}]
    start = time.perf_counter()
    shared = make()
    for tile in TILES:
        shared.onnx(preprocessing=chain, spatial_dims=(tile, tile), opset=18)
    one = time.perf_counter() - start
    start = time.perf_counter()
    for tile in TILES:
        make().onnx(preprocessing=chain, spatial_dims=(tile, tile), opset=18)
    fresh = time.perf_counter() - start
    print(f"{label}: one converter {one:.2f} s, a converter per tile {fresh:.2f} s")


def main() -> None:
    from czbuild.onnx_source.converter import OnnxConverter
    from czbuild.sources.kinds import OnnxFile

    _run(lambda: OnnxConverter(OnnxFile(str(ROOT / "models/cells.onnx"), True)), "onnx cells")
    try:
        import torch  # noqa: F401
    except ImportError:
        print("torch not installed: PyTorch row skipped")
        return
    from czbuild.sources.kinds import TorchFactory
    from czbuild.torch_source.converter import TorchConverter

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "net.py"
        path.write_text(FACTORY)
        _run(lambda: TorchConverter(TorchFactory(str(path), "build")), "torch net")


if __name__ == "__main__":
    main()
