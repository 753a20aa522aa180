"""``model.custom_objects`` entries naming importable ``module:attribute`` objects."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from czbuild.sources.kinds import is_import_name

MODULE = """
import keras


@keras.saving.register_keras_serializable(package="lab")
class Half(keras.layers.Layer):
    def call(self, x):
        return 0.5 * x


LAYERS = {"Half": Half}
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("keras_hub.layers:ReversibleEmbedding", True),
        ("pkg:mod.attr", True),
        ("layers.py", False),
        ("../models/layers.py", False),
        ("C:/x.py", False),
    ],
)
def test_import_names_are_told_from_paths(text: str, expected: bool) -> None:
    assert is_import_name(text) is expected


@pytest.mark.slow
def test_a_recipe_names_an_importable_custom_layer(tmp_path: Path, monkeypatch) -> None:
    import keras

    from czbuild.formats.archive import read_artifact
    from support.cli import run_cli

    (tmp_path / "lablayers.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import lablayers  # type: ignore[import-not-found]

    keras.utils.set_random_seed(0)
    x = inp = keras.Input((None, None, 1))
    x = lablayers.Half()(keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(x))
    (tmp_path / "models").mkdir()
    keras.Model(inp, x).save(tmp_path / "models" / "m.keras")
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "m.yaml").write_text(
        "model:\n  path: ../models/m.keras\n  custom_objects: ['lablayers:Half']\n"
        "tile: 16\nmetadata:\n  type: Regression\n  min_overlap: [4, 4]\n"
    )
    from czbuild.recipe import load_variants

    (variant,) = load_variants(["m"], project_dir=tmp_path)
    assert variant.custom_object_files == ("lablayers:Half",)
    assert all(p.suffix != ".py" for p in variant.inputs)  # an installed package is no input
    # the layer must come from the name: unregister it so loading would fail without it
    sys.modules.pop("lablayers")
    keras.saving.get_custom_objects().pop("lab>Half", None)
    run_cli("build", "--in-process", cwd=tmp_path, check=True)
    artifact = read_artifact(tmp_path / "build" / "m" / "default" / "m.czann")
    assert artifact.metadata.input_shape == (16, 16, 1)
    with pytest.raises(Exception, match="cannot import 'nolab'"):
        from czbuild.keras.sources import load_custom_objects

        load_custom_objects(["nolab:Half"])
