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

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from czbuild import ops as _ops
from czbuild.errors import MetadataError
from czbuild.formats import vocab
from czbuild.formats.czann import (
    CzannMetadata,
    classes_problem,
    min_overlap_problem,
    spatial_ranks,
)
from czbuild.formats.legacy import LegacyMetadata, border_problem
from czbuild.recipe.diagnostics import Issue
from czbuild.recipe.keys import METADATA_KEYS, Key, parse_key
from czbuild.recipe.schema import Metadata, ModelSource, Recipe
from czbuild.recipe.spec import (
    Family,
    MetadataSpec,
    RecipeSpec,
    SourceKind,
    SourceSpec,
    TargetSpec,
    VerifySettings,
)
from czbuild.sources.kinds import is_import_name

__all__ = ["ResolveContext", "resolve_recipe"]

_MODEL_SUFFIXES: dict[str, SourceKind] = {".keras": "keras", ".h5": "h5", ".hdf5": "h5"}


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


def _custom_object(text: str, index: int, ctx: ResolveContext) -> str:
    """A custom-objects entry: a ``module:attribute`` name as written, or a project path."""
    if is_import_name(text):
        return text
    key: Key = ("model", "custom_objects", index)
    if not text.endswith(".py"):
        raise Issue(
            key,
            f"{text!r} is neither a .py file nor an importable 'module:attribute' name "
            "(e.g. keras_hub.layers:ReversibleEmbedding)",
        )
    return _python_file(text, key, ctx, "custom-objects file")


def _factory(text: str, key: Key, ctx: ResolveContext) -> tuple[str, str]:
    """Project-relative ``.py`` path and function name of ``file.py:function``."""
    file_text, sep, function = text.rpartition(":")
    if not sep or not function.isidentifier() or not file_text:
        raise Issue(key, f"{text!r} is not 'path/to/file.py:function'")
    return _python_file(file_text, key, ctx, "factory file"), function


def _source(model: ModelSource, ctx: ResolveContext) -> SourceSpec:
    given = [k for k in ("path", "factory", "onnx", "torch") if getattr(model, k) is not None]
    if len(given) != 1:
        raise Issue(
            ("model",),
            "give exactly one of 'path' (a .keras/.h5 file or SavedModel directory), "
            "'factory' ('file.py:function' returning a keras.Model), 'onnx' (a .onnx file) "
            f"and 'torch' ('file.py:function' returning a torch.nn.Module); got "
            f"{', '.join(given) or 'none'}",
            nearest=True,
        )
    sha = model.sha256.lower() if model.sha256 else None
    if given[0] in ("onnx", "torch"):
        if model.custom_objects:
            raise Issue(
                ("model", "custom_objects"),
                f"custom objects are for Keras models; a {given[0]} model takes none (remove it)",
            )
        if model.torch is not None:
            rel, function = _factory(model.torch, ("model", "torch"), ctx)
            return SourceSpec(
                kind="torch",
                path=rel,
                function=function,
                sha256=sha,
                channels_first=model.channels_first,
            )
        assert model.onnx is not None
        if not model.onnx.lower().endswith(".onnx"):
            raise Issue(("model", "onnx"), f"{model.onnx!r} must be a .onnx file")
        rel = _existing_file(model.onnx, ("model", "onnx"), ctx, "ONNX model")
        return SourceSpec(kind="onnx", path=rel, sha256=sha, channels_first=model.channels_first)
    if model.channels_first is not None:
        raise Issue(
            ("model", "channels_first"),
            "applies to onnx and torch models only; a Keras model is channels-last (remove it)",
        )
    objects = tuple(_custom_object(text, i, ctx) for i, text in enumerate(model.custom_objects))
    if model.factory is not None:
        rel, function = _factory(model.factory, ("model", "factory"), ctx)
        return SourceSpec(
            kind="factory",
            path=rel,
            function=function,
            sha256=sha,
            custom_objects=objects,
            inputs=_extra_inputs(model, ctx),
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
        kind: SourceKind = "savedmodel"
    else:
        suffix = path.suffix.lower()
        if suffix == ".py":
            raise Issue(
                key,
                f"{model.path!r} is Python code; use 'factory: "
                f"{model.path}:function' instead of 'path'",
            )
        if suffix == ".onnx":
            raise Issue(key, f"{model.path!r} is an ONNX model; write 'onnx: {model.path}'")
        if suffix not in _MODEL_SUFFIXES:
            raise Issue(
                key,
                f"{model.path!r}: unsupported model file; use a .keras or .h5 "
                "file, a SavedModel directory or a factory",
            )
        kind = _MODEL_SUFFIXES[suffix]
    return SourceSpec(
        kind=kind, path=rel, sha256=sha, custom_objects=objects, inputs=_extra_inputs(model, ctx)
    )


def _extra_inputs(model: ModelSource, ctx: ResolveContext) -> tuple[str, ...] | None:
    """``model.inputs``: existing files or folders, project-relative, in the order written."""
    out: list[str] = []
    for i, text in enumerate(model.inputs):
        key: Key = ("model", "inputs", i)
        path, rel = _resolve_path(text, key, ctx)
        if not path.exists():
            raise Issue(
                key,
                f"input not found: {text!r} (looked for {path}); paths are relative to the "
                "recipe file",
            )
        if rel not in out:
            out.append(rel)
    return tuple(out) or None


def _verify(recipe: Recipe, ctx: ResolveContext) -> VerifySettings:
    """The ``verify:`` section; sample and expect paths made project-relative and checked."""
    plain = recipe.verify.model_dump()
    samples = [
        _existing_file(text, ("verify", "samples", i), ctx, "sample image")
        for i, text in enumerate(recipe.verify.samples)
    ]
    plain["samples"] = list(dict.fromkeys(samples))
    if recipe.verify.expect is not None:
        if not samples:
            raise Issue(
                ("verify", "expect"),
                "pins the output of the first of verify.samples; add samples: [your image]",
            )
        plain["expect"] = _existing_file(
            recipe.verify.expect, ("verify", "expect"), ctx, "expected output"
        )
    return VerifySettings.from_plain(plain)


def _python_file(text: str, key: Key, ctx: ResolveContext, what: str) -> str:
    if not text.endswith(".py"):
        raise Issue(key, f"{what} {text!r} must be a .py file")
    return _existing_file(text, key, ctx, what)


def _format_and_version(recipe: Recipe) -> tuple[Family, str, TargetSpec | None]:
    version = recipe.format_version
    fmt: Family = recipe.format or ("czmodel" if version in vocab.LEGACY_VERSIONS else "czann")
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
    if (problem := vocab.opset_problem(version, recipe.opset)) is not None:
        raise Issue(("opset",), problem)
    return vocab.DEFAULT_OPSET[version] if recipe.opset is None else recipe.opset


def _spatial_dims(recipe: Recipe, fmt: str, version: str) -> tuple[int, ...] | None:
    if recipe.tile is not None and recipe.spatial_dims is not None:
        raise Issue(("spatial_dims",), "give either tile (square) or spatial_dims [h, w], not both")
    if recipe.tile is not None:
        return (recipe.tile, recipe.tile)
    if recipe.spatial_dims is not None:
        dims = tuple(recipe.spatial_dims)
        if len(dims) == 3 and (fmt != "czann" or 3 not in spatial_ranks(version)):
            raise Issue(
                ("spatial_dims",),
                f"[z, h, w] makes a 3D model, which {fmt} {version} cannot hold; 3D needs "
                "czann >= 2.0.0 (ZEN >= 3.13): set format_version 2.0.0 or 2.1.0 (or a newer "
                "target)",
            )
        return dims
    if fmt == "czmodel":
        raise Issue(
            ("tile",),
            "legacy czmodel needs a fixed tile size; set tile: 512 (or spatial_dims: [h, w])",
            nearest=True,
        )
    return None


def _ops_list(
    items: tuple[Any, ...], section: str, classes: tuple[str, ...] | None = None
) -> tuple[dict[str, Any], ...]:
    """Validated ops of one section; postprocessing scores ordered by ``classes``.

    In ``postprocessing``, ``sigmoid_to_softmax_scores`` must name the class its sigmoid
    scores (``positive:``); :func:`czbuild.ops.bind_positive` puts that class's score in its
    channel of ``metadata.classes``.
    """
    out = []
    for i, item in enumerate(items):
        name = (
            item if isinstance(item, str) else item.get("op") if isinstance(item, Mapping) else None
        )
        try:
            if section == "postprocessing" and name == _ops.SIGMOID_SCORES:
                out.append(_ops.bind_positive(item, classes, where=f"{section}[{i}]"))
                continue
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


def _format_issue(error: MetadataError) -> Issue:
    """A format-layer :class:`MetadataError` restated at the recipe key that sets the field."""
    key: Key = METADATA_KEYS.get(error.field, ("metadata",))
    if error.index is not None:
        key = (*key, error.index)
    text = str(error)
    prefix = f"{error.field}: "
    return Issue(key, text[len(prefix) :] if text.startswith(prefix) else text)


def _first(problems: list[MetadataError | None]) -> None:
    """Raise the first problem found (the format layer's rules) as a recipe :class:`Issue`."""
    for problem in problems:
        if problem is not None:
            raise _format_issue(problem)


def _type(meta: Metadata, fmt: str) -> str:
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
    return meta.type


def _classes(meta: Metadata, model_type: str) -> tuple[str, ...] | None:
    classes = tuple(meta.classes) if meta.classes is not None else None
    if classes is None and model_type in vocab.SEGMENTATION_TYPES:
        raise Issue(
            ("metadata", "classes"),
            "required for segmentation: one name per output channel, e.g. [Background, Foreground]",
            nearest=True,
        )
    _first([classes_problem(classes, model_type)])
    return classes


def _check_czann(fields: dict[str, Any], version: str, dims: Any, allow: bool) -> None:
    """The CZANN rules of the format layer that need no model, plus MinOverlap vs the tile."""
    metadata = CzannMetadata(
        type=fields["type"],
        input_shape=None,
        output_shape=None,
        classes=fields["classes"],
        model_name=fields["model_name"],
        scaling=fields["scaling"],
        id=fields["id"],
        format_version=version,
    )
    _first(
        [
            *metadata.problems(allow_experimental_types=allow),
            min_overlap_problem(
                fields["min_overlap"], tile=dims, rank=len(dims) if dims is not None else None
            ),
        ]
    )


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


def _legacy(
    meta: Metadata, fields: dict[str, Any], version: str, dims: tuple[int, ...] | None
) -> dict[str, Any]:
    if meta.pixel_type is None:
        raise Issue(
            ("metadata", "pixel_type"),
            "required for czmodel, one of "
            f"{', '.join(t for t in vocab.PIXEL_TYPES if t not in vocab.COMPLEX_PIXEL_TYPES)}",
            nearest=True,
        )
    if meta.color_handling is None:
        raise Issue(
            ("metadata", "color_handling"),
            f"required for czmodel: {' or '.join(vocab.COLOR_HANDLINGS)}",
            nearest=True,
        )
    border = meta.border_size or 0
    metadata = LegacyMetadata(
        name=fields["model_name"],
        color_handling=meta.color_handling,
        pixel_types=tuple(meta.pixel_type),
        classes=fields["classes"] or (),
        border_size=border,
        id=fields["id"],
        version=version,
    )
    _first(
        [
            *metadata.problems(),
            border_problem(border, dims) if dims is not None else None,
        ]
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
    dims: tuple[int, ...] | None,
    ctx: ResolveContext,
) -> MetadataSpec:
    meta = recipe.metadata
    _misplaced(meta, fmt, ctx.format_swept)
    model_type = _type(meta, fmt)
    fields: dict[str, Any] = {
        "type": model_type,
        "classes": _classes(meta, model_type),
        "model_name": meta.model_name if meta.model_name is not None else name,
        "id": _model_id(meta),
    }
    if fmt == "czann":
        fields["min_overlap"] = tuple(meta.min_overlap) if meta.min_overlap is not None else None
        fields["scaling"] = tuple(meta.scaling) if meta.scaling is not None else None
        _check_czann(fields, version, dims, recipe.allow_experimental_types)
    else:
        fields.update(_legacy(meta, fields, version, dims))
    if meta.license is not None:
        fields["license"] = _existing_file(
            meta.license, ("metadata", "license"), ctx, "licence file"
        )
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
    dims = _spatial_dims(recipe, fmt, version)
    source = _source(recipe.model, ctx)
    pre = _ops_list(recipe.preprocessing, "preprocessing")
    metadata = _metadata(recipe, name, fmt, version, dims, ctx)
    post = _ops_list(recipe.postprocessing, "postprocessing", metadata.classes)
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
        verify=_verify(recipe, ctx),
    )
