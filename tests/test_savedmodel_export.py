"""Legacy 3.0.0 payload: normalised SavedModel zip (czbuild.keras.savedmodel_export)."""

from __future__ import annotations

import hashlib
import io
import json
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from support.fresh_python import run_fresh_python

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]

MODEL_SRC = textwrap.dedent(
    """
    import keras
    from czbuild.keras.wrap import wrap_model

    def wrapped_model():
        keras.utils.set_random_seed(11)
        inputs = keras.Input((None, None, 1))
        a = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
        a = keras.layers.BatchNormalization()(a)
        b = keras.layers.MaxPooling2D()(a)
        b = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(b)
        b = keras.layers.UpSampling2D()(b)
        x = keras.layers.Concatenate()([a, b])
        outputs = keras.layers.Conv2D(2, 1, activation="softmax")(x)
        base = keras.Model(inputs, outputs)
        return wrap_model(base, preprocessing=[{"op": "scale", "scale": 1 / 255},
                                               keras.layers.Rescaling(2.0)],
                          spatial_dims=(16, 16))
    """
)


@pytest.fixture(scope="module")
def ns():
    namespace: dict = {}
    exec(MODEL_SRC, namespace)
    return namespace


@pytest.fixture(scope="module")
def model(ns):
    return ns["wrapped_model"]()


@pytest.fixture(scope="module")
def saved_source(tmp_path_factory):
    """A SavedModel directory written by Keras ``model.export`` (a model source kind)."""
    import keras

    keras.utils.set_random_seed(12)
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(3, 3, padding="same", activation="relu")(inputs)
    outputs = keras.layers.Conv2D(2, 1, activation="softmax")(x)
    path = tmp_path_factory.mktemp("source") / "exported"
    keras.Model(inputs, outputs).export(str(path), verbose=False)
    return path


def _from_saved_source(path):
    from czbuild.keras.sources import load_model
    from czbuild.keras.wrap import wrap_model

    return wrap_model(load_model(str(path)), spatial_dims=(16, 16))


@pytest.fixture(scope="module")
def payload(model):
    from czbuild.keras.savedmodel_export import export_savedmodel_zip

    return export_savedmodel_zip(model)


def test_zip_members_are_sorted_stored_and_without_fingerprint(payload):
    with zipfile.ZipFile(io.BytesIO(payload)) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names == [
        "saved_model.pb",
        "variables/variables.data-00000-of-00001",
        "variables/variables.index",
    ]
    assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
    assert all(i.date_time == infos[0].date_time for i in infos)


def test_payload_loads_and_matches_keras(model, payload, tmp_path):
    import tensorflow as tf

    with zipfile.ZipFile(io.BytesIO(payload)) as zf:
        zf.extractall(tmp_path / "sm")
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    serve = loaded.signatures["serving_default"]
    assert list(serve.structured_input_signature[1]) == ["input"]
    x = np.random.default_rng(5).random((2, 16, 16, 1), dtype=np.float32) * 255
    got = serve(input=tf.constant(x))["output"].numpy()
    np.testing.assert_allclose(got, np.asarray(model(x)), atol=1e-5)


def test_no_counter_based_names_left(payload):
    with zipfile.ZipFile(io.BytesIO(payload)) as zf:
        graph = zf.read("saved_model.pb")
        data = zf.read("variables/variables.data-00000-of-00001")
    for blob in (graph, data):
        assert b"conv2d" not in blob and b"functional" not in blob
    assert b"__inference_serve_0" in graph


def test_same_bytes_after_unrelated_work_and_in_a_fresh_process(
    ns, payload, saved_source, tmp_path
):
    import keras
    import tensorflow as tf

    from czbuild.keras.savedmodel_export import export_savedmodel_zip

    for i in range(20):
        keras.layers.Conv2D(2, 3)
        inp = keras.Input((4,))
        keras.Model(inp, keras.layers.Dense(2)(inp))
        tf.function(lambda x, i=i: x * i)(tf.constant(2.0))
    here = [
        hashlib.sha256(export_savedmodel_zip(m)).hexdigest()
        for m in (ns["wrapped_model"](), _from_saved_source(saved_source))
    ]
    assert here[0] == hashlib.sha256(payload).hexdigest()
    script = tmp_path / "fresh.py"
    script.write_text(
        MODEL_SRC
        + "import hashlib, json, sys\n"
        + "from czbuild.keras.savedmodel_export import export_savedmodel_zip\n"
        + "from czbuild.keras.sources import load_model\n"
        + "saved = wrap_model(load_model(sys.argv[1]), spatial_dims=(16, 16))\n"
        + "print(json.dumps([hashlib.sha256(export_savedmodel_zip(m)).hexdigest()\n"
        + "                  for m in (wrapped_model(), saved)]))\n"
    )
    stdout = run_fresh_python(
        script, saved_source, cwd=tmp_path, PYTHONHASHSEED="99", TZ="America/Lima"
    )
    assert json.loads(stdout.strip().splitlines()[-1]) == here


def test_saved_model_source_round_trips(saved_source, tmp_path):
    import tensorflow as tf

    from czbuild.keras.savedmodel_export import export_savedmodel_zip

    model = _from_saved_source(saved_source)
    with zipfile.ZipFile(io.BytesIO(export_savedmodel_zip(model))) as zf:
        zf.extractall(tmp_path / "sm")
    serve = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    x = np.random.default_rng(6).random((1, 16, 16, 1), dtype=np.float32)
    np.testing.assert_allclose(
        serve(input=tf.constant(x))["output"].numpy(), np.asarray(model(x)), atol=1e-5
    )


def test_canonical_clone_names_and_weights(model):
    from czbuild.keras.savedmodel_export import canonical_clone

    clone = canonical_clone(model)
    assert clone.name == "model_0"
    leaf_names = [layer.name for layer in clone.layers if layer.name != "input"]
    assert all(name.startswith(("layer_", "model_")) for name in leaf_names)
    for a, b in zip(clone.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.name != "model_0"  # the source model keeps its names
