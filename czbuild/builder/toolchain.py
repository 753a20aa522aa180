"""Versions of the software that determines an artifact's bytes.

Read from package metadata (``importlib.metadata``), never by importing the packages: asking
TensorFlow its version must not cost the two seconds it takes to import it.
"""

from __future__ import annotations

import functools
from importlib import metadata

# Distribution names whose version is recorded in stamps, the manifest and the lock file.
# "tensorflow" resolves to whichever of tensorflow / tensorflow-cpu is installed.
TOOLCHAIN_PACKAGES: tuple[str, ...] = ("tensorflow", "keras", "tf2onnx", "onnx")
_ALTERNATIVES: dict[str, tuple[str, ...]] = {
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tensorflow-intel"),
}
NOT_INSTALLED = "not-installed"


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


@functools.lru_cache(maxsize=1)
def _toolchain() -> tuple[tuple[str, str], ...]:
    return tuple((name, _dist_version(name)) for name in TOOLCHAIN_PACKAGES)


def toolchain_versions() -> dict[str, str]:
    """``{"czbuild": ..., "tensorflow": ..., "keras": ..., "tf2onnx": ..., "onnx": ...}``.

    The values are cached for the life of the process.
    """
    versions = {"czbuild": czbuild_version(), **dict(_toolchain())}
    stamp = zip_date_time_override()
    if stamp is not None:
        versions[ZIP_TIME_KEY] = stamp
    return versions


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
