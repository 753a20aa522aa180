"""The library API: the issue's snippets as shown, every format version, JSON specs, checks."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from czbuild.errors import MetadataError, ModelError, SpecError

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["Background", "Interesting Object", "Foreground"]


# --- no TensorFlow ---------------------------------------------------------------------------


def test_import_czbuild_does_not_import_tensorflow():
    code = (
        "import sys, czbuild\n"
        "czbuild.inspect; czbuild.ModelMetadata; czbuild.CzannModelMetadata; czbuild.ModelSpec\n"
        "import czbuild.convert, czbuild.model_metadata, czbuild.preprocessing\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'\n"
        "assert set(czbuild.__all__) <= set(dir(czbuild))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"pixel_type": "Gray17"}, "PixelType"),
        ({"color_handling": "Mono"}, "ColorHandling"),
        ({"border_size": -1}, "BorderSize"),
        ({"classes": "Background"}, "Classes"),
    ],
    ids=["pixel-type", "color-handling", "border-size", "classes-not-a-list"],
)
def test_from_params_names_the_bad_field(kwargs, field):
    from czbuild.model_metadata import ModelMetadata

    params = {
        "name": "n",
        "color_handling": "ConvertToMonochrome",
        "pixel_type": "Gray8",
        "classes": ["a", "b"],
        "border_size": 2,
    }
    params.update(kwargs)
    with pytest.raises(MetadataError) as info:
        ModelMetadata.from_params(**params)
    assert info.value.field == field


@pytest.mark.parametrize(
    "path,name",
    [("models/nuclei.keras", "nuclei.keras"), ("models\\nuclei\\", "nuclei"), ("/", "DNN model")],
    ids=["posix", "windows-trailing-separator", "empty"],
)
def test_default_model_name(path, name):
    from czbuild.model_metadata import default_model_name

    assert default_model_name(path) == name


@pytest.mark.parametrize(
    "name,family,expected",
    [
        ("Model Name", "czmodel", "Model Name.czmodel"),
        ("x.czann", "czann", "x.czann"),
        ("x.czseg", "czmodel", "x.czseg"),
        ("x.czann", "czmodel", "x.czann.czmodel"),
    ],
    ids=["append", "keep-czann", "keep-czseg", "other-extension"],
)
def test_output_file(name, family, expected, tmp_path):
    from czbuild.convert import output_file

    assert output_file(tmp_path, name, family) == tmp_path / expected


def test_output_name_with_separator_is_refused(tmp_path):
    from czbuild.convert import output_file

    with pytest.raises(MetadataError, match="output_name"):
        output_file(tmp_path, "../escape", "czann")


# --- fixtures with TensorFlow ----------------------------------------------------------------


def _build(tile, channels=1, classes=3, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((tile, tile, channels))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.UpSampling2D()(x)
    return keras.Model(inputs, keras.layers.Conv2D(classes, 1, activation="softmax")(x))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder with LICENSE.txt, a .keras model and a SavedModel directory."""
    root = tmp_path_factory.mktemp("api")
    (root / "LICENSE.txt").write_text("Licensed for testing.\n")
    fixed = _build(192)  # border_size=90 in the issue's snippet needs a tile > 180
    fixed.save(root / "model.keras")
    saved = root / "path" / "to" / "saved_model_dir"
    _build(None, seed=1).export(str(saved), verbose=False)
    return root


@pytest.fixture()
def in_workspace(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    return workspace


# The snippet of issue 2, verbatim (``model`` is defined by the test).
SNIPPET = """
from czbuild.model_metadata import ModelMetadata, ModelSpec
from czbuild.convert import convert_from_model_spec, convert_from_json_spec
from czbuild.preprocessing import RgbToBgr

model_metadata = ModelMetadata.from_params(name="DNNModelFromKeras",
    color_handling="ConvertToMonochrome", pixel_type="Gray16",
    classes=["Background", "Interesting Object", "Foreground"], border_size=90,
    license_file="LICENSE.txt")
model_spec = ModelSpec(model=model, model_metadata=model_metadata)      # keras.Model in memory
convert_from_model_spec(model_spec, "out", "Model Name")                  # -> out/Model Name.czmodel
model_spec = ModelSpec(model="path/to/saved_model_dir", model_metadata=model_metadata)
convert_from_model_spec(model_spec, "out", "Model Name", preprocessing=RgbToBgr(), spatial_dims=(512, 512))
convert_from_json_spec("spec.json", "out", "Model Name")
"""


def _run_snippet(source: str) -> None:
    import keras

    from czbuild.formats import read_artifact

    spec_json = {
        "ModelPath": "model.keras",
        "ColorHandling": "ConvertToMonochrome",
        "PixelType": "Gray16",
        "Classes": CLASSES,
        "BorderSize": 90,
        "LicenseFile": "LICENSE.txt",
    }
    Path("spec.json").write_text(json.dumps(spec_json))
    namespace = {"model": keras.models.load_model("model.keras")}
    exec(source, namespace)
    assert sorted(p.name for p in Path("out").iterdir()) == ["Model Name.czmodel"]
    artifact = read_artifact("out/Model Name.czmodel")  # the last one: from spec.json
    assert artifact.metadata.name == "model.keras"  # ModelName from the ModelPath basename
    assert artifact.metadata.classes == tuple(CLASSES)
    assert artifact.license_bytes == b"Licensed for testing.\n"


@pytest.mark.slow
def test_issue_snippets_run_as_shown(in_workspace):
    _run_snippet(SNIPPET)


CZANN_VERSIONS = ["1.0.0", "1.1.0", "2.0.0", "2.1.0"]
LEGACY_VERSIONS = ["3.1.0", "3.0.0"]


@pytest.fixture(scope="module")
def tiny(workspace):
    return _build(None, seed=2)


@pytest.mark.slow
@pytest.mark.parametrize("version", CZANN_VERSIONS + LEGACY_VERSIONS)
def test_every_format_version(tiny, workspace, tmp_path, version):
    from czbuild.convert import convert_from_model_spec
    from czbuild.formats import read_artifact
    from czbuild.model_metadata import CzannModelMetadata, ModelMetadata, ModelSpec

    if version in CZANN_VERSIONS:
        # Without FormatVersion (< 2.1.0) readers infer the version from the keys used:
        # Scaling -> 1.1.0, 3-value Scaling -> 2.0.0.
        scaling = {"1.0.0": None, "1.1.0": (1e-6, 1e-6)}.get(version, (1e-6, 1e-6, 2e-6))
        metadata = CzannModelMetadata(
            type="SingleClassSemanticSegmentation",
            classes=CLASSES,
            min_overlap=(4, 4),
            model_name="Tiny",
            scaling=scaling,
        )
    else:
        metadata = ModelMetadata.from_params(
            name="Tiny",
            color_handling="ConvertToMonochrome",
            pixel_type="Gray8",
            classes=CLASSES,
            border_size=2,
        )
    spec = ModelSpec(model=tiny, model_metadata=metadata, license_file=workspace / "LICENSE.txt")
    path = convert_from_model_spec(
        spec, tmp_path, "tiny", spatial_dims=(16, 16), format_version=version
    )
    artifact = read_artifact(path)
    assert artifact.version == version
    assert path.suffix == (".czann" if version in CZANN_VERSIONS else ".czmodel")
    assert artifact.payload == ("savedmodel_zip" if version == "3.0.0" else "onnx")
    if version in CZANN_VERSIONS:
        assert artifact.metadata.input_shape == (16, 16, 1)
        assert artifact.metadata.output_shape == (16, 16, 3)
    if artifact.payload == "onnx":
        import onnx

        proto = onnx.load_from_string(artifact.model_bytes)
        assert proto.opset_import[0].version == (18 if version == "2.1.0" else 12)
        assert proto.ir_version == (10 if version == "2.1.0" else 7)


@pytest.mark.slow
def test_convert_request_result_and_determinism(tiny, tmp_path):
    from czbuild.convert import ConversionRequest, convert
    from czbuild.formats import CzannMetadata

    request = ConversionRequest(
        source=tiny,
        metadata=CzannMetadata(
            type="SingleClassSemanticSegmentation",
            input_shape=None,
            output_shape=None,
            classes=tuple(CLASSES),
        ),
        preprocessing=({"op": "scale", "scale": 2.0},),
        spatial_dims=(8, 8),
        license=b"L",
    )
    first = convert(request, tmp_path / "a.czann")
    second = convert(request, tmp_path / "b.czann")
    data = first.path.read_bytes()
    assert first.sha256 == hashlib.sha256(data).hexdigest() == second.sha256
    with zipfile.ZipFile(first.path) as zf:
        assert first.members == {n: hashlib.sha256(zf.read(n)).hexdigest() for n in zf.namelist()}
    assert list(first.members) == ["model.json", "model.model", "license.txt"]
    assert first.metadata.id is not None and first.metadata.input_shape == (8, 8, 1)
    assert first.route == "specialized" and first.opset == 18


# --- validation before writing ----------------------------------------------------------------


def _czann(**kwargs):
    from czbuild.model_metadata import CzannModelMetadata

    base = {"type": "SingleClassSemanticSegmentation", "classes": CLASSES}
    base.update(kwargs)
    return CzannModelMetadata(**base)


def _legacy(**kwargs):
    from czbuild.model_metadata import ModelMetadata

    base = {
        "name": "n",
        "color_handling": "ConvertToMonochrome",
        "pixel_type": "Gray8",
        "classes": CLASSES,
        "border_size": 2,
    }
    base.update(kwargs)
    return ModelMetadata.from_params(**base)


@pytest.mark.slow
@pytest.mark.parametrize(
    "make,kwargs,error,match",
    [
        (lambda: _czann(classes=["a", "b"]), {}, MetadataError, "Classes: 2 names"),
        (lambda: _czann(min_overlap=(16, 16)), {}, MetadataError, "MinOverlap"),
        (lambda: _czann(input_shape=(32, 32, 1)), {}, MetadataError, "InputShape"),
        (lambda: _czann(), {"spatial_dims": None}, ModelError, "spatial_dims"),
        (lambda: _czann(), {"opset": 19}, MetadataError, "opset"),
        (lambda: _legacy(), {"opset": 12, "format_version": "3.0.0"}, MetadataError, "opset"),
        (lambda: _legacy(classes=["a", "b"]), {}, MetadataError, "Classes"),
        (lambda: _legacy(border_size=8), {}, MetadataError, "BorderSize"),
        (lambda: _legacy(), {"format_version": "2.1.0"}, MetadataError, "format_version"),
        (
            lambda: _czann(type="Regression", classes=None),
            {"postprocessing": [{"op": "transpose_channels", "order": [0]}]},
            None,
            None,
        ),
        (lambda: _czann(), {"preprocessing": [{"op": "nope"}]}, ModelError, "preprocessing"),
    ],
    ids=[
        "classes-count",
        "min-overlap-vs-tile",
        "input-shape-mismatch",
        "undefined-size",
        "opset-too-high",
        "opset-for-savedmodel",
        "legacy-classes",
        "border-vs-tile",
        "family-mismatch",
        "regression-ok",
        "unknown-op",
    ],
)
def test_validation_before_writing(tiny, tmp_path, make, kwargs, error, match):
    from czbuild.convert import convert_from_model_spec
    from czbuild.model_metadata import ModelSpec

    args = {"spatial_dims": (16, 16)}
    args.update(kwargs)
    spec = ModelSpec(model=tiny, model_metadata=make())
    if error is None:
        assert convert_from_model_spec(spec, tmp_path, "ok", **args).exists()
        return
    with pytest.raises(error, match=match):
        convert_from_model_spec(spec, tmp_path, "bad", **args)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_pixel_type_channel_mismatch_only_warns(tiny, tmp_path, caplog):
    from czbuild.convert import convert_from_model_spec
    from czbuild.model_metadata import ModelSpec

    with caplog.at_level(logging.WARNING, logger="czbuild"):
        path = convert_from_model_spec(
            ModelSpec(model=tiny, model_metadata=_legacy(pixel_type="Bgr24")),
            tmp_path,
            "m",
            spatial_dims=(8, 8),
        )
    assert path.exists()
    assert any("PixelType" in r.getMessage() for r in caplog.records)


# --- JSON specs ----------------------------------------------------------------------------


@pytest.fixture()
def spec_dir(workspace, tmp_path):
    """A spec folder with relative paths; the test runs from another working directory."""
    folder = tmp_path / "specs"
    (folder / "models").mkdir(parents=True)
    (folder / "models" / "m.keras").write_bytes((workspace / "model.keras").read_bytes())
    (folder / "LICENSE.txt").write_text("spec licence")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("form", ["legacy", "czann-inline", "czann-path"])
def test_json_spec_forms_resolve_paths_against_the_spec_folder(
    spec_dir, tmp_path, monkeypatch, caplog, form
):
    from czbuild.convert import convert_from_json_spec
    from czbuild.formats import read_artifact

    metadata = {
        "Type": "SingleClassSemanticSegmentation",
        "Classes": CLASSES,
        "InputShape": [192, 192, 1],
        "OutputShape": [192, 192, 3],
        "ModelName": "Spec",
        "MinOverlap": [8, 8],
        "FormatVersion": "1.0.0",
    }
    if form == "legacy":
        doc = {
            "ModelPath": "models\\m.keras",
            "ColorHandling": "SplitRgb",
            "PixelType": "Gray8",
            "Classes": CLASSES,
            "BorderSize": 4,
            "LicenseFile": "LICENSE.txt",
            "Colour": "red",
        }
    elif form == "czann-inline":
        doc = {
            "ModelMetadata": metadata,
            "ModelPath": "./models/m.keras",
            "LicenseFile": None,
            "Colour": "red",
        }
    else:
        (spec_dir / "meta.json").write_text(json.dumps(metadata))
        doc = {
            "ModelMetadata": "meta.json",
            "ModelPath": "models/m.keras",
            "LicenseFile": "LICENSE.txt",
            "Colour": "red",
        }
    (spec_dir / "spec.json").write_text(json.dumps(doc))
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with caplog.at_level(logging.WARNING, logger="czbuild"):
        path = convert_from_json_spec(spec_dir / "spec.json", "out")
    assert path == Path("out") / ("spec.czmodel" if form == "legacy" else "spec.czann")
    assert any("Colour" in r.getMessage() for r in caplog.records)
    artifact = read_artifact(path)
    if form == "legacy":
        assert artifact.metadata.name == "m.keras"
        assert artifact.license_bytes == b"spec licence"
    else:
        assert artifact.version == "2.1.0"  # an input FormatVersion is ignored
        assert artifact.metadata.model_name == "Spec"
        assert (artifact.license_bytes is None) == (form == "czann-inline")


@pytest.mark.parametrize(
    "doc,match",
    [
        ("{not json", "invalid JSON"),
        ({"ModelPath": "x.keras"}, "neither a CZANN spec"),
        (
            {
                "ModelPath": "missing.keras",
                "ColorHandling": "SplitRgb",
                "PixelType": "Gray8",
                "Classes": ["a", "b"],
                "BorderSize": 1,
            },
            "ModelPath: 'missing.keras' not found",
        ),
        (
            {
                "ColorHandling": "SplitRgb",
                "PixelType": "Gray8",
                "Classes": ["a", "b"],
                "BorderSize": "4",
                "ModelPath": "m.keras",
            },
            "BorderSize",
        ),
        (
            {
                "ColorHandling": "SplitRgb",
                "PixelType": "Grey8",
                "Classes": ["a", "b"],
                "BorderSize": 4,
                "ModelPath": "m.keras",
            },
            "PixelType",
        ),
        ({"ModelMetadata": {"Classes": ["a", "b"]}, "ModelPath": "m.keras"}, "ModelMetadata.Type"),
        ({"ModelMetadata": {"Type": "Segmentation"}, "ModelPath": "m.keras"}, "Type"),
        ({"ModelMetadata": "nowhere.json", "ModelPath": "m.keras"}, "ModelMetadata"),
        (
            {
                "ModelMetadata": {"Type": "Regression"},
                "ModelPath": "m.keras",
                "LicenseFile": "NOPE.txt",
            },
            "LicenseFile",
        ),
    ],
    ids=[
        "bad-json",
        "unknown-form",
        "missing-model",
        "border-type",
        "pixel-type",
        "missing-type",
        "bad-type",
        "missing-metadata-file",
        "missing-licence",
    ],
)
def test_bad_json_specs_name_the_file_and_key(tmp_path, doc, match):
    from czbuild.json_spec import read_json_spec

    (tmp_path / "m.keras").write_bytes(b"")
    spec = tmp_path / "bad.json"
    spec.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(SpecError) as info:
        read_json_spec(spec)
    assert str(spec) in str(info.value)
    assert match in str(info.value)


@pytest.mark.slow
def test_json_metadata_that_does_not_fit_the_model_is_a_spec_error(spec_dir):
    from czbuild.convert import convert_from_json_spec

    doc = {
        "ModelMetadata": {"Type": "SingleClassSemanticSegmentation", "Classes": ["a", "b"]},
        "ModelPath": "models/m.keras",
    }
    (spec_dir / "spec.json").write_text(json.dumps(doc))
    with pytest.raises(SpecError, match=r"spec\.json: Classes: 2 names"):
        convert_from_json_spec(spec_dir / "spec.json", spec_dir / "out")


def test_model_metadata_does_not_import_json_spec() -> None:
    """json_spec -> model_metadata -> json_document, never back (no import cycle)."""
    import ast

    root = Path(__file__).resolve().parents[1] / "czbuild"
    for module in ("model_metadata.py", "json_document.py"):
        tree = ast.parse((root / module).read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
            a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names
        }
        assert "czbuild.json_spec" not in imported, module
    assert "czbuild.model_metadata" not in {
        node.module
        for node in ast.walk(ast.parse((root / "json_document.py").read_text()))
        if isinstance(node, ast.ImportFrom)
    }
