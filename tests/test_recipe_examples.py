"""The bundled example recipes (recipes/, models/) validate and their models fit them."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from czbuild import ops
from czbuild.formats import vocab
from czbuild.recipe import Variant, list_recipes, load_variants

ROOT = Path(__file__).resolve().parents[1]


def test_at_least_three_examples() -> None:
    assert list_recipes(ROOT) == ["cells_onnx", "denoise", "legacy_seed", "nuclei", "volume_3d"]


def test_onnx_examples_2d_and_3d() -> None:
    (cells,) = load_variants(["cells_onnx"], project_dir=ROOT)
    assert (cells.spec.model.kind, cells.spec.format_version, cells.spec.opset) == (
        "onnx",
        "2.1.0",
        18,
    )
    (volume,) = load_variants(["volume_3d"], project_dir=ROOT)
    spec = volume.spec
    assert (spec.format_version, spec.opset, spec.spatial_dims) == ("2.0.0", 12, (16, 64, 64))
    assert spec.metadata.min_overlap == (12, 12, 12) and len(spec.metadata.scaling or ()) == 3


def test_bundled_onnx_files_are_what_their_script_writes(tmp_path) -> None:
    module = _load(ROOT / "models" / "unet_onnx.py")
    for name, kwargs in (
        ("cells", {"dims": 2, "opset": 13, "seed": 11}),
        ("volume", {"dims": 3, "opset": 12, "seed": 12}),
    ):
        made = module.unet(**kwargs).SerializeToString()
        assert made == (ROOT / "models" / f"{name}.onnx").read_bytes(), name


def test_legacy_seed_example() -> None:
    (variant,) = load_variants(["legacy_seed"], project_dir=ROOT)
    spec = variant.spec
    assert (spec.format, spec.format_version, spec.opset) == ("czmodel", "3.0.0", None)
    assert spec.target is not None and (spec.target.product, spec.target.version) == ("blue", "3.2")
    assert spec.metadata.pixel_type == ("Gray16",)
    assert spec.metadata.color_handling == "ConvertToMonochrome"
    assert spec.metadata.classes == ("Background", "Interesting Object", "Foreground")
    assert spec.metadata.border_size == 90 and spec.spatial_dims == (256, 256)
    assert spec.preprocessing == ({"op": "scale", "scale": [1 / 65535]},)


def test_nuclei_example() -> None:
    variants = load_variants(["nuclei"], project_dir=ROOT)
    assert [v.spec.spatial_dims for v in variants] == [(128, 128), (256, 256), (512, 512)]
    spec = variants[0].spec
    assert (spec.format, spec.format_version, spec.opset) == ("czann", "2.1.0", 18)
    assert spec.preprocessing and spec.metadata.type in vocab.SEGMENTATION_TYPES


def test_denoise_example() -> None:
    (variant,) = load_variants(["denoise"], project_dir=ROOT)
    spec = variant.spec
    assert (spec.format, spec.format_version, spec.opset) == ("czann", "1.1.0", 12)
    assert spec.metadata.type == "Regression" and spec.metadata.classes is None


def _factory(variant: Variant) -> ModuleType:
    return _load(variant.path(variant.spec.model.path))


def _load(path: Path) -> ModuleType:
    module_spec = importlib.util.spec_from_file_location(f"_example_{path.stem}", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


EXAMPLES = [v for v in load_variants(project_dir=ROOT) if v.spec.model.kind == "factory"]


@pytest.mark.slow
@pytest.mark.parametrize("variant", EXAMPLES, ids=[v.name for v in EXAMPLES])
def test_example_model_fits_its_recipe(variant: Variant) -> None:
    spec = variant.spec
    assert spec.model.kind == "factory" and spec.spatial_dims is not None
    build = getattr(_factory(variant), spec.model.function)
    model = build()
    again = build()
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)  # seeded initializers: deterministic weights
    assert model.count_params() < 10_000  # tiny: a full build of the examples takes seconds

    in_channels = model.input_shape[-1]
    if spec.metadata.pixel_type:
        assert in_channels == vocab.PIXEL_TYPE_CHANNELS[spec.metadata.pixel_type[0]]
    assert ops.out_channels(spec.preprocessing, in_channels) == in_channels

    h, w = spec.spatial_dims
    x = np.random.default_rng(0).random((1, h, w, in_channels), dtype=np.float32)
    y = np.asarray(model(ops.apply_numpy(spec.preprocessing, x).astype(np.float32)))
    assert y.shape[:3] == (1, h, w)
    channels = ops.out_channels(spec.postprocessing, y.shape[-1])
    if spec.metadata.type in vocab.SEGMENTATION_TYPES:
        assert channels == len(spec.metadata.classes or ())
        np.testing.assert_allclose(y.sum(axis=-1), 1.0, atol=1e-5)
    else:
        assert channels == in_channels
        assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
