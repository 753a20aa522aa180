"""The verification report: named checks with a status, a headline figure and details.

Results are data: the verifier fills a :class:`VerifyReport`, the CLI renders it as text,
JSON or HTML. Nothing here prints.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PASSED = "passed"
FAILED = "failed"
SKIPPED = "skipped"
WARNING = "warning"
#: Every status a check can have. Only ``failed`` makes a report not ok.
STATUSES = (PASSED, FAILED, SKIPPED, WARNING)

#: The check groups, in report order.
GROUPS = ("container", "payload", "semantics", "fidelity", "tiling")


@dataclass
class Check:
    """One named check.

    Attributes:
        name: Dotted name ``<group>.<aspect>``, e.g. ``"payload.opset"`` or ``"fidelity"``.
        status: One of :data:`STATUSES`.
        figure: The headline number or short value (``2.1e-07``, ``"opset 18"``); ``None`` when
            the check has no figure (for instance when skipped).
        message: One human sentence: what was found, or why the check was skipped.
        details: JSON-friendly extra data (per-item findings, parameters used).
    """

    name: str
    status: str
    figure: Any = None
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown check status {self.status!r}; known: {STATUSES}")

    @property
    def group(self) -> str:
        """The group the check belongs to (the part of ``name`` before the first dot)."""
        return self.name.split(".", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (NumPy scalars and tuples converted)."""
        return {
            "name": self.name,
            "status": self.status,
            "figure": _jsonable(self.figure),
            "message": self.message,
            "details": _jsonable(self.details),
        }


@dataclass
class VerifyReport:
    """The result of verifying one artifact.

    Attributes:
        path: The verified file.
        family: ``"czann"``, ``"czmodel"`` or ``None`` when the container is unreadable.
        version: Format version (``"2.1.0"``, ``"3.0.0"``, ...) or ``None`` when unknown.
        checks: The checks in the order they ran.
        metadata: The artifact's metadata as a flat JSON-friendly mapping (for report tables).
        images: Pictures for the HTML report (``name -> uint8 HxW or HxWx3 array``); not part
            of :meth:`to_dict`.
    """

    path: Path
    family: str | None = None
    version: str | None = None
    checks: list[Check] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    images: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings and skipped checks do not count)."""
        return not any(c.status == FAILED for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        """The failed checks."""
        return [c for c in self.checks if c.status == FAILED]

    def add(
        self,
        name: str,
        status: str,
        figure: Any = None,
        message: str = "",
        **details: Any,
    ) -> Check:
        """Append a check and return it."""
        check = Check(name, status, figure, message, dict(details))
        self.checks.append(check)
        return check

    def accept(self, names: Iterable[str]) -> list[Check]:
        """Turn the failures of the named checks into warnings that say they were accepted.

        A recipe accepts a check by name (``verify.accept``) when its failure is deliberate,
        e.g. a regression model whose output leaves ZEN's [0, 1] range by design.

        Returns:
            The checks changed.
        """
        wanted = set(names)
        changed = [c for c in self.checks if c.status == FAILED and c.name in wanted]
        for check in changed:
            check.status = WARNING
            check.message = f"accepted by verify.accept: {check.message}"
            check.details["accepted"] = True
        return changed

    def extend(self, checks: Iterable[Check]) -> None:
        """Append several checks."""
        self.checks.extend(checks)

    def get(self, name: str) -> Check | None:
        """The check called ``name``, or None."""
        for check in self.checks:
            if check.name == name:
                return check
        return None

    def group(self, group: str) -> list[Check]:
        """All checks of one group (``"container"``, ``"tiling"``, ...)."""
        return [c for c in self.checks if c.group == group]

    def summary(self) -> dict[str, int]:
        """Count of checks per status."""
        counts = {status: 0 for status in STATUSES}
        for check in self.checks:
            counts[check.status] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form: path, family, version, ok, summary, metadata, checks, images."""
        return {
            "path": str(self.path),
            "family": self.family,
            "version": self.version,
            "ok": self.ok,
            "summary": self.summary(),
            "metadata": _jsonable(self.metadata),
            "checks": [c.to_dict() for c in self.checks],
            "images": sorted(self.images),
        }


def _jsonable(value: Any) -> Any:
    """Convert NumPy scalars/arrays, tuples, paths and non-finite floats to JSON-safe values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, Path):
        return str(value)
    return value
