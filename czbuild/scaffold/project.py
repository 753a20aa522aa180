"""``czbuild init``: lay out a new project, optionally with a first recipe for a model.

A project is ``recipes/``, ``configs/`` (copies of czbuild's bundled config groups, found
with :func:`czbuild.recipe.project.bundled_configs`), ``models/``, a ``.gitignore`` (the build
folder, doit's state, czbuild's temporaries), a ``README.md`` stub and ``recipe.schema.json``
(the editor schema the recipes point at). With a model, the model is copied to ``models/``
(referenced where it is when it already lies there) and ``recipes/<name>.yaml`` is written
from what :func:`czbuild.scaffold.probe.probe_model` measured.

Nothing is half-written: the model is probed and every file planned before anything is
written; an existing file is refused (one line naming it) unless ``force`` (one that
already holds exactly the planned bytes is left alone: re-running ``init`` is harmless); and
if writing fails part-way, whatever this call created is removed again (a file ``force``
overwrote stays overwritten).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from czbuild.errors import CzbuildError, ModelError
from czbuild.files.atomic import atomic_write
from czbuild.files.scratch import temp_name
from czbuild.recipe.project import CONFIGS_DIR, RECIPES_DIR, bundled_configs
from czbuild.recipe.schema_file import SCHEMA_FILE_NAME, schema_comment
from czbuild.scaffold.probe import ModelFacts, probe_model
from czbuild.scaffold.recipe_text import recipe_name, recipe_text

__all__ = ["MODELS_DIR", "InitResult", "ProjectExistsError", "init_project", "plan_project"]

MODELS_DIR = "models"

GITIGNORE = """\
# czbuild build output: artifacts, build/manifest.json, build/.czbuild/ (stamps, doit state)
/build/
# czbuild release output
/dist/
# doit's state when `doit` runs the dodo.py of a project
/.doit*
# czbuild's temporaries (a killed process can leave them; the next czbuild run sweeps them)
.*.tmp
.dist.tmp-*
.dist.old-*
__pycache__/
"""


class ProjectExistsError(CzbuildError):
    """``czbuild init`` would overwrite an existing file."""

    exit_code = 2


@dataclass(frozen=True)
class InitResult:
    """What :func:`init_project` wrote.

    Attributes:
        root: The project folder.
        written: Files written (project-relative, POSIX), in order.
        recipe: The recipe written, if a model was given.
        facts: What the model probe measured, if a model was given.
    """

    root: Path
    written: tuple[str, ...]
    recipe: str | None = None
    facts: ModelFacts | None = None


@dataclass
class _Plan:
    root: Path
    files: dict[str, bytes] = field(default_factory=dict)
    folders: list[str] = field(default_factory=list)
    model: tuple[Path, str] | None = None  # source, project-relative destination
    recipe: str | None = None
    facts: ModelFacts | None = None


def _readme(name: str, recipe: str | None, model: str | None) -> str:
    lines = [
        f"# {name}",
        "",
        "ZEN Intellesis models built with [czbuild](https://pypi.org/project/czbuild/).",
        "",
        "```bash",
        "czbuild list      # recipes, variants, output paths",
        "czbuild build     # build every recipe into build/",
        "czbuild status    # what is out of date, and why",
        "```",
        "",
        "- `recipes/`: one YAML recipe per deployable model (`czbuild schema` prints their schema;",
        f"  `{SCHEMA_FILE_NAME}` is a copy for editors).",
        "- `configs/`: config groups the recipes compose: copies of czbuild's bundled ZEN targets,",
        "  formats, preprocessing chains and metadata defaults. Edit or add options here; delete a",
        "  file to use czbuild's bundled one again.",
        "- `models/`: the trained models the recipes point at.",
        "- `czbuild.lock` (after the first build): the digests a release is checked against;",
        "  commit it.",
    ]
    if recipe is not None:
        lines += [
            "",
            "## First recipe",
            "",
            f"`czbuild init --from` wrote `recipes/{recipe}.yaml` for `{model}`. Every value",
            'marked "guessed" was inferred by running the model: check each (class names,',
            "preprocessing, overlap) before shipping, then `czbuild build`.",
        ]
    return "\n".join(lines) + "\n"


def _config_files() -> dict[str, bytes]:
    """The bundled config groups, as project-relative paths and bytes."""
    root = bundled_configs()
    out: dict[str, bytes] = {}
    for group in sorted(
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    ):
        for option in sorted(group.glob("*.yaml")):
            out[f"{CONFIGS_DIR}/{group.name}/{option.name}"] = option.read_bytes()
    return out


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def plan_project(
    root: Path | str,
    *,
    model: Path | str | None = None,
    name: str | None = None,
    probe: Callable[[Path], ModelFacts] = probe_model,
) -> _Plan:
    """Everything :func:`init_project` would write (nothing is written).

    Raises:
        ModelError: The model cannot be probed (names the file).
    """
    from czbuild import __version__
    from czbuild.recipe import render_json_schema

    root = Path(root).absolute()
    plan = _Plan(root)
    plan.files[".gitignore"] = GITIGNORE.encode()
    plan.files[SCHEMA_FILE_NAME] = render_json_schema().encode()
    plan.files.update(_config_files())
    model_rel: str | None = None
    if model is not None:
        source = Path(model).absolute()
        facts = probe(source)
        models = root / MODELS_DIR
        if _inside(source, models):
            model_rel = source.resolve().relative_to(root.resolve()).as_posix()
        else:
            model_rel = f"{MODELS_DIR}/{source.name}"
            plan.model = (source, model_rel)
        base = source.name[: -len(source.suffix)] if source.suffix else source.name
        plan.recipe = recipe_name(name or base)
        schema = schema_comment(root / SCHEMA_FILE_NAME, root / RECIPES_DIR)
        text = recipe_text(
            facts,
            name=plan.recipe,
            model_ref=f"../{model_rel}",
            schema_line=schema,
            version=__version__,
        )
        plan.files[f"{RECIPES_DIR}/{plan.recipe}.yaml"] = text.encode()
        plan.facts = facts
    else:
        plan.folders.append(RECIPES_DIR)
        plan.folders.append(MODELS_DIR)
    plan.files["README.md"] = _readme(root.name, plan.recipe, model_rel).encode()
    return plan


def _same_file(path: Path, data: bytes) -> bool:
    try:
        return path.is_file() and not path.is_symlink() and path.read_bytes() == data
    except OSError:
        return False


def _conflicts(plan: _Plan) -> list[str]:
    targets = list(plan.files) + ([plan.model[1]] if plan.model else [])
    out = []
    for rel in targets:
        path = plan.root / rel
        if rel in plan.files and _same_file(path, plan.files[rel]):
            continue  # already there, byte for byte: nothing is overwritten
        if path.exists() or path.is_symlink():
            out.append(rel)
        else:  # a parent that is a file blocks it too
            for parent in Path(rel).parents:
                if parent != Path(".") and (plan.root / parent).is_file():
                    out.append(parent.as_posix())
                    break
    for rel in plan.folders:
        if (plan.root / rel).exists() and not (plan.root / rel).is_dir():
            out.append(rel)
    return out


def _copy_model(source: Path, dest: Path) -> None:
    """Copy a model file or SavedModel folder under a temporary name, then rename it."""
    tmp = dest.with_name("." + temp_name(dest.name) + ".tmp")
    try:
        if source.is_dir():
            shutil.copytree(source, tmp)
        else:
            shutil.copyfile(source, tmp)
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_plan(plan: _Plan, *, force: bool = False) -> InitResult:
    """Write ``plan`` (see :func:`init_project`)."""
    conflicts = _conflicts(plan)
    if conflicts and not force:
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        raise ProjectExistsError(
            f"{plan.root / conflicts[0]}: already exists{more}; czbuild init writes nothing "
            "over existing files (move them away, or pass --force to overwrite)"
        )
    created: list[Path] = []  # files and folders this call made, for the roll-back

    def mkdirs(folder: Path) -> None:
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        for p in reversed(missing):
            p.mkdir()
            created.append(p)

    written: list[str] = []
    try:
        mkdirs(plan.root)
        for rel in plan.folders:
            mkdirs(plan.root / rel)
        if plan.model is not None:
            source, rel = plan.model
            dest = plan.root / rel
            mkdirs(dest.parent)
            if not (dest.exists() and dest.resolve() == source.resolve()):
                existed = dest.exists()
                _copy_model(source, dest)
                if not existed:
                    created.append(dest)
                written.append(rel)
        for rel, data in plan.files.items():
            path = plan.root / rel
            if _same_file(path, data):
                continue
            mkdirs(path.parent)
            existed = path.exists()
            atomic_write(path, data, durable=False)
            if not existed:
                created.append(path)
            written.append(rel)
    except BaseException:
        for path in reversed(created):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise
    return InitResult(plan.root, tuple(written), plan.recipe, plan.facts)


def init_project(
    root: Path | str,
    *,
    model: Path | str | None = None,
    name: str | None = None,
    force: bool = False,
) -> InitResult:
    """Create a czbuild project in ``root`` (made if missing), with a first recipe for ``model``.

    Args:
        root: The project folder.
        model: A ``.keras`` / ``.h5`` file, a SavedModel folder or an ``.onnx`` file: copied to
            ``models/`` (unless it lies there already) and described by ``recipes/<name>.yaml``.
        name: The recipe name (default: from the model's file name).
        force: Overwrite files that exist (otherwise nothing is written when one does).

    Returns:
        What was written.

    Raises:
        ProjectExistsError: A file to write exists and ``force`` is False.
        ModelError: The model cannot be loaded or probed.
    """
    if model is not None and not Path(model).exists():
        raise ModelError(f"{model}: no such model file or folder")
    plan = plan_project(root, model=model, name=name)
    return write_plan(plan, force=force)
