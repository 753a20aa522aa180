"""One explained difference between two artifacts, and how a list of them reads.

A :class:`Difference` is data: what kind of thing differs, in which member, which field,
both values, and one human sentence. :func:`format_differences` renders a list for people
(grouping the same header change across members into one line); :func:`headline`
summarises it in one line ("timestamps only", "2 members differ: ...").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: Kinds of difference, from the outside of an artifact in.
FILE = "file"  # only the file hash is known to differ
ARCHIVE = "archive"  # archive comment, ZIP structure, unreadable archive
MEMBERS = "members"  # a member missing, extra or renamed
ORDER = "order"  # member order
HEADER = "header"  # entry time, mode, compression, host system, extra field, flags
CONTENT = "content"  # a member's bytes
METADATA = "metadata"  # a model.json key / legacy XML element
ONNX = "onnx"  # a field of the ONNX payload
SAVEDMODEL = "savedmodel"  # a file inside the nested SavedModel zip
NUMERIC = "numeric"  # outcome of a numeric comparison
NOTE = "note"  # context, not a difference by itself

_CONTENT_KINDS = (MEMBERS, CONTENT, METADATA, ONNX, SAVEDMODEL)


@dataclass(frozen=True)
class Difference:
    """One explained difference.

    Attributes:
        kind: One of the kind constants of this module.
        message: One sentence naming the member, the field and both values.
        member: The member it concerns (None for the whole archive).
        field: The field within the member or entry header (``Type``, ``date_time``,
            ``initializer:conv1/W``, ``saved_model.pb``), or None.
        expected: The expected (locked / previous) value, when it is short.
        actual: The actual (rebuilt) value, when it is short.
    """

    kind: str
    message: str
    member: str | None = None
    field: str | None = None
    expected: Any = None
    actual: Any = None

    def __str__(self) -> str:
        return self.message

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "member": self.member,
            "field": self.field,
            "expected": _jsonable(self.expected),
            "actual": _jsonable(self.actual),
            "message": self.message,
        }


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def short_hash(digest: str | None) -> str:
    """The first 12 hex digits of a sha256 (``-`` for None)."""
    return digest[:12] if digest else "-"


def show(value: Any) -> str:
    """A value as it appears in messages: strings quoted, the rest as JSON-like text."""
    import json

    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def headline(differences: Sequence[Difference]) -> str:
    """One line summarising ``differences``."""
    real = [d for d in differences if d.kind != NOTE]
    if not real:
        return "identical"
    if all(d.kind == HEADER for d in real):
        fields = sorted({d.field or "" for d in real})
        if fields == ["date_time"]:
            return (
                "timestamps only: every member's content is identical, the ZIP entry times "
                "differ (was SOURCE_DATE_EPOCH set differently?)"
            )
        return f"ZIP entry headers only ({', '.join(fields)}): every member's content is identical"
    members = []
    for d in real:
        if d.kind in _CONTENT_KINDS and d.member and d.member not in members:
            members.append(d.member)
    if members:
        detail = []
        for name in members:
            fields = [
                d.field.replace(":", " ")
                for d in real
                if d.member == name and d.field and d.kind in (METADATA, ONNX, SAVEDMODEL)
            ]
            detail.append(f"{name} ({', '.join(dict.fromkeys(fields))})" if fields else name)
        return f"{len(members)} member(s) differ: {'; '.join(detail)}"
    return real[0].message


def format_differences(differences: Sequence[Difference], *, limit: int = 40) -> list[str]:
    """Human lines for ``differences``; identical header changes of several members are one line.

    Args:
        differences: As returned by :func:`czbuild.release.diff.explain_differences`.
        limit: At most this many lines (then ``... and N more``).
    """
    lines: list[str] = []
    grouped: dict[tuple[str, str, str], list[Difference]] = {}
    for d in differences:
        if d.kind == HEADER:
            grouped.setdefault((d.field or "", show(d.expected), show(d.actual)), []).append(d)
    emitted: set[tuple[str, str, str]] = set()
    for d in differences:
        if d.kind == HEADER:
            key = (d.field or "", show(d.expected), show(d.actual))
            group = grouped[key]
            if len(group) > 1:
                if key not in emitted:
                    emitted.add(key)
                    names = ", ".join(g.member or "?" for g in group)
                    text = group[0].message.split(": ", 1)[-1]
                    lines.append(f"members {names}: {text}")
                continue
        lines.append(d.message)
    if len(lines) > limit:
        lines = lines[:limit] + [f"... and {len(lines) - limit} more"]
    return lines
