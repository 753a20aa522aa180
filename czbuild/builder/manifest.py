"""The build manifest ``<out>/manifest.json``, derived from the stamps.

The manifest lists every artifact in the output directory that its stamp still vouches for
(the file exists and, when a hash cache is given, still has the recorded sha256): path,
sha256, size, member hashes, variant, recipe, spec digest, inputs with their hashes, the
toolchain versions, and the verification report the build recorded (``null`` for an
artifact built with ``--no-verify``). It is canonical JSON in a stable order and carries no
timestamps, so it changes exactly when an artifact or its inputs change. Because it is
regenerated from the
stamps (and written atomically) after every finished artifact, it is consistent even after
a killed build.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from czbuild.builder.hashing import HashCache
from czbuild.builder.stamps import iter_stamps
from czbuild.files.atomic import atomic_write
from czbuild.files.canonical import file_json

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
_write_lock = threading.Lock()


def manifest_path(out_dir: Path) -> Path:
    """``<out>/manifest.json``."""
    return Path(out_dir) / MANIFEST_NAME


def render_manifest(
    out_dir: Path,
    cache: HashCache | None = None,
    known: Mapping[str, dict[str, Any] | None] | None = None,
    listing: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The manifest document for ``out_dir`` (see the module docstring).

    ``known``, ``listing``: stamps the caller read already and the stamp files it knows of
    (:func:`czbuild.builder.stamps.iter_stamps`).
    """
    artifacts = []
    for stamp in iter_stamps(out_dir, known, listing):
        record = stamp["artifact"]
        path = os.path.join(out_dir, stamp["output"])
        if cache is None:
            if not os.path.isfile(path):
                continue
        else:
            try:
                if cache.file_sha256(path) != record.get("sha256"):
                    continue
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                continue
        artifacts.append(
            {
                "path": stamp["output"],
                "variant": stamp.get("variant"),
                "recipe": stamp.get("recipe"),
                "recipe_file": stamp.get("recipe_file"),
                "sha256": record.get("sha256"),
                "size": record.get("size"),
                "members": record.get("members", {}),
                "spec_digest": stamp.get("spec_digest"),
                "inputs": stamp.get("inputs", []),
                "toolchain": stamp.get("toolchain", {}),
                "verification": stamp.get("verification"),
            }
        )
    return {"format": MANIFEST_FORMAT, "artifacts": artifacts}


def write_manifest(out_dir: Path, cache: HashCache | None = None) -> bool:
    """Regenerate ``<out>/manifest.json`` from the stamps.

    Thread-safe; the file is only rewritten (atomically) when its content changes.

    Returns:
        True if the file was (re)written.
    """
    with _write_lock:
        data = file_json(render_manifest(out_dir, cache))
        path = manifest_path(out_dir)
        try:
            if path.read_bytes() == data:
                return False
        except FileNotFoundError:
            pass
        atomic_write(path, data)
        return True
