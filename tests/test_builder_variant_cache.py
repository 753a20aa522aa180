"""The compose cache: a no-op build reads variants without Hydra, and never stale ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import czbuild.recipe
from czbuild.builder.hashing import HashCache
from czbuild.builder.variant_cache import cached_load_variants
from czbuild.errors import RecipeError
from czbuild.recipe import load_variants
from czbuild.recipe.variant import Variant
from support.build_fakes import worker_env


@pytest.fixture()
def project(tiny_project: Path) -> Path:
    return tiny_project


COMPOSED: list[int] = []


@pytest.fixture(autouse=True)
def _count_compositions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Count calls of the recipe layer (a cache miss composes, a hit does not)."""
    real = czbuild.recipe.load_variants
    COMPOSED.clear()

    def counting(*args, **kw):
        COMPOSED.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(czbuild.recipe, "load_variants", counting)


def _load(project: Path, *args, **kw):
    before = len(COMPOSED)
    variants = cached_load_variants(
        *args, project, project / "build" / ".czbuild", cache=HashCache(), **kw
    )
    _load.hit = len(COMPOSED) == before  # type: ignore[attr-defined]
    return variants


def _summary(variants) -> list[tuple]:
    return [
        (v.name, v.digest, tuple(map(str, v.inputs)), str(v.output), str(v.recipe_file))
        for v in variants
    ]


def test_hit_returns_the_same_variants_as_the_recipe_layer(project: Path) -> None:
    real = load_variants(project_dir=project)
    first = _load(project, [], [])
    assert not _load.hit
    second = _load(project, [], [])
    assert _load.hit
    assert all(type(v) is Variant for v in (*first, *second))
    assert _summary(first) == _summary(second) == _summary(real)
    assert second == real  # the one variant type, spec and sweep included


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
    assert not _load.hit
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


def test_a_hit_imports_neither_pydantic_nor_hydra(project: Path) -> None:
    _load(project, [], [])
    code = (
        "import sys; from pathlib import Path; "
        "from czbuild.builder.variant_cache import cached_load_variants; "
        "p = Path(sys.argv[1]); v = cached_load_variants([], [], p, p / 'build' / '.czbuild'); "
        "assert v and v[0].spec.verify.fidelity_tolerance == 1e-5; "
        "bad = [m for m in ('pydantic', 'hydra', 'omegaconf', 'tensorflow', 'numpy') "
        "if m in sys.modules]; assert not bad, bad"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(project)],
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
