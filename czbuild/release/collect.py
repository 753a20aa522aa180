"""Lock entries from a build folder: the seam between the build layer and the lock file.

The build layer records every artifact it vouches for in ``<out>/manifest.json`` (regenerated
from its per-artifact stamps at the end of every run, checked against the files' hashes):
variant, recipe, spec digest, inputs with their hashes, toolchain, artifact sha256 and member
hashes. A lock entry adds what the manifest does not keep: the member order and the ZIP
entry headers and member hashes, read with the one artifact reader, the payload kind and the
Python version. An entry that already matches the manifest is reused
as is, so a no-op build does not even open the artifacts.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from czbuild.files.digest import file_sha256
from czbuild.formats.layout import MODEL, roles_of
from czbuild.release.lockfile import LockedMember, LockEntry, LockFile
from czbuild.release.policy import member_policy


def python_version() -> str:
    """``major.minor`` of this interpreter (the one the build workers run too)."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def lock_toolchain(toolchain: Mapping[str, str]) -> dict[str, str]:
    """The build layer's toolchain versions plus the Python version."""
    return dict(sorted({**toolchain, "python": python_version()}.items()))


def read_manifest(out_dir: Path) -> dict[str, dict[str, Any]]:
    """The build manifest's artifact records by variant name ({} when there is none)."""
    from czbuild.builder.manifest import manifest_path

    try:
        data = json.loads(manifest_path(Path(out_dir)).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    records = data.get("artifacts", []) if isinstance(data, dict) else []
    return {r["variant"]: r for r in records if isinstance(r, dict) and r.get("variant")}


def _inputs(record: Mapping[str, Any]) -> dict[str, str]:
    return {i["path"]: i["sha256"] for i in record.get("inputs", []) if i.get("sha256")}


def entry_from_artifact(
    path: Path,
    *,
    variant: str,
    recipe: str,
    recipe_file: str,
    spec_digest: str,
    inputs: Mapping[str, str],
    toolchain: Mapping[str, str],
    relative_path: str,
    sha256: str | None = None,
) -> LockEntry:
    """The lock entry of the artifact file at ``path``.

    Args:
        path: The artifact file.
        variant / recipe / recipe_file / spec_digest / inputs / toolchain: What it was built
            from (``toolchain`` already including ``python``).
        relative_path: The artifact path relative to the build folder.
        sha256: The file's sha256 if already known (else computed).

    Raises:
        ArchiveError: The artifact is not a readable, safe ZIP.
    """
    # the artifact readers load only when an entry is made (a no-op build reuses them all)
    from czbuild.formats.container import open_container
    from czbuild.formats.reader import payload_kind

    container = open_container(Path(path))
    roles = roles_of(container.names())
    model = next((n for n, role in roles.items() if role == MODEL), None)
    payload = payload_kind(container.read(model)) if model else "onnx"
    if sha256 is None:
        sha256 = file_sha256(Path(path))
    members = tuple(
        LockedMember(
            name=e.name,
            sha256=e.sha256,
            size=e.size,
            date_time=e.date_text,
            mode=e.mode_text,
            compression=e.compression_text,
            reproducible=member_policy(roles[e.name], payload),
        )
        for e in container.members
    )
    return LockEntry(
        variant=variant,
        recipe=recipe,
        recipe_file=recipe_file,
        spec_digest=spec_digest,
        inputs=dict(sorted(inputs.items())),
        toolchain=dict(sorted(toolchain.items())),
        path=relative_path,
        sha256=sha256,
        size=Path(path).stat().st_size,
        payload=payload,
        members=members,
    )


def _still_valid(entry: LockEntry, record: Mapping[str, Any], toolchain: Mapping[str, str]) -> bool:
    """Whether ``entry`` already describes the manifest record (no need to open the artifact)."""
    if (
        entry.sha256 != record.get("sha256")
        or entry.path != record.get("path")
        or entry.spec_digest != record.get("spec_digest")
        or dict(entry.inputs) != _inputs(record)
        or dict(entry.toolchain) != toolchain
        or entry.recipe != record.get("recipe")
        or entry.recipe_file != record.get("recipe_file")
    ):
        return False
    roles = roles_of([m.name for m in entry.members])
    return all(m.reproducible == member_policy(roles[m.name], entry.payload) for m in entry.members)


def entries_from_build(
    out_dir: Path, variants: Iterable[str], *, previous: LockFile | None = None
) -> dict[str, LockEntry]:
    """Lock entries of ``variants`` as built in ``out_dir``.

    Variants the manifest does not list (failed, never built, artifact modified) are left
    out. Entries of ``previous`` that still match are reused without opening the artifact.

    Args:
        out_dir: The build folder.
        variants: Variant names.
        previous: The current lock file, if any.

    Returns:
        Variant name -> entry.
    """
    records = read_manifest(out_dir)
    entries: dict[str, LockEntry] = {}
    for name in variants:
        record = records.get(name)
        if record is None:
            continue
        toolchain = lock_toolchain(record.get("toolchain", {}))
        old = previous.get(name) if previous is not None else None
        if old is not None and _still_valid(old, record, toolchain):
            entries[name] = old
            continue
        artifact = Path(out_dir) / record["path"]
        if not artifact.is_file():
            continue
        entries[name] = entry_from_artifact(
            artifact,
            variant=name,
            recipe=record.get("recipe") or "",
            recipe_file=record.get("recipe_file") or "",
            spec_digest=record.get("spec_digest") or "",
            inputs=_inputs(record),
            toolchain=toolchain,
            relative_path=record["path"],
            sha256=record.get("sha256"),
        )
    return entries
