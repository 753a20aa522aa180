"""The resolved recipe: :class:`RecipeSpec`, what the build layer reads.

A spec is one variant of one recipe with every default filled in and every choice made:
the format version and ONNX opset are picked, the tile is a single ``spatial_dims``, ops are
normalised by :func:`czbuild.ops.validate_op`, ids are canonical, and every path is a POSIX
path relative to the project folder (so the digest does not depend on where the project is
checked out). Specs are frozen and reject unknown keys, so one can be read back from its
JSON form (``RecipeSpec.model_validate(json)``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SOURCE_KINDS",
    "MetadataSpec",
    "RecipeSpec",
    "SourceSpec",
    "TargetSpec",
    "VerifySpec",
]

SOURCE_KINDS = ("keras", "h5", "savedmodel", "factory")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSpec(_Frozen):
    """The model source.

    Attributes:
        kind: ``keras`` | ``h5`` | ``savedmodel`` | ``factory``.
        path: Project-relative POSIX path of the model file / SavedModel directory, or of
            the factory's ``.py`` file for ``kind == "factory"``.
        function: The factory function name (``kind == "factory"`` only).
        sha256: Pinned digest (lower-case hex) or None; see :func:`czbuild.recipe.source_sha256`.
        custom_objects: Project-relative ``.py`` files with custom objects.
    """

    kind: Literal["keras", "h5", "savedmodel", "factory"]
    path: str
    function: str | None = None
    sha256: str | None = None
    custom_objects: tuple[str, ...] = ()


class TargetSpec(_Frozen):
    """The ZEN release the recipe targets (informative once the version is picked)."""

    product: Literal["blue", "core"]
    version: str


class MetadataSpec(_Frozen):
    """Resolved metadata. CZANN-only keys are None for czmodel and vice versa.

    Attributes:
        type: Model type (czmodel: a semantic segmentation type).
        classes: Class names, or None (Regression).
        model_name: Display name (defaults to the recipe name).
        min_overlap: czann: ``(h, w)`` overlap, or None.
        scaling: czann >= 1.1.0: pixel size in metres, x, y(, z), or None.
        id: Pinned lower-case hyphenated UUID, or None (derived at packaging).
        license: Project-relative POSIX path of the licence file, or None.
        pixel_type: czmodel: pixel types, else None.
        color_handling: czmodel: colour handling, else None.
        border_size: czmodel: per-side border (default 0), else None.
    """

    type: str
    classes: tuple[str, ...] | None = None
    model_name: str
    min_overlap: tuple[int, int] | None = None
    scaling: tuple[float, ...] | None = None
    id: str | None = None
    license: str | None = None
    pixel_type: tuple[str, ...] | None = None
    color_handling: str | None = None
    border_size: int | None = None


class VerifySpec(_Frozen):
    """How the build verifies the artifact (the recipe's ``verify:`` section, defaults filled).

    Part of the spec digest: these settings decide which artifacts a build accepts.

    Attributes:
        tolerance: Maximum absolute difference (probability sums, fidelity, seams).
        tiling: Run the tiling checks.
        seed: Seed of every random test input.
        tiling_max_tile: Larger tiles are checked for seams on a proxy tile (0: never).
        overlap_analysis: Measure the receptive field and search the minimal overlap for
            every artifact, not only when ``tiling.seams`` fails.
        accept: Names of checks whose failure the recipe accepts (left out of the plain
            form and the digest when empty, so older specs keep their digest).
    """

    tolerance: float = 1e-5
    tiling: bool = True
    seed: int = 0
    tiling_max_tile: int = 256
    overlap_analysis: bool = False
    accept: tuple[str, ...] = Field((), exclude_if=lambda names: not names)


class RecipeSpec(_Frozen):
    """One fully resolved, validated recipe variant.

    Attributes:
        name: Recipe name (= recipe file stem).
        model: The model source.
        format: ``czann`` | ``czmodel``.
        format_version: e.g. ``2.1.0`` or ``3.0.0``.
        opset: ONNX opset, None for the SavedModel payload of legacy 3.0.0.
        target: The ZEN target, or None.
        spatial_dims: Fixed tile ``(h, w)``, or None (czann only: the model's own input size).
        preprocessing: Normalised op dicts applied before the model.
        postprocessing: Normalised op dicts applied after the model.
        metadata: The metadata.
        allow_experimental_types: Whether experimental model types were allowed.
        verify: The build's verification settings.
    """

    name: str
    model: SourceSpec
    format: Literal["czann", "czmodel"]
    format_version: str
    opset: int | None = None
    target: TargetSpec | None = None
    spatial_dims: tuple[int, int] | None = None
    preprocessing: tuple[dict[str, Any], ...] = ()
    postprocessing: tuple[dict[str, Any], ...] = ()
    metadata: MetadataSpec
    allow_experimental_types: bool = Field(False)
    verify: VerifySpec = Field(default_factory=lambda: VerifySpec())

    @property
    def extension(self) -> str:
        """File extension of the artifact without the dot: ``czann`` or ``czmodel``."""
        return self.format

    def to_plain(self) -> dict[str, Any]:
        """JSON-friendly dict without None values: the form digested and shown."""
        return self.model_dump(mode="json", exclude_none=True)
