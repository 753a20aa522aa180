"""The spec digest, and what a recipe's ``model.sha256`` pin means.

The digest of a :class:`RecipeSpec` is the sha256 of its compact canonical JSON
(:func:`czbuild.files.digest_json`): keys sorted, no whitespace, ASCII only, no NaN, None
values omitted, every path a POSIX path relative to the project folder. It therefore does not
change with comments, key order or whitespace in the YAML, with where the project is checked
out, or with the operating system.

:func:`source_sha256` is the byte digest of a model source: the file digest of a file, the
tree digest of a SavedModel directory (:func:`czbuild.files.path_sha256`). A recipe's
``model.sha256`` pin may be that or the model's *content* digest
(:func:`czbuild.files.content_sha256`, what the build fingerprints: it survives re-saving an
unchanged ``.keras`` / ``.h5`` / SavedModel); :func:`pin_matches` accepts either.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from czbuild.files.canonical import digest_json
from czbuild.files.content import content_sha256
from czbuild.files.digest import path_sha256
from czbuild.recipe.spec import RecipeSpec

__all__ = ["pin_matches", "source_sha256", "spec_digest"]


def spec_digest(spec: RecipeSpec) -> str:
    """sha256 hex digest of the spec's compact canonical JSON (:meth:`RecipeSpec.to_plain`)."""
    return hashlib.sha256(digest_json(spec.to_plain()).encode("ascii")).hexdigest()


def source_sha256(path: Path) -> str:
    """What ``model.sha256`` pins: the file digest, or the tree digest of a directory."""
    return path_sha256(path)


def pin_matches(path: Path, pin: str) -> tuple[bool, str]:
    """Whether ``pin`` is the byte digest or the content digest of ``path``.

    Returns:
        ``(matches, byte digest)`` (the digest to show when it does not match).
    """
    actual = source_sha256(path)
    if actual == pin.lower():
        return True, actual
    try:
        return content_sha256(path) == pin.lower(), actual
    except ValueError:  # not a readable .keras / .h5: only the byte digest applies
        return False, actual
