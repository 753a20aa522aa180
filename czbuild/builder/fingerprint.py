"""The fingerprint of a variant: everything that can change the bytes of its artifact.

A fingerprint is the resolved spec (and its digest), the digest of every input file or
directory, the versions of czbuild and of the conversion toolchain, and the digest of
czbuild's own artifact code (:func:`czbuild.builder.toolchain.czbuild_code_digest`). Two
equal fingerprints must give the same artifact; anything outside the fingerprint (recipe
comments, file times, the working directory) must not matter.

Inputs come from two places:

* *declared* by the recipe: the model source, ``model.inputs``, custom-object files, the
  licence;
* *recorded* by the conversion worker while it loaded the model: every file the factory (or
  a custom-object file) opened for reading and every local module it imported
  (:mod:`czbuild.builder.reads`). They are kept in the stamp and re-hashed on every status
  check, so a factory that loads ``weights.keras`` is stale once the weights change.

Model files are hashed by *content* (:func:`czbuild.files.content_sha256`): a re-saved but
unchanged ``.keras`` / ``.h5`` / SavedModel keeps its digest. Other files by their bytes.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from czbuild.builder.hashing import HashCache
from czbuild.builder.toolchain import czbuild_code_digest, toolchain_versions
from czbuild.files.canonical import digest_json
from czbuild.recipe.variant import Variant

# "path/to/file.py:function" names a factory; the input is the file.
_FACTORY = re.compile(r"^(.+\.py):[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class InputRecord:
    """One input of a variant.

    Attributes:
        role: What the input is for: ``model``, ``licence``, ``custom objects``, ``model
            input`` (``model.inputs``), :data:`READ` / :data:`IMPORTED` (recorded) or the
            dotted spec key that names it.
        path: POSIX path relative to the project directory (absolute when outside it).
        sha256: Content digest (:func:`czbuild.files.content_sha256`), or None when the
            input is missing.
        recorded: Found by the worker while loading the model (not named by the recipe). A
            missing recorded input is a change, not an error.
    """

    role: str
    path: str
    sha256: str | None
    recorded: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"role": self.role, "path": self.path, "sha256": self.sha256}
        if self.recorded:
            data["recorded"] = True
        return data

    @property
    def outside_project(self) -> bool:
        """Whether the path lies outside the project folder (it is then absolute)."""
        return self.path.startswith("/") or (len(self.path) > 1 and self.path[1] == ":")


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
    czbuild_code: str = ""

    @property
    def missing_inputs(self) -> list[InputRecord]:
        """Declared inputs that do not exist (a build of them fails)."""
        return [i for i in self.inputs if i.sha256 is None and not i.recorded]

    def with_recorded(self, records: Iterable[InputRecord]) -> Fingerprint:
        """This fingerprint with its recorded inputs replaced by ``records``."""
        declared = [i for i in self.inputs if not i.recorded]
        paths = {i.path for i in declared}
        extra = [r for r in records if r.path not in paths]
        inputs = sorted({(r.path, r.role): r for r in [*declared, *extra]}.values(), key=_order)
        return replace(self, inputs=tuple(inputs))

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
            "czbuild_code": self.czbuild_code,
        }


def display_path(path: Path | str, project_dir: Path | str) -> str:
    """``path`` relative to ``project_dir`` in POSIX form, or absolute when outside it."""
    return _display(os.path.abspath(path), os.path.abspath(project_dir))


def _display(full: str, root: str) -> str:
    """:func:`display_path` of the absolute, normalised ``full`` and ``root``."""
    if os.sep == "/":  # string work for what pathlib would say (a no-op build asks 10,000s)
        if full == root:
            return "."
        prefix = root if root.endswith("/") else root + "/"
        return full[len(prefix) :] if full.startswith(prefix) else full
    try:
        return Path(full).relative_to(root).as_posix()
    except ValueError:
        return Path(full).as_posix()


def _posix(output: PurePosixPath | str) -> str:
    if isinstance(output, PurePosixPath):
        return output.as_posix()
    return PurePosixPath(output).as_posix()


def input_digest(path: Path | str, cache: HashCache) -> str | None:
    """The digest an input is fingerprinted with (content digest), None when it is missing.

    An unreadable model file (not a ZIP / HDF5 file) falls back to its byte digest: the
    conversion then fails with the loader's own message.
    """
    try:
        try:
            return cache.content_sha256(path)
        except ValueError:
            return cache.path_sha256(Path(path))
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError):
        return None


def recorded_input(role: str, path: str | Path, project_dir: Path, cache: HashCache) -> InputRecord:
    """The record of a recorded input at ``path`` (absolute, or relative to ``project_dir``)."""
    full = os.path.join(project_dir, path)  # (an absolute path stays as it is)
    return InputRecord(
        role=role,
        path=display_path(full, project_dir),
        sha256=input_digest(full, cache),
        recorded=True,
    )


def recorded_inputs(stamp: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """``(role, path)`` of the inputs a stamp says the worker recorded."""
    if not stamp:
        return []
    return [
        (str(i.get("role")), str(i["path"]))
        for i in stamp.get("inputs") or []
        if isinstance(i, Mapping) and i.get("recorded") and isinstance(i.get("path"), str)
    ]


def spec_of_stamp(variant: Variant, stamp: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The plain spec a stamp recorded, when it is provably the variant's spec now.

    A spec digest is the sha256 of the spec's compact canonical JSON
    (:mod:`czbuild.recipe.digest`). The recorded spec is used only when the variant's digest
    is the digest of the recorded spec itself (not merely the stamp's ``spec_digest``
    field): then it is the same JSON data as ``variant.spec.to_plain()``, and a no-op check
    takes it instead of converting the spec again (hashing the compact JSON is cheaper).
    """
    if not stamp or not variant.digest or stamp.get("spec_digest") != variant.digest:
        return None
    spec = stamp.get("spec")
    if not isinstance(spec, dict):
        return None
    try:
        recorded = hashlib.sha256(digest_json(spec).encode("ascii")).hexdigest()
    except (TypeError, ValueError):
        return None
    return spec if recorded == variant.digest else None


def compute_fingerprint(
    variant: Variant,
    cache: HashCache,
    recorded: Iterable[tuple[str, str]] = (),
    *,
    plain_spec: Mapping[str, Any] | None = None,
) -> Fingerprint:
    """Fingerprint ``variant``, hashing its inputs through ``cache``.

    Missing inputs are recorded with ``sha256=None`` instead of raising: the build then runs
    and fails with the recipe/convert layer's own error, and ``status`` reports them.

    Args:
        variant: The variant.
        cache: The stat-cached hasher.
        recorded: ``(role, path)`` of inputs the worker recorded at the last build
            (:func:`recorded_inputs` of the stamp); hashed again now.
        plain_spec: ``variant.spec.to_plain()`` when the caller has it already: the
            ``spec`` of a stamp whose ``spec_digest`` is the variant's digest (the digest is
            the sha256 of that very JSON form; :func:`spec_of_stamp`).
    """
    spec = dict(plain_spec) if plain_spec is not None else variant.spec.to_plain()
    project = os.path.abspath(variant.project_dir)
    paths = [os.path.abspath(path) for path in variant.inputs]
    roles = input_roles(spec, variant.project_dir, paths)
    records = []
    for abs_path in paths:
        records.append(
            InputRecord(
                role=roles.get(abs_path, "input"),
                path=_display(abs_path, project),
                sha256=input_digest(abs_path, cache),
            )
        )
    declared = {r.path for r in records}
    for role, text in recorded:
        record = recorded_input(role, text, variant.project_dir, cache)
        if record.path not in declared:
            declared.add(record.path)
            records.append(record)
    records.sort(key=_order)
    return Fingerprint(
        variant=variant.name,
        recipe=variant.recipe,
        recipe_file=_display(os.path.abspath(variant.recipe_file), project),
        output=_posix(variant.output),
        spec_digest=variant.digest,
        spec=spec,
        inputs=tuple(records),
        toolchain=toolchain_versions(variant.spec.model.kind),
        czbuild_code=czbuild_code_digest(cache.file_sha256),
    )


def _order(record: InputRecord) -> tuple[str, str]:
    return (record.path, record.role)


def input_roles(
    spec: Mapping[str, Any], project_dir: Path, wanted: Iterable[str] | None = None
) -> dict[str, str]:
    """Map absolute input paths to a role, from the spec key whose value names them.

    The first key in sorted order wins. With ``wanted`` (absolute paths) only those paths
    are looked up, and the walk stops once each has its role.
    """
    roles: dict[str, str] = {}
    project = os.path.abspath(project_dir)  # absolute: the cache must not see the cwd
    if wanted is None:
        for key, value in _walk_strings(spec, ""):
            roles.setdefault(_candidate(project, value), _role_name(key))
        return roles
    _find_roles(spec, [], project, set(wanted), roles)
    return roles


def _find_roles(
    value: Any, keys: list[str], project: str, wanted: set[str], roles: dict[str, str]
) -> bool:
    """Walk like :func:`_walk_strings`, building a key only for a wanted path; True: done."""
    if isinstance(value, str):
        if value:
            path = _candidate(project, value)
            if path in wanted and path not in roles:
                roles[path] = _role_name("".join(keys))
                return len(roles) == len(wanted)
    elif isinstance(value, Mapping):
        for key in sorted(value, key=str):
            keys.append(f".{key}" if any(keys) else str(key))
            done = _find_roles(value[key], keys, project, wanted, roles)
            keys.pop()
            if done:
                return True
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            keys.append(f"[{index}]")
            done = _find_roles(item, keys, project, wanted, roles)
            keys.pop()
            if done:
                return True
    return False


@functools.lru_cache(maxsize=16384)
def _candidate(project_dir: str, value: str) -> str:
    """The absolute path a spec string names (a factory's file for ``file.py:function``)."""
    factory = _FACTORY.match(value)
    text = factory.group(1) if factory else value
    return os.path.abspath(os.path.join(project_dir, text))


@functools.lru_cache(maxsize=4096)
def _role_name(key: str) -> str:
    lowered = key.lower()
    if "licen" in lowered:
        return "licence"
    if "custom" in lowered:
        return "custom objects"
    if lowered.startswith("model.inputs"):
        return "model input"
    if lowered.startswith("model"):
        return "model"
    if lowered.startswith("verify.samples"):
        return "sample image"
    if lowered.startswith("verify.expect"):
        return "expected output"
    return key


def _walk_strings(value: Any, prefix: str) -> list[tuple[str, str]]:
    """``(dotted key, value)`` of every non-empty string in ``value``, keys in sorted order."""
    found: list[tuple[str, str]] = []
    _collect_strings(value, prefix, found)
    return found


def _collect_strings(value: Any, prefix: str, found: list[tuple[str, str]]) -> None:
    if isinstance(value, str):
        if value:
            found.append((prefix, value))
    elif isinstance(value, Mapping):
        for key in sorted(value, key=str):
            _collect_strings(value[key], f"{prefix}.{key}" if prefix else str(key), found)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _collect_strings(item, f"{prefix}[{index}]", found)
