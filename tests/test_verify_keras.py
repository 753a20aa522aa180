"""End-to-end verification of artifacts built by czbuild's library API (TensorFlow: slow).

Tiny seeded Keras models (8-32 px tiles) are converted with :func:`czbuild.convert.convert`
once per module; the tests check that good artifacts of every family/version pass, that
fidelity catches a wrong preprocessing, and that the tiling checks find the overlap a known
receptive field needs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


from czbuild.formats.czann import CzannMetadata  # noqa: E402
from czbuild.formats.legacy import LegacyMetadata  # noqa: E402
from czbuild.verify import FAILED, PASSED, SKIPPED, WARNING, verify_artifact  # noqa: E402

SCALE = [{"op": "scale", "scale": 0.5}]
GRAY16 = [{"op": "scale", "scale": 1 / 65535}]


def conv_stack(
    kernels=((3, 1), (3, 1), (3, 1)),
    classes: int = 2,
    head: str = "softmax",
    channels: int = 1,
    seed: int = 0,
):
    """Fully convolutional stack of (kernel, dilation) convs; receptive radius sum(d*(k-1)/2)."""
    keras = pytest.importorskip("keras")  # in the test, not at collection (TensorFlow: ~3 s)
    keras.utils.set_random_seed(seed)
    x = inp = keras.Input((None, None, channels))
    for k, d in kernels:
        x = keras.layers.Conv2D(4, k, dilation_rate=d, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(classes, 1, activation=head)(x)
    return keras.Model(inp, x)


def unet(depth: int = 2, seed: int = 0):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(seed)
    x = inp = keras.Input((None, None, 1))
    skips = []
    for _ in range(depth):
        x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    for skip in reversed(skips):
        x = keras.layers.UpSampling2D(2)(x)
        x = keras.layers.Concatenate()([x, skip])
        x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    return keras.Model(inp, keras.layers.Conv2D(2, 1, activation="softmax")(x))


def czann(
    tile: int,
    overlap: int,
    *,
    version: str = "2.1.0",
    classes=("bg", "fg"),
    type_: str = "SingleClassSemanticSegmentation",
) -> CzannMetadata:
    # Files without FormatVersion declare their version through Scaling (format §2.2).
    scaling = {"2.0.0": (1e-7, 1e-7, 2e-7), "1.1.0": (1e-7, 1e-7)}.get(version)
    return CzannMetadata(
        type=type_,
        input_shape=None,
        output_shape=None,
        classes=classes,
        min_overlap=(overlap, overlap),
        model_name="tiny",
        scaling=scaling,
        format_version=version,
    )


def legacy(border: int, version: str) -> LegacyMetadata:
    return LegacyMetadata(
        name="tiny",
        color_handling="ConvertToMonochrome",
        pixel_types=("Gray16",),
        classes=("bg", "fg"),
        border_size=border,
        version=version,
    )


def build(out: Path, name: str, model, metadata, *, pre=(), post=(), tile: int = 16) -> Path:
    from czbuild.convert import ConversionRequest, convert

    request = ConversionRequest(
        source=model,
        metadata=metadata,
        preprocessing=tuple(pre),
        postprocessing=tuple(post),
        spatial_dims=(tile, tile),
    )
    return Path(convert(request, out / name).path)


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="module")
def stack():
    return conv_stack()


@pytest.fixture(scope="module")
def artifacts(out, stack) -> dict[str, Path]:
    return {
        "czann-2.1.0": build(out, "a210.czann", stack, czann(16, 6), pre=SCALE),
        "czann-2.0.0": build(out, "a200.czann", stack, czann(16, 6, version="2.0.0"), pre=SCALE),
        "czann-1.1.0": build(out, "a110.czann", stack, czann(16, 6, version="1.1.0"), pre=SCALE),
        "czann-1.0.0": build(out, "a100.czann", stack, czann(16, 6, version="1.0.0"), pre=SCALE),
        "czmodel-3.1.0": build(out, "l310.czmodel", stack, legacy(3, "3.1.0"), pre=GRAY16),
        "czmodel-3.0.0": build(out, "l300.czmodel", stack, legacy(3, "3.0.0"), pre=GRAY16),
        "overlap-2": build(out, "o2.czann", stack, czann(16, 2), pre=SCALE),
    }


def statuses(report) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


@pytest.mark.parametrize(
    ("key", "pre"),
    [
        ("czann-2.1.0", SCALE),
        ("czann-2.0.0", SCALE),
        ("czann-1.1.0", SCALE),
        ("czann-1.0.0", SCALE),
        ("czmodel-3.1.0", GRAY16),
        ("czmodel-3.0.0", GRAY16),
    ],
    ids=[
        "czann-2.1.0",
        "czann-2.0.0",
        "czann-1.1.0",
        "czann-1.0.0",
        "czmodel-3.1.0",
        "czmodel-3.0.0",
    ],
)
def test_good_artifacts_pass_every_check(artifacts, stack, key, pre):
    report = verify_artifact(artifacts[key], source_model=stack, preprocessing=pre, strict=True)
    got = statuses(report)
    assert report.ok, {c.name: c.message for c in report.failed}
    assert report.family == key.split("-")[0] and report.version == key.split("-")[1]
    expected_passed = [n for n in got if n not in ("payload.opset",)]
    assert all(got[n] == PASSED for n in expected_passed), got
    assert got["payload.opset"] == (SKIPPED if key == "czmodel-3.0.0" else PASSED)
    assert report.get("fidelity").details["max_abs_diff"] <= 1e-5
    assert report.get("tiling.min_overlap").details["minimal_overlap"] == 6
    assert report.get("tiling.receptive_field").details["radius"] == [3, 3]


@pytest.mark.parametrize(
    ("declared", "pre"),
    [
        ([{"op": "scale", "scale": 1.0}], "scale 1.0 instead of 0.5"),
        ([], "no preprocessing"),
        ([{"op": "normalization", "mean": 0.5, "std": 2.0}], "normalization instead of scale"),
    ],
    ids=["wrong-scale", "missing", "wrong-op"],
)
def test_fidelity_detects_a_wrong_preprocessing(artifacts, stack, declared, pre):
    report = verify_artifact(
        artifacts["czann-2.1.0"], source_model=stack, preprocessing=declared, tiling=False
    )
    check = report.get("fidelity")
    assert check.status == FAILED, pre
    assert check.details["max_abs_diff"] > 1e-5
    assert not report.ok


def test_fidelity_detects_a_different_model(artifacts):
    other = conv_stack(seed=1)
    check = verify_artifact(
        artifacts["czann-2.1.0"], source_model=other, preprocessing=SCALE, tiling=False
    ).get("fidelity")
    assert check.status == FAILED


def test_wrong_preprocessing_is_not_blamed_on_the_overlap(artifacts, stack):
    report = verify_artifact(
        artifacts["czann-2.1.0"], source_model=stack, preprocessing=[{"op": "scale", "scale": 1.0}]
    )
    assert report.get("fidelity").status == FAILED
    seams = report.get("tiling.seams")
    assert seams.status == PASSED and seams.details["tiles_predicted_by"] == "reference"


def test_too_small_overlap_for_a_7x7_receptive_field_is_flagged(artifacts, stack):
    report = verify_artifact(artifacts["overlap-2"], source_model=stack, preprocessing=SCALE)
    got = statuses(report)
    assert got["fidelity"] == PASSED
    assert got["tiling.seams"] == FAILED
    assert report.get("tiling.seams").details["max_seam_error"] > 1e-5
    assert got["tiling.receptive_field"] == WARNING
    assert report.get("tiling.min_overlap").details["minimal_overlap"] == 6
    assert "too small" in report.get("tiling.min_overlap").message
    assert not report.ok
    assert "seam_error" in report.images


@pytest.mark.parametrize(
    ("kernels", "radius"),
    [(((3, 1),), 1), (((3, 1), (3, 1)), 2), (((5, 1), (3, 3)), 5)],
    ids=["one-3x3", "two-3x3", "5x5-then-dilated-3x3"],
)
def test_minimal_overlap_matches_a_known_receptive_field(out, kernels, radius):
    model = conv_stack(kernels)
    path = build(out, f"rf{radius}.czann", model, czann(24, 2 * radius), tile=24)
    report = verify_artifact(path, source_model=model)
    assert report.get("tiling.receptive_field").details["radius"] == [radius, radius]
    assert report.get("tiling.min_overlap").details["minimal_overlap"] == 2 * radius
    assert report.get("tiling.seams").status == PASSED


def test_pooling_needs_an_aligned_stride(out):
    model = unet(depth=2)
    path = build(out, "unet.czann", model, czann(32, 4), tile=32)
    report = verify_artifact(path, source_model=model)
    found = report.get("tiling.min_overlap").details["minimal_overlap"]
    assert found % 4 == 0  # stride 32 - found must be a multiple of the pooling factor 4
    assert report.get("tiling.seams").status == FAILED
    assert report.get("fidelity").status == PASSED


def test_per_image_standardisation_is_measured_with_frozen_statistics(out, stack):
    pre = [{"op": "per_image_standardization"}]
    path = build(out, "pis.czann", stack, czann(16, 6), pre=pre)
    report = verify_artifact(path, source_model=stack, preprocessing=pre)
    assert report.get("fidelity").status == PASSED
    seams = report.get("tiling.seams")
    # Border effects alone stay within the tolerance; the real per-tile statistics do not.
    assert seams.details["max_seam_error"] <= seams.details["tolerance"]
    assert seams.status == WARNING
    assert seams.details["tiling_dependent_preprocessing"] is True
    assert seams.details["per_tile_statistics_effect"] > seams.details["tolerance"]
    assert report.ok
    assert report.get("tiling.min_overlap").details["minimal_overlap"] == 6


def test_regression_model(out):
    model = conv_stack(classes=1, head="sigmoid")
    meta = czann(16, 6, classes=None, type_="Regression")
    path = build(out, "reg.czann", model, meta)
    report = verify_artifact(path, source_model=model)
    assert report.ok, {c.name: c.message for c in report.failed}
    assert report.get("semantics").status == PASSED
    assert report.get("tiling.min_overlap").details["minimal_overlap"] == 6


def test_sigmoid_head_with_postprocessing(out):
    model = conv_stack(classes=1, head="sigmoid")
    post = [{"op": "sigmoid_to_softmax_scores"}]
    path = build(out, "sig.czann", model, czann(16, 6), post=post)
    assert verify_artifact(path, source_model=model, postprocessing=post).ok


def test_unloadable_source_model_fails_fidelity(artifacts, tmp_path):
    missing = tmp_path / "missing.keras"
    report = verify_artifact(artifacts["czann-2.1.0"], source_model=str(missing))
    check = report.get("fidelity")
    assert check.status == FAILED and "missing.keras" in check.message
    assert report.get("tiling.seams").status == SKIPPED


def test_source_model_from_a_keras_file(artifacts, stack, tmp_path):
    file = tmp_path / "stack.keras"
    stack.save(file)
    report = verify_artifact(artifacts["czann-2.1.0"], source_model=str(file), preprocessing=SCALE)
    assert report.ok and report.get("fidelity").status == PASSED


def test_html_report_has_the_three_pictures(artifacts, stack, tmp_path):
    from czbuild.verify import write_html_report

    report = verify_artifact(artifacts["overlap-2"], source_model=stack, preprocessing=SCALE)
    written = write_html_report(report, tmp_path / "r")
    names = sorted(p.name for p in written)
    assert names == sorted(
        [
            "o2.czann.html",
            "o2.czann.input.png",
            "o2.czann.output.png",
            "o2.czann.seam_error.png",
            "o2.czann.json",
        ]
    )
    assert report.images["seam_error"].shape == (44, 44, 3)  # 3 tiles of 16 at overlap 2
    doc = json.loads((tmp_path / "r" / "o2.czann.json").read_text())
    assert doc["ok"] is False


# --- recipes: the build hook and `czbuild verify --recipe` ----------------------------------

FACTORY = """
import keras


def build():
    keras.utils.set_random_seed(0)
    x = inp = keras.Input((None, None, 1))
    for _ in range(3):
        x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    return keras.Model(inp, keras.layers.Conv2D(2, 1, activation="softmax")(x))
"""

RECIPE = """
name: tiny
model:
  factory: ../models/tiny.py:build
format: czann
tile: 16
preprocessing:
  - op: scale
    scale: 0.5
metadata:
  type: SingleClassSemanticSegmentation
  classes: [bg, fg]
  min_overlap: [6, 6]
sweep:
  tile: [16, 24]
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from czbuild.builder.request import to_request
    from czbuild.convert import convert
    from czbuild.recipe import load_variants

    root = tmp_path_factory.mktemp("project")
    (root / "recipes").mkdir()
    (root / "models").mkdir()
    (root / "models" / "tiny.py").write_text(FACTORY)
    (root / "recipes" / "tiny.yaml").write_text(RECIPE)
    variants = load_variants(["tiny"], project_dir=root)
    built = {}
    for variant in variants:
        path = root / "build" / Path(variant.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        convert(to_request(variant), path)
        built[variant.name] = (variant, path)
    return root, built


def test_build_hook_verifies_each_variant(project):
    from czbuild.verify import verify_built_artifact
    from czbuild.verify.api import build_settings

    _, built = project
    for name, (variant, path) in built.items():
        settings = build_settings(variant).replace(overlap_analysis=True)
        report = verify_built_artifact(path, variant, settings=settings)
        assert report.ok, (name, {c.name: c.message for c in report.failed})
        assert report.get("fidelity").status == PASSED
        assert report.get("tiling.min_overlap").details["minimal_overlap"] == 6
    # Build defaults (no verify: section): the overlap analysis only runs on a failed seam check.
    variant, path = next(iter(built.values()))
    report = verify_built_artifact(path, variant)
    assert report.ok and report.get("tiling.seams").status == PASSED
    assert report.get("tiling.min_overlap").status == SKIPPED


@pytest.mark.parametrize("recipe", ["tiny", "tiny@tile=24"], ids=["by-path", "by-variant"])
def test_cli_verify_with_recipe(project, recipe):
    from click.testing import CliRunner

    from czbuild.cli import cli

    root, built = project
    _, path = built["tiny@tile=24"]
    result = CliRunner().invoke(
        cli,
        ["verify", str(path), "--recipe", recipe, "--project", str(root), "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    fidelity = next(c for c in doc["checks"] if c["name"] == "fidelity")
    assert fidelity["status"] == "passed"
    assert doc["metadata"]["InputShape"] == [24, 24, 1]


def test_cli_verify_with_ambiguous_recipe(project, tmp_path):
    from click.testing import CliRunner

    from czbuild.cli import cli

    root, built = project
    _, path = built["tiny@tile=16"]
    elsewhere = tmp_path / "copy.czann"
    elsewhere.write_bytes(path.read_bytes())
    result = CliRunner().invoke(
        cli, ["verify", str(elsewhere), "--recipe", "tiny", "--project", str(root)]
    )
    assert result.exit_code == 2 and "tiny@tile=16" in result.output


def test_recipe_metadata_is_compared_with_the_variant(project):
    from czbuild.recipe import load_variants

    root, built = project
    v16, p16 = built["tiny@tile=16"]
    v24, _ = built["tiny@tile=24"]
    good = verify_artifact(p16, recipe_variant=v16, tiling=False)
    assert good.get("recipe.metadata").status == PASSED, good.get("recipe.metadata").message
    wrong_tile = verify_artifact(p16, recipe_variant=v24, tiling=False)
    check = wrong_tile.get("recipe.metadata")
    assert check.status == FAILED and not wrong_tile.ok
    assert "InputShape tile: artifact [16, 16], recipe [24, 24]" in check.message
    assert set(check.details["differing"]) == {"InputShape tile"}
    (other,) = [
        v
        for v in load_variants(
            ["tiny"],
            ["metadata.min_overlap=[8,8]", "metadata.classes=[a,b]", "+metadata.model_name=Other"],
            project_dir=root,
        )
        if v.spec.spatial_dims == v16.spec.spatial_dims
    ]
    check = verify_artifact(p16, recipe_variant=other, tiling=False).get("recipe.metadata")
    assert check.status == FAILED
    assert set(check.details["differing"]) == {"MinOverlap", "Classes", "ModelName"}
    assert "MinOverlap: artifact [6, 6], recipe [8, 8]" in check.message
    assert "ModelName: artifact 'tiny', recipe 'Other'" in check.message
