"""From a validated :class:`~czbuild.recipe.schema.Recipe` to a resolved :class:`RecipeSpec`.

Everything that relates several fields and needs no model happens here: the format version
and opset are picked from the ZEN target through :mod:`czbuild.formats.vocab`; tile, overlap
and border are checked against each other; keys that do not belong to the chosen format are
refused with the key to use instead; ops are validated through :mod:`czbuild.ops`; paths
are resolved against the recipe file's folder, checked to exist and rewritten relative to
the project folder. Every problem is raised as a :class:`~czbuild.recipe.diagnostics.Issue`
naming the key.
"""

from __future__ import annotations

import math
import os
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from czbuild import ops as _ops
from czbuild.formats import vocab
from czbuild.recipe.diagnostics import Issue
from czbuild.recipe.keys import Key, parse_key
from czbuild.recipe.schema import Metadata, ModelSource, Recipe
from czbuild.recipe.spec import MetadataSpec, RecipeSpec, SourceSpec, TargetSpec, VerifySettings

__all__ = ["ResolveContext", "resolve_recipe"]

_MODEL_SUFFIXES = {".keras": "keras", ".h5": "h5", ".hdf5": "h5"}


@dataclass(frozen=True)
class ResolveContext:
    """Where a recipe lives.

    Attributes:
        recipe_file: Absolute path of the recipe file; relative paths start at its folder.
        project_dir: Absolute project folder; spec paths are relative to it.
        format_swept: The variant is one point of a sweep over ``format``: metadata keys of
            the other format family are then allowed (and left out of the spec) instead of
            being errors.
    """

    recipe_file: Path
    project_dir: Path
    format_swept: bool = False


def _product_name(product: str) -> str:
    return f"ZEN {product.capitalize()}"


def _resolve_path(text: str, key: Key, ctx: ResolveContext) -> tuple[Path, str]:
    """Absolute path and project-relative POSIX path of a path written in the recipe."""
    if not text.strip():
        raise Issue(key, "must not be empty; give a path relative to the recipe file")
    written = text.replace("\\", "/")
    path = Path(written)
    if not path.is_absolute():
        path = ctx.recipe_file.parent / path
    path = Path(os.path.normpath(path))
    try:
        rel = os.path.relpath(path, ctx.project_dir)
    except ValueError:  # different drive on Windows
        raise Issue(
            key, f"{text!r} is on another drive than the project; move it into the project"
        ) from None
    return path, PurePosixPath(*Path(rel).parts).as_posix()


def _existing_file(text: str, key: Key, ctx: ResolveContext, what: str) -> str:
    path, rel = _resolve_path(text, key, ctx)
    if not path.exists():
        raise Issue(
            key,
            f"{what} not found: {text!r} (looked for {path}); paths are relative "
            "to the recipe file",
        )
    if not path.is_file():
        raise Issue(key, f"{what} {text!r} is a directory, expected a file")
    return rel


def _source(model: ModelSource, ctx: ResolveContext) -> SourceSpec:
    if (model.path is None) == (model.factory is None):
        raise Issue(
            ("model",),
            "give exactly one of 'path' (a .keras/.h5 file or SavedModel "
            "directory) and 'factory' ('file.py:function')",
            nearest=True,
        )
    sha = model.sha256.lower() if model.sha256 else None
    objects = tuple(
        _python_file(text, ("model", "custom_objects", i), ctx, "custom-objects file")
        for i, text in enumerate(model.custom_objects)
    )
    if model.factory is not None:
        key: Key = ("model", "factory")
        file_text, sep, function = model.factory.rpartition(":")
        if not sep or not function.isidentifier() or not file_text:
            raise Issue(key, f"{model.factory!r} is not 'path/to/file.py:function'")
        rel = _python_file(file_text, key, ctx, "factory file")
        return SourceSpec(
            kind="factory", path=rel, function=function, sha256=sha, custom_objects=objects
        )
    key = ("model", "path")
    assert model.path is not None
    path, rel = _resolve_path(model.path, key, ctx)
    if not path.exists():
        raise Issue(
            key,
            f"model not found: {model.path!r} (looked for {path}); paths are "
            "relative to the recipe file",
        )
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise Issue(
                key,
                f"{model.path!r} is a directory but not a SavedModel (no "
                "saved_model.pb); give a .keras/.h5 file or a SavedModel directory",
            )
        kind = "savedmodel"
    else:
        suffix = path.suffix.lower()
        if suffix == ".py":
            raise Issue(
                key,
                f"{model.path!r} is Python code; use 'factory: "
                f"{model.path}:function' instead of 'path'",
            )
        if suffix not in _MODEL_SUFFIXES:
            raise Issue(
                key,
                f"{model.path!r}: unsupported model file; use a .keras or .h5 "
                "file, a SavedModel directory or a factory",
            )
        kind = _MODEL_SUFFIXES[suffix]
    return SourceSpec(kind=kind, path=rel, sha256=sha, custom_objects=objects)


def _python_file(text: str, key: Key, ctx: ResolveContext, what: str) -> str:
    if not text.endswith(".py"):
        raise Issue(key, f"{what} {text!r} must be a .py file")
    return _existing_file(text, key, ctx, what)


def _format_and_version(recipe: Recipe) -> tuple[str, str, TargetSpec | None]:
    version = recipe.format_version
    fmt = recipe.format or (vocab.family_of(version) if version else "czann")
    if version is not None and vocab.family_of(version) != fmt:
        own = vocab.CZANN_VERSIONS if fmt == "czann" else vocab.LEGACY_VERSIONS
        raise Issue(
            ("format_version",),
            f"{version} is a {vocab.family_of(version)} version "
            f"but format is {fmt}; use one of {', '.join(own)} or set format: "
            f"{vocab.family_of(version)}",
        )
    target = recipe.target
    if target is None:
        if version is None:
            version = (
                vocab.DEFAULT_CZANN_VERSION if fmt == "czann" else vocab.DEFAULT_LEGACY_VERSION
            )
        return fmt, version, None
    readable = vocab.readable_versions(target.product, target.version)
    zen = f"{_product_name(target.product)} {target.version}"
    idx = vocab.ZEN_PRODUCTS.index(target.product)
    if version is None:
        picked = vocab.newest_version(fmt, target.product, target.version)
        if picked is None:
            oldest = (vocab.CZANN_VERSIONS if fmt == "czann" else vocab.LEGACY_VERSIONS)[0]
            need = ".".join(map(str, vocab.MIN_ZEN[oldest][idx]))
            other = "czmodel" if fmt == "czann" else "czann"
            raise Issue(
                ("target",),
                f"{zen} cannot read any {fmt} version ({fmt} needs "
                f"{_product_name(target.product)} >= {need}); choose a newer target "
                f"or format: {other}",
                nearest=True,
            )
        version = picked
    elif version not in readable:
        need = ".".join(map(str, vocab.MIN_ZEN[version][idx]))
        same = [v for v in readable if vocab.family_of(v) == fmt]
        fix = (
            f"use format_version {same[-1]} (or remove it to pick the newest the target reads)"
            if same
            else "choose a newer target"
        )
        raise Issue(
            ("format_version",),
            f"{zen} cannot read {fmt} {version} (needs "
            f"{_product_name(target.product)} >= {need}); {fix}",
        )
    return fmt, version, TargetSpec(product=target.product, version=target.version)


def _opset(recipe: Recipe, version: str) -> int | None:
    limit = vocab.MAX_OPSET[version]
    if limit is None:
        if recipe.opset is not None:
            raise Issue(
                ("opset",), f"format version {version} carries a SavedModel, not ONNX; remove opset"
            )
        return None
    if recipe.opset is None:
        return vocab.DEFAULT_OPSET[version]
    if recipe.opset > limit:
        raise Issue(
            ("opset",),
            f"opset {recipe.opset} is too high for format version "
            f"{version} (at most {limit}); use {limit} or lower",
        )
    if recipe.opset < vocab.MIN_OPSET:
        raise Issue(
            ("opset",),
            f"opset {recipe.opset} is below the minimum "
            f"{vocab.MIN_OPSET}; use {vocab.DEFAULT_OPSET[version]}",
        )
    return recipe.opset


def _spatial_dims(recipe: Recipe, fmt: str) -> tuple[int, int] | None:
    if recipe.tile is not None and recipe.spatial_dims is not None:
        raise Issue(("spatial_dims",), "give either tile (square) or spatial_dims [h, w], not both")
    if recipe.tile is not None:
        return (recipe.tile, recipe.tile)
    if recipe.spatial_dims is not None:
        return (recipe.spatial_dims[0], recipe.spatial_dims[1])
    if fmt == "czmodel":
        raise Issue(
            ("tile",),
            "legacy czmodel needs a fixed tile size; set tile: 512 (or spatial_dims: [h, w])",
            nearest=True,
        )
    return None


def _ops_list(items: tuple[Any, ...], section: str) -> tuple[dict[str, Any], ...]:
    out = []
    for i, item in enumerate(items):
        try:
            out.append(_ops.validate_op(item, where=f"{section}[{i}]"))
        except ValueError as exc:
            text = str(exc)
            head, sep, rest = text.partition(": ")
            key = parse_key(head) if sep and head.startswith(section) else (section, i)
            raise Issue(key, rest if sep and head.startswith(section) else text) from None
    return tuple(out)


_CZANN_ONLY = {
    "min_overlap": "legacy czmodel has no min_overlap; use border_size (per-side margin = "
    "min_overlap / 2)",
    "scaling": "legacy czmodel has no scaling; remove it or use format: czann",
}
_CZMODEL_ONLY = {
    "border_size": "border_size is a legacy czmodel key; for czann use min_overlap: "
    "[2*border, 2*border]",
    "pixel_type": "pixel_type is a legacy czmodel key; czann takes the input channels from "
    "the model, remove it",
    "color_handling": "color_handling is a legacy czmodel key; remove it for czann",
}


def _misplaced(meta: Metadata, fmt: str, format_swept: bool) -> None:
    if format_swept:  # keys of both families are expected; each variant keeps its own
        return
    table = _CZANN_ONLY if fmt == "czmodel" else _CZMODEL_ONLY
    for key, message in table.items():
        if getattr(meta, key) is not None:
            raise Issue(("metadata", key), message)


def _type(meta: Metadata, fmt: str, allow_experimental: bool) -> str:
    if fmt == "czmodel":
        model_type = meta.type or "SingleClassSemanticSegmentation"
        if model_type not in vocab.SEGMENTATION_TYPES:
            raise Issue(
                ("metadata", "type"),
                f"legacy czmodel is semantic segmentation only; "
                f"use {' or '.join(vocab.SEGMENTATION_TYPES)} or format: czann",
            )
        return model_type
    if meta.type is None:
        raise Issue(
            ("metadata", "type"),
            f"required for czann; one of {', '.join(vocab.MODEL_TYPES)}",
            nearest=True,
        )
    if meta.type in vocab.EXPERIMENTAL_TYPES and not allow_experimental:
        raise Issue(
            ("metadata", "type"),
            f"{meta.type}: the output encoding ZEN expects is "
            "unpublished; set allow_experimental_types: true to build it anyway",
        )
    return meta.type


def _classes(meta: Metadata, model_type: str) -> tuple[str, ...] | None:
    key: Key = ("metadata", "classes")
    classes = meta.classes
    if model_type in vocab.REGRESSION_TYPES:
        if classes is not None:
            raise Issue(key, "Regression models have no classes; remove metadata.classes")
        return None
    if classes is None:
        if model_type in vocab.SEGMENTATION_TYPES:
            raise Issue(
                key,
                "required for segmentation: one name per output channel, e.g. "
                "[Background, Foreground]",
                nearest=True,
            )
        return None
    if len(classes) < 2:
        raise Issue(
            key,
            f"{len(classes)} class(es) given; segmentation needs at least 2 "
            "(include the background)",
        )
    for i, name in enumerate(classes):
        if not name.strip():
            raise Issue(key + (i,), "class names must not be empty")
        if name in classes[:i]:
            raise Issue(key + (i,), f"duplicate class name {name!r}")
    return classes


def _min_overlap(meta: Metadata, dims: tuple[int, int] | None) -> tuple[int, int] | None:
    key: Key = ("metadata", "min_overlap")
    overlap = meta.min_overlap
    if overlap is None:
        return None
    if len(overlap) != 2:
        raise Issue(key, f"{len(overlap)} value(s) given; give one per spatial dim: [h, w]")
    for i, value in enumerate(overlap):
        if value < 0 or value % 2:
            raise Issue(
                key + (i,),
                f"{value} must be even and >= 0 (it is 2 x the border hidden on each side)",
            )
        if dims is not None and value >= dims[i]:
            raise Issue(
                key + (i,),
                f"overlap {value} is not smaller than the tile size "
                f"{dims[i]}; use a smaller overlap or a larger tile",
            )
    return (overlap[0], overlap[1])


def _scaling(meta: Metadata, version: str) -> tuple[float, ...] | None:
    key: Key = ("metadata", "scaling")
    scaling = meta.scaling
    if scaling is None:
        return None
    if version == "1.0.0":
        raise Issue(
            key, "CZANN 1.0.0 has no Scaling; use format_version 1.1.0 or newer, or remove scaling"
        )
    allowed = (2,) if version == "1.1.0" else (2, 3)
    if len(scaling) not in allowed:
        need = "exactly 2 values [x, y]" if allowed == (2,) else "2 or 3 values [x, y(, z)]"
        raise Issue(key, f"{len(scaling)} value(s) given; CZANN {version} takes {need}")
    for i, value in enumerate(scaling):
        if not (math.isfinite(value) and value > 0):
            raise Issue(key + (i,), f"{value!r}: pixel sizes are in metres and must be > 0")
    return tuple(scaling)


def _model_id(meta: Metadata) -> str | None:
    if meta.id is None:
        return None
    try:
        return str(uuid.UUID(meta.id))
    except ValueError:
        raise Issue(
            ("metadata", "id"),
            f"{meta.id!r} is not a UUID; remove it to derive the id from the content",
        ) from None


def _legacy(meta: Metadata, version: str, dims: tuple[int, int] | None) -> dict[str, Any]:
    if meta.pixel_type is None:
        raise Issue(
            ("metadata", "pixel_type"),
            "required for czmodel, one of "
            f"{', '.join(t for t in vocab.PIXEL_TYPES if t not in vocab.COMPLEX_PIXEL_TYPES)}",
            nearest=True,
        )
    for i, pixel in enumerate(meta.pixel_type):
        if pixel in vocab.COMPLEX_PIXEL_TYPES:
            key: Key = ("metadata", "pixel_type") + ((i,) if len(meta.pixel_type) > 1 else ())
            raise Issue(key, f"{pixel}: complex pixel types are not supported")
    if version == "3.0.0" and len(meta.pixel_type) != 1:
        raise Issue(("metadata", "pixel_type"), "czmodel 3.0.0 takes exactly one pixel type")
    if meta.color_handling is None:
        raise Issue(
            ("metadata", "color_handling"),
            f"required for czmodel: {' or '.join(vocab.COLOR_HANDLINGS)}",
            nearest=True,
        )
    border = meta.border_size or 0
    if dims is not None and 2 * border >= min(dims):
        raise Issue(
            ("metadata", "border_size"),
            f"a border of {border} on each side leaves "
            f"nothing of a {dims[0]}x{dims[1]} tile; the tile must be larger than "
            f"{2 * border}",
        )
    return {
        "pixel_type": meta.pixel_type,
        "color_handling": meta.color_handling,
        "border_size": border,
    }


def _metadata(
    recipe: Recipe,
    name: str,
    fmt: str,
    version: str,
    dims: tuple[int, int] | None,
    ctx: ResolveContext,
) -> MetadataSpec:
    meta = recipe.metadata
    _misplaced(meta, fmt, ctx.format_swept)
    model_type = _type(meta, fmt, recipe.allow_experimental_types)
    fields: dict[str, Any] = {
        "type": model_type,
        "classes": _classes(meta, model_type),
        "model_name": meta.model_name if meta.model_name is not None else name,
        "id": _model_id(meta),
    }
    if not fields["model_name"].strip():
        raise Issue(("metadata", "model_name"), "must not be empty")
    if meta.license is not None:
        fields["license"] = _existing_file(
            meta.license, ("metadata", "license"), ctx, "licence file"
        )
    if fmt == "czann":
        fields["min_overlap"] = _min_overlap(meta, dims)
        fields["scaling"] = _scaling(meta, version)
    else:
        fields.update(_legacy(meta, version, dims))
    return MetadataSpec(**fields)


def resolve_recipe(recipe: Recipe, name: str, ctx: ResolveContext) -> RecipeSpec:
    """Resolve and cross-check one composed recipe.

    Args:
        recipe: The validated recipe document (one sweep point, ``sweep`` ignored).
        name: The recipe name (the file stem).
        ctx: Recipe file and project folder.

    Returns:
        The frozen :class:`RecipeSpec`.

    Raises:
        Issue: The first problem found, naming its key.
    """
    if recipe.name is not None and recipe.name != name:
        raise Issue(
            ("name",),
            f"{recipe.name!r} differs from the file name {name!r}; rename "
            "the file or the name (or remove name:)",
        )
    fmt, version, target = _format_and_version(recipe)
    opset = _opset(recipe, version)
    dims = _spatial_dims(recipe, fmt)
    source = _source(recipe.model, ctx)
    pre = _ops_list(recipe.preprocessing, "preprocessing")
    post = _ops_list(recipe.postprocessing, "postprocessing")
    metadata = _metadata(recipe, name, fmt, version, dims, ctx)
    return RecipeSpec(
        name=name,
        model=source,
        format=fmt,
        format_version=version,
        opset=opset,
        target=target,
        spatial_dims=dims,
        preprocessing=pre,
        postprocessing=post,
        metadata=metadata,
        allow_experimental_types=recipe.allow_experimental_types,
        verify=VerifySettings.from_plain(recipe.verify.model_dump()),
    )
