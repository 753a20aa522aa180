"""A project's own copy of the recipe JSON Schema (``czbuild schema --write PATH``).

Editors with the YAML language server read the schema named by a recipe's first line,
``# yaml-language-server: $schema=<path relative to the recipe>``. The committed
``czbuild/schemas/recipe.schema.json`` only resolves inside a czbuild checkout, so a user
project keeps a copy and points its recipes at it.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from czbuild.errors import CzbuildError

__all__ = ["SCHEMA_FILE_NAME", "schema_comment", "write_schema"]

SCHEMA_FILE_NAME = "recipe.schema.json"


def write_schema(path: Path | str, text: str) -> Path:
    """Write the schema ``text`` to ``path`` atomically (parents created).

    Args:
        path: A file name, or an existing folder (the file is then
            ``<folder>/recipe.schema.json``).
        text: The schema (``czbuild.recipe.render_json_schema()``).

    Returns:
        The absolute path written.

    Raises:
        CzbuildError: The file cannot be written (names the path and the reason).
    """
    target = Path(path).absolute()
    if target.is_dir():
        target = target / SCHEMA_FILE_NAME
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(text.encode("utf-8"))
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CzbuildError(f"cannot write the schema to {target}: {exc.strerror or exc}") from None
    return target


def schema_comment(schema: Path | str, recipes_dir: Path | str) -> str:
    """The first line that points the recipes in ``recipes_dir`` at ``schema``.

    Args:
        schema: The schema file.
        recipes_dir: The folder of the recipes (the path in the comment is relative to it).

    Returns:
        ``# yaml-language-server: $schema=../recipe.schema.json`` (POSIX separators; an
        absolute path when no relative one exists, e.g. another drive on Windows).
    """
    try:
        rel = os.path.relpath(Path(schema).absolute(), Path(recipes_dir).absolute())
        where = PurePosixPath(*Path(rel).parts).as_posix()
    except ValueError:
        where = Path(schema).absolute().as_posix()
    return f"# yaml-language-server: $schema={where}"
