"""Legacy 3.0.0 payload: frozen, TF-2.0-loadable SavedModel zip (czbuild.keras.savedmodel_export)."""

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


def test_zip_holds_only_the_graph(payload):
    """Frozen: no variables folder, no fingerprint.pb; stored with one fixed time."""
    with zipfile.ZipFile(io.BytesIO(payload)) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == ["saved_model.pb"]
    assert infos[0].compress_type == zipfile.ZIP_STORED
    assert infos[0].date_time == (1980, 1, 1, 0, 0, 0)


def _saved_model(payload):
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    with zipfile.ZipFile(io.BytesIO(payload)) as zf:
        saved.ParseFromString(zf.read("saved_model.pb"))
    return saved


def test_graph_uses_only_tensorflow_2_0_ops_and_attrs(payload):
    """The issue's measurements: no DisableCopyOnRead, no VarHandleOp/debug_name, no
    library functions; every node passes the TF 2.0.0 table; the serving signature."""
    from czbuild.formats.runtime import tf_node_problems
    from czbuild.verify.runtime_compat import savedmodel_nodes

    saved = _saved_model(payload)
    (meta,) = saved.meta_graphs
    assert list(meta.meta_info_def.tags) == ["serve"]
    assert list(meta.signature_def) == ["serving_default"]
    signature = meta.signature_def["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    assert signature.inputs["input"].name == "input:0"
    assert signature.outputs["output"].name == "output:0"
    assert not meta.graph_def.library.function
    ops = {n.op for n in meta.graph_def.node}
    assert "Conv2D" in ops and "Softmax" in ops
    assert not ops & {"VarHandleOp", "ReadVariableOp", "DisableCopyOnRead", "SaveV2"}
    assert not any("debug_name" in n.attr for n in meta.graph_def.node)
    assert not any(key.startswith("_") for n in meta.graph_def.node for key in n.attr)
    nodes = savedmodel_nodes(saved.SerializeToString())
    assert len(nodes) == len(meta.graph_def.node)
    assert tf_node_problems(nodes) == []


def test_default_valued_attrs_are_stripped(payload):
    """Conv2D's 2.21 definition has defaults TF 2.0 also has (dilations, data_format, ...):
    only the non-default ones stay on the node."""
    saved = _saved_model(payload)
    convs = [n for n in saved.meta_graphs[0].graph_def.node if n.op == "Conv2D"]
    assert convs
    for node in convs:
        assert set(node.attr) <= {"T", "padding", "strides"}, set(node.attr)


def test_an_op_tensorflow_2_0_lacks_fails_the_export_naming_it():
    import keras
    import tensorflow as tf

    from czbuild.errors import ConversionError
    from czbuild.keras.savedmodel_export import export_savedmodel_zip

    class InverseNormalCdf(keras.layers.Layer):
        def call(self, x):
            return tf.math.ndtri(tf.clip_by_value(x, 0.01, 0.99))  # op Ndtri: TF >= 2.2

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, InverseNormalCdf()(inputs), name="needs_ndtri")
    with pytest.raises(
        ConversionError, match=r"'needs_ndtri'.*op Ndtri is not a TensorFlow 2\.0\.0"
    ):
        export_savedmodel_zip(model)


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
    saved = _saved_model(payload)
    names = [n.name for n in saved.meta_graphs[0].graph_def.node]
    assert names[0] == "input" and names[-1] == "output"
    assert all(name in ("input", "output") or name.split("_")[-1].isdigit() for name in names)
    blob = saved.SerializeToString()
    assert b"conv2d" not in blob and b"functional" not in blob and b"__inference" not in blob


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
