"""The lock file ``czbuild.lock``: what every recipe variant was built from, and into what.

The lock file lives at the project root and is meant to be committed. For every variant it
records the spec digest, the sha256 of each input (project-relative POSIX paths), the toolchain
versions that decide the bytes, and the sha256 of the artifact and of each of its ZIP members
(with the entry headers: time, mode, compression), in archive order.

Format: JSON, because both reading and writing it need only the standard library on every
Python czbuild supports (3.10 has no ``tomllib`` and no version has a TOML writer), because
``jq`` and CI scripts read it, and because a canonical form is easy to guarantee. The text is
canonical and diff-friendly:

* keys sorted, two-space indent, ASCII, final newline, no timestamps;
* one block per variant (keyed by the variant name, sorted), so adding, changing or removing
  a variant touches only its own block;
* one line per ZIP member (fixed key order, name first), so a changed member is a one-line
  diff that names it.

``render_lock(parse_lock(text)) == text`` for every file czbuild writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from czbuild.errors import CzbuildError
from czbuild.files.atomic import atomic_write

LOCK_NAME = "czbuild.lock"
LOCK_FORMAT = 1
_COMMENT = (
    "czbuild lock file: what each recipe variant is built from and the exact bytes it "
    "gives. Written by `czbuild build`, checked by `czbuild check` / `czbuild build "
    "--locked` / `czbuild release`. Commit it; do not edit it by hand."
)

#: Member policies: ``bytes`` (default) must match byte for byte; ``numeric`` members are
#: compared by running the payload (see :mod:`czbuild.release.policy`).
BYTES = "bytes"
NUMERIC = "numeric"
_MEMBER_KEYS = ("name", "sha256", "size", "date_time", "mode", "compression", "reproducible")


class LockFileError(CzbuildError, ValueError):
    """``czbuild.lock`` cannot be read: names the file and the key, and how to recover."""

    exit_code = 2


@dataclass(frozen=True)
class LockedMember:
    """One ZIP member of a locked artifact.

    Attributes:
        name: Member name.
        sha256: sha256 of the member's content.
        size: Uncompressed size in bytes.
        date_time: Entry time as ``YYYY-MM-DD hh:mm:ss``.
        mode: Unix mode from the entry's external attributes, e.g. ``0o100644``.
        compression: ``stored`` or ``deflated`` (or the method number).
        reproducible: :data:`BYTES` or :data:`NUMERIC`.
    """

    name: str
    sha256: str
    size: int
    date_time: str = ""
    mode: str = ""
    compression: str = ""
    reproducible: str = BYTES

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "sha256": self.sha256,
            "size": self.size,
            "date_time": self.date_time,
            "mode": self.mode,
            "compression": self.compression,
        }
        if self.reproducible != BYTES:
            data["reproducible"] = self.reproducible
        return data


@dataclass(frozen=True)
class LockEntry:
    """The lock record of one variant.

    Attributes:
        variant: Variant name, e.g. ``nuclei@tile=512``.
        recipe: Recipe name.
        recipe_file: Recipe file, relative to the project.
        spec_digest: sha256 of the canonical resolved spec.
        inputs: Input path (project-relative POSIX) -> sha256 (tree digest for a directory).
        toolchain: Package -> version (czbuild, tensorflow, keras, tf2onnx, onnx, python).
        path: Artifact path relative to the build folder.
        sha256: sha256 of the artifact file.
        size: Artifact size in bytes.
        payload: ``onnx`` or ``savedmodel_zip``.
        members: The ZIP members in archive order.
    """

    variant: str
    recipe: str
    recipe_file: str
    spec_digest: str
    inputs: Mapping[str, str]
    toolchain: Mapping[str, str]
    path: str
    sha256: str
    size: int
    payload: str = "onnx"
    members: tuple[LockedMember, ...] = ()

    def member(self, name: str) -> LockedMember | None:
        """The member called ``name``, or None."""
        return next((m for m in self.members if m.name == name), None)

    @property
    def numeric_members(self) -> tuple[str, ...]:
        """Names of members compared numerically instead of byte for byte."""
        return tuple(m.name for m in self.members if m.reproducible == NUMERIC)

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "recipe_file": self.recipe_file,
            "spec_digest": self.spec_digest,
            "inputs": dict(sorted(self.inputs.items())),
            "toolchain": dict(sorted(self.toolchain.items())),
            "artifact": {
                "path": self.path,
                "sha256": self.sha256,
                "size": self.size,
                "payload": self.payload,
                "members": [m.to_json() for m in self.members],
            },
        }


@dataclass(frozen=True)
class LockFile:
    """All entries of a lock file, by variant name."""

    entries: Mapping[str, LockEntry] = field(default_factory=dict)

    def get(self, variant: str) -> LockEntry | None:
        return self.entries.get(variant)

    def with_entries(self, entries: Iterable[LockEntry], *, drop: Iterable[str] = ()) -> LockFile:
        """A copy with ``entries`` added or replaced and the variants in ``drop`` removed."""
        merged = {k: v for k, v in self.entries.items() if k not in set(drop)}
        for entry in entries:
            merged[entry.variant] = entry
        return LockFile(dict(sorted(merged.items())))


@dataclass(frozen=True)
class LockUpdate:
    """What :func:`update_lock` changed.

    Attributes:
        path: The lock file.
        added / changed / removed / unchanged: Variant names.
        written: Whether the file was (re)written.
    """

    path: Path
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    written: bool = False

    @property
    def modified(self) -> bool:
        return bool(self.added or self.changed or self.removed)


# --- rendering ---------------------------------------------------------------------------------


def _scalar(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True, allow_nan=False)


def _member_line(member: Mapping[str, Any]) -> str:
    keys = [k for k in _MEMBER_KEYS if k in member] + sorted(set(member) - set(_MEMBER_KEYS))
    return "{" + ", ".join(f"{_scalar(k)}: {_scalar(member[k])}" for k in keys) + "}"


def _render(value: Any, indent: int, key: str | None) -> str:
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        items = [
            f"{inner}{_scalar(str(k))}: {_render(value[k], indent + 1, str(k))}"
            for k in sorted(value, key=str)
        ]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        if key == "members":
            items = [f"{inner}{_member_line(v)}" for v in value]
        else:
            items = [f"{inner}{_render(v, indent + 1, None)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return _scalar(value)


def render_lock(lock: LockFile) -> str:
    """The canonical text of ``lock`` (see the module docstring)."""
    document = {
        "_comment": _COMMENT,
        "format": LOCK_FORMAT,
        "variants": {name: entry.to_json() for name, entry in sorted(lock.entries.items())},
    }
    return _render(document, 0, None) + "\n"


# --- parsing ------------------------------------------------------------------------------------


class _Reader:
    """Typed access to the decoded JSON with errors naming the file and dotted key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> LockFileError:
        return LockFileError(
            f"{self.source}: {key}: {problem}; the lock file is damaged: restore it from git, "
            "or delete it and run `czbuild build` to write a new one"
        )

    def get(
        self,
        data: Mapping[str, Any],
        key: str,
        where: str,
        kind: type | tuple[type, ...],
        default: Any = ...,
    ) -> Any:
        dotted = f"{where}.{key}" if where else key
        if key not in data:
            if default is not ...:
                return default
            raise self.fail(dotted, "missing")
        value = data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.fail(dotted, f"expected {names}, got {type(value).__name__}")
        return value

    def strings(self, data: Any, where: str) -> dict[str, str]:
        if not isinstance(data, Mapping) or not all(isinstance(v, str) for v in data.values()):
            raise self.fail(where, "expected an object of strings")
        return dict(data)

    def member(self, data: Any, where: str) -> LockedMember:
        if not isinstance(data, Mapping):
            raise self.fail(where, "expected an object")
        reproducible = self.get(data, "reproducible", where, str, BYTES)
        if reproducible not in (BYTES, NUMERIC):
            raise self.fail(f"{where}.reproducible", f"{reproducible!r} is not bytes or numeric")
        return LockedMember(
            name=self.get(data, "name", where, str),
            sha256=self.get(data, "sha256", where, str),
            size=self.get(data, "size", where, int),
            date_time=self.get(data, "date_time", where, str, ""),
            mode=self.get(data, "mode", where, str, ""),
            compression=self.get(data, "compression", where, str, ""),
            reproducible=reproducible,
        )

    def entry(self, name: str, data: Any) -> LockEntry:
        where = f"variants.{name}"
        if not isinstance(data, Mapping):
            raise self.fail(where, "expected an object")
        artifact = self.get(data, "artifact", where, dict)
        awhere = f"{where}.artifact"
        members = self.get(artifact, "members", awhere, list)
        return LockEntry(
            variant=name,
            recipe=self.get(data, "recipe", where, str),
            recipe_file=self.get(data, "recipe_file", where, str),
            spec_digest=self.get(data, "spec_digest", where, str),
            inputs=self.strings(self.get(data, "inputs", where, dict), f"{where}.inputs"),
            toolchain=self.strings(self.get(data, "toolchain", where, dict), f"{where}.toolchain"),
            path=self.get(artifact, "path", awhere, str),
            sha256=self.get(artifact, "sha256", awhere, str),
            size=self.get(artifact, "size", awhere, int),
            payload=self.get(artifact, "payload", awhere, str, "onnx"),
            members=tuple(self.member(m, f"{awhere}.members[{i}]") for i, m in enumerate(members)),
        )


def parse_lock(text: str, *, source: str = LOCK_NAME) -> LockFile:
    """Parse lock file text.

    Args:
        text: The file content.
        source: File name used in error messages.

    Raises:
        LockFileError: Invalid JSON, an unknown format, or a missing / mistyped key (the
            message names the dotted key).
    """
    reader = _Reader(source)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise LockFileError(
            f"{source}: not valid JSON ({exc}); a merge conflict? Resolve it, or delete the "
            "file and run `czbuild build` to write a new one"
        ) from None
    if not isinstance(data, Mapping):
        raise reader.fail("(top level)", "expected an object")
    version = reader.get(data, "format", "", int)
    if version != LOCK_FORMAT:
        raise LockFileError(
            f"{source}: format: {version} is not supported by this czbuild "
            f"(it reads format {LOCK_FORMAT}); upgrade czbuild"
        )
    variants = reader.get(data, "variants", "", dict)
    return LockFile({name: reader.entry(name, variants[name]) for name in sorted(variants)})


def lock_path(project_dir: Path) -> Path:
    """``<project>/czbuild.lock``."""
    return Path(project_dir) / LOCK_NAME


def read_lock(path: Path) -> LockFile:
    """Read a lock file; a missing file is an empty lock.

    Raises:
        LockFileError: The file exists but cannot be parsed.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return LockFile()
    except (OSError, UnicodeDecodeError) as exc:
        raise LockFileError(f"{path}: cannot read: {exc}") from exc
    return parse_lock(text, source=str(path))


def write_lock(path: Path, lock: LockFile) -> bool:
    """Write ``lock`` atomically if its text differs from the file; returns whether it wrote."""
    data = render_lock(lock).encode("ascii")
    try:
        if Path(path).read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    atomic_write(Path(path), data)
    return True


def update_lock(
    path: Path, entries: Iterable[LockEntry], *, keep: Iterable[str] | None = None
) -> LockUpdate:
    """Merge ``entries`` into the lock file at ``path``.

    Args:
        path: The lock file (created if missing).
        entries: New or refreshed entries.
        keep: When given (a full build), the names of every variant that still exists:
            entries of other variants are removed. None keeps every other entry.

    Returns:
        What changed; the file is only rewritten when its text changes.
    """
    entries = list(entries)
    if not entries and not Path(path).exists():
        return LockUpdate(path=Path(path))
    current = read_lock(path)
    added, changed, unchanged = [], [], []
    for entry in entries:
        old = current.get(entry.variant)
        if old is None:
            added.append(entry.variant)
        elif old != entry:
            changed.append(entry.variant)
        else:
            unchanged.append(entry.variant)
    removed: list[str] = []
    if keep is not None:
        alive = set(keep) | {e.variant for e in entries}
        removed = sorted(name for name in current.entries if name not in alive)
    updated = current.with_entries(entries, drop=removed)
    written = write_lock(path, updated)
    return LockUpdate(
        path=Path(path),
        added=tuple(sorted(added)),
        changed=tuple(sorted(changed)),
        removed=tuple(removed),
        unchanged=tuple(sorted(unchanged)),
        written=written,
    )
