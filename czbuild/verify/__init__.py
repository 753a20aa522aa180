"""Verification of finished ``.czann`` / ``.czmodel`` artifacts.

:func:`verify_artifact` runs named checks in five groups — container, payload, semantics,
fidelity, tiling — and returns a :class:`VerifyReport`; it never prints. The build layer
calls :func:`verify_built_artifact` after each artifact. :func:`write_html_report` renders a
report as a self-contained HTML page with pictures. TensorFlow and onnxruntime are imported
only while checks run. See ``docs/verify.md``.
"""

from __future__ import annotations

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

__all__ = [
    "DEFAULT_TOLERANCE",
    "FAILED",
    "PASSED",
    "SKIPPED",
    "STATUSES",
    "WARNING",
    "Check",
    "VerifyReport",
    "verify_artifact",
    "verify_built_artifact",
    "write_html_report",
]
