"""Tests for czbuild.keras.sources: every kind of model source and its errors.

TensorFlow is imported inside the tests (never at module level) so that ``-m 'not slow'``
collects this file without importing it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from czbuild.errors import ModelError
from czbuild.keras.sources import load_custom_objects, load_model, parse_factory, source_kind

CUSTOM_LAYER_FILE = '''
import keras


class TimesTwo(keras.layers.Layer):
    """A custom layer that is NOT registered with Keras."""

    def call(self, x):
        return x * 2.0


@keras.saving.register_keras_serializable(package="cztest")
class PlusOne(keras.layers.Layer):
    def call(self, x):
        return x + 1.0


def helper():
    return 1
'''


def _tiny_model(keras: Any, *, layers: tuple = (), name: str = "tiny") -> Any:
    keras.utils.set_random_seed(7)
    inputs = keras.Input((8, 8, 1), name="image")
    x = inputs
    for layer in layers:
        x = layer(x)
    x = keras.layers.Conv2D(3, 3, padding="same", activation="relu")(x)
    outputs = keras.layers.Conv2D(2, 1, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=name)


def _sample() -> np.ndarray:
    return np.random.default_rng(0).random((2, 8, 8, 1), dtype=np.float32)


def _assert_same_outputs(a: Any, b: Any) -> None:
    x = _sample()
    np.testing.assert_allclose(np.asarray(a(x)), np.asarray(b(x)), rtol=0, atol=1e-6)


# --- source_kind (no TensorFlow) ----------------------------------------------------------------


@pytest.fixture()
def paths(tmp_path: Path) -> dict[str, Path]:
    files = {
        "keras": tmp_path / "m.keras",
        "h5": tmp_path / "m.h5",
        "hdf5": tmp_path / "M.HDF5",
        "py": tmp_path / "factory.py",
        "onnx": tmp_path / "m.onnx",
        "sm": tmp_path / "sm" / "saved_model.pb",
    }
    for path in files.values():
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"")
    (tmp_path / "plain_dir").mkdir()
    return {"root": tmp_path, **files}


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p["keras"], "keras"),
        (lambda p: str(p["keras"]), "keras"),
        (lambda p: p["h5"], "h5"),
        (lambda p: p["hdf5"], "h5"),
        (lambda p: p["sm"].parent, "saved_model"),
        (lambda p: f"{p['py']}:build", "factory"),
    ],
    ids=["keras-path", "keras-str", "h5", "hdf5-upper", "saved-model-dir", "factory"],
)
def test_source_kind(paths: dict[str, Path], make: Any, expected: str) -> None:
    assert source_kind(make(paths)) == expected


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        (lambda p: p["root"] / "missing.keras", ["missing.keras", "no such file"]),
        (lambda p: f"{p['root'] / 'nope.py'}:build", ["nope.py", "not found"]),
        (lambda p: p["onnx"], ["m.onnx", "unknown extension '.onnx'", ".keras"]),
        (lambda p: p["root"] / "plain_dir", ["plain_dir", "not a TensorFlow SavedModel"]),
        (lambda p: p["py"], ["factory.py", "factory function", ":build_model"]),
        (lambda p: 42, ["unsupported type int", "keras.Model"]),
    ],
    ids=["missing", "factory-missing", "unknown-ext", "dir-not-saved-model", "py-no-func", "int"],
)
def test_source_kind_errors(paths: dict[str, Path], make: Any, fragments: list[str]) -> None:
    with pytest.raises(ModelError) as info:
        source_kind(make(paths))
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x/y.keras", "keras"),
        ("x/model.h5", "h5"),
        ("x/export", "saved_model"),
        ("f.py:g", "factory"),
    ],
    ids=["keras", "h5", "dir", "factory"],
)
def test_source_kind_without_existence_check(source: str, expected: str) -> None:
    assert source_kind(source, must_exist=False) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a/b.py:build", (Path("a/b.py"), "build")),
        ("C:\\models\\f.py:make_unet", (Path("C:\\models\\f.py"), "make_unet")),
        ("a/b.py", None),
        ("a/b.py:", None),
        ("a/b.keras:build", None),
        ("a/b.py:1bad", None),
    ],
    ids=["posix", "windows-drive", "no-func", "empty-func", "not-py", "bad-identifier"],
)
def test_parse_factory(text: str, expected: tuple | None) -> None:
    assert parse_factory(text) == expected


def test_source_kind_does_not_import_tensorflow(tmp_path: Path) -> None:
    (tmp_path / "m.keras").write_bytes(b"")
    code = textwrap.dedent(
        f"""
        import sys
        import czbuild.keras
        from czbuild.keras.sources import source_kind
        assert source_kind({str(tmp_path / "m.keras")!r}) == "keras"
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_custom_objects_file_errors_without_tensorflow(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="custom objects file.*missing.py.*not found"):
        load_custom_objects([tmp_path / "missing.py"])
    (tmp_path / "objs.txt").write_text("")
    with pytest.raises(ModelError, match=r"objs.txt.*\.py"):
        load_custom_objects([tmp_path / "objs.txt"])


# --- loading (TensorFlow) -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One tiny model saved in every supported format."""
    import keras
    import tensorflow as tf

    root = tmp_path_factory.mktemp("sources")
    model = _tiny_model(keras)
    model.save(root / "m.keras")
    model.save(root / "m.h5")
    model.export(root / "exported", verbose=False)
    spec = tf.TensorSpec((None, 8, 8, 1), tf.float32, name="x")
    serve = tf.function(lambda x: {"probs": model(x)}, input_signature=[spec])
    tf.saved_model.save(model, str(root / "plain"), signatures=serve)
    return {"root": root, "model": model}


@pytest.mark.slow
def test_memory_model_is_returned_as_is(saved: dict[str, Any]) -> None:
    assert load_model(saved["model"]) is saved["model"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "kind"),
    [("m.keras", "keras"), ("m.h5", "h5"), ("exported", "saved_model"), ("plain", "saved_model")],
    ids=["keras", "h5", "model-export", "tf-saved-model-save"],
)
def test_load_file_sources(saved: dict[str, Any], name: str, kind: str) -> None:
    import keras

    path = saved["root"] / name
    assert source_kind(path) == kind
    model = load_model(path)
    assert isinstance(model, keras.Model)
    assert len(model.inputs) == 1 and len(model.outputs) == 1
    assert tuple(model.inputs[0].shape) == (None, 8, 8, 1)
    assert tuple(model.outputs[0].shape) == (None, 8, 8, 2)
    _assert_same_outputs(model, saved["model"])


@pytest.mark.slow
def test_saved_model_from_str_path_can_be_reexported(saved: dict[str, Any], tmp_path: Path) -> None:
    model = load_model(str(saved["root"] / "exported"))
    model.export(tmp_path / "again", verbose=False)
    _assert_same_outputs(load_model(tmp_path / "again"), saved["model"])


@pytest.mark.slow
def test_saved_model_with_two_inputs_is_rejected(tmp_path: Path) -> None:
    import tensorflow as tf

    module = tf.Module()
    module.v = tf.Variable(2.0)
    specs = [tf.TensorSpec((None, 4, 4, 1), tf.float32, name=n) for n in ("a", "b")]
    module.f = tf.function(lambda a, b: {"out": a * module.v + b}, input_signature=specs)
    tf.saved_model.save(module, str(tmp_path / "two"), signatures=module.f)
    with pytest.raises(ModelError, match=r"2 inputs \(a, b\).*exactly one input"):
        load_model(tmp_path / "two")


@pytest.mark.slow
def test_saved_model_with_two_outputs_is_rejected(tmp_path: Path) -> None:
    import tensorflow as tf

    module = tf.Module()
    spec = tf.TensorSpec((None, 4, 4, 1), tf.float32, name="x")
    module.f = tf.function(lambda x: {"p": x, "q": 1.0 - x}, input_signature=[spec])
    tf.saved_model.save(module, str(tmp_path / "two_out"), signatures=module.f)
    with pytest.raises(ModelError, match=r"2 outputs.*exactly one input and one output"):
        load_model(tmp_path / "two_out")


@pytest.mark.slow
def test_saved_model_without_signature_is_rejected(tmp_path: Path) -> None:
    import tensorflow as tf

    module = tf.Module()
    module.v = tf.Variable(1.0)
    tf.saved_model.save(module, str(tmp_path / "nosig"))
    with pytest.raises(ModelError, match="no 'serving_default' signature.*model.export"):
        load_model(tmp_path / "nosig")


@pytest.mark.slow
def test_corrupt_keras_file_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / "bad.keras").write_bytes(b"not a zip")
    with pytest.raises(
        ModelError, match=r"bad.keras.*not a readable .keras file \(a .keras file is a zip"
    ):
        load_model(tmp_path / "bad.keras")


@pytest.fixture(scope="module")
def custom(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Models using an unregistered (TimesTwo) and a registered (PlusOne) custom layer."""
    import keras

    root = tmp_path_factory.mktemp("custom")
    layers_file = root / "my_layers.py"
    layers_file.write_text(CUSTOM_LAYER_FILE)
    objects = load_custom_objects([layers_file])
    model = _tiny_model(keras, layers=(objects["TimesTwo"](),))
    model.save(root / "custom.keras")
    model.save(root / "custom.h5")
    return {"root": root, "model": model, "objects": objects, "file": layers_file}


@pytest.mark.slow
def test_load_custom_objects_collects_layers(custom: dict[str, Any]) -> None:
    import keras

    objects = custom["objects"]
    assert set(objects) == {"TimesTwo", "PlusOne", "cztest>PlusOne"}
    assert objects["PlusOne"] is objects["cztest>PlusOne"]
    assert all(issubclass(v, keras.layers.Layer) for v in objects.values())
    # same file again: the module is reused, classes keep their identity
    assert load_custom_objects([custom["file"]])["TimesTwo"] is objects["TimesTwo"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["custom.keras", "custom.h5"], ids=["keras", "h5"])
def test_missing_custom_layer_names_class_and_fix(custom: dict[str, Any], name: str) -> None:
    with pytest.raises(ModelError) as info:
        load_model(custom["root"] / name)
    message = str(info.value)
    assert "'TimesTwo'" in message
    assert "custom_objects={'TimesTwo': TimesTwo}" in message
    assert "model.custom_objects: [file.py]" in message
    assert name in message


@pytest.mark.slow
@pytest.mark.parametrize("name", ["custom.keras", "custom.h5"], ids=["keras", "h5"])
@pytest.mark.parametrize("how", ["dict", "file"], ids=["dict", "file"])
def test_custom_objects_make_it_load(custom: dict[str, Any], name: str, how: str) -> None:
    if how == "dict":
        objects = {"TimesTwo": custom["objects"]["TimesTwo"]}
    else:
        objects = load_custom_objects([custom["file"]])
    model = load_model(custom["root"] / name, custom_objects=objects)
    _assert_same_outputs(model, custom["model"])


@pytest.mark.slow
def test_custom_objects_dict_in_file_and_conflicts(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(
        "import keras\n"
        "def swish2(x):\n    return x\n"
        "CUSTOM_OBJECTS = {'swish2': swish2}\n"
        "class Dup(keras.layers.Layer):\n    pass\n"
    )
    (tmp_path / "b.py").write_text("import keras\nclass Dup(keras.layers.Layer):\n    pass\n")
    objects = load_custom_objects([tmp_path / "a.py"])
    assert set(objects) == {"swish2", "Dup"}
    with pytest.raises(ModelError, match="'Dup' is also defined in"):
        load_custom_objects([tmp_path / "a.py", tmp_path / "b.py"])
    (tmp_path / "c.py").write_text("CUSTOM_OBJECTS = [1]\n")
    with pytest.raises(ModelError, match="CUSTOM_OBJECTS must be a dict"):
        load_custom_objects([tmp_path / "c.py"])


FACTORY_FILE = """
import keras


def build():
    keras.utils.set_random_seed(7)
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(3, 3, padding="same", activation="relu")(inputs)
    outputs = keras.layers.Conv2D(2, 1, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="tiny")


def not_a_model():
    return 42


def broken():
    raise RuntimeError("boom")


VALUE = 3
"""


@pytest.mark.slow
def test_factory_builds_model(saved: dict[str, Any], tmp_path: Path) -> None:
    import keras

    (tmp_path / "factory.py").write_text(FACTORY_FILE)
    model = load_model(f"{tmp_path / 'factory.py'}:build")
    assert isinstance(model, keras.Model)
    _assert_same_outputs(model, saved["model"])
    assert load_model(f"{tmp_path / 'factory.py'}:build") is not model  # called every time


@pytest.mark.slow
@pytest.mark.parametrize(
    ("func", "fragments"),
    [
        ("missing", ["defines no 'missing'", "build", "not_a_model"]),
        ("not_a_model", ["not_a_model() returned int", "must return a keras.Model"]),
        ("broken", ["broken() raised RuntimeError: boom"]),
        ("VALUE", ["'VALUE' is not callable"]),
    ],
    ids=["missing-function", "returns-int", "raises", "not-callable"],
)
def test_factory_errors(tmp_path: Path, func: str, fragments: list[str]) -> None:
    (tmp_path / "factory.py").write_text(FACTORY_FILE)
    with pytest.raises(ModelError) as info:
        load_model(f"{tmp_path / 'factory.py'}:{func}")
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


@pytest.mark.slow
def test_factory_file_that_fails_to_execute(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("raise ImportError('no such package')\n")
    with pytest.raises(ModelError, match="bad.py.*executing the file failed: ImportError"):
        load_model(f"{tmp_path / 'bad.py'}:build")
    assert not any(name.startswith("_czbuild_user_bad_") for name in sys.modules)


@pytest.mark.slow
def test_custom_objects_must_be_a_mapping(saved: dict[str, Any]) -> None:
    with pytest.raises(ModelError, match="custom_objects: must be a dict"):
        load_model(saved["root"] / "m.keras", custom_objects=["TimesTwo"])  # type: ignore[arg-type]


@pytest.mark.slow
def test_factory_can_import_sibling_module(tmp_path: Path) -> None:
    import keras

    (tmp_path / "cz_sibling_parts.py").write_text("FILTERS = 3\n")
    (tmp_path / "net.py").write_text(
        "import keras\nfrom cz_sibling_parts import FILTERS\n"
        "def build():\n"
        "    i = keras.Input((None, None, 1))\n"
        "    return keras.Model(i, keras.layers.Conv2D(FILTERS, 1)(i))\n"
    )
    try:
        model = load_model(f"{tmp_path / 'net.py'}:build")
    finally:
        sys.modules.pop("cz_sibling_parts", None)
    assert isinstance(model, keras.Model) and model.outputs[0].shape[-1] == 3
    assert str(tmp_path) not in sys.path


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".keras", ".h5"], ids=["keras", "h5"])
def test_lambda_layer_refused_with_explanation(tmp_path: Path, suffix: str) -> None:
    import keras

    inputs = keras.Input((4, 4, 1))
    keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs)).save(tmp_path / f"l{suffix}")
    with pytest.raises(ModelError, match="Lambda layer.*factory.*safe_mode=False"):
        load_model(tmp_path / f"l{suffix}")


def test_package_reexports_lazily() -> None:
    import czbuild.keras as package
    from czbuild.keras import sources

    assert package.source_kind is sources.source_kind
    assert "load_model" in dir(package)
    assert set(package.__all__) == set(package._LAZY)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        package.nope  # noqa: B018
