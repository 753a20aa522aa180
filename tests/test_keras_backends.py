""".keras files saved under the JAX and PyTorch Keras backends, converted under TensorFlow.

``tools/keras_backend_fixtures.py`` saves a channels-last 2D U-Net and a channels-first 3D
U-Net (``image_data_format = channels_first``) with the outputs the *saving* backend computed.
The JAX files are committed (``tests/data/keras_backends/jax/``, JAX is not a dependency);
the PyTorch ones are made here in a subprocess with ``KERAS_BACKEND=torch`` (the ``torch``
extra; skipped only without PyTorch). Each file is loaded and converted under TensorFlow and
the artifact must reproduce the other backend's output.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from czbuild.convert import ConversionRequest, convert
from czbuild.formats.archive import read_artifact
from czbuild.formats.czann import CzannMetadata

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
JAX_FIXTURES = ROOT / "tests" / "data" / "keras_backends" / "jax"
TOOL = ROOT / "tools" / "keras_backend_fixtures.py"
SPATIAL = {"unet2d": (16, 24), "unet3d_cf": (8, 8, 12)}


@pytest.fixture(scope="module")
def torch_fixtures(tmp_path_factory) -> Path:
    if importlib.util.find_spec("torch") is None:
        pytest.skip("PyTorch is not installed (pip install 'czbuild[torch]')")
    out = tmp_path_factory.mktemp("torch_backend")
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(TOOL), str(out)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def _channels_last(a: np.ndarray, name: str) -> np.ndarray:
    return np.moveaxis(a, 1, -1) if name.endswith("_cf") else a


def _convert_and_compare(folder: Path, name: str, tmp_path: Path, backend: str) -> Path:
    from czbuild.formats.runner import open_runner

    saved = np.load(folder / f"{name}.npz")
    assert str(saved["backend"]) == backend
    spatial = SPATIAL[name]
    md = CzannMetadata(
        type="MultiClassSemanticSegmentation",
        input_shape=None,
        output_shape=None,
        classes=("a", "b", "c"),
        min_overlap=(4,) * len(spatial),
        format_version="2.1.0",
    )
    out = tmp_path / f"{backend}-{name}.czann"
    convert(ConversionRequest(source=str(folder / f"{name}.keras"), metadata=md, spatial_dims=spatial), out)  # fmt: skip
    artifact = read_artifact(out)
    assert artifact.metadata.input_shape == (*spatial, 2)  # channels last, as ZEN feeds it
    assert artifact.metadata.output_shape == (*spatial, 3)
    x, y = _channels_last(saved["x"], name), _channels_last(saved["y"], name)
    got = open_runner(artifact.model_bytes)(x)
    assert np.abs(got - y).max() < 1e-5, f"{backend} {name}: differs from the saving backend"
    return out


@pytest.mark.parametrize("name", sorted(SPATIAL))
def test_jax_saved_keras_files_convert_under_tensorflow(name: str, tmp_path: Path) -> None:
    _convert_and_compare(JAX_FIXTURES, name, tmp_path, "jax")


def test_torch_saved_keras_files_convert_and_verify(torch_fixtures: Path, tmp_path: Path) -> None:
    from czbuild.verify import verify_artifact

    _convert_and_compare(torch_fixtures, "unet2d", tmp_path, "torch")
    out = _convert_and_compare(torch_fixtures, "unet3d_cf", tmp_path, "torch")
    report = verify_artifact(out, source_model=str(torch_fixtures / "unet3d_cf.keras"))
    assert report.get("fidelity").status == "passed", report.get("fidelity").message
    # the 8-voxel z tile is below this U-Net's receptive field: the 3D seam check says so
    assert [c.name for c in report.failed] == ["tiling.seams"]
    assert "whatever the overlap" in report.get("tiling.seams").message


def test_channels_first_models_are_made_channels_last() -> None:
    import keras

    from czbuild.keras.sources import load_model
    from czbuild.keras.wrap import data_format

    model = keras.models.load_model(JAX_FIXTURES / "unet3d_cf.keras", compile=False)
    assert data_format(model) == "channels_first"
    view = load_model(model)  # cloned channels-last
    assert view.input_shape == (None, None, None, None, 2) and view.name == model.name
    assert data_format(load_model(JAX_FIXTURES / "unet2d.keras")) == "channels_last"
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    assert data_format(plain) is None and load_model(plain) is plain


def test_channels_first_models_with_other_layers_are_refused_with_the_fix() -> None:
    import keras

    from czbuild.errors import ModelError
    from czbuild.keras.sources import load_model

    inputs = keras.Input((2, None, None))
    x = keras.layers.Conv2D(3, 3, padding="same", data_format="channels_first")(inputs)
    x = keras.layers.LayerNormalization(axis=1)(x)
    model = keras.Model(inputs, x, name="cf_other")
    with pytest.raises(ModelError, match=r"'cf_other' is channels-first .* LayerNormalization; "):
        load_model(model)
