"""Which variants a build command works on: recipe names and overrides from the command line.

``czbuild build nuclei tile=1024 +metadata.scaling=[1e-7,1e-7]`` mixes recipe names and Hydra
overrides; :func:`split_arguments` tells them apart and :func:`load` asks the recipe layer
(:func:`czbuild.recipe.load_variants`) for the variants, through
:mod:`czbuild.builder.variant_cache` so that an unchanged project is not composed by Hydra
again on every no-op build.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def is_override(arg: str) -> bool:
    """Hydra override (``key=value``, ``+key=v``, ``++key=v``, ``~key``) vs. a recipe name."""
    return "=" in arg or arg.startswith(("~", "+"))


def split_arguments(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split command-line words into ``(recipe names, overrides)``, keeping their order."""
    names = [a for a in args if not is_override(a)]
    overrides = [a for a in args if is_override(a)]
    return names, overrides


def load(
    names: Sequence[str],
    overrides: Sequence[str],
    project_dir: Path,
    *,
    cache_dir: Path | None = None,
) -> list[Any]:
    """The variants of the named recipes (all recipes when ``names`` is empty).

    Args:
        names: Recipe names or paths.
        overrides: Hydra overrides, sweeps included (``tile=256,512``).
        project_dir: The project folder (holds ``recipes/``).
        cache_dir: Where to keep the compose cache (``<out>/.czbuild``), or None for none.

    Raises:
        RecipeError: From the recipe layer, naming the file and key.
    """
    if cache_dir is not None:
        from czbuild.builder.variant_cache import cached_load_variants

        return cached_load_variants(names, overrides, project_dir, cache_dir)
    from czbuild.recipe import load_variants

    return list(load_variants(list(names) or None, list(overrides), project_dir=project_dir))
