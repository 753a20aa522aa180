"""Bounds on what a recipe may ask for, so that hostile or mistaken input fails fast.

Each bound is far above what a real recipe needs and is stated in docs/recipes.md. A recipe
past one of them gets a one-line :class:`~czbuild.errors.RecipeError` naming the file (and the
key where there is one) before anything expensive runs.
"""

from __future__ import annotations

import re
from typing import Final

#: Largest recipe file read (bytes). Real recipes are a few hundred bytes.
MAX_RECIPE_BYTES: Final = 256 * 1024
#: Deepest nesting of mappings/lists in a recipe.
MAX_NESTING: Final = 32
#: Most YAML nodes a recipe may expand to, counting every alias (``*name``) as a full copy of
#: what its anchor holds: the budget that stops "billion laughs" alias bombs.
MAX_EXPANDED_NODES: Final = 10_000
#: Most digits in an integer value (tile sizes, overlaps, seeds fit in 18).
MAX_INT_DIGITS: Final = 18
#: Most variants one recipe may expand to (sweep section x command-line sweeps).
MAX_VARIANTS: Final = 1_000

#: What a recipe's name (its file name without ``.yaml``, and its ``name:`` if written) may look
#: like: it becomes a folder of the build output and part of every variant name.
RECIPE_NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_RECIPE_NAME_RE: Final = re.compile(RECIPE_NAME_PATTERN)
MAX_RECIPE_NAME: Final = 100


def recipe_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a recipe name, or None if it can."""
    if _RECIPE_NAME_RE.match(name) and len(name) <= MAX_RECIPE_NAME:
        return None
    return (
        f"{name!r} is not a usable recipe name: name the file with letters, digits, '_', '-' "
        f"and '.' (not first), at most {MAX_RECIPE_NAME} characters, e.g. nuclei.yaml"
    )
