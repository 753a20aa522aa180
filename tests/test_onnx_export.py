"""ONNX export (czbuild.keras.onnx_export), canonicalisation and specialisation
(czbuild.onnx_graph)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from czbuild.errors import ConversionError
from czbuild.keras import onnx_export as ox
from czbuild.onnx_graph.canonical import canonicalize_onnx, serialize_onnx
from czbuild.onnx_graph.checks import ir_version_for_opset, specialize_onnx
from support.fresh_python import run_fresh_python

REPO = Path(__file__).resolve().parents[1]

# A tiny seeded U-Net (pooling, transposed convolution, skip concatenation, softmax head):
# executed both in the test process and in a fresh subprocess.
MODEL_SRC = textwrap.dedent(
    """
    import keras

    def tiny_unet(tile=None):
        keras.utils.set_random_seed(7)
        inputs = keras.Input((tile, tile, 2))
        a = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
        b = keras.layers.MaxPooling2D()(a)
        b = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(b)
        b = keras.layers.Conv2DTranspose(4, 2, strides=2, padding="same")(b)
        x = keras.layers.Concatenate()([a, b])
        outputs = keras.layers.Conv2D(3, 1, activation="softmax")(x)
        return keras.Model(inputs, outputs)
    """
)

EXPORTS_SRC = textwrap.dedent(
    """
    import hashlib, json
    from czbuild.keras.onnx_export import export_onnx
    from czbuild.onnx_graph.checks import specialize_onnx

    def exports(model):
        fixed = export_onnx(model, opset=12, input_shape=(None, 16, 16, 2))
        free = export_onnx(model, opset=18, input_shape=(None, None, None, 2))
        special = specialize_onnx(free, (24, 24))
        return {k: hashlib.sha256(v).hexdigest() for k, v in
                (("fixed", fixed), ("free", free), ("special", special))}
    """
)


def _namespace() -> dict:
    ns: dict = {}
    exec(MODEL_SRC + EXPORTS_SRC, ns)
    return ns


def _run_ort(onnx_bytes: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


# --- pure ONNX (no TensorFlow) -----------------------------------------------------------------


def _hand_graph(names: dict[str, str], *, swap: bool, doc: str = "") -> onnx.ModelProto:
    """y = Relu(x + c1) * c2, with independent branch order controlled by ``swap``."""
    n = names
    c1 = helper.make_tensor(n["c1"], TensorProto.FLOAT, [1], [1.5])
    c2 = helper.make_tensor(n["c2"], TensorProto.FLOAT, [1], [2.0])
    unused = helper.make_tensor(n["c3"], TensorProto.FLOAT, [1], [9.0])
    add = helper.make_node("Add", ["input", n["c1"]], [n["a"]], name=n["add"], doc_string=doc)
    relu = helper.make_node("Relu", [n["a"]], [n["r"]], name=n["relu"])
    neg = helper.make_node("Neg", [n["a"]], [n["g"]], name=n["neg"])
    mul = helper.make_node("Mul", [n["r"], n["c2"]], [n["m"]], name=n["mul"])
    out = helper.make_node("Sub", [n["m"], n["g"]], [n["y"]], name=n["sub"])
    nodes = [add, neg, relu, mul, out] if swap else [add, relu, neg, mul, out]
    graph = helper.make_graph(
        nodes,
        n["graph"],
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["unk__9", 3])],
        [helper.make_tensor_value_info(n["y"], TensorProto.FLOAT, ["unk__10", 3])],
        initializer=[c2, unused, c1] if swap else [c1, c2, unused],
        doc_string=doc,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 12), helper.make_opsetid("ai.onnx.ml", 2)],
        producer_name="tf2onnx",
        producer_version="1.17.0",
        doc_string=doc,
    )
    model.ir_version = 7
    return model


NAMES_A = {
    "c1": "w/a:0",
    "c2": "w/b:0",
    "c3": "w/c:0",
    "a": "add:0",
    "r": "relu:0",
    "g": "neg:0",
    "m": "mul:0",
    "y": "Identity:0",
    "add": "functional_1/add",
    "relu": "functional_1/relu",
    "neg": "functional_1/neg",
    "mul": "m",
    "sub": "s",
    "graph": "tf2onnx",
}
NAMES_B = {k: f"other_{v}_7" for k, v in NAMES_A.items()}


@pytest.mark.parametrize(
    "names,swap,doc",
    [(NAMES_B, False, ""), (NAMES_A, True, ""), (NAMES_B, True, "converted from /tmp/tmpab12cd")],
    ids=["renamed", "reordered", "renamed-reordered-docstrings"],
)
def test_canonical_form_ignores_names_order_and_doc_strings(names, swap, doc):
    reference = serialize_onnx(canonicalize_onnx(_hand_graph(NAMES_A, swap=False)))
    other = serialize_onnx(canonicalize_onnx(_hand_graph(names, swap=swap, doc=doc)))
    assert other == reference


def test_canonical_form_contents():
    model = canonicalize_onnx(_hand_graph(NAMES_A, swap=True, doc="tmp path"))
    onnx.checker.check_model(model, full_check=True)
    assert [n.name for n in model.graph.node] == ["Add_0", "Relu_1", "Mul_2", "Neg_3", "Sub_4"]
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["output"]
    assert [t.name for t in model.graph.initializer] == ["const_0", "const_1"]  # unused dropped
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 12)]
    assert model.producer_name == "czbuild" and not model.HasField("producer_version")
    assert not model.HasField("doc_string") and not model.graph.HasField("doc_string")
    assert all(not n.HasField("doc_string") for n in model.graph.node)
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["dim_0", ""]


def test_canonicalize_keeps_outputs_and_is_idempotent():
    raw = _hand_graph(NAMES_A, swap=True)
    once = canonicalize_onnx(raw)
    twice = canonicalize_onnx(once)
    assert serialize_onnx(once) == serialize_onnx(twice)
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        _run_ort(raw.SerializeToString(), x), _run_ort(serialize_onnx(once), x)
    )
    assert raw.graph.node[0].name == "functional_1/add"  # the input proto is not modified


def test_output_that_is_the_input_gets_an_identity():
    graph = helper.make_graph(
        [],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 2])],
    )
    model = canonicalize_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)]))
    assert [(n.op_type, list(n.input), list(n.output)) for n in model.graph.node] == [
        ("Identity", ["input"], ["output"])
    ]
    onnx.checker.check_model(model)


def test_subgraph_references_outer_values():
    """An If node whose branches read an outer value and an outer initializer."""
    then_g = helper.make_graph(
        [helper.make_node("Add", ["outer_v", "outer_c"], ["t_out"], name="then/add")],
        "then_x",
        [],
        [helper.make_tensor_value_info("t_out", TensorProto.FLOAT, [2])],
    )
    else_g = helper.make_graph(
        [helper.make_node("Neg", ["outer_v"], ["e_out"], name="else/neg")],
        "else_x",
        [],
        [helper.make_tensor_value_info("e_out", TensorProto.FLOAT, [2])],
    )
    nodes = [
        helper.make_node("Relu", ["input"], ["outer_v"], name="relu/x"),
        helper.make_node("ReduceSum", ["input"], ["s"], keepdims=0, name="sum/x"),
        helper.make_node("Greater", ["s", "zero"], ["cond"], name="gt/x"),
        helper.make_node(
            "If", ["cond"], ["res"], then_branch=then_g, else_branch=else_g, name="if/x"
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("res", TensorProto.FLOAT, [2])],
        initializer=[
            helper.make_tensor("outer_c", TensorProto.FLOAT, [2], [1.0, 2.0]),
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        ],
    )
    raw = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    raw.ir_version = 7
    canon = canonicalize_onnx(raw)
    onnx.checker.check_model(canon, full_check=True)
    names = {n.name for n in canon.graph.node}
    assert "If_3" in names or "If_4" in names
    for x in (np.array([1.0, 2.0], np.float32), np.array([-1.0, -2.0], np.float32)):
        np.testing.assert_array_equal(
            _run_ort(raw.SerializeToString(), x), _run_ort(serialize_onnx(canon), x)
        )


def test_dangling_reference_is_a_conversion_error():
    graph = helper.make_graph(
        [helper.make_node("Add", ["input", "nowhere"], ["y"])],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    with pytest.raises(ConversionError, match="nowhere"):
        canonicalize_onnx(helper.make_model(graph))


@pytest.mark.parametrize(
    "opset,expected", [(12, 7), (11, 7), (13, 10), (18, 10)], ids=["12", "11", "13", "18"]
)
def test_ir_version_for_opset(opset, expected):
    assert ir_version_for_opset(opset) == expected


def test_ir_version_for_unknown_opset_fails():
    with pytest.raises(ConversionError, match="opset 19"):
        ir_version_for_opset(19)


# --- with TensorFlow --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ns():
    return _namespace()


@pytest.fixture(scope="module")
def free_model(ns):
    return ns["tiny_unet"]()


@pytest.fixture(scope="module")
def free_onnx(free_model):
    return ox.export_onnx(free_model, opset=12, input_shape=(None, None, None, 2))


@pytest.mark.slow
def test_same_bytes_after_unrelated_layers_and_in_a_fresh_process(ns, tmp_path):
    import keras
    import tensorflow as tf

    # Shift Keras's name counters and TensorFlow's function uids in this process.
    for i in range(25):
        keras.layers.Conv2D(2, 3, name=None)
        inp = keras.Input((4,))
        keras.Model(inp, keras.layers.Dense(2)(inp))
        tf.function(lambda x, i=i: x + i)(tf.constant(1.0))
    here = ns["exports"](ns["tiny_unet"]())
    script = tmp_path / "fresh.py"
    script.write_text(MODEL_SRC + EXPORTS_SRC + "print(json.dumps(exports(tiny_unet())))\n")
    stdout = run_fresh_python(script, cwd=tmp_path, PYTHONHASHSEED="123", TZ="Asia/Tokyo")
    there = json.loads(stdout.strip().splitlines()[-1])
    assert here == there


@pytest.mark.slow
def test_canonicalisation_keeps_onnxruntime_outputs_identical(free_model):
    import tensorflow as tf
    import tf2onnx

    spec = [tf.TensorSpec((None, 16, 16, 2), tf.float32, name="input")]
    raw, _ = tf2onnx.convert.from_function(
        tf.function(lambda x: free_model(x)), input_signature=spec, opset=12
    )
    canonical = canonicalize_onnx(raw)
    assert canonical.graph.node[0].name != raw.graph.node[0].name
    x = np.random.default_rng(1).random((2, 16, 16, 2), dtype=np.float32)
    expected = _run_ort(raw.SerializeToString(), x)
    np.testing.assert_array_equal(_run_ort(serialize_onnx(canonical), x), expected)


@pytest.mark.slow
@pytest.mark.parametrize("opset,ir", [(12, 7), (18, 10)], ids=["opset12", "opset18"])
def test_export_is_canonical_checked_and_faithful(ns, opset, ir):
    model = ns["tiny_unet"](16)
    data = ox.export_onnx(model, opset=opset, input_shape=(None, 16, 16, 2))
    proto = onnx.load_from_string(data)
    assert proto.ir_version == ir
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", opset)]
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["output"]
    assert b"functional" not in data and b"tf2onnx" not in data
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1:] == [16, 16, 2]
    x = np.random.default_rng(2).random((1, 16, 16, 2), dtype=np.float32)
    np.testing.assert_allclose(_run_ort(data, x), np.asarray(model(x)), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("tile", [8, 24], ids=["tile8", "tile24"])
def test_specialize_sets_dims_and_matches_keras(free_model, free_onnx, tile):
    data = specialize_onnx(free_onnx, (tile, tile))
    assert data == specialize_onnx(free_onnx, (tile, tile))
    proto = onnx.load_from_string(data)
    for value, channels in ((proto.graph.input[0], 2), (proto.graph.output[0], 3)):
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
        assert dims[1:] == [tile, tile, channels]
    assert len(proto.graph.value_info) == 0
    x = np.random.default_rng(3).random((1, tile, tile, 2), dtype=np.float32)
    np.testing.assert_allclose(_run_ort(data, x), np.asarray(free_model(x)), atol=1e-5)


@pytest.mark.slow
def test_specialize_rejects_unexpected_output_dims(free_onnx):
    with pytest.raises(ConversionError, match=r"expected \(10, 10\)"):
        specialize_onnx(free_onnx, (8, 8), output_spatial_dims=(10, 10))


@pytest.mark.slow
def test_specialize_rejects_conflicting_fixed_input(ns):
    fixed = ox.export_onnx(ns["tiny_unet"](16), opset=12, input_shape=(None, 16, 16, 2))
    with pytest.raises(ConversionError, match="fixed size 16"):
        specialize_onnx(fixed, (32, 32))


@pytest.mark.slow
def test_unsupported_tensorflow_op_is_a_conversion_error():
    import keras
    import tensorflow as tf

    class Bessel(keras.layers.Layer):
        def call(self, x):
            return tf.math.bessel_i1e(x)

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, Bessel()(inputs))
    with pytest.raises(ConversionError, match="BesselI1e"):
        ox.export_onnx(model, opset=12, input_shape=(None, 8, 8, 1))


@pytest.mark.slow
def test_export_rejects_two_outputs():
    import keras

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(
        inputs, [keras.layers.ReLU()(inputs), keras.layers.Activation("sigmoid")(inputs)]
    )
    with pytest.raises(ConversionError, match="one input and one output"):
        ox.export_onnx(model, opset=12, input_shape=(None, 8, 8, 1))


def _broken_rank(real, calls, *, when=lambda shape: True):
    """Wrap ``_tf2onnx_convert`` so that it declares one output dim too many."""

    def broken(model, shape, opset):
        proto = real(model, shape, opset)
        calls.append(shape)
        if when(shape):
            proto.graph.output[0].type.tensor_type.shape.dim.add().dim_value = 1
        return proto

    return broken


@pytest.mark.slow
def test_a_conversion_declaring_the_wrong_output_rank_fails_at_once(monkeypatch):
    """No retry: a wrong rank is an error naming the model, after one conversion."""
    from czbuild.keras import onnx_export

    model = _namespace()["tiny_unet"]()
    model.name = "rank_probe"
    calls: list = []
    monkeypatch.setattr(
        onnx_export, "_tf2onnx_convert", _broken_rank(onnx_export._tf2onnx_convert, calls)
    )
    with pytest.raises(onnx_export.OutputRankError, match=r"'rank_probe'.*rank 5.*rank-4"):
        onnx_export.export_onnx(model, opset=12, input_shape=(None, None, None, 2))
    assert len(calls) == 1


@pytest.mark.slow
def test_a_wrong_undefined_size_rank_takes_the_fixed_route_once(monkeypatch):
    """A wrong rank of the undefined-size graph routes every tile to one fixed conversion."""
    from czbuild.keras import onnx_export
    from czbuild.keras.converter import ModelConverter

    calls: list = []
    monkeypatch.setattr(
        onnx_export,
        "_tf2onnx_convert",
        _broken_rank(onnx_export._tf2onnx_convert, calls, when=lambda shape: shape[1] is None),
    )
    converter = ModelConverter(_namespace()["tiny_unet"]())
    converted = converter.onnx(spatial_dims=(16, 16), opset=12)
    assert converted.route == "fixed"
    assert calls == [(None, None, None, 2), (None, 16, 16, 2)]  # no retry of either
    converter.onnx(spatial_dims=(32, 32), opset=12)
    assert calls[2:] == [(None, 32, 32, 2)]  # the undefined-size graph is not tried again


@pytest.mark.slow
def test_stable_node_order_returns_nodes_in_list_order():
    """The root-cause fix: tf2onnx's ``extract_sub_graph_nodes`` (used by
    ``delete_unused_nodes`` after every optimizer pass) returns ``list(set_of_nodes)``, an
    order that follows memory addresses; inside ``_stable_node_order`` it keeps the graph's
    list order, and the original method is restored afterwards."""
    from tf2onnx.graph import Graph, GraphUtil

    nodes, prev = [], "input"
    for k in range(40):  # a chain plus a side branch per step: many nodes to order
        nodes.append(helper.make_node("Relu", [prev], [f"r{k}"], name=f"relu{k}"))
        nodes.append(helper.make_node("Neg", [f"r{k}"], [f"n{k}"], name=f"neg{k}"))
        nodes.append(helper.make_node("Add", [f"r{k}", f"n{k}"], [f"a{k}"], name=f"add{k}"))
        prev = f"a{k}"
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    original = Graph.extract_sub_graph_nodes
    with ox._stable_node_order():
        g = GraphUtil.create_graph_from_onnx_model(model)
        listed = [n.name for n in g.get_nodes()]
        for _ in range(3):
            got = [n.name for n in g.extract_sub_graph_nodes(g.outputs)]
            assert got == [n for n in listed if n in set(got)]
            g.delete_unused_nodes(g.outputs)
            assert [n.name for n in g.get_nodes()] == listed
    assert Graph.extract_sub_graph_nodes is original
