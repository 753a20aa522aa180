"""Verification of finished ``.czann`` / ``.czmodel`` artifacts.

:func:`verify_artifact` runs named checks in five groups — container, payload, semantics,
fidelity, tiling — and returns a :class:`VerifyReport`; it never prints. The build layer
calls :func:`verify_built_artifact` after each artifact. :func:`write_html_report` renders a
report as a self-contained HTML page with pictures. TensorFlow and onnxruntime are imported
only while checks run. See ``docs/verify.md``.

Names are imported lazily (PEP 562), so :mod:`czbuild.verify.settings` (the settings type the
recipe layer and the build use) can be imported without loading the verifier.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DEFAULT_TOLERANCE": "czbuild.verify.api",
    "verify_artifact": "czbuild.verify.api",
    "verify_built_artifact": "czbuild.verify.api",
    "write_html_report": "czbuild.verify.html_report",
    "FAILED": "czbuild.verify.report",
    "PASSED": "czbuild.verify.report",
    "SKIPPED": "czbuild.verify.report",
    "STATUSES": "czbuild.verify.report",
    "WARNING": "czbuild.verify.report",
    "Check": "czbuild.verify.report",
    "VerifyReport": "czbuild.verify.report",
    "VerifySettings": "czbuild.verify.settings",
}

__all__ = [
    "DEFAULT_TOLERANCE",
    "FAILED",
    "PASSED",
    "SKIPPED",
    "STATUSES",
    "WARNING",
    "Check",
    "VerifyReport",
    "VerifySettings",
    "verify_artifact",
    "verify_built_artifact",
    "write_html_report",
]

if TYPE_CHECKING:  # pragma: no cover
    from czbuild.verify.api import DEFAULT_TOLERANCE, verify_artifact, verify_built_artifact
    from czbuild.verify.html_report import write_html_report
    from czbuild.verify.report import (
        FAILED,
        PASSED,
        SKIPPED,
        STATUSES,
        WARNING,
        Check,
        VerifyReport,
    )
    from czbuild.verify.settings import VerifySettings


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'czbuild.verify' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
