"""Running one conversion job: the backend contract shared by workers and the in-process path.

A *backend* is a function ``backend(job, cache) -> {"sha256": ..., "members": {...},
"verification": record-or-None, "inputs": [(role, path), ...]}`` named by
``"module:function"``; ``cache`` is a dict that lives as long as the process running the
jobs (the real backend keeps the loaded model there). When ``job.verify`` is set, the
backend writes the artifact through
:func:`czbuild.builder.verification.install_verified`; an exception carrying a ``report``
attribute (:class:`~czbuild.builder.verification.ArtifactVerificationError`) hands the failed
verification's record to the build process. Tests substitute a fake backend.
"""

from __future__ import annotations

import importlib
import time
import traceback
from collections.abc import Callable
from typing import Any

DEFAULT_BACKEND = "czbuild.builder.backend:convert_job"


def load_backend(spec: str) -> Callable[..., dict[str, Any]]:
    """Import ``module:function``."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"backend must look like 'module:function', got {spec!r}")
    return getattr(importlib.import_module(module_name), attr)


def run_job(
    backend: Callable[..., dict[str, Any]],
    job: Any,
    cache: dict[Any, Any],
    on_progress: Callable[[str], None] | None = None,
) -> Any:
    """Run one job and turn any exception into a failed result (shared with the in-process path).

    Args:
        backend: The conversion backend.
        job: The job.
        cache: The backend's process-lifetime cache.
        on_progress: Receives the phases the job announces (:mod:`czbuild.progress`).
    """
    from czbuild.builder.protocol import JobResult
    from czbuild.errors import CzbuildError
    from czbuild.progress import reporting

    start = time.perf_counter()
    try:
        with reporting(on_progress):
            out = backend(job, cache)
        return JobResult(
            ok=True,
            sha256=out["sha256"],
            members=dict(out.get("members") or {}),
            seconds=time.perf_counter() - start,
            verification=out.get("verification"),
            inputs=tuple((str(r), str(p)) for r, p in out.get("inputs") or ()),
        )
    except Exception as exc:
        message = str(exc) if isinstance(exc, CzbuildError) else f"{type(exc).__name__}: {exc}"
        return JobResult(
            ok=False,
            error=message or type(exc).__name__,
            error_type=type(exc).__name__,
            traceback=traceback.format_exc(),
            seconds=time.perf_counter() - start,
            verification=getattr(exc, "report", None),
        )
