"""The spec digest: canonical, independent of YAML formatting and of where the project lives."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from czbuild.errors import RecipeError
from czbuild.files import digest_json
from czbuild.files.digest import file_sha256, tree_sha256
from czbuild.recipe import check_source_pin, load_variants, source_sha256
from czbuild.recipe.digest import spec_digest

DATA = Path(__file__).parent / "data" / "recipes"

PLAIN = """\
model:
  path: _files/tiny.keras
tile: 256
metadata:
  type: SingleClassSemanticSegmentation
  classes: [Background, Cell]
  min_overlap: [16, 16]
  scaling: [2.0e-7, 2.0e-7]
  license: _files/LICENSE.txt
preprocessing:
  - {op: normalization, mean: 0.5, std: 0.25}
"""

REFORMATTED = """\
# The same recipe: comments, other key order, other whitespace, block vs. flow style.
preprocessing: [ {std: 0.25, op: normalization,   mean: 0.5} ]   # trailing comment
metadata:
    license:    "_files/LICENSE.txt"
    scaling:
      - 2.0e-07
      - 0.0000002
    classes:
      - Background
      - 'Cell'
    min_overlap: [ 16,16 ]
    type: SingleClassSemanticSegmentation

tile:   256
model: {path: '_files\\tiny.keras'}   # Windows separators are accepted
"""


def _project(root: Path, text: str) -> Path:
    shutil.copytree(DATA / "_files", root / "recipes" / "_files")
    (root / "recipes" / "same.yaml").write_text(text, encoding="utf-8")
    return root


def _digest(project: Path, overrides: tuple[str, ...] = ()) -> str:
    (variant,) = load_variants(["same"], overrides, project_dir=project)
    return variant.digest


def test_formatting_and_location_do_not_change_the_digest(tmp_path: Path) -> None:
    a = _project(tmp_path / "checkout-one", PLAIN)
    b = _project(tmp_path / "somewhere" / "else" / "entirely", REFORMATTED)
    assert _digest(a) == _digest(b)


def test_spec_paths_are_project_relative_posix(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", REFORMATTED)
    (variant,) = load_variants(["same"], project_dir=project)
    assert variant.spec.model.path == "recipes/_files/tiny.keras"
    assert variant.spec.metadata.license == "recipes/_files/LICENSE.txt"
    assert str(tmp_path) not in digest_json(variant.spec.to_plain())
    assert variant.inputs == (
        project / "recipes/_files/tiny.keras",
        project / "recipes/_files/LICENSE.txt",
    )


@pytest.mark.parametrize(
    "override",
    [
        pytest.param("tile=512", id="tile"),
        pytest.param("metadata.classes=[Background,Nucleus]", id="classes"),
        pytest.param("metadata.scaling=[2.0e-7,2.5e-7]", id="scaling"),
        pytest.param("preprocessing.0.std=0.5", id="op-argument"),
        pytest.param("+opset=17", id="opset"),
        pytest.param("+metadata.id=3f1c2a9e-7b4d-5e8a-9c61-0d2b4f6a8e10", id="id"),
        pytest.param("model.path=_files/tiny.h5", id="model-path"),
    ],
)
def test_every_value_change_changes_the_digest(tmp_path: Path, override: str) -> None:
    project = _project(tmp_path / "p", PLAIN)
    assert _digest(project, (override,)) != _digest(project)


def test_digest_is_sha256_of_digest_json(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", PLAIN)
    (variant,) = load_variants(["same"], project_dir=project)
    text = digest_json(variant.spec.to_plain())
    assert json.loads(text) == variant.spec.to_plain()
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    assert variant.digest == hashlib.sha256(text.encode()).hexdigest() == spec_digest(variant.spec)


def test_digest_json_refuses_nan() -> None:
    with pytest.raises(ValueError):
        digest_json({"x": float("nan")})


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_tree_digest_ignores_creation_order_and_empty_dirs(tmp_path: Path) -> None:
    files = {
        "saved_model.pb": b"pb",
        "variables/variables.index": b"i",
        "variables/variables.data-00000-of-00001": b"d",
    }
    a = _tree(tmp_path / "a", files)
    b = _tree(tmp_path / "b", dict(reversed(list(files.items()))))
    (b / "assets").mkdir()
    assert tree_sha256(a) == tree_sha256(b) == source_sha256(a)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda r: (r / "saved_model.pb").write_bytes(b"PB"), id="content"),
        pytest.param(lambda r: (r / "saved_model.pb").rename(r / "other.pb"), id="name"),
        pytest.param(lambda r: (r / "extra").write_bytes(b""), id="added"),
    ],
)
def test_tree_digest_changes_with_content(tmp_path: Path, change) -> None:
    root = _tree(tmp_path / "t", {"saved_model.pb": b"pb", "variables/v": b"v"})
    before = tree_sha256(root)
    change(root)
    assert tree_sha256(root) != before


def test_file_digest_is_sha256_of_bytes(tmp_path: Path) -> None:
    path = tmp_path / "m.keras"
    path.write_bytes(b"model bytes")
    assert source_sha256(path) == file_sha256(path) == hashlib.sha256(b"model bytes").hexdigest()


def test_source_pin(tmp_path: Path) -> None:
    project = tmp_path / "p"
    shutil.copytree(DATA, project / "recipes")
    (variant,) = load_variants(["valid_full_czann"], project_dir=project)
    check_source_pin(variant)  # the fixture pins the right digest (upper-case hex accepted)
    assert variant.spec.model.sha256 == source_sha256(project / "recipes/_files/tiny.keras")
    (project / "recipes/_files/tiny.keras").write_bytes(b"retrained")
    with pytest.raises(RecipeError) as info:
        check_source_pin(variant)
    assert info.value.key == "model.sha256" and info.value.line == 10
    assert "recipes/valid_full_czann.yaml:10: model.sha256: " in str(info.value)
