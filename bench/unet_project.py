"""A throw-away czbuild project around the benchmark U-Net (no TensorFlow imported here).

The build benchmarks write it into a temporary folder: a factory file that imports
``bench/unet.py`` and one recipe, ``unet``, converted to CZANN at tile 256 by default.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_FACTORY = f"""\
import sys

sys.path.insert(0, {str(REPO / "bench")!r})
from unet import build_unet  # noqa: E402


def build():
    return build_unet()
"""

RECIPE_TILE = 256

_RECIPE = """\
name: unet
model:
  factory: ../models/unet_factory.py:build
format: czann
tile: {tile}
metadata:
  type: MultiClassSemanticSegmentation
  classes: [background, class1, class2]
  min_overlap: [{overlap}, {overlap}]
"""


def write_unet_project(root: Path, *, min_overlap: int) -> None:
    """Write ``recipes/unet.yaml`` and ``models/unet_factory.py`` under ``root``."""
    (root / "recipes").mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(exist_ok=True)
    (root / "models" / "unet_factory.py").write_text(_FACTORY)
    (root / "recipes" / "unet.yaml").write_text(
        _RECIPE.format(overlap=min_overlap, tile=RECIPE_TILE)
    )
