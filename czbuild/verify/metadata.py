"""The ``container.metadata`` check: ``model.json`` / ``<id>.xml`` valid for its version.

CZANN: UTF-8 JSON object, valid against the project's JSON Schema for the declared (or
inferred) version and against every rule of :meth:`CzannMetadata.problems`. Legacy: parsed by
the hardened XML reader, validated, and its ``Id`` equal to the id in the member names.
"""

from __future__ import annotations

from typing import Any

from czbuild.errors import CzbuildError, MetadataError
from czbuild.formats import vocab
from czbuild.formats.layout import Layout
from czbuild.verify.info import ModelInfo, legacy_input_range
from czbuild.verify.report import FAILED, PASSED, VerifyReport

NAME = "container.metadata"


def check_metadata(
    data: bytes, layout: Layout, report: VerifyReport
) -> tuple[ModelInfo, Any] | None:
    """Parse and validate the metadata member; add the ``container.metadata`` check.

    Args:
        data: Bytes of the metadata member.
        layout: The member roles (gives the family and the legacy id).
        report: Receives the check; its ``family``, ``version`` and ``metadata`` are set.

    Returns:
        ``(info, metadata)`` with the parsed :class:`CzannMetadata` / :class:`LegacyMetadata`,
        or None when the metadata is unusable (the check failed).
    """
    report.family = layout.family
    if layout.family == "czann":
        return _czann(data, report)
    return _legacy(data, layout, report)


def _fail(report: VerifyReport, problems: list[str], **details: Any) -> None:
    report.add(
        NAME,
        FAILED,
        f"{len(problems)} problem(s)",
        "; ".join(problems),
        problems=problems,
        **details,
    )


def _czann(data: bytes, report: VerifyReport) -> tuple[ModelInfo, Any] | None:
    from czbuild.formats.czann import CzannMetadata, infer_version
    from czbuild.formats.model_json import parse_model_json

    try:
        doc = parse_model_json(data)
    except MetadataError as exc:
        _fail(report, [f"model.json: {exc}"])
        return None
    declared = doc.get("FormatVersion")
    version = infer_version(doc) if declared is None or isinstance(declared, str) else "2.1.0"
    report.version = version
    report.metadata = dict(doc)
    problems = _schema_problems(doc, version)
    keys = {p.split(":", 1)[0].split("[", 1)[0] for p in problems}
    metadata = None
    try:
        metadata = CzannMetadata.from_json_dict(doc)
    except MetadataError as exc:
        if exc.field not in keys:
            problems.append(str(exc))
    if metadata is not None:
        problems.extend(
            str(p) for p in metadata.problems(allow_experimental_types=True) if p.field not in keys
        )
        if metadata.id is None and "Id" not in keys:
            problems.append("Id: required key is missing")
    if problems or metadata is None:
        problems = [f"model.json (CZANN {version}): {p}" for p in _unique(problems)]
        _fail(
            report, problems, version=version, schema=f"czbuild/schemas/czann-{version}.schema.json"
        )
        return None
    inferred = "" if declared is not None else " (inferred: no FormatVersion key)"
    # from_json_dict refuses a model.json without InputShape / OutputShape
    assert metadata.input_shape is not None and metadata.output_shape is not None
    info = ModelInfo(
        family="czann",
        version=version,
        type=metadata.type,
        input_shape=tuple(metadata.input_shape),
        output_shape=tuple(metadata.output_shape),
        classes=metadata.classes,
        overlap=metadata.min_overlap,
    )
    note = ""
    if metadata.type in vocab.EXPERIMENTAL_TYPES:
        note = f"; Type {metadata.type} has an unpublished output encoding"
    report.add(
        NAME,
        PASSED,
        f"CZANN {version}",
        f"model.json is valid CZANN {version}{inferred}{note}",
        version=version,
        version_declared=declared is not None,
    )
    return info, metadata


def _legacy(data: bytes, layout: Layout, report: VerifyReport) -> tuple[ModelInfo, Any] | None:
    from czbuild.formats.legacy import parse_xml

    try:
        metadata, extra = parse_xml(data)
    except CzbuildError as exc:
        _fail(report, [f"{layout.metadata}: {exc}"])
        return None
    except Exception as exc:
        _fail(report, [f"{layout.metadata}: unreadable XML: {type(exc).__name__}: {exc}"])
        return None
    report.version = metadata.version
    report.metadata = _legacy_table(metadata)
    problems: list[str] = []
    try:
        metadata.validate()
    except CzbuildError as exc:
        problems.append(str(exc))
    if metadata.id is None:
        problems.append("Id: missing")
    elif layout.legacy_id is not None and metadata.id != layout.legacy_id:
        problems.append(
            f"Id: the XML says {metadata.id!r} but the member names carry {layout.legacy_id!r}"
        )
    if problems:
        _fail(report, problems, version=metadata.version)
        return None
    input_range, integer = legacy_input_range(tuple(metadata.pixel_types))
    border = int(metadata.border_size)
    info = ModelInfo(
        family="czmodel",
        version=metadata.version,
        type="SemanticSegmentation",
        input_shape=None,
        output_shape=None,
        classes=tuple(metadata.classes),
        overlap=(2 * border, 2 * border),
        input_range=input_range,
        integer_input=integer,
        pixel_types=tuple(metadata.pixel_types),
    )
    note = ""
    if extra:
        note = f"; elements czbuild does not interpret: {', '.join(sorted(extra))}"
        report.metadata.update({k: v for k, v in sorted(extra.items())})
    report.add(
        NAME,
        PASSED,
        f"CZMODEL {metadata.version}",
        f"{layout.metadata} is valid legacy CZMODEL {metadata.version} metadata{note}",
        version=metadata.version,
        input_range=list(input_range),
        extra_elements=extra,
    )
    return info, metadata


def _legacy_table(metadata: Any) -> dict[str, Any]:
    return {
        "Version": metadata.version,
        "Id": metadata.id,
        "ModelName": metadata.name,
        "ColorHandling": metadata.color_handling,
        "PixelTypes": list(metadata.pixel_types),
        "Classes": list(metadata.classes),
        "BorderSize": metadata.border_size,
    }


def _schema_problems(doc: dict, version: str) -> list[str]:
    """Problems the project's JSON Schema for ``version`` finds (empty when valid)."""
    from czbuild.formats import schema

    if version not in vocab.CZANN_VERSIONS:
        return [
            f"FormatVersion: unknown CZANN version {version!r}; known: "
            + ", ".join(vocab.CZANN_VERSIONS)
        ]
    try:
        result = schema.validate_model_json(doc, version)
    except CzbuildError as exc:
        return [f"JSON Schema {version}: {exc}"]
    except ValueError as exc:
        return [f"JSON Schema {version}: {exc}"]
    if not result:
        return []
    if isinstance(result, (list, tuple)):
        return [str(p) for p in result]
    return []


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
