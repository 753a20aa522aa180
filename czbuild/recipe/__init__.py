"""Recipes: YAML model recipes composed by Hydra, validated, expanded into variants.

No TensorFlow is imported here, ever; Hydra and OmegaConf only in
:mod:`czbuild.recipe.compose`. The layer's contract (docs/architecture.md):

* :func:`list_recipes` — recipe names in ``<project>/recipes/*.yaml``;
* :func:`load_variants` — recipes (+ overrides) -> :class:`Variant` list, or a one-line
  :class:`czbuild.errors.RecipeError` naming the file, the dotted key and the line;
* :class:`Variant` / :class:`RecipeSpec` — what the build layer reads;
* :func:`spec_digest`, :func:`source_sha256`, :func:`check_source_pin` — digests and pins;
* :func:`recipe_json_schema` — the JSON Schema of a recipe (``czbuild schema``).

Names are imported lazily (PEP 562): ``import czbuild.recipe.spec`` (e.g. to read a cached
spec back) does not pay for importing Hydra. See docs/recipes.md for the recipe reference.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "source_sha256": "czbuild.recipe.digest",
    "spec_digest": "czbuild.recipe.digest",
    "find_project_dir": "czbuild.recipe.project",
    "list_recipes": "czbuild.recipe.project",
    "Recipe": "czbuild.recipe.schema",
    "recipe_json_schema": "czbuild.recipe.schema",
    "render_json_schema": "czbuild.recipe.schema",
    "MetadataSpec": "czbuild.recipe.spec",
    "RecipeSpec": "czbuild.recipe.spec",
    "SourceSpec": "czbuild.recipe.spec",
    "TargetSpec": "czbuild.recipe.spec",
    "VerifySettings": "czbuild.verify.settings",
    "Variant": "czbuild.recipe.variant",
    "check_source_pin": "czbuild.recipe.variants",
    "load_variants": "czbuild.recipe.variants",
}

__all__ = [
    "MetadataSpec",
    "Recipe",
    "RecipeSpec",
    "SourceSpec",
    "TargetSpec",
    "Variant",
    "VerifySettings",
    "check_source_pin",
    "find_project_dir",
    "list_recipes",
    "load_variants",
    "recipe_json_schema",
    "render_json_schema",
    "source_sha256",
    "spec_digest",
]

if TYPE_CHECKING:  # pragma: no cover
    from czbuild.recipe.digest import source_sha256, spec_digest
    from czbuild.recipe.project import find_project_dir, list_recipes
    from czbuild.recipe.schema import Recipe, recipe_json_schema, render_json_schema
    from czbuild.recipe.spec import MetadataSpec, RecipeSpec, SourceSpec, TargetSpec
    from czbuild.recipe.variant import Variant
    from czbuild.recipe.variants import check_source_pin, load_variants
    from czbuild.verify.settings import VerifySettings


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'czbuild.recipe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
