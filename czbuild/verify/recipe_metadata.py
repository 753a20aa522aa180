"""``recipe.metadata``: does the artifact's metadata say what its recipe variant resolves to?

Only with a recipe variant (``--recipe``, builds). Compares the fields a reader of the
artifact relies on -- format and version, ``Type``, ``Classes``, ``ModelName``, the overlap
(``MinOverlap``; legacy ``BorderSize``), ``Scaling``, the tile (``InputShape``'s spatial
dims), legacy pixel types and colour handling, and a pinned ``Id`` -- and fails naming every
differing field with both values.
"""

from __future__ import annotations

from typing import Any

from czbuild.verify.report import FAILED, PASSED, SKIPPED, VerifyReport

NAME = "recipe.metadata"


def _plain(value: Any) -> Any:
    """Tuples as lists (the JSON form), recursively."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def expected_fields(variant: Any) -> dict[str, Any]:
    """The metadata fields ``variant`` resolves to, keyed as the artifact names them."""
    spec = variant.spec
    md = spec.metadata
    family = "czann" if spec.format == "czann" else "czmodel"
    fields: dict[str, Any] = {"Format": family, "FormatVersion": spec.format_version}
    if family == "czann":
        fields.update(
            {
                "Type": md.type,
                "Classes": _plain(md.classes) if md.classes is not None else None,
                "ModelName": md.model_name,
                "MinOverlap": _plain(md.min_overlap) if md.min_overlap is not None else None,
                "Scaling": _plain(md.scaling) if md.scaling is not None else None,
            }
        )
        if spec.spatial_dims is not None:
            fields["InputShape tile"] = _plain(spec.spatial_dims)
    else:
        fields.update(
            {
                "Classes": _plain(md.classes or ()),
                "ModelName": md.model_name,
                "BorderSize": int(md.border_size or 0),
                "PixelTypes": _plain(md.pixel_type or ()),
                "ColorHandling": md.color_handling,
            }
        )
    if md.id is not None:
        fields["Id"] = md.id.lower()
    return fields


def actual_fields(report: VerifyReport, expected: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``expected`` as read from the artifact (``report.metadata``, version)."""
    doc = report.metadata or {}
    actual: dict[str, Any] = {"Format": report.family, "FormatVersion": report.version}
    for key, want in expected.items():
        if key in actual:
            continue
        if key == "InputShape tile":
            shape = doc.get("InputShape")
            dims = len(want)
            actual[key] = _plain(shape[:dims]) if isinstance(shape, list) else shape
        elif key == "Id":
            value = doc.get("Id")
            actual[key] = value.lower() if isinstance(value, str) else value
        else:
            actual[key] = _plain(doc.get(key))
    return actual


def check_recipe_metadata(report: VerifyReport, variant: Any) -> None:
    """Add ``recipe.metadata``: the artifact's metadata against ``variant``'s resolved spec."""
    if not report.metadata:
        report.add(NAME, SKIPPED, None, "the artifact's metadata could not be read")
        return
    expected = expected_fields(variant)
    actual = actual_fields(report, expected)
    differing = {
        k: {"artifact": actual.get(k), "recipe": v}
        for k, v in expected.items()
        if not _same(actual.get(k), v)
    }
    name = getattr(variant, "name", "the recipe")
    if differing:
        problems = [
            f"{k}: artifact {d['artifact']!r}, recipe {d['recipe']!r}" for k, d in differing.items()
        ]
        report.add(
            NAME,
            FAILED,
            f"{len(differing)} field(s) differ",
            f"the metadata differs from what {name} resolves to: " + "; ".join(problems),
            differing=differing,
            expected=expected,
        )
    else:
        report.add(
            NAME,
            PASSED,
            f"{len(expected)} fields",
            f"the metadata matches {name} ({', '.join(expected)})",
            expected=expected,
        )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if (
        isinstance(a, (int, float))
        and isinstance(b, (int, float))
        and not (isinstance(a, bool) or isinstance(b, bool))
    ):
        return float(a) == float(b)
    return bool(a == b)
