"""Per-artifact build stamps: czbuild's durable record of what each artifact was built from.

One small JSON file per artifact, ``<out>/.czbuild/stamps/<output>.json``, written atomically
right after the artifact itself has been renamed into place. Because every stamp is its own
file, a build killed at any point loses at most the record of the artifact being written at
that moment (which is then simply rebuilt); doit's own state, written only when a run ends,
is not needed for correctness. The manifest (and the release lock file) are derived from
the stamps.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from czbuild.builder.fingerprint import Fingerprint
from czbuild.files.canonical import read_json, write_json

STAMP_FORMAT = 1
STATE_DIR = ".czbuild"


@dataclass(frozen=True)
class ArtifactRecord:
    """The artifact a stamp vouches for.

    Attributes:
        path: POSIX path relative to the output directory.
        sha256: sha256 of the whole file.
        size: Size in bytes.
        members: ZIP member name -> sha256 of its content.
    """

    path: str
    sha256: str
    size: int
    members: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "size": self.size,
            "members": dict(sorted(self.members.items())),
        }


def state_dir(out_dir: Path) -> Path:
    """``<out>/.czbuild``: stamps, hash cache, lock, logs."""
    return Path(out_dir) / STATE_DIR


def stamp_path(out_dir: Path, output: PurePosixPath | str) -> Path:
    """Where the stamp of the artifact at ``output`` (relative to ``out_dir``) lives."""
    return Path(_stamp_file(out_dir, output))


@functools.lru_cache(maxsize=65536)
def _relative_output(output: PurePosixPath | str) -> str:
    """``output`` in POSIX form; raises ValueError when it is absolute or climbs out."""
    if isinstance(output, str) and all(p not in ("", ".", "..") for p in output.split("/")):
        return output  # already what PurePosixPath would make of it
    rel = PurePosixPath(output)
    if rel.is_absolute() or ".." in rel.parts:
        raise ValueError(f"artifact path must be relative and inside the output dir: {rel}")
    return rel.as_posix()


def _stamp_file(out_dir: Path | str, output: PurePosixPath | str) -> str:
    """:func:`stamp_path` as a string (no pathlib: a no-op build asks once per variant)."""
    return os.path.join(out_dir, STATE_DIR, "stamps", _relative_output(output) + ".json")


def make_stamp(
    fingerprint: Fingerprint,
    artifact: ArtifactRecord,
    verification: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The stamp document for an artifact built from ``fingerprint``.

    Args:
        fingerprint: What the artifact was built from.
        artifact: The artifact's path and hashes.
        verification: The verification record (:mod:`czbuild.builder.verification`), or None
            when the artifact was built with ``--no-verify``.
    """
    return {
        "format": STAMP_FORMAT,
        **fingerprint.to_json(),
        "artifact": artifact.to_json(),
        "verification": verification,
    }


def reports_dir(out_dir: Path) -> Path:
    """``<out>/.czbuild/reports``: the latest verification report of each artifact."""
    return state_dir(out_dir) / "reports"


def report_path(out_dir: Path, output: PurePosixPath | str) -> Path:
    """Where the latest verification report of the artifact at ``output`` is kept."""
    stamp_path(out_dir, output)  # validates ``output``
    return reports_dir(out_dir) / (PurePosixPath(output).as_posix() + ".verify.json")


def write_stamp(out_dir: Path, stamp: dict[str, Any]) -> Path:
    """Write ``stamp`` atomically and durably; returns its path."""
    path = stamp_path(out_dir, stamp["output"])
    write_json(path, stamp)
    return path


def read_stamp(out_dir: Path, output: PurePosixPath | str) -> dict[str, Any] | None:
    """The stamp of ``output``, or None if missing, unreadable or of another format."""
    data = read_json(_stamp_file(out_dir, output))
    if not isinstance(data, dict) or data.get("format") != STAMP_FORMAT:
        return None
    if not isinstance(data.get("artifact"), dict) or "output" not in data:
        return None
    return data


def remove_stamp(out_dir: Path, output: PurePosixPath | str) -> bool:
    """Delete the stamp of ``output``; returns whether one existed."""
    try:
        os.unlink(_stamp_file(out_dir, output))
    except FileNotFoundError:
        return False
    return True


def iter_stamps(
    out_dir: Path,
    known: Mapping[str, dict[str, Any] | None] | None = None,
    listing: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """Every readable stamp under ``out_dir``, sorted by artifact path.

    Args:
        out_dir: The output directory.
        known: Stamps already read by the caller, by artifact path (None: no readable
            stamp); their files are not read again.
        listing: The artifact paths of every stamp file (:func:`stamp_listing`), when the
            caller knows them: the stamp folder is not walked.

    ``known`` and ``listing`` are only for a caller that holds the output folder's lock and
    knows the files have not changed since.
    """
    rels = stamp_listing(out_dir) if listing is None else listing
    stamps: list[dict[str, Any]] = []
    for rel in rels:
        if known is not None and rel in known:
            stamp = known[rel]
        else:
            stamp = read_stamp(out_dir, rel)
        if stamp is not None and stamp["output"] == rel:
            stamps.append(stamp)
    stamps.sort(key=lambda s: s["output"])
    return stamps


def stamp_listing(out_dir: Path) -> list[str]:
    """The artifact path of every stamp file under ``out_dir`` (unsorted)."""
    root = os.path.join(state_dir(out_dir), "stamps")
    found: list[str] = []
    cut = len(root) + 1
    for dirpath, _dirnames, filenames in os.walk(root):
        folder = dirpath[cut:].replace(os.sep, "/")
        found.extend(stamp_output(folder, name) or "" for name in filenames)
    return [rel for rel in found if rel]


def stamp_output(folder: str, name: str) -> str | None:
    """The artifact path of the file ``name`` in the stamp folder's sub-folder ``folder``
    (POSIX, "" for the top), or None when it is no stamp (a hidden or non-JSON file)."""
    if not name.endswith(".json") or name.startswith("."):
        return None
    stem = name[: -len(".json")]
    return f"{folder}/{stem}" if folder else stem
