"""A czbuild project on disk: ``recipes/``, ``configs/`` and where the bundled configs are.

A project folder holds ``recipes/*.yaml`` and optionally ``configs/<group>/<option>.yaml``.
The config search path of a recipe is, highest priority first: the recipe's own folder, the
project's ``configs/``, then czbuild's bundled ``configs/`` (the folder next to the
``czbuild`` package in a source checkout; ZEN targets, formats, named preprocessing chains).
A project config with the same group and name as a bundled one replaces it.
"""

from __future__ import annotations

from pathlib import Path

from czbuild.errors import RecipeError
from czbuild.recipe.keys import choices_hint

__all__ = [
    "BUNDLED_CONFIGS",
    "config_search_path",
    "find_project_dir",
    "group_options",
    "list_recipes",
    "locate_recipe",
]

BUNDLED_CONFIGS = Path(__file__).resolve().parents[2] / "configs"
RECIPES_DIR = "recipes"
CONFIGS_DIR = "configs"


def find_project_dir(start: Path | str | None = None) -> Path:
    """The nearest folder at or above ``start`` that contains ``recipes/``.

    Args:
        start: Where to begin (default: the current directory).

    Returns:
        The absolute project folder; ``start`` itself if no ancestor has ``recipes/``.
    """
    here = Path(start if start is not None else Path.cwd()).absolute()
    for folder in (here, *here.parents):
        if (folder / RECIPES_DIR).is_dir():
            return folder
    return here


def config_search_path(project_dir: Path) -> list[Path]:
    """Config folders after the recipe's own folder: project ``configs/``, bundled configs."""
    out: list[Path] = []
    for folder in (Path(project_dir).absolute() / CONFIGS_DIR, BUNDLED_CONFIGS):
        if folder.is_dir() and all(folder.resolve() != seen.resolve() for seen in out):
            out.append(folder)
    return out


def group_options(folders: list[Path]) -> dict[str, list[str]]:
    """Config groups found in ``folders`` and their option names, sorted."""
    groups: dict[str, set[str]] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for sub in folder.iterdir():
            if sub.is_dir() and not sub.name.startswith((".", "_")):
                names = groups.setdefault(sub.name, set())
                names.update(p.stem for p in sub.glob("*.yaml"))
    return {g: sorted(v) for g, v in sorted(groups.items())}


def list_recipes(project_dir: Path | str) -> list[str]:
    """Names of the recipes in ``project_dir/recipes/*.yaml``, sorted."""
    folder = Path(project_dir) / RECIPES_DIR
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.yaml") if p.is_file())


def locate_recipe(name: str | Path, project_dir: Path) -> Path:
    """The recipe file for a name (``nuclei``) or a path (``recipes/nuclei.yaml``).

    Args:
        name: A recipe name from :func:`list_recipes`, or a path to a ``.yaml`` file
            (absolute, or relative to the current directory or the project folder).
        project_dir: The project folder.

    Returns:
        The absolute path of the recipe file.

    Raises:
        RecipeError: No such recipe (with the list of recipes and a suggestion).
    """
    text = str(name)
    project_dir = Path(project_dir).absolute()
    looks_like_path = text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text
    if looks_like_path:
        for candidate in (Path(text), project_dir / text):
            if candidate.is_file():
                if candidate.suffix != ".yaml":
                    raise RecipeError("recipes must have the extension .yaml", file=text)
                return candidate.absolute()
        raise RecipeError("recipe file not found", file=text)
    candidate = project_dir / RECIPES_DIR / f"{text}.yaml"
    if candidate.is_file():
        return candidate
    known = list_recipes(project_dir)
    where = project_dir / RECIPES_DIR
    raise RecipeError(f"no recipe {text!r} in {where}; "
                      f"{choices_hint(text, known, noun='recipes')}")
