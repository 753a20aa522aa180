"""Verification inside the build: convert into a hidden temporary file, verify it, install it.

A conversion job with verification (the default; ``czbuild build --no-verify`` turns it off)
never writes its artifact's final name directly:

1. the converter writes ``.<name>.verifying-<pid>.tmp`` in the artifact's folder (hidden, on
   the same file system, and not ending in ``.czann`` / ``.czmodel``, so nothing that looks for
   artifacts picks it up);
2. :func:`czbuild.verify.verify_built_artifact` checks it, with the recipe's ``verify:``
   settings and the model the worker already loaded as the reference;
3. passed: :func:`os.replace` moves it over the final name (atomic; the folder is fsynced);
   failed: the temporary file is deleted, an older artifact under the final name is left
   untouched, and the job fails with :class:`ArtifactVerificationError`, whose one-line
   message names the failed checks and which carries the full report.

The report goes back to the build process as a JSON-ready *record* (:func:`report_record`):
``report.to_dict()`` without pictures, the artifact's output path instead of the temporary
path, no absolute paths, plus the settings used. The build process writes it into the stamp
and the manifest. Nothing here imports TensorFlow or the verifier until a job runs.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from czbuild.errors import VerifyError
from czbuild.files.atomic import fsync_dir
from czbuild.progress import phase

VERIFYING = ".verifying-"
R = TypeVar("R")


class ArtifactVerificationError(VerifyError):
    """A freshly built artifact failed verification; ``report`` is its record."""

    def __init__(self, message: str, report: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.report = dict(report)


def verifying_path(out_path: Path) -> Path:
    """The hidden temporary name an artifact is converted to and verified under."""
    out_path = Path(out_path)
    return out_path.with_name(f".{out_path.name}{VERIFYING}{os.getpid()}.tmp")


def stale_verifying_files(artifact: Path) -> list[Path]:
    """Temporaries a killed verified job can leave next to ``artifact``.

    The verifying file itself, and the convert layer's own temporary next to it (which
    :func:`czbuild.files.atomic_write` names ``.<name>.<random>.tmp``).
    """
    artifact = Path(artifact)
    folder = glob.escape(str(artifact.parent))
    name = glob.escape(artifact.name)
    patterns = [f".{name}{VERIFYING}*.tmp", f"..{name}{VERIFYING}*.tmp.*.tmp"]
    return sorted(Path(p) for pattern in patterns for p in glob.glob(os.path.join(folder, pattern)))


def install_verified(
    out_path: Path,
    write: Callable[[Path], R],
    verify: Callable[[Path], Mapping[str, Any]] | None,
) -> tuple[R, dict[str, Any] | None]:
    """Write an artifact through a verified temporary file (see the module docstring).

    Args:
        out_path: The artifact's final path.
        write: Writes a complete artifact at the path it is given; returns what the caller
            needs (the convert result).
        verify: Returns the report record of the file at the given path; None writes
            ``out_path`` directly, unverified (``--no-verify``).

    Returns:
        ``write``'s result and the record (None when not verified).

    Raises:
        ArtifactVerificationError: A check failed; nothing was installed.
    """
    out_path = Path(out_path)
    if verify is None:
        phase("converting")
        return write(out_path), None
    tmp = verifying_path(out_path)
    try:
        phase("converting")
        result = write(tmp)
        phase("verifying")
        record = dict(verify(tmp))
        if not record.get("ok"):
            raise ArtifactVerificationError(failure_summary(record), record)
        os.replace(tmp, out_path)
        fsync_dir(out_path.parent)
        return result, record
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass


def failure_summary(record: Mapping[str, Any]) -> str:
    """One line naming the failed checks with their figures, fixes and the overlap that would pass.

    Example: ``verification failed: tiling.seams (max seam error 5e-05); smallest overlap
    within tolerance: 80 px``.
    """
    checks = [c for c in record.get("checks") or [] if isinstance(c, Mapping)]
    failed = [c for c in checks if c.get("status") == "failed"]
    parts = [
        f"{c.get('name')} ({c['figure']})"
        if c.get("figure") not in (None, "")
        else str(c.get("name"))
        for c in failed
    ]
    line = "verification failed: " + (", ".join(parts) or "no check passed")
    for check in failed:  # a check's one-line fix (details["fix"]), e.g. semantics.output_range
        details = check.get("details")
        if isinstance(details, Mapping) and details.get("fix"):
            line += f"; {details['fix']}"
    if any(c.get("name") == "tiling.seams" for c in failed):
        for check in checks:
            if check.get("name") == "tiling.min_overlap" and check.get("status") == "passed":
                line += f"; smallest overlap within tolerance: {check.get('figure')}"
    return line


def failure_details(record: Mapping[str, Any]) -> list[str]:
    """``name: message`` of each failed check (shown with ``--debug``)."""
    return [
        f"{c.get('name')}: {c.get('message')}"
        for c in record.get("checks") or []
        if isinstance(c, Mapping) and c.get("status") == "failed"
    ]


def report_record(
    report: Any,
    *,
    output: str,
    temporary: Path,
    settings: Mapping[str, Any],
    project_dir: Path | None = None,
) -> dict[str, Any]:
    """The deterministic record of a :class:`czbuild.verify.VerifyReport` for stamp and manifest.

    ``report.to_dict()`` with ``path`` set to ``output`` (relative to the output folder),
    the list of pictures dropped, every mention of the temporary file replaced by the
    artifact's name and absolute project paths made relative, plus ``settings``. The report
    has no timings; its figures come from seeded inputs, so the same artifact and toolchain
    give the same record.
    """
    data = report.to_dict()
    data.pop("images", None)
    data["path"] = output
    data["settings"] = dict(settings)
    temporary = Path(temporary)
    final_name = output.rsplit("/", 1)[-1]
    replacements = [(str(temporary), output), (temporary.name, final_name)]
    if project_dir is not None:
        replacements.append((str(Path(project_dir)) + os.sep, ""))
    return _scrub(data, replacements)


def verify_with_reference(
    path: Path, variant: Any, *, source_model: Any, output: str
) -> dict[str, Any]:
    """Run :func:`czbuild.verify.verify_built_artifact` on ``path`` and return its record.

    Args:
        path: The temporary artifact.
        variant: The recipe variant (its ``spec.verify`` gives the settings).
        source_model: The loaded ``keras.Model`` the converter used (fidelity/tiling reference).
        output: The artifact's path relative to the output folder.
    """
    from czbuild.verify.api import build_settings, verify_built_artifact

    settings = build_settings(variant)
    report = verify_built_artifact(path, variant, settings=settings, source_model=source_model)
    return report_record(
        report,
        output=output,
        temporary=path,
        settings=settings.to_plain(),
        project_dir=getattr(variant, "project_dir", None),
    )


def _scrub(value: Any, replacements: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        for old, new in replacements:
            if old:
                value = value.replace(old, new)
        return value
    if isinstance(value, Mapping):
        return {k: _scrub(v, replacements) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, replacements) for v in value]
    return value
