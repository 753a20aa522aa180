"""ModelConverter: lazy loading, routes, caching, sweep == alone (czbuild.keras.converter)."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest

from czbuild.errors import ModelError
from support.fresh_python import run_fresh_python

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]

MODELS_SRC = textwrap.dedent(
    """
    import keras

    def invariant_model():
        keras.utils.set_random_seed(3)
        inputs = keras.Input((None, None, 1))
        a = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
        b = keras.layers.MaxPooling2D()(a)
        b = keras.layers.Conv2DTranspose(4, 2, strides=2, padding="same")(b)
        x = keras.layers.Concatenate()([a, b])
        return keras.Model(inputs, keras.layers.Conv2D(2, 1, activation="softmax")(x))

    def fixed_only_model():
        # A fixed reshape pins the spatial size: not tiling-invariant.
        keras.utils.set_random_seed(4)
        inputs = keras.Input((8, 8, 1))
        x = keras.layers.Conv2D(2, 3, padding="same")(inputs)
        x = keras.layers.Reshape((128,))(x)
        x = keras.layers.Reshape((8, 8, 2))(x)
        return keras.Model(inputs, keras.layers.Softmax()(x))
    """
)


@pytest.fixture(scope="module")
def models():
    ns: dict = {}
    exec(MODELS_SRC, ns)
    return ns


@pytest.fixture(scope="module")
def sweep(models):
    """One converter, one sweep over three tiles (with a preprocessing op)."""
    from czbuild.keras.converter import ModelConverter

    converter = ModelConverter(models["invariant_model"]())
    pre = [{"op": "scale", "scale": 0.5}]
    results = {
        t: converter.onnx(preprocessing=pre, spatial_dims=(t, t), opset=12) for t in (8, 16, 24)
    }
    return converter, results


def _ort(data: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


def test_tiling_invariant_model_is_converted_once_and_specialised(sweep, models):
    converter, results = sweep
    assert {r.route for r in results.values()} == {"specialized"}
    assert len(converter._free_onnx) == 1  # one undefined-dims conversion for the sweep
    for tile, result in results.items():
        assert result.input_shape == (tile, tile, 1)
        assert result.output_shape == (tile, tile, 2)
        x = np.random.default_rng(tile).random((1, tile, tile, 1), dtype=np.float32)
        expected = np.asarray(converter.model(x * 0.5))
        np.testing.assert_allclose(_ort(result.payload, x), expected, atol=1e-5)


def test_sweep_and_alone_give_identical_bytes(sweep, models, tmp_path):
    from czbuild.keras.converter import ModelConverter

    _, results = sweep
    alone = ModelConverter(models["invariant_model"]()).onnx(
        preprocessing=[{"op": "scale", "scale": 0.5}], spatial_dims=(16, 16), opset=12
    )
    assert alone.payload == results[16].payload
    script = tmp_path / "alone.py"
    script.write_text(
        MODELS_SRC
        + "import hashlib\nfrom czbuild.keras.converter import ModelConverter\n"
        + "r = ModelConverter(invariant_model()).onnx(preprocessing=[{'op': 'scale', "
        + "'scale': 0.5}], spatial_dims=(16, 16), opset=12)\n"
        + "print(hashlib.sha256(r.payload).hexdigest())\n"
    )
    stdout = run_fresh_python(script, cwd=tmp_path, PYTHONHASHSEED="7")
    assert stdout.split()[-1] == hashlib.sha256(results[16].payload).hexdigest()


def test_non_invariant_model_takes_the_fixed_route(models):
    from czbuild.keras.converter import ModelConverter

    converter = ModelConverter(models["fixed_only_model"]())
    result = converter.onnx(opset=12)
    assert result.route == "fixed"
    assert result.input_shape == (8, 8, 1) and result.output_shape == (8, 8, 2)
    dims = onnx.load_from_string(result.payload).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [8, 8, 1]
    with pytest.raises(ModelError, match="cannot be rebuilt"):
        converter.onnx(spatial_dims=(16, 16), opset=12)


def test_results_are_cached_per_variant(sweep):
    converter, results = sweep
    again = converter.onnx(
        preprocessing=[{"op": "scale", "scale": 0.5}], spatial_dims=(8, 8), opset=12
    )
    assert again is results[8]


@pytest.mark.parametrize(
    "a,b,equal",
    [
        ("op", "layer", True),
        ("op", "other-op", False),
        ("rescaling", "rescaling", True),
        ("rescaling", "rescaling-other", False),
    ],
    ids=["op-dict-equals-czbuild-layer", "different-op", "keras-layer", "keras-layer-config"],
)
def test_chain_key_is_canonical(a, b, equal):
    import keras

    from czbuild.keras.converter import chain_key
    from czbuild.keras.preprocessing import Scale

    make = {
        "op": lambda: {"op": "scale", "scale": 0.5},
        "layer": lambda: Scale(0.5),
        "other-op": lambda: {"op": "scale", "scale": 0.25},
        "rescaling": lambda: keras.layers.Rescaling(2.0),
        "rescaling-other": lambda: keras.layers.Rescaling(3.0),
    }
    assert (chain_key([make[a]()]) == chain_key([make[b]()])) is equal


def test_source_is_loaded_lazily_and_once(models, tmp_path, monkeypatch):
    from czbuild.keras import sources
    from czbuild.keras.converter import ModelConverter

    path = tmp_path / "m.keras"
    models["fixed_only_model"]().save(path)
    calls = []
    real = sources.load_model

    def counting(source, **kwargs):
        calls.append(source)
        return real(source, **kwargs)

    monkeypatch.setattr(sources, "load_model", counting)
    converter = ModelConverter(str(path))
    assert calls == []
    converter.onnx(opset=12)
    converter.onnx(opset=18)
    converter.savedmodel_zip()
    assert calls == [str(path)]


def test_undefined_size_needs_spatial_dims(models):
    from czbuild.keras.converter import ModelConverter

    with pytest.raises(ModelError, match="spatial_dims"):
        ModelConverter(models["invariant_model"]()).onnx(opset=12)


def test_tile_the_model_cannot_take_is_a_model_error(sweep):
    converter, _ = sweep
    with pytest.raises(ModelError):
        converter.onnx(spatial_dims=(9, 9), opset=12)


def test_savedmodel_zip_variant(sweep):
    converter, _ = sweep
    result = converter.savedmodel_zip(spatial_dims=(8, 8))
    assert result.route == "savedmodel" and result.opset is None
    assert result.payload[:4] == b"PK\x03\x04"
    assert (result.input_shape, result.output_shape) == ((8, 8, 1), (8, 8, 2))


def test_chain_key_is_json(sweep):
    from czbuild.keras.converter import chain_key

    doc = json.loads(chain_key([{"op": "rgb_to_bgr"}], [{"op": "sigmoid_to_softmax_scores"}]))
    assert doc["preprocessing"][0]["op"]["op"] == "rgb_to_bgr"
    assert doc["postprocessing"][0]["op"]["op"] == "sigmoid_to_softmax_scores"


def test_model_that_traces_only_at_fixed_sizes_takes_the_fixed_route():
    """Keras' bilinear UpSampling2D cannot be traced with undefined height/width."""
    import keras

    from czbuild.keras.converter import ModelConverter

    keras.utils.set_random_seed(5)
    inputs = keras.Input((None, None, 1))
    x = keras.layers.AveragePooling2D(2)(inputs)
    x = keras.layers.UpSampling2D(2, interpolation="bilinear")(x)
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1, activation="softmax")(x))
    converter = ModelConverter(model)
    results = [converter.onnx(spatial_dims=(t, t), opset=12) for t in (8, 16)]
    assert [r.route for r in results] == ["fixed", "fixed"]
    x = np.random.default_rng(9).random((1, 16, 16, 1), dtype=np.float32)
    np.testing.assert_allclose(_ort(results[1].payload, x), np.asarray(model(x)), atol=1e-5)


def test_a_tile_that_does_not_specialise_takes_the_fixed_route_without_reconverting(
    models, monkeypatch
):
    """Conversions are deterministic now: no second undefined-size conversion, no retry."""
    from czbuild.errors import ConversionError
    from czbuild.keras import onnx_export
    from czbuild.keras.converter import ModelConverter
    from czbuild.onnx_graph import checks

    specialised, exported = [], []
    real_export = onnx_export.export_onnx

    def no_specialisation(*args, **kwargs):
        specialised.append(args[1])
        raise ConversionError("output dims stay unknown (simulated)")

    def counting_export(model, *, opset, input_shape, **kwargs):
        exported.append(tuple(input_shape))
        return real_export(model, opset=opset, input_shape=input_shape, **kwargs)

    monkeypatch.setattr(checks, "specialize_onnx", no_specialisation)
    monkeypatch.setattr(onnx_export, "export_onnx", counting_export)
    converter = ModelConverter(models["invariant_model"]())
    got = converter.onnx(
        preprocessing=[{"op": "scale", "scale": 0.5}], spatial_dims=(16, 16), opset=12
    )
    assert got.route == "fixed"
    assert specialised == [(16, 16)]
    assert exported == [(None, None, None, 1), (None, 16, 16, 1)]
