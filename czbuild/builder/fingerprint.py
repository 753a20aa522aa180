"""The fingerprint of a variant: everything that can change the bytes of its artifact.

A fingerprint is the resolved spec (and its digest), the content hash of every input file or
directory (model source, licence, custom-object / factory files), and the versions of czbuild
and of the conversion toolchain. Two equal fingerprints must give the same artifact; anything
outside the fingerprint (recipe comments, file times, the working directory) must not matter.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from czbuild.builder.hashing import HashCache
from czbuild.builder.toolchain import toolchain_versions
from czbuild.recipe.variant import Variant

# "path/to/file.py:function" names a factory; the input is the file.
_FACTORY = re.compile(r"^(.+\.py):[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class InputRecord:
    """One input of a variant.

    Attributes:
        role: What the input is for: ``model``, ``licence``, ``custom objects`` or the dotted
            spec key that names it.
        path: POSIX path relative to the project directory (absolute when outside it).
        sha256: Content hash (tree hash for a directory), or None when the input is missing.
    """

    role: str
    path: str
    sha256: str | None

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "path": self.path, "sha256": self.sha256}


@dataclass(frozen=True)
class Fingerprint:
    """What an artifact's bytes depend on (see the module docstring)."""

    variant: str
    recipe: str
    recipe_file: str
    output: str
    spec_digest: str
    spec: Mapping[str, Any]
    inputs: tuple[InputRecord, ...]
    toolchain: Mapping[str, str] = field(default_factory=dict)

    @property
    def missing_inputs(self) -> list[InputRecord]:
        return [i for i in self.inputs if i.sha256 is None]

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "recipe": self.recipe,
            "recipe_file": self.recipe_file,
            "output": self.output,
            "spec_digest": self.spec_digest,
            "spec": dict(self.spec),
            "inputs": [i.to_json() for i in self.inputs],
            "toolchain": dict(self.toolchain),
        }


def display_path(path: Path, project_dir: Path) -> str:
    """``path`` relative to ``project_dir`` in POSIX form, or absolute when outside it."""
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(project_dir)).as_posix()
    except ValueError:
        return Path(os.path.abspath(path)).as_posix()


def compute_fingerprint(variant: Variant, cache: HashCache) -> Fingerprint:
    """Fingerprint ``variant``, hashing its inputs through ``cache``.

    Missing inputs are recorded with ``sha256=None`` instead of raising: the build then runs
    and fails with the recipe/convert layer's own error, and ``status`` reports them.
    """
    spec = variant.spec.to_plain()
    roles = input_roles(spec, variant.project_dir)
    records = []
    for path in variant.inputs:
        try:
            digest: str | None = cache.path_sha256(Path(path))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            digest = None
        abs_path = os.path.abspath(path)
        records.append(
            InputRecord(
                role=roles.get(abs_path, "input"),
                path=display_path(Path(path), variant.project_dir),
                sha256=digest,
            )
        )
    records.sort(key=lambda r: (r.path, r.role))
    return Fingerprint(
        variant=variant.name,
        recipe=variant.recipe,
        recipe_file=display_path(Path(variant.recipe_file), variant.project_dir),
        output=PurePosixPath(variant.output).as_posix(),
        spec_digest=variant.digest,
        spec=spec,
        inputs=tuple(records),
        toolchain=toolchain_versions(),
    )


def input_roles(spec: Mapping[str, Any], project_dir: Path) -> dict[str, str]:
    """Map absolute input paths to a role, from the spec key whose value names them."""
    roles: dict[str, str] = {}
    for key, value in _walk_strings(spec, ""):
        factory = _FACTORY.match(value)
        text = factory.group(1) if factory else value
        candidate = os.path.abspath(os.path.join(project_dir, text))
        roles.setdefault(candidate, _role_name(key))
    return roles


def _role_name(key: str) -> str:
    lowered = key.lower()
    if "licen" in lowered:
        return "licence"
    if "custom" in lowered:
        return "custom objects"
    if lowered.startswith("model"):
        return "model"
    return key


def _walk_strings(value: Any, prefix: str) -> Iterable[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key in sorted(value, key=str):
            yield from _walk_strings(value[key], f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _walk_strings(item, f"{prefix}[{index}]")
    elif isinstance(value, str) and value:
        yield prefix, value
