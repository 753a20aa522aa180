"""Payloads the target ZEN's own runtime can load (czbuild.formats.runtime, payload.runtime_compat).

Fast tests cover the pure rules and the ONNX side of the check; slow ones the TensorFlow side:
a payload written the old way (``tf.saved_model.save`` on TF 2.21) fails, and the bundled
``legacy_seed`` recipe, the seed workflows' 3.0.0 outputs and a BatchNorm U-Net converted to
3.0.0 pass, load with ``tf.saved_model.load`` and match Keras.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from czbuild.formats import vocab
from czbuild.formats.runtime import TfNode, onnx_runtime_problems, tf_node_problems, tf_ops
from czbuild.verify.info import ModelInfo
from czbuild.verify.report import FAILED, PASSED, SKIPPED, VerifyReport
from czbuild.verify.runtime_compat import NAME, check_runtime_compat

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["Background", "Interesting Object", "Foreground"]


# --- the TF 2.0.0 table and rule (no TensorFlow) --------------------------------------------


def test_table_is_tensorflow_2_0_0():
    ops = tf_ops()
    assert len(ops) > 1000
    assert {"T", "padding", "strides", "explicit_paddings"} <= ops["Conv2D"]
    assert "DisableCopyOnRead" not in ops  # the measured offenders of the old payload
    assert "debug_name" not in ops["VarHandleOp"]
    assert "exponential_avg_factor" not in ops["FusedBatchNormV3"]  # added in 2.2


def test_table_file_is_in_the_generators_canonical_form():
    """The JSON is only written by tools/tf2_0_ops.py: re-rendering it gives the same text."""
    spec = importlib.util.spec_from_file_location("tf2_0_ops", REPO / "tools" / "tf2_0_ops.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    text = (REPO / "czbuild" / "formats" / "data" / "tf2_0_ops.json").read_text()
    document = json.loads(text)
    assert document["source"]["wheel"].startswith("tensorflow-2.0.0-")
    assert document["source"]["ops"] == len(document["ops"])
    assert tool.render(document) == text


def test_tf_rule_names_unknown_ops_and_attrs():
    nodes = [
        TfNode("graph", "conv", "Conv2D", ("T", "_class", "padding", "strides")),
        TfNode("graph", "v", "VarHandleOp", ("debug_name", "dtype", "shape")),
        TfNode("function __inference_save_7", "d", "DisableCopyOnRead", ("dtype",)),
    ] + [TfNode("graph", f"x{i}", "Ndtri", ("T",)) for i in range(5)]
    problems = tf_node_problems(nodes)
    assert problems == [
        "op DisableCopyOnRead is not a TensorFlow 2.0.0 op (at d in function __inference_save_7)",
        "op Ndtri is not a TensorFlow 2.0.0 op (at x0, x1, x2 and 2 more)",
        "op VarHandleOp has attr 'debug_name', which TensorFlow 2.0.0's VarHandleOp lacks (at v)",
    ]
    assert tf_node_problems(nodes[:1]) == []  # "_class": internal attrs are ignored


@pytest.mark.parametrize(
    "version,opset,ir,expected",
    [
        ("3.1.0", 12, 7, []),
        ("2.1.0", 18, 10, []),
        ("3.1.0", 13, 7, ["opset 13 outside 9..12"]),
        ("1.1.0", 12, 8, ["ir_version 8 above 7"]),
        ("2.0.0", None, 7, ["imports no ai.onnx opset"]),
    ],
    ids=["3.1.0-ok", "2.1.0-ok", "3.1.0-opset13", "1.1.0-ir8", "no-opset"],
)
def test_onnx_rule(version, opset, ir, expected):
    problems = onnx_runtime_problems(version, opset, ir)
    assert len(problems) == len(expected)
    for problem, fragment in zip(problems, expected):
        assert fragment in problem and vocab.ONNX_RUNTIME[version] in problem


def test_onnx_rule_refuses_the_savedmodel_version():
    with pytest.raises(ValueError, match="no ONNX payload"):
        onnx_runtime_problems("3.0.0", 12, 7)


# --- the ONNX side of payload.runtime_compat --------------------------------------------------


def _onnx(*, opset: int = 12, ir: int = 7, op: str = "Relu") -> bytes:
    node = helper.make_node(op, ["input"], ["output"], name="the_node")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 8, 8, 2])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 8, 8, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir
    return model.SerializeToString()


def _info(version: str) -> ModelInfo:
    family = vocab.family_of(version)
    return ModelInfo(family, version, "SingleClassSemanticSegmentation", (8, 8, 2), (8, 8, 2))


@pytest.mark.parametrize(
    "version,data,status,fragment",
    [
        ("3.1.0", _onnx(), PASSED, "ONNX Runtime 1.4.0"),
        ("2.1.0", _onnx(opset=18, ir=10), PASSED, "ZEN 3.13"),
        ("3.1.0", _onnx(ir=8), FAILED, "ir_version 8 above 7"),
        ("2.0.0", _onnx(opset=18, ir=8), FAILED, "opset 18 outside 9..12"),
        ("2.1.0", _onnx(opset=18, ir=10, op="Gelu"), FAILED, "op Gelu does not exist at opset 18"),
        ("3.1.0", b"\x00garbage", SKIPPED, "payload.model"),
    ],
    ids=["3.1.0", "2.1.0", "ir-too-new", "opset-too-new", "op-too-new", "unparsable"],
)
def test_onnx_payloads(version, data, status, fragment):
    report = VerifyReport(path=Path("m"))
    check_runtime_compat(data, _info(version), report, max_bytes=1 << 30)
    check = report.get(NAME)
    assert check.status == status, check.message
    assert fragment in check.message


def test_verify_reports_runtime_compat_for_onnx_artifacts(tmp_path):
    from czbuild.formats.archive import write_czmodel
    from czbuild.formats.legacy import LegacyMetadata
    from czbuild.verify import verify_artifact

    meta = LegacyMetadata(
        version="3.1.0",
        id="3f1c2a9e-7b4d-5e8a-9c61-0d2b4f6a8e10",
        name="m",
        color_handling="ConvertToMonochrome",
        pixel_types=("Gray8", "Gray8"),
        classes=("a", "b"),
        border_size=0,
    )
    path = tmp_path / "m.czmodel"
    write_czmodel(path, meta, _onnx(ir=8), b"MIT")
    report = verify_artifact(path, tiling=False)
    assert report.get(NAME).status == FAILED
    assert not report.ok


# --- the SavedModel side (TensorFlow) ---------------------------------------------------------


def _legacy_artifact(path: Path, payload: bytes, *, classes: int = 2, tile: int = 16) -> Path:
    from czbuild.formats.archive import write_czmodel
    from czbuild.formats.legacy import LegacyMetadata

    meta = LegacyMetadata(
        version="3.0.0",
        id="3f1c2a9e-7b4d-5e8a-9c61-0d2b4f6a8e10",
        name="m",
        color_handling="ConvertToMonochrome",
        pixel_types=("Gray32Float",),
        classes=tuple(f"c{i}" for i in range(classes)),
        border_size=0,
    )
    write_czmodel(path, meta, payload, None)
    return path


def _old_style_payload(tmp_path: Path) -> bytes:
    """What czbuild wrote before: ``tf.saved_model.save`` of a module with variables."""
    import keras
    import tensorflow as tf

    from czbuild.formats.ziputil import zip_directory

    keras.utils.set_random_seed(3)
    inputs = keras.Input((16, 16, 1))
    outputs = keras.layers.Conv2D(2, 3, padding="same", activation="softmax")(inputs)
    model = keras.Model(inputs, outputs)

    @tf.function(input_signature=[tf.TensorSpec((None, 16, 16, 1), tf.float32, name="input")])
    def serve(x):
        return {"output": model(x, training=False)}

    module = tf.Module()
    module.model, module.serve = model, serve
    tf.saved_model.save(module, str(tmp_path / "old"), signatures={"serving_default": serve})
    return zip_directory(tmp_path / "old")


@pytest.mark.slow
def test_a_tf_2_21_saved_model_fails_naming_the_offenders(tmp_path):
    from czbuild.verify import verify_artifact

    path = _legacy_artifact(tmp_path / "old.czmodel", _old_style_payload(tmp_path))
    report = verify_artifact(path, tiling=False)
    check = report.get(NAME)
    assert check.status == FAILED
    assert "op DisableCopyOnRead is not a TensorFlow 2.0.0 op" in check.message
    assert "VarHandleOp has attr 'debug_name'" in check.message
    assert report.get("payload.model").status == PASSED  # today's TensorFlow loads it
    assert not report.ok  # so a build fails such an artifact


def _load_and_run(payload: bytes, x: np.ndarray, tmp_path: Path) -> np.ndarray:
    import tensorflow as tf

    with zipfile.ZipFile(io.BytesIO(payload)) as zf:
        zf.extractall(tmp_path / "sm")
    serve = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    return serve(input=tf.constant(x))["output"].numpy()


def _bn_unet(tile: int):
    """A seeded two-level U-Net with BatchNormalization (non-trivial moving statistics)."""
    import keras

    keras.utils.set_random_seed(17)
    inputs = keras.Input((tile, tile, 1))
    a = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    a = keras.layers.Activation("relu")(keras.layers.BatchNormalization()(a))
    b = keras.layers.MaxPooling2D()(a)
    b = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(b)
    b = keras.layers.Activation("relu")(keras.layers.BatchNormalization()(b))
    b = keras.layers.Conv2DTranspose(8, 2, strides=2, padding="same")(b)
    x = keras.layers.Concatenate()([a, b])
    x = keras.layers.Dropout(0.3)(x)
    outputs = keras.layers.Conv2D(3, 1, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="bn_unet")
    rng = np.random.default_rng(4)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.5, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))
            layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.2, n).astype("float32"))
    return model


@pytest.mark.slow
def test_a_batchnorm_unet_converted_to_3_0_0_passes_and_matches_keras(tmp_path):
    from czbuild.convert import convert_from_model_spec
    from czbuild.formats import read_artifact
    from czbuild.model_metadata import ModelMetadata, ModelSpec
    from czbuild.verify import verify_artifact

    model = _bn_unet(None)
    metadata = ModelMetadata.from_params(
        name="BN U-Net",
        color_handling="ConvertToMonochrome",
        pixel_type="Gray8",
        classes=CLASSES,
        border_size=4,
    )
    pre = [{"op": "scale", "scale": 1 / 255}]
    path = convert_from_model_spec(
        ModelSpec(model=model, model_metadata=metadata),
        tmp_path,
        "bn_unet",
        preprocessing=pre,
        spatial_dims=(32, 32),
        format_version="3.0.0",
    )
    report = verify_artifact(path, source_model=model, preprocessing=pre, tiling=False)
    assert report.get(NAME).status == PASSED, report.get(NAME).message
    assert report.ok, {c.name: c.message for c in report.failed}
    x = np.random.default_rng(8).integers(0, 256, (2, 32, 32, 1)).astype(np.float32)
    got = _load_and_run(read_artifact(path).model_bytes, x, tmp_path)
    np.testing.assert_allclose(got, np.asarray(model(x / 255.0)), atol=1e-5)


@pytest.mark.slow
def test_the_seed_workflows_3_0_0_outputs_pass(tmp_path, monkeypatch):
    """convert_from_model_spec (keras.Model, SavedModel directory) and convert_from_json_spec,
    as in the seed's README, with format_version 3.0.0."""
    import keras

    from czbuild.convert import convert_from_json_spec, convert_from_model_spec
    from czbuild.formats import read_artifact
    from czbuild.model_metadata import ModelMetadata, ModelSpec
    from czbuild.preprocessing import RgbToBgr
    from czbuild.verify import verify_artifact

    monkeypatch.chdir(tmp_path)
    Path("LICENSE.txt").write_text("Licensed for testing.\n")
    keras.utils.set_random_seed(21)
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.UpSampling2D()(keras.layers.MaxPooling2D()(x))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1, activation="softmax")(x))
    model.export("saved_model_dir", verbose=False)
    keras.Model(inputs, model(inputs)).save("model.keras")
    metadata = ModelMetadata.from_params(
        name="DNNModelFromKeras",
        color_handling="ConvertToMonochrome",
        pixel_type="Gray16",
        classes=CLASSES,
        border_size=4,
        license_file="LICENSE.txt",
    )
    Path("spec.json").write_text(
        json.dumps(
            {
                "ModelPath": "model.keras",
                "ColorHandling": "ConvertToMonochrome",
                "PixelType": "Gray16",
                "Classes": CLASSES,
                "BorderSize": 4,
                "LicenseFile": "LICENSE.txt",
            }
        )
    )
    common = {"spatial_dims": (32, 32), "format_version": "3.0.0"}
    paths = [
        convert_from_model_spec(
            ModelSpec(model=model, model_metadata=metadata), "a", "m", **common
        ),
        convert_from_model_spec(
            ModelSpec(model="saved_model_dir", model_metadata=metadata),
            "b",
            "m",
            preprocessing=RgbToBgr(),
            **common,
        ),
        convert_from_json_spec("spec.json", "c", "m", **common),
    ]
    x = np.random.default_rng(9).random((1, 32, 32, 1), dtype=np.float32)
    for i, path in enumerate(paths):
        artifact = read_artifact(path)
        assert artifact.version == "3.0.0"
        report = verify_artifact(path, source_model=model, tiling=False)
        assert report.get(NAME).status == PASSED, report.get(NAME).message
        assert report.ok, {c.name: c.message for c in report.failed}
        got = _load_and_run(artifact.model_bytes, x, tmp_path / str(i))
        np.testing.assert_allclose(got, np.asarray(model(x)), atol=1e-5)


@pytest.mark.slow
def test_the_bundled_legacy_seed_recipe_builds_an_artifact_zen_3_2_can_load(tmp_path):
    """`czbuild build legacy_seed` (its verification includes payload.runtime_compat)."""
    from czbuild.formats import read_artifact
    from czbuild.verify import verify_artifact
    from support.release_fakes import copy_example_project

    project = copy_example_project(tmp_path / "project")
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-m", "czbuild", "build", "legacy_seed"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (path,) = (project / "build").rglob("*.czmodel")
    report = verify_artifact(path, tiling=False)
    assert report.get(NAME).status == PASSED, report.get(NAME).message
    assert report.get(NAME).details["runtime"].startswith("TensorFlow 2.0.0")
    sys.path.insert(0, str(project / "models"))
    try:
        import legacy_seed
    finally:
        sys.path.remove(str(project / "models"))
    model = legacy_seed.build()
    x = np.random.default_rng(10).integers(0, 65536, (1, 256, 256, 1)).astype(np.float32)
    got = _load_and_run(read_artifact(path).model_bytes, x, tmp_path)
    np.testing.assert_allclose(got, np.asarray(model(x / 65535.0)), atol=1e-5)
