"""Versions of the software that determines an artifact's bytes.

Read from package metadata (``importlib.metadata``), never by importing the packages: asking
TensorFlow its version must not cost the two seconds it takes to import it.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from czbuild.files.digest import file_sha256

# Distribution names whose version is recorded in stamps, the manifest and the lock file.
# "tensorflow" resolves to whichever of tensorflow / tensorflow-cpu is installed.
TOOLCHAIN_PACKAGES: tuple[str, ...] = ("tensorflow", "keras", "tf2onnx", "onnx")
_ALTERNATIVES: dict[str, tuple[str, ...]] = {
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tensorflow-intel"),
}
NOT_INSTALLED = "not-installed"
#: Distributions recorded only for variants whose model source uses them, by the recipe's
#: source kind (``SourceSpec.kind``): upgrading PyTorch rebuilds the PyTorch variants, and
#: only them.
SOURCE_PACKAGES: dict[str, tuple[str, ...]] = {"torch": ("torch",)}


def _dist_version(name: str) -> str:
    for candidate in _ALTERNATIVES.get(name, (name,)):
        try:
            return metadata.version(candidate)
        except metadata.PackageNotFoundError:
            continue
    return NOT_INSTALLED


def czbuild_version() -> str:
    """czbuild's own version: ``czbuild.__version__``, the single source (pyproject reads it too).

    Taken from the package rather than the installed distribution's metadata, so a source
    checkout and an installed copy of the same czbuild agree (and nothing goes stale when
    one switches between them).
    """
    from czbuild import __version__

    return __version__


@functools.cache
def _toolchain(packages: tuple[str, ...] = TOOLCHAIN_PACKAGES) -> tuple[tuple[str, str], ...]:
    return tuple((name, _dist_version(name)) for name in packages)


def toolchain_versions(source_kind: str | None = None) -> dict[str, str]:
    """``{"czbuild": ..., "tensorflow": ..., "keras": ..., "tf2onnx": ..., "onnx": ...}``,
    plus the :data:`SOURCE_PACKAGES` of ``source_kind`` (``"torch"``: ``torch``).

    The values are cached for the life of the process.
    """
    versions = {"czbuild": czbuild_version(), **dict(_toolchain())}
    versions.update(_toolchain(SOURCE_PACKAGES.get(source_kind or "", ())))
    stamp = _zip_time(os.environ.get("SOURCE_DATE_EPOCH"))
    if stamp is not None:
        versions[ZIP_TIME_KEY] = stamp
    return versions


@functools.lru_cache(maxsize=8)
def _zip_time(_source_date_epoch: str | None) -> str | None:
    """:func:`zip_date_time_override` for this value of ``SOURCE_DATE_EPOCH`` (the key)."""
    return zip_date_time_override()


# Key under which a non-default zip entry time (SOURCE_DATE_EPOCH) is recorded.
ZIP_TIME_KEY = "zip_date_time"


def zip_date_time_override() -> str | None:
    """The zip entry time ``SOURCE_DATE_EPOCH`` selects, or None for the default (1980-01-01).

    It changes every artifact's bytes, so it belongs to the fingerprint; recorded only when it
    differs from the default so that ordinary builds, stamps and lock files do not mention it.

    Raises:
        ArchiveError: ``SOURCE_DATE_EPOCH`` is set but not an integer.
    """
    from czbuild.formats.ziputil import zip_date_time

    value = zip_date_time()
    if value == (1980, 1, 1, 0, 0, 0):
        return None
    return "{:04d}-{:02d}-{:02d} {:02d}:{:02d}:{:02d}".format(*value)


# --- czbuild's own code ---------------------------------------------------------------------

_PACKAGE_DIR = Path(__file__).resolve().parents[1]

#: Parts of czbuild that never change an artifact's bytes (relative to the package, POSIX):
#: the command line, the release layer, the verifier (it accepts or refuses bytes, never
#: writes them), the recipe layer (whatever it changes shows in the resolved spec, which the
#: fingerprint holds) and the build layer's bookkeeping. Everything else -- formats, ops,
#: files, the framework adapters (``keras/`` and any adapter package added beside it), the
#: library API and the build layer's request/backend -- is artifact code: listing what is
#: *excluded* means a new adapter package counts without anyone remembering to add it.
NON_ARTIFACT_CODE: tuple[str, ...] = ("cli/", "release/", "verify/", "recipe/", "__main__.py")
ARTIFACT_BUILDER_CODE: tuple[str, ...] = ("builder/backend.py", "builder/request.py")

_code_digests: dict[str, str] = {}


def artifact_code_files(package_dir: Path | None = None) -> list[tuple[str, Path]]:
    """czbuild's source files that determine artifact bytes: ``(POSIX relative path, path)``.

    See :data:`NON_ARTIFACT_CODE`; of ``builder/`` only :data:`ARTIFACT_BUILDER_CODE` counts.
    """
    root = Path(package_dir or _PACKAGE_DIR)
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__")))
        for name in filenames:
            if not name.endswith(".py"):
                continue
            full = Path(dirpath, name)
            rel = full.relative_to(root).as_posix()
            if rel.startswith(NON_ARTIFACT_CODE):
                continue
            if rel.startswith("builder/") and rel not in ARTIFACT_BUILDER_CODE:
                continue
            out.append((rel, full))
    return sorted(out)


def czbuild_code_digest(file_hash: Callable[[Path], str] = file_sha256) -> str:
    """sha256 over czbuild's artifact code (:func:`artifact_code_files`), once per process.

    ``czbuild.__version__`` does not change with every commit, so the fingerprint also holds
    this digest: a change to code that writes artifact bytes makes every artifact stale
    ("czbuild changed"). Computed once per process (the running code is what was imported);
    ``file_hash`` lets the build's stat-cached :class:`~czbuild.builder.hashing.HashCache`
    answer without reading the files.
    """
    key = str(_PACKAGE_DIR)
    cached = _code_digests.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    for rel, full in artifact_code_files():
        digest.update(f"{rel}\0{file_hash(full)}\n".encode())
    value = _code_digests[key] = digest.hexdigest()
    return value
