"""The recipe document: what a user may write, as strict pydantic models, and its JSON Schema.

These models check structure and types of one *composed* recipe (after Hydra merged the
config groups and overrides): unknown keys, wrong types, unknown enum values, simple ranges.
Rules that relate several fields (format vs. version vs. target, overlap vs. tile, ...) live
in :mod:`czbuild.recipe.resolve`, which turns a :class:`Recipe` into a resolved
:class:`czbuild.recipe.spec.RecipeSpec`.

:func:`recipe_json_schema` is what ``czbuild schema`` prints and what
``czbuild/schemas/recipe.schema.json`` holds (a test keeps the two in sync).
"""

from __future__ import annotations

import json
import math
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    model_validator,
)

from czbuild import ops as _ops
from czbuild.formats import vocab
from czbuild.recipe.limits import RECIPE_NAME_PATTERN
from czbuild.verify.settings import ACCEPTABLE_CHECKS, PROXY_MODULUS, check_tiling_max_tile
from czbuild.verify.settings import BUILD as BUILD_VERIFY_SETTINGS

__all__ = [
    "FORMATS",
    "SCHEMA_ID",
    "Metadata",
    "ModelSource",
    "Recipe",
    "Target",
    "Verify",
    "recipe_json_schema",
    "render_json_schema",
]

FORMATS = ("czann", "czmodel")
SCHEMA_ID = "https://czbuild.invalid/schemas/recipe.schema.json"
NAME_PATTERN = RECIPE_NAME_PATTERN
SHA256_PATTERN = r"^[0-9a-fA-F]{64}$"
ZEN_VERSION_PATTERN = r"^[0-9]+\.[0-9]+$"

ModelType = Literal[vocab.MODEL_TYPES]  # type: ignore[valid-type]
PixelType = Literal[vocab.PIXEL_TYPES]  # type: ignore[valid-type]
ColorHandling = Literal[vocab.COLOR_HANDLINGS]  # type: ignore[valid-type]
FormatVersion = Literal[vocab.ALL_VERSIONS]  # type: ignore[valid-type]
Product = Literal[vocab.ZEN_PRODUCTS]  # type: ignore[valid-type]


def _number(value: Any) -> Any:
    """Accept int/float (not bool, not strings) and require a finite value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        # pydantic turns ValueError (not TypeError) into a validation error
        raise ValueError(f"expected a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"expected a finite number, got {value!r}")
    return float(value)


def _one_or_many(value: Any) -> Any:
    """``Gray16`` -> ``["Gray16"]``: a single pixel type is shorthand for a list of one."""
    return [value] if isinstance(value, str) else value


def _zen_version(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError(
            f"write the ZEN version as a quoted string such as '3.13': YAML read it as the "
            f"number {value!r} (and reads 3.10 as 3.1)"
        )
    return value


Number = Annotated[float, BeforeValidator(_number), WithJsonSchema({"type": "number"})]
TileSize = Annotated[StrictInt, Field(ge=1)]
PixelTypes = Annotated[
    tuple[PixelType, ...],
    BeforeValidator(_one_or_many),
    Field(min_length=1),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "enum": list(vocab.PIXEL_TYPES)},
                {
                    "type": "array",
                    "items": {"type": "string", "enum": list(vocab.PIXEL_TYPES)},
                    "minItems": 1,
                },
            ]
        }
    ),
]


def _op_schemas() -> list[dict[str, Any]]:
    """JSON Schema alternatives for one pre/postprocessing step, generated from czbuild.ops.

    Recipe rule on top of the registry: ``sigmoid_to_softmax_scores`` needs ``positive`` (the
    resolver orders its scores by ``metadata.classes``), so it has no bare-string shorthand.
    """
    kinds: dict[str, dict[str, Any]] = {
        "floats": {
            "anyOf": [
                {"type": "number"},
                {"type": "array", "items": {"type": "number"}, "minItems": 1},
            ]
        },
        "order": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
        "number": {"type": "number"},
        "range": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
        "channel": {"type": "integer", "enum": [0, 1]},
        "label": {"type": "string", "minLength": 1},
    }
    recipe_required = {_ops.SIGMOID_SCORES: ("positive",)}
    alternatives: list[dict[str, Any]] = []
    bare = [
        name
        for name, d in _ops.OPS.items()
        if not any(a.required for a in d.args) and name not in recipe_required
    ]
    if bare:
        alternatives.append(
            {"type": "string", "enum": bare, "description": "Shorthand for {op: <name>}."}
        )
    for name, definition in _ops.OPS.items():
        props: dict[str, Any] = {"op": {"const": name}}
        for arg in definition.args:
            props[arg.name] = dict(kinds[arg.kind], description=arg.doc)
        required = [a.name for a in definition.args if a.required]
        required += [a for a in recipe_required.get(name, ()) if a not in required]
        alternatives.append(
            {
                "type": "object",
                "title": definition.signature(),
                "description": definition.doc,
                "properties": props,
                "required": ["op", *required],
                "additionalProperties": False,
            }
        )
    return alternatives


OpList = Annotated[
    tuple[Any, ...],
    WithJsonSchema({"type": "array", "items": {"anyOf": _op_schemas()}}),
]
SweepValues = Annotated[
    tuple[Any, ...],
    Field(min_length=1),
    WithJsonSchema({"type": "array", "minItems": 1, "description": "One variant per value."}),
]
DefaultsList = Annotated[
    tuple[Any, ...],
    WithJsonSchema(
        {
            "type": "array",
            "description": "Hydra defaults list: '_self_', '/target: zen-blue-3.5', "
            "'/preprocessing: standardize', '/metadata: lab-defaults', '/format: czann'.",
            "items": {
                "anyOf": [
                    {"type": "string"},
                    {
                        "type": "object",
                        "minProperties": 1,
                        "maxProperties": 1,
                        "additionalProperties": {
                            "anyOf": [
                                {"type": "string"},
                                {"type": "array", "items": {"type": "string"}},
                                {"type": "null"},
                            ]
                        },
                    },
                ]
            },
        }
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSource(_Strict):
    """Where the model comes from: exactly one of ``path``, ``factory``, ``onnx`` and ``torch``."""

    path: StrictStr | None = Field(
        None,
        description="A .keras or .h5 file or a SavedModel directory, relative to the recipe file.",
    )
    factory: StrictStr | None = Field(
        None,
        description="A Python factory 'path/to/file.py:function' (relative to the recipe file); "
        "the function takes no arguments and returns a keras.Model.",
        examples=["../models/nuclei.py:build"],
    )
    onnx: StrictStr | None = Field(
        None,
        description="An ONNX model file (.onnx), relative to the recipe file.",
        examples=["../models/nuclei.onnx"],
    )
    torch: StrictStr | None = Field(
        None,
        description="A PyTorch factory 'path/to/file.py:function' (relative to the recipe "
        "file); the function takes no arguments and returns a torch.nn.Module. Needs the "
        "torch extra: pip install 'czbuild[torch]'.",
        examples=["../models/nuclei_torch.py:build"],
    )
    channels_first: StrictBool | None = Field(
        None,
        description="onnx/torch: the model takes [N, C, (Z,) H, W]; czbuild transposes around "
        "it so the artifact is channels-last. Default: false for onnx, true for torch.",
    )
    sha256: StrictStr | None = Field(
        None,
        pattern=SHA256_PATTERN,
        description="Optional pin: sha256 of the model file, of the factory's .py file, or the "
        "tree digest of a SavedModel directory. A mismatch is an error.",
    )
    custom_objects: tuple[StrictStr, ...] = Field(
        (),
        description="Keras only: custom layers/objects the model needs, each a Python file "
        "relative to the recipe file or an importable 'module:attribute' (a class, function "
        "or a dict of them).",
    )
    inputs: tuple[StrictStr, ...] = Field(
        (),
        description="Further files or folders the model depends on (e.g. the weights a "
        "factory loads), relative to the recipe file: a change to any of them rebuilds the "
        "model. Files a factory reads while it runs are also found by the build itself.",
        examples=[["../weights/net.keras"]],
    )


class Target(_Strict):
    """The ZEN release the artifact must open in (configs/target/*.yaml provide these)."""

    product: Product = Field(description="ZEN product: blue or core.")
    version: Annotated[StrictStr, BeforeValidator(_zen_version)] = Field(
        pattern=ZEN_VERSION_PATTERN, description="ZEN version as a quoted string, e.g. '3.13'."
    )


class Metadata(_Strict):
    """Metadata written into the artifact. Which keys apply depends on ``format``."""

    type: ModelType | None = Field(
        None,
        description="CZANN model type. Required for czann; legacy czmodel is always "
        "semantic segmentation.",
    )
    classes: tuple[StrictStr, ...] | None = Field(
        None, description="Class names, one per output channel (>= 2 for segmentation)."
    )
    model_name: StrictStr | None = Field(
        None, description="Display name in ZEN (default: the recipe name)."
    )
    min_overlap: tuple[StrictInt, ...] | None = Field(
        None, description="czann: minimum tile overlap [h, w] in pixels, even, < tile."
    )
    scaling: tuple[Number, ...] | None = Field(
        None,
        description="czann >= 1.1.0: pixel size in metres, x, y(, z); 2 values for 1.1.0.",
    )
    id: StrictStr | None = Field(
        None,
        description="Pin the model id (a UUID); default: derived from the content.",
    )
    license: StrictStr | None = Field(
        None, description="Licence text file to embed, relative to the recipe file."
    )
    pixel_type: PixelTypes | None = Field(
        None, description="czmodel: pixel type of the input (one, or one per channel entry)."
    )
    color_handling: ColorHandling | None = Field(
        None, description="czmodel: ConvertToMonochrome or SplitRgb."
    )
    border_size: Annotated[StrictInt, Field(ge=0)] | None = Field(
        None, description="czmodel: per-side border in pixels (default 0); 2*border < tile."
    )


#: Defaults of the ``verify:`` section: the one settings type's defaults.
_VERIFY_DEFAULTS = BUILD_VERIFY_SETTINGS


Tolerance = Annotated[
    float,
    BeforeValidator(_number),
    Field(ge=0.0, le=1.0),
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1}),
]


class Verify(_Strict):
    """How ``czbuild build`` verifies each artifact before installing it (docs/verify.md)."""

    fidelity_tolerance: Tolerance = Field(
        default=_VERIFY_DEFAULTS.fidelity_tolerance,
        description="Maximum absolute difference for probability sums and ranges and for "
        "fidelity against the source model.",
    )
    seam_tolerance: Tolerance = Field(
        default=_VERIFY_DEFAULTS.seam_tolerance,
        description="Maximum absolute difference between stitched tiles and the whole-image "
        "prediction (tiling.seams, minimal-overlap search).",
    )
    tolerance: Tolerance | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="Deprecated: sets fidelity_tolerance and seam_tolerance where they are "
        "not given.",
    )
    tiling: StrictBool = Field(
        default=_VERIFY_DEFAULTS.tiling,
        description="Simulate ZEN's tiled inference with the declared overlap (tiling.seams).",
    )
    seed: Annotated[StrictInt, Field(ge=0)] = Field(
        default=_VERIFY_DEFAULTS.seed, description="Seed of every random test input."
    )
    tiling_max_tile: Annotated[
        StrictInt,
        AfterValidator(check_tiling_max_tile),
        WithJsonSchema({"type": "integer", "anyOf": [{"const": 0}, {"minimum": PROXY_MODULUS}]}),
    ] = Field(
        default=_VERIFY_DEFAULTS.tiling_max_tile,
        description="Artifacts with a larger tile are checked for seams on a proxy tile of at "
        "most this size (same size modulo 128, source model), which bounds time and memory; "
        "0: always the artifact's own tile.",
    )
    overlap_analysis: StrictBool = Field(
        default=bool(_VERIFY_DEFAULTS.overlap_analysis),
        description="Also measure the receptive field and search the minimal overlap for every "
        "artifact (costly); it always runs when tiling.seams fails.",
    )
    accept: tuple[Literal[ACCEPTABLE_CHECKS], ...] = Field(  # type: ignore[valid-type]
        default=(),
        exclude_if=lambda names: not names,
        description="Checks whose failure this recipe accepts (reported as warnings), e.g. "
        "[semantics.output_range] for a regression model whose output leaves [0, 1] by design.",
    )

    samples: tuple[StrictStr, ...] = Field(
        default=(),
        exclude_if=lambda paths: not paths,
        description="Your own images (.czi, .tif / .ome.tif; paths relative to the recipe "
        "file): fidelity and seams are checked on them too (samples.* checks). Keep them "
        "small; they are build inputs (fingerprinted, locked).",
    )
    expect: StrictStr | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="A reference output of the first sample (an OME-TIFF written by czbuild "
        "predict): samples.expect fails when a class's agreement with it drops (IoU below "
        "1 - expect_tolerance; regression: a larger max abs error), so check/release catch "
        "changed results on your data.",
    )
    expect_tolerance: Tolerance = Field(
        default=_VERIFY_DEFAULTS.expect_tolerance,
        exclude_if=lambda value: value == _VERIFY_DEFAULTS.expect_tolerance,
        description="Allowed drop of a class's IoU (regression: max abs error) for expect.",
    )

    @model_validator(mode="before")
    @classmethod
    def _deprecated_tolerance(cls, data: Any) -> Any:
        """``tolerance`` (before the split) sets the tolerances the section does not name."""
        if isinstance(data, dict) and "tolerance" in data:
            value = data["tolerance"]
            # out of range or not a number: the tolerance field reports it by name
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if number and 0.0 <= value <= 1.0:
                data = {"fidelity_tolerance": value, "seam_tolerance": value, **data}
        return data


class Recipe(_Strict):
    """One recipe as composed by Hydra (the ``defaults`` list is consumed by Hydra)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="czbuild recipe",
        json_schema_extra={
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": SCHEMA_ID,
        },
    )

    defaults: DefaultsList | None = Field(
        None, description="Hydra defaults list (config groups from configs/)."
    )
    name: StrictStr | None = Field(
        None,
        pattern=NAME_PATTERN,
        description="Recipe name; must equal the file name without .yaml (the default).",
    )
    model: ModelSource = Field(description="The trained Keras model.")
    format: Literal[FORMATS] | None = Field(  # type: ignore[valid-type]
        None,
        description="czann (default) or czmodel (legacy). Inferred from format_version if set.",
    )
    format_version: FormatVersion | None = Field(
        None,
        description="Format version; default: the newest the target reads, else 2.1.0 / 3.1.0.",
    )
    opset: StrictInt | None = Field(
        None, description="ONNX opset; default per format version, at most its maximum."
    )
    target: Target | None = Field(
        None, description="ZEN release to target; selects format_version and opset."
    )
    tile: TileSize | None = Field(None, description="Square tile size in pixels.")
    spatial_dims: tuple[TileSize, TileSize] | tuple[TileSize, TileSize, TileSize] | None = Field(
        None,
        description="Tile size [h, w] in pixels (instead of tile), or [z, h, w] for a 3D model "
        "(czann >= 2.0.0).",
    )
    preprocessing: OpList = Field(
        (), description="Ops applied before the model, in order (closed registry)."
    )
    postprocessing: OpList = Field(
        (), description="Ops applied after the model, in order (closed registry)."
    )
    metadata: Metadata = Field(description="Metadata written into the artifact.")
    allow_experimental_types: StrictBool = Field(
        False,
        description="Allow model types whose output encoding is unpublished "
        "(instance segmentation, classification, detection).",
    )
    verify: Verify = Field(
        default_factory=Verify,
        description="Verification settings of the build (defaults: fidelity_tolerance and "
        "seam_tolerance 1e-5, tiling "
        "true, seed 0, tiling_max_tile 256, overlap_analysis false).",
    )
    sweep: dict[StrictStr, SweepValues] = Field(
        default_factory=dict,
        description="Dotted key -> list of values; one variant per combination.",
        examples=[{"tile": [256, 512, 1024]}],
    )


def recipe_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a recipe file, for editor completion."""
    return Recipe.model_json_schema(mode="validation")


def render_json_schema() -> str:
    """The schema as committed in ``czbuild/schemas/recipe.schema.json``."""
    return json.dumps(recipe_json_schema(), indent=2, ensure_ascii=False) + "\n"


def mapping_sections() -> frozenset[str]:
    """Top-level recipe keys whose value is a mapping (a model or a dict) in :class:`Recipe`."""
    out = set()
    for name, field in Recipe.model_fields.items():
        for arg in (field.annotation, *typing.get_args(field.annotation)):
            origin = typing.get_origin(arg) or arg
            if isinstance(origin, type) and (
                issubclass(origin, BaseModel) or issubclass(origin, Mapping)
            ):
                out.add(name)
    return frozenset(out)
