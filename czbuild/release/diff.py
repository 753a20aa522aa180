"""Explain how two artifacts differ, member by member and field by field.

:func:`explain_differences` compares an expected artifact (a file, or a lock entry when only
hashes are known) with an actual one, from the outside in:

1. the archive: comment, member set and names, member order;
2. per member: entry headers (time, mode, compression, host system, extra field, flags) and
   content;
3. per member whose content differs, by role: metadata fields (CZANN JSON keys / legacy XML
   elements) with both values; the ONNX payload (:mod:`czbuild.release.onnx_diff`); the
   files inside a nested SavedModel zip; the licence text.

Members are paired by name, and by role when names differ (legacy member names embed the
model Id, which is derived from the content). Nothing here imports TensorFlow; ONNX is
imported only when an ONNX payload differs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from czbuild.errors import ArchiveError, MetadataError
from czbuild.files.digest import file_sha256
from czbuild.formats.container import SAVEDMODEL_LIMITS, Container, Member, open_container
from czbuild.formats.layout import LICENSE, MODEL, MODELID_PREFIX, family_hint, roles_of
from czbuild.formats.layout import METADATA as METADATA_ROLE
from czbuild.formats.reader import payload_kind
from czbuild.release.difference import (
    ARCHIVE,
    CONTENT,
    FILE,
    HEADER,
    MEMBERS,
    METADATA,
    ORDER,
    SAVEDMODEL,
    Difference,
    short_hash,
    show,
)
from czbuild.release.lockfile import LockEntry

_HEX64 = re.compile(r"[0-9a-f]{64}")

Labels = tuple[str, str]
DEFAULT_LABELS: Labels = ("expected", "actual")


def explain_differences(
    expected: Path | str | LockEntry, actual: Path | str, *, labels: Labels = DEFAULT_LABELS
) -> list[Difference]:
    """Explain why ``actual`` is not byte-identical to ``expected``.

    Args:
        expected: The reference artifact file, or its :class:`LockEntry` (hashes only: then
            members whose sha256 differs are named, but fields cannot be compared).
        actual: The artifact file to explain.
        labels: How the two sides are called in messages, e.g. ``("lock", "rebuilt")``.

    Returns:
        The differences, outermost first; empty when the files are identical.
    """
    if isinstance(expected, LockEntry):
        return explain_against_lock(expected, actual, labels=labels)
    exp_path, act_path = Path(expected), Path(actual)
    exp_sha, act_sha = file_sha256(exp_path), file_sha256(act_path)
    if exp_sha == act_sha:
        return []
    try:
        exp, act = open_container(exp_path), open_container(act_path)
    except ArchiveError as exc:
        return [
            Difference(ARCHIVE, f"cannot compare the archives: {exc}"),
            Difference(
                FILE,
                f"file sha256 differs: {short_hash(exp_sha)} ({labels[0]}) vs "
                f"{short_hash(act_sha)} ({labels[1]})",
                expected=exp_sha,
                actual=act_sha,
            ),
        ]
    family = family_hint(exp.names(), exp_path.suffix)
    diffs = compare_archives(exp, act, family=family, labels=labels)
    if not diffs:
        diffs.append(_structure_difference(exp_path.read_bytes(), act_path.read_bytes(), labels))
    return diffs


def explain_against_lock(
    entry: LockEntry, actual: Path | str, *, labels: Labels = ("lock", "rebuilt")
) -> list[Difference]:
    """Explain ``actual`` against a lock entry, which only has hashes and entry headers.

    Names the members that are missing, extra, renamed, reordered, whose headers differ or
    whose sha256 differs.
    """
    path = Path(actual)
    sha = file_sha256(path)
    if sha == entry.sha256:
        return []
    try:
        act = open_container(path)
    except ArchiveError as exc:
        return [Difference(ARCHIVE, f"the rebuilt artifact is not readable: {exc}")]
    locked_names = [m.name for m in entry.members]
    family = family_hint(locked_names, Path(entry.path).suffix)
    diffs: list[Difference] = []
    pairs = pair_members(locked_names, act.names(), family)
    diffs += _member_set(pairs, family, labels)
    diffs += _order(pairs, act.names(), labels)
    by_name = {m.name: m for m in entry.members}
    for exp_name, act_name in pairs:
        if exp_name is None or act_name is None:
            continue
        member, act_entry = by_name[exp_name], act.entry(act_name)
        assert act_entry is not None
        where = f"member {act_name}"
        for fld, what, exp_v, act_v in (
            ("date_time", "entry time", member.date_time, act_entry.date_text),
            ("mode", "file mode", member.mode, act_entry.mode_text),
            ("compression", "compression", member.compression, act_entry.compression_text),
        ):
            if exp_v and exp_v != act_v:
                diffs.append(
                    Difference(
                        HEADER,
                        f"{where}: {what} differs: {exp_v} ({labels[0]}) vs {act_v} ({labels[1]})",
                        member=act_name,
                        field=fld,
                        expected=exp_v,
                        actual=act_v,
                    )
                )
        if member.sha256 != act_entry.sha256:
            diffs.append(
                _content(
                    act_name, member.sha256, act_entry.sha256, member.size, act_entry.size, labels
                )
            )
    if not diffs:
        diffs.append(_unexplained(entry, sha, path.stat().st_size, labels))
    return diffs


def _unexplained(entry: LockEntry, sha: str, size: int, labels: tuple[str, str]) -> Difference:
    """Every member and header matches the lock, yet the artifact's sha256 does not.

    Either the ZIP structure differs (host system, extra fields, flags, comment), or the lock's
    own sha256 is wrong: a zeroed, truncated or hand-typed hash in an edited czbuild.lock. A
    hash czbuild cannot have written is said to be that; with equal sizes the lock is named
    as the likelier cause.
    """
    hashes = f"{short_hash(entry.sha256)} ({labels[0]}) vs {short_hash(sha)} ({labels[1]})"
    fix = "restore czbuild.lock from version control, or run `czbuild build` to record it again"
    if not _HEX64.fullmatch(entry.sha256) or len(set(entry.sha256)) <= 2:
        message = (
            f"every member and entry header matches the lock, but the lock's artifact sha256 "
            f"{entry.sha256[:16]}... is not a hash czbuild writes (all one digit, or not 64 hex "
            f"digits): czbuild.lock was edited or corrupted; {fix}"
        )
    elif size == entry.size:
        message = (
            f"every member, entry header and the size ({size} bytes) match the lock, but the "
            f"artifact sha256 differs ({hashes}): most likely the lock's sha256 was edited "
            f"({fix}); else the ZIP structure differs (host system, extra fields, flags, "
            "comment)"
        )
    else:
        message = (
            f"every member and entry header matches the lock, but the archive bytes differ "
            f"({hashes}; {entry.size} vs {size} bytes): ZIP structure (host system, extra "
            "fields, flags, comment)"
        )
    return Difference(ARCHIVE, message, expected=entry.sha256, actual=sha)


# --- archives -----------------------------------------------------------------------------------


def compare_archives(
    exp: Container,
    act: Container,
    *,
    family: str,
    labels: Labels = DEFAULT_LABELS,
    nested_in: str | None = None,
) -> list[Difference]:
    """Differences between two read archives (outer artifact, or a nested SavedModel zip).

    Args:
        exp / act: The archives with contents.
        family: ``czann`` / ``czmodel`` (member roles), ignored for nested archives.
        labels: Names of the two sides.
        nested_in: The outer member holding these archives (a SavedModel payload), or None.
    """
    diffs: list[Difference] = []
    if exp.comment != act.comment:
        diffs.append(
            Difference(
                ARCHIVE,
                f"{_prefix(nested_in)}archive comment differs: "
                f"{show(exp.comment.decode('latin-1'))} ({labels[0]}) vs "
                f"{show(act.comment.decode('latin-1'))} ({labels[1]})",
                member=nested_in,
                field="comment",
            )
        )
    pairs = pair_members(exp.names(), act.names(), None if nested_in else family)
    act_roles = roles_of(act.names())
    diffs += _member_set(pairs, family, labels, nested_in)
    diffs += _order(pairs, act.names(), labels, nested_in)
    for exp_name, act_name in pairs:
        if exp_name is None or act_name is None:
            continue
        e, a = exp.entry(exp_name), act.entry(act_name)
        assert e is not None and a is not None
        diffs += _headers(e, a, labels, nested_in)
        if e.sha256 == a.sha256:
            continue
        if nested_in is not None:
            diffs.append(
                Difference(
                    SAVEDMODEL,
                    f"member {nested_in}: SavedModel file {act_name} differs "
                    f"({e.size} bytes, sha256 {short_hash(e.sha256)} ({labels[0]}) vs "
                    f"{a.size} bytes, {short_hash(a.sha256)} ({labels[1]}))",
                    member=nested_in,
                    field=act_name,
                    expected=e.sha256,
                    actual=a.sha256,
                )
            )
            continue
        diffs.append(_content(act_name, e.sha256, a.sha256, e.size, a.size, labels))
        diffs += _explain_member(
            act_roles[act_name],
            family,
            act_name,
            exp.contents[exp_name],
            act.contents[act_name],
            labels,
            others_differ=_others_differ(exp, act, pairs, act_roles),
        )
    return diffs


def pair_members(
    exp_names: Sequence[str], act_names: Sequence[str], family: str | None
) -> list[tuple[str | None, str | None]]:
    """Pair members by name, then the leftovers by role (one each), in expected order.

    Returns:
        ``(expected name, actual name)`` pairs; None on the side where a member is missing.
    """
    act_left = [n for n in act_names if n not in exp_names]
    exp_roles, act_roles = roles_of(exp_names), roles_of(act_names)
    pairs: list[tuple[str | None, str | None]] = []
    for name in exp_names:
        if name in act_names:
            pairs.append((name, name))
            continue
        match = None
        if family is not None:
            role = exp_roles[name]
            candidates = [n for n in act_left if act_roles[n] == role]
            same_role_exp = [n for n in exp_names if n not in act_names and exp_roles[n] == role]
            if len(candidates) == 1 and len(same_role_exp) == 1:
                match = candidates[0]
                act_left.remove(match)
        pairs.append((name, match))
    pairs.extend((None, n) for n in act_left)
    return pairs


def _prefix(nested_in: str | None) -> str:
    return f"member {nested_in}: SavedModel " if nested_in else ""


def _member_set(
    pairs: list[tuple[str | None, str | None]],
    family: str,
    labels: Labels,
    nested_in: str | None = None,
) -> list[Difference]:
    diffs: list[Difference] = []
    kind = SAVEDMODEL if nested_in else MEMBERS
    what = "file" if nested_in else "member"
    renames = [(e, a) for e, a in pairs if e and a and e != a]
    exp_id, act_id = _model_id([e for e, _ in renames]), _model_id([a for _, a in renames])
    if (
        renames
        and family == "czmodel"
        and exp_id
        and act_id
        and exp_id != act_id
        and all(e.replace(exp_id, act_id) == a for e, a in renames)
    ):
        diffs.append(
            Difference(
                MEMBERS,
                f"member names embed the model Id, which differs: {exp_id} ({labels[0]}) vs "
                f"{act_id} ({labels[1]}); the Id is derived from the metadata and the "
                "payload, so it follows the content differences below (pin metadata.id in "
                "the recipe to keep it fixed)",
                field="Id",
                expected=exp_id,
                actual=act_id,
            )
        )
    else:
        for old, new in renames:
            diffs.append(
                Difference(
                    kind,
                    f"{_prefix(nested_in)}{what} renamed: {old} ({labels[0]}) vs {new} "
                    f"({labels[1]})",
                    member=nested_in or new,
                    field="name",
                    expected=old,
                    actual=new,
                )
            )
    for e, a in pairs:
        if a is None:
            diffs.append(
                Difference(
                    kind,
                    f"{_prefix(nested_in)}{what} {e} is missing in {labels[1]}",
                    member=nested_in or e,
                    field=e if nested_in else None,
                    expected=e,
                )
            )
        elif e is None:
            diffs.append(
                Difference(
                    kind,
                    f"{_prefix(nested_in)}{what} {a} appears only in {labels[1]}",
                    member=nested_in or a,
                    field=a if nested_in else None,
                    actual=a,
                )
            )
    return diffs


def _model_id(names: Sequence[str]) -> str | None:
    for name in names:
        if name.startswith(MODELID_PREFIX):
            return name[len(MODELID_PREFIX) :]
    for name in names:
        if name.lower().endswith((".xml", ".model")):
            return name.rsplit(".", 1)[0]
    return None


def _order(
    pairs: list[tuple[str | None, str | None]],
    act_names: Sequence[str],
    labels: Labels,
    nested_in: str | None = None,
) -> list[Difference]:
    """The member order of the paired members (``pairs`` follow the expected order)."""
    paired = [(e, a) for e, a in pairs if e is not None and a is not None]
    wanted = [a for _, a in paired]
    present = set(wanted)
    actual = [n for n in act_names if n in present]
    if wanted == actual:
        return []
    exp_order = [e for e, _ in paired]
    what = "file" if nested_in else "member"
    return [
        Difference(
            ORDER,
            f"{_prefix(nested_in)}{what} order differs: "
            f"{', '.join(map(str, exp_order))} ({labels[0]}) vs "
            f"{', '.join(actual)} ({labels[1]})",
            member=nested_in,
            field="order",
            expected=exp_order,
            actual=actual,
        )
    ]


def _headers(e: Member, a: Member, labels: Labels, nested_in: str | None) -> list[Difference]:
    where = f"member {nested_in}: SavedModel file {a.name}" if nested_in else f"member {a.name}"
    checks = (
        ("date_time", "entry time", e.date_text, a.date_text),
        ("mode", "file mode", e.mode_text, a.mode_text),
        ("compression", "compression", e.compression_text, a.compression_text),
        ("create_system", "host system byte", e.create_system, a.create_system),
        ("extra", "extra field", e.extra.hex(), a.extra.hex()),
        ("flag_bits", "flags", hex(e.flag_bits), hex(a.flag_bits)),
    )
    out = []
    for fld, what, exp_v, act_v in checks:
        if exp_v != act_v:
            out.append(
                Difference(
                    HEADER,
                    f"{where}: {what} differs: {exp_v or '(none)'} "
                    f"({labels[0]}) vs {act_v or '(none)'} ({labels[1]})",
                    member=nested_in or a.name,
                    field=fld,
                    expected=exp_v,
                    actual=act_v,
                )
            )
    return out


def _content(
    name: str, exp_sha: str, act_sha: str, exp_size: int, act_size: int, labels: Labels
) -> Difference:
    sizes = f"{exp_size} vs {act_size} bytes" if exp_size != act_size else f"both {exp_size} bytes"
    return Difference(
        CONTENT,
        f"member {name}: content differs ({sizes}; sha256 "
        f"{short_hash(exp_sha)} ({labels[0]}) vs {short_hash(act_sha)} "
        f"({labels[1]}))",
        member=name,
        expected=exp_sha,
        actual=act_sha,
    )


def _structure_difference(exp: bytes, act: bytes, labels: Labels) -> Difference:
    offset = next((i for i, (x, y) in enumerate(zip(exp, act)) if x != y), min(len(exp), len(act)))
    return Difference(
        ARCHIVE,
        f"member contents and entry headers are identical, but the ZIP "
        f"structure differs from byte offset {offset} on ({len(exp)} "
        f"bytes ({labels[0]}) vs {len(act)} ({labels[1]})): local "
        "headers, central directory, ZIP64 records or data descriptors",
        field="structure",
        expected=len(exp),
        actual=len(act),
    )


def _others_differ(
    exp: Container,
    act: Container,
    pairs: list[tuple[str | None, str | None]],
    act_roles: dict[str, str],
) -> bool:
    """Whether a non-metadata member's content differs (the derived Id then differs too)."""
    for e, a in pairs:
        if e is None or a is None:
            return True
        if act_roles[a] != METADATA_ROLE:
            ee, aa = exp.entry(e), act.entry(a)
            if ee is not None and aa is not None and ee.sha256 != aa.sha256:
                return True
    return False


# --- members by role ------------------------------------------------------------------------------


def _explain_member(
    role: str,
    family: str,
    name: str,
    exp: bytes,
    act: bytes,
    labels: Labels,
    *,
    others_differ: bool,
) -> list[Difference]:
    if role == METADATA_ROLE:
        return explain_metadata(family, name, exp, act, labels, id_derived=others_differ)
    if role == MODEL:
        return explain_payload(name, exp, act, labels)
    if role == LICENSE:
        return [_text_difference(name, "licence text", exp, act, labels)]
    return []  # MODELID: the name is all there is


def explain_metadata(
    family: str,
    member: str,
    exp: bytes,
    act: bytes,
    labels: Labels = DEFAULT_LABELS,
    *,
    id_derived: bool = False,
) -> list[Difference]:
    """Field-level differences of two ``model.json`` / ``<id>.xml`` members."""
    try:
        exp_fields, act_fields = _metadata_fields(family, exp), _metadata_fields(family, act)
    except (ValueError, MetadataError) as exc:
        return [
            Difference(
                METADATA,
                f"member {member}: metadata cannot be parsed for a field-level comparison: {exc}",
                member=member,
            )
        ]
    diffs: list[Difference] = []
    for key in list(exp_fields) + [k for k in act_fields if k not in exp_fields]:
        if key not in act_fields:
            message = (
                f"metadata field {key} is missing in {labels[1]} ({labels[0]}: "
                f"{show(exp_fields[key])})"
            )
        elif key not in exp_fields:
            message = f"metadata field {key} appears only in {labels[1]}: {show(act_fields[key])}"
        elif exp_fields[key] != act_fields[key]:
            message = (
                f"metadata field {key} differs: {show(exp_fields[key])} ({labels[0]}) vs "
                f"{show(act_fields[key])} ({labels[1]})"
            )
            if key == "Id" and id_derived:
                message += " (derived from the content: follows the other differences)"
        else:
            continue
        diffs.append(
            Difference(
                METADATA,
                f"member {member}: {message}",
                member=member,
                field=key,
                expected=exp_fields.get(key),
                actual=act_fields.get(key),
            )
        )
    if not diffs:
        if list(exp_fields) != list(act_fields):
            message = (
                f"member {member}: metadata key order differs: {list(exp_fields)} "
                f"({labels[0]}) vs {list(act_fields)} ({labels[1]})"
            )
        else:
            what = "JSON" if family == "czann" else "XML"
            message = (
                f"member {member}: same metadata fields and values, but the {what} "
                "serialisation differs (whitespace, escaping, quoting or number format)"
            )
        diffs.append(Difference(METADATA, message, member=member, field="(serialisation)"))
    return diffs


def _metadata_fields(family: str, data: bytes) -> dict[str, object]:
    if family == "czann":
        pairs = json.loads(data.decode("utf-8-sig"), object_pairs_hook=list)
        if not isinstance(pairs, list):
            raise ValueError("model.json is not a JSON object")
        return dict(pairs)
    from czbuild.formats.legacy import parse_xml

    metadata, extra = parse_xml(data)
    fields: dict[str, object] = {
        "Version": metadata.version,
        "Id": metadata.id,
        "ModelName": metadata.name,
        "ColorHandling": metadata.color_handling,
        "Channels": list(metadata.pixel_types),
        "TrainingClasses": list(metadata.classes),
        "BorderSize": metadata.border_size,
    }
    fields.update({k: v for k, v in extra.items() if k not in fields})
    return fields


def explain_payload(
    member: str, exp: bytes, act: bytes, labels: Labels = DEFAULT_LABELS
) -> list[Difference]:
    """Differences inside the network payload: ONNX fields, or files of a SavedModel zip."""
    exp_kind, act_kind = payload_kind(exp), payload_kind(act)
    if exp_kind != act_kind:
        return [
            Difference(
                CONTENT,
                f"member {member}: payload kind differs: {exp_kind} "
                f"({labels[0]}) vs {act_kind} ({labels[1]})",
                member=member,
                field="payload",
                expected=exp_kind,
                actual=act_kind,
            )
        ]
    if exp_kind == "onnx":
        from czbuild.release.onnx_diff import explain_onnx

        return explain_onnx(member, exp, act, labels)
    try:
        exp_zip, act_zip = (
            open_container(data, limits=SAVEDMODEL_LIMITS, label=f"{side} SavedModel zip")
            for side, data in zip(labels, (exp, act))
        )
    except ArchiveError as exc:
        return [
            Difference(
                SAVEDMODEL,
                f"member {member}: the SavedModel zip cannot be read: {exc}",
                member=member,
            )
        ]
    diffs = compare_archives(exp_zip, act_zip, family="", labels=labels, nested_in=member)
    if not diffs:
        diffs.append(
            Difference(
                SAVEDMODEL,
                f"member {member}: same SavedModel files and entry "
                "headers, but the nested ZIP structure differs",
                member=member,
                field="structure",
            )
        )
    return diffs


def _text_difference(member: str, what: str, exp: bytes, act: bytes, labels: Labels) -> Difference:
    exp_lines, act_lines = exp.splitlines(), act.splitlines()
    line = next(
        (i for i, (x, y) in enumerate(zip(exp_lines, act_lines)) if x != y),
        min(len(exp_lines), len(act_lines)),
    )
    return Difference(
        CONTENT,
        f"member {member}: {what} differs from line {line + 1} on "
        f"({len(exp)} bytes ({labels[0]}) vs {len(act)} ({labels[1]}))",
        member=member,
        field="text",
        expected=len(exp),
        actual=len(act),
    )
