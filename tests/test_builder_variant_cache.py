"""The compose cache: a no-op build reads variants without Hydra, and never stale ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from czbuild.builder.hashing import HashCache
from czbuild.builder.variant_cache import CachedVariant, cached_load_variants, materialize
from czbuild.errors import RecipeError
from czbuild.recipe import load_variants


@pytest.fixture()
def project(tiny_project: Path) -> Path:
    return tiny_project


def _load(project: Path, *args, **kw):
    return cached_load_variants(
        *args, project, project / "build" / ".czbuild", cache=HashCache(), **kw
    )


def _summary(variants) -> list[tuple]:
    return [
        (v.name, v.digest, tuple(map(str, v.inputs)), str(v.output), str(v.recipe_file))
        for v in variants
    ]


def test_hit_returns_the_same_variants_as_the_recipe_layer(project: Path) -> None:
    real = load_variants(project_dir=project)
    first = _load(project, [], [])
    second = _load(project, [], [])
    assert not any(isinstance(v, CachedVariant) for v in first)
    assert all(isinstance(v, CachedVariant) for v in second)
    assert _summary(first) == _summary(second) == _summary(real)
    for cached, original in zip(second, real):
        assert materialize(cached).spec == original.spec


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(([], []), id="all"),
        pytest.param((["r01"], []), id="names"),
        pytest.param((["r00"], ["tile=96,128"]), id="overrides"),
    ],
)
def test_key_includes_names_and_overrides(project: Path, args) -> None:
    _load(project, [], [])
    got = _load(project, *args)
    assert _summary(got) == _summary(load_variants(args[0] or None, args[1], project_dir=project))


def test_comment_edit_misses_but_gives_equal_digests(project: Path) -> None:
    before = _summary(_load(project, [], []))
    recipe = project / "recipes" / "r00.yaml"
    recipe.write_text(recipe.read_text() + "# a comment\n")
    again = _load(project, [], [])
    assert not any(isinstance(v, CachedVariant) for v in again)
    assert _summary(again) == before


def test_value_edit_is_never_served_stale(project: Path) -> None:
    _load(project, [], [])
    recipe = project / "recipes" / "r00.yaml"
    recipe.write_text(recipe.read_text().replace("min_overlap: [8, 8]", "min_overlap: [4, 4]"))
    got = {v.name: v for v in _load(project, [], [])}
    assert got["r00@tile=32"].spec.metadata.min_overlap == (4, 4)


def test_deleted_input_misses_and_reports_the_recipe_error(project: Path) -> None:
    _load(project, [], [])
    (project / "LICENSE").unlink()
    with pytest.raises(RecipeError, match="LICENSE"):
        _load(project, [], [])
