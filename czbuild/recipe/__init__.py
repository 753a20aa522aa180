"""Recipes: YAML model recipes composed by Hydra, validated, expanded into variants.

No TensorFlow is imported here, ever; Hydra and OmegaConf only in
:mod:`czbuild.recipe.compose`. The layer's contract (docs/architecture.md):

* :func:`list_recipes` — recipe names in ``<project>/recipes/*.yaml``;
* :func:`load_variants` — recipes (+ overrides) -> :class:`Variant` list, or a one-line
  :class:`czbuild.errors.RecipeError` naming the file, the dotted key and the line;
* :class:`Variant` / :class:`RecipeSpec` — what the build layer reads;
* :func:`spec_digest`, :func:`source_sha256`, :func:`check_source_pin` — digests and pins;
* :func:`recipe_json_schema` — the JSON Schema of a recipe (``czbuild schema``).

See docs/recipes.md for the recipe reference.
"""

from czbuild.recipe.digest import canonical_json, source_sha256, spec_digest
from czbuild.recipe.project import find_project_dir, list_recipes
from czbuild.recipe.schema import Recipe, recipe_json_schema, render_json_schema
from czbuild.recipe.spec import MetadataSpec, RecipeSpec, SourceSpec, TargetSpec
from czbuild.recipe.variants import Variant, check_source_pin, load_variants

__all__ = [
    "MetadataSpec",
    "Recipe",
    "RecipeSpec",
    "SourceSpec",
    "TargetSpec",
    "Variant",
    "canonical_json",
    "check_source_pin",
    "find_project_dir",
    "list_recipes",
    "load_variants",
    "recipe_json_schema",
    "render_json_schema",
    "source_sha256",
    "spec_digest",
]
