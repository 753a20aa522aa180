"""The spec digest, and what a recipe's ``model.sha256`` pin means.

The digest of a :class:`RecipeSpec` is the sha256 of its compact canonical JSON
(:func:`czbuild.files.digest_json`): keys sorted, no whitespace, ASCII only, no NaN, None
values omitted, every path a POSIX path relative to the project folder. It therefore does not
change with comments, key order or whitespace in the YAML, with where the project is checked
out, or with the operating system.

:func:`source_sha256` defines what a recipe's ``model.sha256`` pin means: the file digest of a
file, the tree digest of a SavedModel directory (:func:`czbuild.files.path_sha256`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from czbuild.files.canonical import digest_json
from czbuild.files.digest import path_sha256
from czbuild.recipe.spec import RecipeSpec

__all__ = ["source_sha256", "spec_digest"]


def spec_digest(spec: RecipeSpec) -> str:
    """sha256 hex digest of the spec's compact canonical JSON (:meth:`RecipeSpec.to_plain`)."""
    return hashlib.sha256(digest_json(spec.to_plain()).encode("ascii")).hexdigest()


def source_sha256(path: Path) -> str:
    """What ``model.sha256`` pins: the file digest, or the tree digest of a directory."""
    return path_sha256(path)
