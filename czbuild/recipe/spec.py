"""The resolved recipe: :class:`RecipeSpec`, what the build layer reads.

A spec is one variant of one recipe with every default filled in and every choice made:
the format version and ONNX opset are picked, the tile is a single ``spatial_dims``, ops are
normalised by :func:`czbuild.ops.validate_op`, ids are canonical, and every path is a POSIX
path relative to the project folder (so the digest does not depend on where the project is
checked out).

Specs are plain frozen dataclasses (no pydantic): the recipe schema
(:mod:`czbuild.recipe.schema`) validates what users write; a spec is only ever built by the
resolver or read back from its own JSON form (:meth:`RecipeSpec.from_plain`, e.g. from the
build's variant cache), so a no-op build needs neither pydantic nor Hydra.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from czbuild.verify.settings import VerifySettings

#: How a recipe names its model source (``SourceSpec.kind``).
SourceKind = Literal["keras", "h5", "savedmodel", "factory", "onnx", "torch"]
#: The artifact family (``RecipeSpec.format``).
Family = Literal["czann", "czmodel"]

__all__ = [
    "SOURCE_KINDS",
    "MetadataSpec",
    "RecipeSpec",
    "SourceSpec",
    "TargetSpec",
    "VerifySettings",
]

SOURCE_KINDS = ("keras", "h5", "savedmodel", "factory", "onnx", "torch")


def _tuple(value: Any) -> Any:
    """A list (from JSON) as a tuple, recursively; None and scalars unchanged."""
    if isinstance(value, (list, tuple)):
        return tuple(_tuple(v) for v in value)
    return value


def _plain(value: Any) -> Any:
    """The JSON form: dataclasses as dicts without None fields, tuples as lists."""
    if hasattr(value, "to_plain"):
        return value.to_plain()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


class _Plain:
    """``to_plain`` for the spec dataclasses (None fields left out, like the digest form)."""

    def to_plain(self) -> dict[str, Any]:
        """JSON-friendly dict without None values: the form digested and shown."""
        return {
            f.name: _plain(getattr(self, f.name))
            for f in fields(self)  # type: ignore[arg-type]
            if getattr(self, f.name) is not None
        }

    @classmethod
    def _check_keys(cls, data: Mapping[str, Any], where: str) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}.{unknown[0]}: unknown key in a resolved spec")
        return dict(data)


@dataclass(frozen=True)
class SourceSpec(_Plain):
    """The model source.

    Attributes:
        kind: ``keras`` | ``h5`` | ``savedmodel`` | ``factory`` (Keras) | ``onnx`` | ``torch``.
        path: Project-relative POSIX path of the model file / SavedModel directory / ONNX
            file, or of the factory's ``.py`` file for ``factory`` and ``torch``.
        function: The factory function name (``factory`` and ``torch`` only).
        sha256: Pinned digest (lower-case hex) or None; see :func:`czbuild.recipe.source_sha256`.
        custom_objects: Project-relative ``.py`` files, or ``module:attribute`` names, with
            custom objects (Keras kinds only).
        channels_first: ``onnx`` / ``torch``: whether the model takes ``[N, C, spatial...]``
            (None: the kind's default, left out of the digest).
        inputs: Project-relative files / folders the model also depends on (``model.inputs``),
            or None when there are none (left out of the digest form).
    """

    kind: SourceKind
    path: str
    function: str | None = None
    sha256: str | None = None
    custom_objects: tuple[str, ...] = ()
    inputs: tuple[str, ...] | None = None
    channels_first: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "custom_objects", _tuple(self.custom_objects))
        object.__setattr__(self, "inputs", _tuple(self.inputs) or None)

    @classmethod
    def from_plain(cls, data: Mapping[str, Any]) -> SourceSpec:
        """From :meth:`to_plain`'s form (lists become tuples)."""
        return cls(**cls._check_keys(data, "model"))


@dataclass(frozen=True)
class TargetSpec(_Plain):
    """The ZEN release the recipe targets (informative once the version is picked)."""

    product: Literal["blue", "core"]
    version: str

    @classmethod
    def from_plain(cls, data: Mapping[str, Any]) -> TargetSpec:
        """From :meth:`to_plain`'s form."""
        return cls(**cls._check_keys(data, "target"))


@dataclass(frozen=True)
class MetadataSpec(_Plain):
    """Resolved metadata. CZANN-only keys are None for czmodel and vice versa.

    Attributes:
        type: Model type (czmodel: a semantic segmentation type).
        model_name: Display name (defaults to the recipe name).
        classes: Class names, or None (Regression).
        min_overlap: czann: ``(h, w)`` (3D: ``(z, h, w)``) overlap, or None.
        scaling: czann >= 1.1.0: pixel size in metres, x, y(, z), or None.
        id: Pinned lower-case hyphenated UUID, or None (derived at packaging).
        license: Project-relative POSIX path of the licence file, or None.
        pixel_type: czmodel: pixel types, else None.
        color_handling: czmodel: colour handling, else None.
        border_size: czmodel: per-side border (default 0), else None.
    """

    type: str
    model_name: str
    classes: tuple[str, ...] | None = None
    min_overlap: tuple[int, ...] | None = None
    scaling: tuple[float, ...] | None = None
    id: str | None = None
    license: str | None = None
    pixel_type: tuple[str, ...] | None = None
    color_handling: str | None = None
    border_size: int | None = None

    def __post_init__(self) -> None:
        for name in ("classes", "min_overlap", "pixel_type"):
            object.__setattr__(self, name, _tuple(getattr(self, name)))
        if self.scaling is not None:
            object.__setattr__(self, "scaling", tuple(float(v) for v in self.scaling))

    @classmethod
    def from_plain(cls, data: Mapping[str, Any]) -> MetadataSpec:
        """From :meth:`to_plain`'s form (lists become tuples)."""
        return cls(**cls._check_keys(data, "metadata"))


@dataclass(frozen=True)
class RecipeSpec(_Plain):
    """One fully resolved, validated recipe variant.

    Attributes:
        name: Recipe name (= recipe file stem).
        model: The model source.
        format: ``czann`` | ``czmodel``.
        format_version: e.g. ``2.1.0`` or ``3.0.0``.
        metadata: The metadata.
        opset: ONNX opset, None for the SavedModel payload of legacy 3.0.0.
        target: The ZEN target, or None.
        spatial_dims: Fixed tile ``(h, w)`` or ``(z, h, w)``, or None (czann only: the
            model's own input size).
        preprocessing: Normalised op dicts applied before the model.
        postprocessing: Normalised op dicts applied after the model.
        allow_experimental_types: Whether experimental model types were allowed.
        verify: The build's verification settings (part of the digest: they decide which
            artifacts a build accepts).
    """

    name: str
    model: SourceSpec
    format: Family
    format_version: str
    metadata: MetadataSpec
    opset: int | None = None
    target: TargetSpec | None = None
    spatial_dims: tuple[int, ...] | None = None
    preprocessing: tuple[dict[str, Any], ...] = ()
    postprocessing: tuple[dict[str, Any], ...] = ()
    allow_experimental_types: bool = False
    verify: VerifySettings = field(default_factory=VerifySettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "spatial_dims", _tuple(self.spatial_dims))
        for name in ("preprocessing", "postprocessing"):
            object.__setattr__(self, name, tuple(dict(op) for op in getattr(self, name)))

    @property
    def extension(self) -> str:
        """File extension of the artifact without the dot: ``czann`` or ``czmodel``."""
        return self.format

    @classmethod
    def from_plain(cls, data: Mapping[str, Any]) -> RecipeSpec:
        """A spec from its JSON form (:meth:`to_plain`), e.g. read back from a cache.

        Raises:
            ValueError: The data is not a spec's JSON form (names the key).
            KeyError: A required key is missing.
        """
        d = cls._check_keys(data, "spec")
        d["model"] = SourceSpec.from_plain(d["model"])
        d["metadata"] = MetadataSpec.from_plain(d["metadata"])
        if d.get("target") is not None:
            d["target"] = TargetSpec.from_plain(d["target"])
        if "verify" in d:
            d["verify"] = VerifySettings.from_plain(d["verify"])
        return cls(**d)
