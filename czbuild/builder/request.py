"""From a resolved variant to a :class:`czbuild.convert.ConversionRequest`.

This is the one place that knows both the recipe spec (:class:`czbuild.recipe.spec.RecipeSpec`)
and the library's conversion request. It runs in the conversion worker: loading custom-object
files (through :mod:`czbuild.sources.dispatch`) executes Python that imports Keras.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from czbuild.errors import CzbuildError, MetadataError, RecipeError
from czbuild.formats.czann import CzannMetadata
from czbuild.formats.legacy import LegacyMetadata
from czbuild.recipe.keys import METADATA_KEYS, format_key
from czbuild.recipe.spec import RecipeSpec
from czbuild.recipe.variant import Variant


def build_metadata(spec: RecipeSpec) -> CzannMetadata | LegacyMetadata:
    """The format metadata object (:class:`CzannMetadata` or :class:`LegacyMetadata`)."""
    md = spec.metadata
    if spec.format == "czann":
        return CzannMetadata(
            type=md.type,
            input_shape=None,
            output_shape=None,
            classes=tuple(md.classes) if md.classes is not None else None,
            min_overlap=tuple(md.min_overlap) if md.min_overlap is not None else None,
            model_name=md.model_name,
            scaling=tuple(md.scaling) if md.scaling is not None else None,
            id=md.id,
            format_version=spec.format_version,
        )
    return LegacyMetadata(
        name=md.model_name,
        color_handling=md.color_handling or "",  # always set for czmodel (resolve)
        pixel_types=tuple(md.pixel_type or ()),
        classes=tuple(md.classes or ()),
        border_size=int(md.border_size or 0),
        id=md.id,
        version=spec.format_version,
    )


def to_request(variant: Variant, *, custom_objects: Mapping[str, Any] | None = None) -> Any:
    """The conversion request of ``variant``.

    Args:
        variant: A :class:`czbuild.recipe.Variant`.
        custom_objects: Already loaded custom objects (the worker caches them per model);
            loaded from the recipe's files when None.

    Raises:
        RecipeError: The licence file cannot be read (names the recipe file and key).
    """
    from czbuild.convert import ConversionRequest

    spec = variant.spec
    project = Path(variant.project_dir)
    licence: bytes | None = None
    if spec.metadata.license:
        try:
            licence = (project / spec.metadata.license).read_bytes()
        except OSError as exc:
            raise RecipeError(
                f"cannot read the licence file {spec.metadata.license}: {exc.strerror}",
                file=str(variant.recipe_file),
                key="metadata.license",
            ) from exc
    if custom_objects is None and spec.model.custom_objects:
        from czbuild.sources.dispatch import load_custom_objects

        custom_objects = load_custom_objects(variant.custom_object_files)
    return ConversionRequest(
        source=variant.model_source,
        metadata=build_metadata(spec),
        preprocessing=tuple(dict(op) for op in spec.preprocessing),
        postprocessing=tuple(dict(op) for op in spec.postprocessing),
        spatial_dims=spec.spatial_dims,
        opset=spec.opset,
        license=licence,
        custom_objects=custom_objects or None,
    )


def _recipe_key(field: str, source: Any) -> str | None:
    """The recipe's dotted key for a metadata ``field`` (None when there is none)."""
    if field == "InputShape":
        if source is not None and source.node_at(("spatial_dims",)) is not None:
            return "spatial_dims"
        return "tile"
    key = METADATA_KEYS.get(field)
    return format_key(key) if key is not None else None


def recipe_error_for(variant: Variant, exc: MetadataError) -> CzbuildError:
    """``exc`` restated in the recipe's terms: file, dotted key and, when written there, line.

    A value that came from the recipe's ``sweep:`` section points at that sweep entry; one
    from a config group or the command line has no line in the recipe, so only the key is
    named. Errors about fields with no recipe key are returned unchanged.
    """
    from czbuild.recipe.keys import parse_key
    from czbuild.recipe.source import read_source

    field = getattr(exc, "field", "") or ""
    text = str(exc)
    message = text[len(field) + 2 :] if field and text.startswith(f"{field}: ") else text
    try:
        source = read_source(Path(variant.recipe_file), project_dir=Path(variant.project_dir))
    except RecipeError:
        source = None
    key = _recipe_key(field, source)
    if key is None:
        return exc
    display = source.display if source is not None else str(variant.recipe_file)
    line: int | None = None
    if source is not None:
        swept = {k for k, _ in variant.sweep}
        if key in swept:
            # from the sweep section (its line) or the command line (no line)
            line = source.line_of(("sweep", key))
        else:
            line = source.line_of(parse_key(key))
    return RecipeError(message, file=display, key=key, line=line)
