"""A czbuild project on disk: ``recipes/``, ``configs/`` and where the bundled configs are.

A project folder holds ``recipes/*.yaml`` and optionally ``configs/<group>/<option>.yaml``.
The config search path of a recipe is, highest priority first: the recipe's own folder, the
project's ``configs/``, then czbuild's bundled configs (ZEN targets, formats, named
preprocessing chains; see :func:`bundled_configs`). A project config with the same group and
name as a bundled one replaces it.

Which project a command works on is :func:`project_for`'s decision: ``--project`` if given,
else the project of the recipe files named by path, else the one around the current directory.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from czbuild.errors import RecipeError
from czbuild.recipe.keys import choices_hint

__all__ = [
    "BUNDLED_CONFIGS",
    "bundled_configs",
    "config_search_path",
    "find_project_dir",
    "group_options",
    "list_recipes",
    "locate_recipe",
    "looks_like_path",
    "project_for",
]

RECIPES_DIR = "recipes"
CONFIGS_DIR = "configs"


def bundled_configs(package_dir: Path | None = None) -> Path:
    """The folder of czbuild's bundled config groups.

    The single source is the repository's top-level ``configs/``. A wheel ships it inside
    the package as ``czbuild/configs/`` (``pyproject.toml`` maps the package
    ``czbuild.configs`` to that folder); a source checkout or an editable install has no
    ``czbuild/configs/`` and reads ``configs/`` next to the package.

    Args:
        package_dir: The ``czbuild`` package folder (default: this installation's).

    Returns:
        ``<package>/configs`` if it is a folder, else ``<package>/../configs``.
    """
    package = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parents[1]
    inside = package / CONFIGS_DIR
    return inside if inside.is_dir() else package.parent / CONFIGS_DIR


BUNDLED_CONFIGS = bundled_configs()


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


def looks_like_path(name: str | Path) -> bool:
    """Whether a recipe argument is a file path (``recipes/a.yaml``) rather than a name."""
    text = str(name)
    return text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text


def _recipe_file(name: str | Path, cwd: Path) -> Path | None:
    """The existing file a path-like recipe argument names, relative to ``cwd`` or its project."""
    text = str(name)
    for candidate in (cwd / text, find_project_dir(cwd) / text):
        if candidate.is_file():
            return candidate.absolute()
    return None


def project_for(
    names: Iterable[str | Path] = (),
    project: Path | str | None = None,
    cwd: Path | str | None = None,
) -> Path:
    """The project folder a command works on.

    1. ``project`` (the ``--project`` option) when given.
    2. Else, when recipes are named by path: the project of those recipe files, i.e. the
       nearest folder at or above each file that contains ``recipes/`` (the file's own
       folder if there is none). They must all belong to the same project.
    3. Else the project around ``cwd`` (:func:`find_project_dir`).

    Recipe names (``nuclei``) are looked up in the chosen project; together with paths they
    are allowed when ``cwd`` is in the same project as the paths, or in no project at all.

    Args:
        names: Recipe arguments: names or paths. Words that look like Hydra overrides
            (``key=value``, ``+key=v``, ``~key``) are ignored, so a command's raw arguments
            can be passed.
        project: The ``--project`` option, or None.
        cwd: The folder relative paths start from (default: the current directory).

    Returns:
        The absolute project folder.

    Raises:
        RecipeError: Recipes of different projects in one call.
    """
    here = Path(cwd if cwd is not None else Path.cwd()).absolute()
    if project is not None:
        return here / Path(project)
    around_cwd = find_project_dir(here)
    words = [str(n) for n in names if not ("=" in str(n) or str(n).startswith(("~", "+")))]
    by_path: dict[Path, str] = {}
    plain: list[str] = []
    for word in words:
        file = _recipe_file(word, here) if looks_like_path(word) else None
        if file is None:
            plain.append(word)  # a name, or a missing file that load_variants reports
        else:
            by_path.setdefault(find_project_dir(file.parent), word)
    if not by_path:
        return around_cwd
    if len(by_path) > 1:
        (a, first), (b, second) = list(by_path.items())[:2]
        raise RecipeError(
            f"recipes from different projects in one call: {first} (project {a}) "
            f"and {second} (project {b}); run czbuild once per project, or "
            "choose one with --project"
        )
    ((only, word),) = by_path.items()
    if plain and around_cwd != only and (around_cwd / RECIPES_DIR).is_dir():
        raise RecipeError(
            f"recipes from different projects in one call: {word} (project "
            f"{only}) and {plain[0]} (project {around_cwd}, the current "
            "directory's); name it by path, or choose one project with --project"
        )
    return only


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
    # Hidden files (editor locks such as ``.#nuclei.yaml``) are not recipes.
    return sorted(
        p.stem for p in folder.glob("*.yaml") if not p.name.startswith(".") and p.is_file()
    )


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
    if looks_like_path(text):
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
    raise RecipeError(f"no recipe {text!r} in {where}; {choices_hint(text, known, noun='recipes')}")
