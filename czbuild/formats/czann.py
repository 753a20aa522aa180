"""CZANN ``model.json`` metadata: model, validation, canonical JSON (czmodel-format.md 2.2-2.3, 6).

:class:`CzannMetadata` holds the metadata of one ``.czann`` file for any CZANN version.
:meth:`CzannMetadata.validate` applies the section 6 rules that need no model;
:meth:`CzannMetadata.to_json_bytes` writes the canonical form of section 2.3 byte for byte;
:meth:`CzannMetadata.from_json_dict` reads any version, inferring it when ``FormatVersion``
is missing.
"""

from __future__ import annotations

import json
import math
import numbers
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from czbuild.errors import MetadataError
from czbuild.formats import vocab
from czbuild.formats.ids import uuid_problem
from czbuild.formats.text import display_text_problem

#: Keys of ``model.json`` per CZANN version, in canonical order: 1.1.0 adds ``Scaling``, 2.0.0
#: keeps them, 2.1.0 puts ``FormatVersion`` first.
_KEYS_1_0: Final = ("Id", "Type", "InputShape", "OutputShape", "MinOverlap", "Classes", "ModelName")
KEYS_BY_VERSION: Final = {
    "1.0.0": _KEYS_1_0,
    "1.1.0": (*_KEYS_1_0, "Scaling"),
    "2.0.0": (*_KEYS_1_0, "Scaling"),
    "2.1.0": ("FormatVersion", *_KEYS_1_0, "Scaling"),
}
#: Keys every version requires (``FormatVersion`` is required by 2.1.0 as well).
REQUIRED_KEYS: Final = ("Id", "Type", "InputShape", "OutputShape")

# Types whose output is an image of the input's spatial size (section 6 rule 7).
_SAME_SPATIAL_TYPES: Final = tuple(t for t in vocab.MODEL_TYPES if t.endswith("Segmentation")) + (
    "Regression",
)
# Types whose last output dim counts classes (section 6 rule 6).
_CLASS_TYPES: Final = tuple(
    t for t in vocab.MODEL_TYPES if t.endswith(("Segmentation", "Classification"))
)
_FIRST_3D_VERSION: Final = "2.0.0"
#: How many ``Scaling`` values each CZANN version takes (x, y(, z)); none in 1.0.0.
SCALING_COUNTS: Final = {"1.0.0": (), "1.1.0": (2,), "2.0.0": (2, 3), "2.1.0": (2, 3)}
#: The fewest class names a classifying model has (background included).
MIN_CLASSES: Final = 2


def spatial_ranks(version: str) -> tuple[int, ...]:
    """The spatial ranks (2D, 3D) CZANN ``version`` can carry."""
    return (2, 3) if _version_key(version) >= _version_key(_FIRST_3D_VERSION) else (2,)


def _is_sequence(value: object) -> bool:
    return (
        hasattr(value, "__len__")
        and hasattr(value, "__iter__")
        and not isinstance(value, (str, bytes, Mapping))
    )


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def infer_version(doc: Mapping[str, Any]) -> str:
    """Infer the CZANN version of a ``model.json`` object without ``FormatVersion`` (2.2).

    A 3-item ``Scaling`` or 4-item (3D) shapes need 2.0.0, any other ``Scaling`` needs 1.1.0;
    otherwise the lowest version, 1.0.0, is reported (the keys are identical up to 2.0.0).

    Args:
        doc: The parsed ``model.json`` object.

    Returns:
        ``"2.1.0"`` if the document says so, else the inferred version.
    """
    if doc.get("FormatVersion") is not None:
        return str(doc["FormatVersion"])
    scaling = doc.get("Scaling")
    shapes = (doc.get("InputShape"), doc.get("OutputShape"))
    if isinstance(scaling, list) and len(scaling) == 3:
        return "2.0.0"
    if any(isinstance(s, list) and len(s) == 4 for s in shapes):
        return "2.0.0"
    if scaling is not None:
        return "1.1.0"
    return "1.0.0"


# --- rules shared with the recipe layer (it maps the JSON key to its own key) --------------


def min_overlap_problem(
    overlap: Any, *, tile: tuple[int, ...] | None = None, rank: int | None = None
) -> MetadataError | None:
    """The first ``MinOverlap`` problem: integers, one per spatial dim, even, below the tile.

    Args:
        overlap: The value (None: nothing to check).
        tile: The spatial dims of ``InputShape`` when known (they fix the count too).
        rank: The number of spatial dims when ``tile`` is unknown (None: 2 or 3).
    """
    if overlap is None:
        return None
    if not isinstance(overlap, tuple) or not all(_is_int(v) for v in overlap):
        return MetadataError("MinOverlap", f"must be an array of integers, got {overlap!r}")
    counts = (len(tile),) if tile is not None else (rank,) if rank is not None else (2, 3)
    if len(overlap) not in counts:
        need = " or ".join(map(str, counts))
        shape = f" for the tile {list(tile)}" if tile is not None else ""
        return MetadataError(
            "MinOverlap",
            f"{len(overlap)} value(s) given; give one per spatial dim: {need} values{shape}",
        )
    for i, value in enumerate(overlap):
        if value < 0 or value % 2:
            return MetadataError(
                "MinOverlap",
                f"{value} must be even and >= 0 (it is 2 x the border hidden on each side)",
                index=i,
            )
        if tile is not None and value >= tile[i]:
            return MetadataError(
                "MinOverlap",
                f"overlap {value} is not smaller than the tile size {tile[i]}; use a smaller "
                "overlap or a larger tile",
                index=i,
            )
    return None


def classes_problem(classes: Any, model_type: str) -> MetadataError | None:
    """The first ``Classes`` problem that needs no model: absent for regression, >= 2 names,
    no empty or duplicate names."""
    if model_type in vocab.REGRESSION_TYPES:
        if classes is not None:
            return MetadataError("Classes", f"{model_type} models have no classes; remove them")
        return None
    if classes is None:
        return None
    if not isinstance(classes, tuple) or not all(isinstance(c, str) for c in classes):
        return MetadataError("Classes", f"must be an array of strings, got {classes!r}")
    if len(classes) < MIN_CLASSES:
        return MetadataError(
            "Classes",
            f"{len(classes)} class name(s) given; segmentation needs at least {MIN_CLASSES} "
            "(include the background)",
        )
    for i, name in enumerate(classes):
        if not name.strip():
            return MetadataError("Classes", "class names must not be empty", index=i)
        if why := display_text_problem(name):
            return MetadataError("Classes", f"class name {name!r} {why}", index=i)
        if name in classes[:i]:
            return MetadataError("Classes", f"duplicate class name {name!r}", index=i)
    return None


def scaling_problem(scaling: Any, version: str) -> MetadataError | None:
    """The first ``Scaling`` problem for CZANN ``version``: none in 1.0.0, exactly 2 values in
    1.1.0, 2 or 3 from 2.0.0, each finite and > 0 (metres)."""
    if scaling is None:
        return None
    allowed = SCALING_COUNTS[version]
    if not allowed:
        return MetadataError(
            "Scaling",
            f"CZANN {version} has no Scaling; use format version 1.1.0 or newer, or remove it",
        )
    if not isinstance(scaling, tuple) or not all(_is_real(v) for v in scaling):
        return MetadataError("Scaling", f"must be an array of numbers, got {scaling!r}")
    if len(scaling) not in allowed:
        need = "exactly 2 values [x, y]" if allowed == (2,) else "2 or 3 values [x, y(, z)]"
        extra = "; 3 values need version >= 2.0.0" if len(scaling) == 3 else ""
        return MetadataError(
            "Scaling", f"{len(scaling)} value(s) given; CZANN {version} takes {need}{extra}"
        )
    for i, value in enumerate(scaling):
        if not math.isfinite(value) or value <= 0:
            return MetadataError(
                "Scaling",
                f"{value!r}: pixel sizes are in metres; each must be > 0 and finite",
                index=i,
            )
    return None


@dataclass(frozen=True)
class CzannMetadata:
    """Metadata of a ``.czann`` file (the content of ``model.json``).

    Sequence fields given as lists are stored as tuples. Shapes are channels-last without
    the batch dim; ``None`` shapes are allowed only before conversion.

    Attributes:
        type: ``Type``, one of :data:`vocab.MODEL_TYPES`.
        input_shape: ``InputShape``, ``(H, W, C)`` or ``(Z, H, W, C)``.
        output_shape: ``OutputShape``, ``(H, W, N)`` or ``(Z, H, W, N)``.
        classes: ``Classes``, class names (absent for ``Regression``).
        min_overlap: ``MinOverlap``, one even value >= 0 per spatial dim.
        model_name: ``ModelName``, display name.
        scaling: ``Scaling``, pixel size in metres, order x, y(, z).
        id: ``Id``, a UUID; ``None`` means "derive at packaging".
        format_version: The CZANN version to write; ``FormatVersion`` appears only for 2.1.0.
    """

    type: str
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None
    classes: tuple[str, ...] | None = None
    min_overlap: tuple[int, ...] | None = None
    model_name: str | None = None
    scaling: tuple[float, ...] | None = None
    id: str | None = None
    format_version: str = vocab.DEFAULT_CZANN_VERSION

    def __post_init__(self) -> None:
        for name in ("input_shape", "output_shape", "classes", "min_overlap", "scaling"):
            value = getattr(self, name)
            if _is_sequence(value) and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))  # lists, NumPy arrays, ...

    # --- validation ----------------------------------------------------------------------

    def validate(self, *, allow_experimental_types: bool = False) -> None:
        """Check the section 6 rules that need no model.

        Shape-dependent rules are skipped while the shapes are still ``None``.

        Args:
            allow_experimental_types: Accept types whose output encoding is unpublished
                (instance segmentation, classification, object detection).

        Raises:
            MetadataError: For the first violation; its message starts with the JSON key.
        """
        problems = self.problems(allow_experimental_types=allow_experimental_types)
        if problems:
            raise problems[0]

    def problems(self, *, allow_experimental_types: bool = False) -> list[MetadataError]:
        """All violations :meth:`validate` would raise, in key order (empty if valid)."""
        out: list[MetadataError] = []

        def bad(key: str | MetadataError, message: str = "") -> None:
            out.append(key if isinstance(key, MetadataError) else MetadataError(key, message))

        version = self.format_version
        version_ok = version in vocab.CZANN_VERSIONS
        if not version_ok:
            bad(
                "FormatVersion",
                f"unknown CZANN version {version!r}"
                + vocab.did_you_mean(version, vocab.CZANN_VERSIONS),
            )
        if self.id is not None and (why := uuid_problem(self.id)):
            bad("Id", why)
        self._check_type(bad, allow_experimental_types)
        shapes_ok = self._check_shapes(bad, version if version_ok else None)
        self._check_min_overlap(bad, shapes_ok)
        self._check_classes(bad, shapes_ok)
        if self.model_name is not None:
            if not isinstance(self.model_name, str):
                bad("ModelName", f"must be a string, got {type(self.model_name).__name__}")
            elif not self.model_name.strip():
                bad("ModelName", "must not be empty; give a display name or leave it out")
            elif why := display_text_problem(self.model_name):
                bad("ModelName", f"{self.model_name!r} {why}")
        if version_ok:
            self._check_scaling(bad, version)
        return out

    def _check_type(self, bad: Any, allow_experimental: bool) -> None:
        if self.type not in vocab.MODEL_TYPES:
            bad(
                "Type",
                f"unknown model type {self.type!r}"
                + vocab.did_you_mean(self.type, vocab.MODEL_TYPES),
            )
        elif self.type in vocab.EXPERIMENTAL_TYPES and not allow_experimental:
            bad(
                "Type",
                f"{self.type}: the output encoding ZEN expects is unpublished; set "
                "allow_experimental_types: true (recipe) or allow_experimental_types=True "
                "(library) to build it anyway",
            )

    def _check_shapes(self, bad: Any, version: str | None) -> bool:
        ok = True
        for key, shape in (("InputShape", self.input_shape), ("OutputShape", self.output_shape)):
            if shape is None:
                ok = False
                continue
            if not isinstance(shape, tuple) or not all(_is_int(v) for v in shape):
                bad(key, f"must be an array of integers, got {shape!r}")
                ok = False
            elif not 3 <= len(shape) <= 4:
                bad(
                    key,
                    f"must have 3 items [H, W, C] or 4 items [Z, H, W, C] (no batch dim), "
                    f"got {len(shape)}: {list(shape)}",
                )
                ok = False
            elif any(v < 1 for v in shape):
                bad(key, f"every dim must be >= 1, got {list(shape)}")
                ok = False
            elif (
                len(shape) == 4
                and version is not None
                and _version_key(version) < _version_key(_FIRST_3D_VERSION)
            ):
                bad(
                    key,
                    f"3D shapes (4 items) need format version >= {_FIRST_3D_VERSION}, "
                    f"target is {version}",
                )
                ok = False
        if not ok:
            return False
        assert self.input_shape is not None and self.output_shape is not None
        if len(self.input_shape) != len(self.output_shape):
            bad(
                "OutputShape",
                f"has {len(self.output_shape)} items but InputShape has "
                f"{len(self.input_shape)}; both must be 2D [H, W, C] or both 3D [Z, H, W, C]",
            )
            return False
        if self.type in _SAME_SPATIAL_TYPES and self.output_shape[:-1] != self.input_shape[:-1]:
            bad(
                "OutputShape",
                f"spatial dims {list(self.output_shape[:-1])} must equal "
                f"InputShape's {list(self.input_shape[:-1])} for Type {self.type}",
            )
        return True

    def _check_min_overlap(self, bad: Any, shapes_ok: bool) -> None:
        spatial = self.input_shape[:-1] if shapes_ok and self.input_shape else None
        if (problem := min_overlap_problem(self.min_overlap, tile=spatial)) is not None:
            bad(problem)

    def _check_classes(self, bad: Any, shapes_ok: bool) -> None:
        out_dim = self.output_shape[-1] if shapes_ok and self.output_shape else None
        if self.type in _CLASS_TYPES and out_dim is not None and out_dim < 2:
            bad(
                "OutputShape",
                f"Type {self.type} needs >= 2 class channels, got {out_dim}; "
                "a 1-channel sigmoid head needs the sigmoid_to_softmax_scores postprocessing",
            )
        if (problem := classes_problem(self.classes, self.type)) is not None:
            bad(problem)
        elif self.classes is not None and out_dim is not None and len(self.classes) != out_dim:
            bad(
                "Classes",
                f"{len(self.classes)} names but the last OutputShape dim is {out_dim}; "
                "give one name per output channel",
            )

    def _check_scaling(self, bad: Any, version: str) -> None:
        if (problem := scaling_problem(self.scaling, version)) is not None:
            bad(problem)

    # --- serialisation -------------------------------------------------------------------

    def to_json_dict(self, *, include_id: bool = True) -> dict[str, Any]:
        """The ``model.json`` object: only keys of :attr:`format_version`, canonical order.

        Args:
            include_id: Leave ``Id`` out when False (the basis of :func:`derive_id`).

        Returns:
            A new dict with plain ``int`` / ``float`` / ``str`` / ``list`` values.

        Raises:
            MetadataError: If the id (when included) or a shape is missing, the version is
                unknown, a value has the wrong type, or a key is not part of the version.
        """
        version = self.format_version
        if version not in vocab.CZANN_VERSIONS:
            raise MetadataError(
                "FormatVersion",
                f"unknown CZANN version {version!r}"
                + vocab.did_you_mean(version, vocab.CZANN_VERSIONS),
            )
        doc: dict[str, Any] = {}
        if version == "2.1.0":
            doc["FormatVersion"] = version
        if include_id:
            if self.id is None:
                raise MetadataError(
                    "Id",
                    "not set; write_czann derives it from the content, or pass id=... explicitly",
                )
            doc["Id"] = _string("Id", self.id).lower()
        doc["Type"] = _string("Type", self.type)
        for key, shape in (("InputShape", self.input_shape), ("OutputShape", self.output_shape)):
            if shape is None:
                raise MetadataError(key, "not set; shapes are filled in from the converted model")
            doc[key] = _int_list(key, shape)
        if self.min_overlap is not None:
            doc["MinOverlap"] = _int_list("MinOverlap", self.min_overlap)
        if self.classes is not None:
            doc["Classes"] = [_string("Classes", c) for c in _sequence("Classes", self.classes)]
        if self.model_name is not None:
            doc["ModelName"] = _string("ModelName", self.model_name)
        if self.scaling is not None:
            if "Scaling" not in KEYS_BY_VERSION[version]:
                raise MetadataError(
                    "Scaling", f"is not part of CZANN {version}; target version >= 1.1.0 or drop it"
                )
            doc["Scaling"] = [_number("Scaling", v) for v in _sequence("Scaling", self.scaling)]
        return doc

    def to_json_bytes(self, *, include_id: bool = True) -> bytes:
        """The canonical ``model.json`` bytes of section 2.3.

        One line, separators ``", "`` / ``": "``, ASCII with ``\\uXXXX`` escapes, shortest
        round-trip floats, ints kept as ints, no trailing newline.

        Args:
            include_id: Leave ``Id`` out when False (the basis of :func:`derive_id`).

        Raises:
            MetadataError: See :meth:`to_json_dict`; also for NaN / Infinity.
        """
        doc = self.to_json_dict(include_id=include_id)
        text = json.dumps(doc, ensure_ascii=True, separators=(", ", ": "), allow_nan=False)
        return text.encode("ascii")

    def with_id(self, id: str) -> CzannMetadata:
        """A copy with ``id`` set."""
        return replace(self, id=id)

    # --- reading -------------------------------------------------------------------------

    @classmethod
    def from_json_dict(
        cls, d: Mapping[str, Any], *, format_version: str | None = None
    ) -> CzannMetadata:
        """Read a ``model.json`` object of any version (tolerant reader).

        Unknown keys are ignored and ``null`` counts as absent. Values are not checked
        against the rules: call :meth:`validate` for that.

        Args:
            d: The parsed JSON object.
            format_version: Force this version (e.g. a build target); otherwise
                ``FormatVersion`` is used, or the version is inferred (:func:`infer_version`).

        Returns:
            The metadata; ``id`` is None if the document has no ``Id``.

        Raises:
            MetadataError: If ``d`` is not an object, a required key (``Type``,
                ``InputShape``, ``OutputShape``) is missing or a value has the wrong JSON type.
        """
        if not isinstance(d, Mapping):
            raise MetadataError("", f"model metadata must be a JSON object, got {type(d).__name__}")
        if format_version is None:
            declared = d.get("FormatVersion")
            if declared is not None and not isinstance(declared, str):
                raise MetadataError("FormatVersion", f"must be a string, got {declared!r}")
            format_version = infer_version(d)
        for key in ("Type", "InputShape", "OutputShape"):
            if d.get(key) is None:
                raise MetadataError(key, "required key is missing")
        ident = d.get("Id")
        if ident is not None and not isinstance(ident, str):
            raise MetadataError("Id", f"must be a string, got {ident!r}")
        name = d.get("ModelName")
        if name is not None and not isinstance(name, str):
            raise MetadataError("ModelName", f"must be a string, got {name!r}")
        typ = d["Type"]
        if not isinstance(typ, str):
            raise MetadataError("Type", f"must be a string, got {typ!r}")
        return cls(
            type=typ,
            input_shape=_read_ints(d, "InputShape"),
            output_shape=_read_ints(d, "OutputShape"),
            classes=_read_array(d, "Classes", "strings", lambda v: isinstance(v, str)),
            min_overlap=_read_ints(d, "MinOverlap"),
            model_name=name,
            scaling=_read_array(d, "Scaling", "numbers", _is_real),
            id=ident,
            format_version=format_version,
        )


# --- value helpers -----------------------------------------------------------------------


def _sequence(key: str, value: object) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise MetadataError(key, f"must be an array, got {value!r}")
    return tuple(value)


def _string(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise MetadataError(key, f"must be a string, got {value!r}")
    return value


def _int_list(key: str, value: object) -> list[int]:
    out = []
    for item in _sequence(key, value):
        if not _is_int(item):
            raise MetadataError(key, f"must be an array of integers, got {item!r}")
        out.append(operator.index(item))
    return out


def _number(key: str, value: object) -> int | float:
    if _is_int(value):
        return operator.index(value)  # type: ignore[arg-type]
    if not _is_real(value):
        raise MetadataError(key, f"must be an array of numbers, got {value!r}")
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        raise MetadataError(key, f"NaN / Infinity cannot be written to JSON, got {number!r}")
    return number


def _read_array(
    d: Mapping[str, Any], key: str, what: str, ok: Callable[[Any], bool]
) -> tuple[Any, ...] | None:
    """``d[key]`` as a tuple, or None if absent; each item must pass ``ok`` (``what`` names it)."""
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise MetadataError(key, f"must be a JSON array, got {value!r}")
    if not all(ok(v) for v in value):
        raise MetadataError(key, f"must be an array of {what}, got {value!r}")
    return tuple(value)


def _read_ints(d: Mapping[str, Any], key: str) -> tuple[int, ...] | None:
    value = _read_array(d, key, "integers", _is_int)
    return None if value is None else tuple(int(v) for v in value)
