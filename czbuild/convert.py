"""Library API: convert a model (Keras, ONNX or PyTorch) into a ``.czann`` / ``.czmodel`` file.

Two levels:

* the seed-compatible calls :func:`convert_from_model_spec` and :func:`convert_from_json_spec`;
* :class:`ConversionRequest` -> :func:`convert` -> :class:`ConversionResult`, used by the build
  layer (which passes one converter per model, :func:`czbuild.sources.dispatch.open_converter`,
  so a sweep loads and converts the model once).

Everything is validated before the file is written (atomically): the format version and
opset, the model's tile size, one float32 input and output, ``Classes`` against the output
channels, ``Type`` against the shapes, ``MinOverlap`` / ``BorderSize`` against the tile; a
pixel type whose channel count differs from the model input only logs a warning. TensorFlow
is imported lazily, on the first conversion.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from czbuild import ops as czops
from czbuild.errors import MetadataError, ModelError, SpecError
from czbuild.formats import vocab
from czbuild.formats.czann import CzannMetadata, spatial_ranks
from czbuild.formats.legacy import LegacyMetadata, border_problem
from czbuild.json_spec import read_json_spec
from czbuild.model_metadata import CzannModelMetadata, ModelMetadata, ModelSpec

if TYPE_CHECKING:  # pragma: no cover
    from czbuild.sources.dispatch import Converter
    from czbuild.sources.kinds import ConvertedModel

logger = logging.getLogger(__name__)

__all__ = [
    "ConversionRequest",
    "ConversionResult",
    "convert",
    "convert_from_json_spec",
    "convert_from_model_spec",
    "output_file",
    "package",
]

EXTENSIONS = {"czann": ".czann", "czmodel": ".czmodel"}


@dataclass(frozen=True)
class ConversionRequest:
    """Everything one conversion needs.

    Attributes:
        source: A model source (:mod:`czbuild.sources`): ``keras.Model``, a path (``.keras``,
            ``.h5``, SavedModel dir, ``.onnx``), a Keras factory ``"file.py:function"``, an
            :class:`~czbuild.sources.OnnxFile`, a :class:`~czbuild.sources.TorchFactory`, an
            ``onnx.ModelProto`` or a ``torch.nn.Module``.
        metadata: :class:`CzannMetadata` (shapes may be None: derived) or
            :class:`LegacyMetadata`; its version selects the format.
        preprocessing: Op dicts, czbuild layers or Keras layers, applied in order.
        postprocessing: Applied to the model output, in order.
        spatial_dims: ``(height, width)``, or ``(depth, height, width)`` for a 3D model (CZANN
            >= 2.0.0); None: the model's own size (or, for CZANN, the
            metadata ``InputShape`` when the model's size is undefined).
        opset: ONNX opset; None: ``vocab.DEFAULT_OPSET[version]``.
        license: Licence bytes to embed.
        custom_objects: Custom Keras objects for loading the model.
    """

    source: Any
    metadata: CzannMetadata | LegacyMetadata
    preprocessing: tuple[Any, ...] = ()
    postprocessing: tuple[Any, ...] = ()
    spatial_dims: tuple[int, ...] | None = None
    opset: int | None = None
    license: bytes | None = None
    custom_objects: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ConversionResult:
    """A written artifact.

    Attributes:
        path: The file written.
        metadata: The metadata as written (id and shapes filled in).
        sha256: Of the whole file.
        members: Member name -> sha256 of its bytes, in archive order.
        route: How the payload was made: ``specialized``, ``fixed`` or ``savedmodel``.
        opset: ONNX opset of the payload (None for a SavedModel).
        converted: The :class:`~czbuild.keras.converter.ConvertedModel` packaged (the
            build's payload cache keeps it).
    """

    path: Path
    metadata: CzannMetadata | LegacyMetadata
    sha256: str
    members: dict[str, str] = field(default_factory=dict)
    route: str = ""
    opset: int | None = None
    converted: Any = field(default=None, repr=False, compare=False)


# --- request-level validation -----------------------------------------------------------------


def _version_of(metadata: Any) -> tuple[str, str]:
    if isinstance(metadata, CzannMetadata):
        version = metadata.format_version
        if version not in vocab.CZANN_VERSIONS:
            raise MetadataError(
                "FormatVersion",
                f"unknown CZANN version {version!r}; known: {', '.join(vocab.CZANN_VERSIONS)}",
            )
        return "czann", version
    if isinstance(metadata, LegacyMetadata):
        if metadata.version not in vocab.LEGACY_VERSIONS:
            raise MetadataError(
                "Version",
                f"unknown legacy version {metadata.version!r}; known: "
                f"{', '.join(vocab.LEGACY_VERSIONS)}",
            )
        return "czmodel", metadata.version
    raise MetadataError(
        "metadata", f"must be CzannMetadata or LegacyMetadata, got {type(metadata).__name__}"
    )


def _resolve_opset(version: str, opset: int | None) -> int | None:
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int)):
        raise MetadataError("opset", f"must be an integer, got {opset!r}")
    if (problem := vocab.opset_problem(version, opset)) is not None:
        raise MetadataError("opset", problem)
    return vocab.DEFAULT_OPSET[version] if opset is None else opset


def _tile_for(
    request: ConversionRequest, converter: Converter, family: str, version: str
) -> tuple[int, ...] | None:
    """spatial_dims of the request, else the CZANN InputShape for models of undefined size."""
    if request.spatial_dims is not None:
        return tuple(request.spatial_dims)
    in_shape = converter.input_shape
    if all(d is not None for d in in_shape[:-1]):
        return None
    md = request.metadata
    if (
        isinstance(md, CzannMetadata)
        and md.input_shape is not None
        and len(md.input_shape) in (3, 4)
    ):
        return tuple(int(d) for d in md.input_shape[:-1])
    raise ModelError(
        f"model {converter.name!r} has undefined spatial dims {tuple(in_shape[:-1])}, but "
        f"format {version} stores a fixed tile size: pass spatial_dims=(h, w) (3D: (z, h, w))"
        + (" or set InputShape in the metadata" if family == "czann" else "")
    )


def _check_spatial_rank(
    family: str, version: str, tile: tuple[int, ...] | None, converter: Converter
) -> None:
    """Refuse a 3D model for a format that cannot hold it, before converting anything."""
    model_rank = len(converter.input_shape) - 1
    if model_rank != 3 and (tile is None or len(tile) != 3):
        return
    if family == "czmodel":
        raise ModelError(
            f"model {converter.name!r} is a 3D model (input [Z, H, W, C]), which legacy "
            f"czmodel {version} cannot hold (.czmodel files carry 2D models only); 3D needs "
            "CZANN >= 2.0.0: convert to format czann, format_version 2.0.0 or 2.1.0"
        )
    if 3 not in spatial_ranks(version):
        raise MetadataError(
            "InputShape",
            f"model {converter.name!r} is a 3D model ([Z, H, W, C] shapes), which CZANN "
            f"{version} cannot hold; 3D needs format version >= 2.0.0",
        )


def _check_czann(md: CzannMetadata, converted: ConvertedModel) -> CzannMetadata:
    for key, given, got in (
        ("InputShape", md.input_shape, converted.input_shape),
        ("OutputShape", md.output_shape, converted.output_shape),
    ):
        if given is not None and tuple(given) != tuple(got):
            raise MetadataError(
                key,
                f"{list(given)} does not match the converted model's "
                f"{list(got)}; fix {key}, or pass spatial_dims to rebuild the "
                "model at that tile size",
            )
    full = replace(
        md, input_shape=tuple(converted.input_shape), output_shape=tuple(converted.output_shape)
    )
    full.validate()
    return full


def _check_legacy(md: LegacyMetadata, converted: ConvertedModel) -> None:
    in_shape, out_shape = converted.input_shape, converted.output_shape
    if len(in_shape) != 3 or len(out_shape) != 3:
        raise ModelError(
            f"legacy CZMODEL files hold 2D models (H, W, C); the model maps "
            f"{in_shape} -> {out_shape}"
        )
    if out_shape[:2] != in_shape[:2]:
        raise ModelError(
            f"the model output {out_shape[:2]} must have the input's spatial size "
            f"{in_shape[:2]} for semantic segmentation (legacy CZMODEL)"
        )
    if len(md.classes) != out_shape[-1]:
        raise MetadataError(
            "Classes",
            f"{len(md.classes)} names but the model outputs "
            f"{out_shape[-1]} channels; give one class name per output channel",
        )
    if (problem := border_problem(md.border_size, (in_shape[0], in_shape[1]))) is not None:
        raise problem
    channels = sum(vocab.PIXEL_TYPE_CHANNELS.get(t, 0) for t in md.pixel_types)
    if channels != in_shape[-1]:
        logger.warning(
            "PixelType %s carries %d channel(s) but the model input has %d; check "
            "PixelType and ColorHandling",
            list(md.pixel_types),
            channels,
            in_shape[-1],
        )


def _member_hashes(path: Path) -> dict[str, str]:
    from czbuild.formats.container import open_container

    return {m.name: m.sha256 for m in open_container(path).members}


# --- convert ------------------------------------------------------------------------------------


def convert(
    request: ConversionRequest,
    out_path: str | os.PathLike[str],
    *,
    converter: Converter | None = None,
) -> ConversionResult:
    """Convert ``request.source`` and write the artifact to ``out_path`` (exact name).

    Args:
        request: What to convert and write.
        out_path: The file to write (atomically; an existing file is replaced only by a
            complete new one).
        converter: A converter for ``request.source`` to reuse (sweeps); a new one otherwise.

    Returns:
        The written artifact's description.

    Raises:
        MetadataError: Metadata invalid or inconsistent with the model (names the field).
        ModelError: The model cannot be loaded or rebuilt, or is undefined in size.
        ConversionError: ONNX / SavedModel export failed (never replaced by another payload).
    """
    from czbuild.sources.dispatch import open_converter

    family, version = _version_of(request.metadata)
    opset = _resolve_opset(version, request.opset)
    request.metadata.validate()  # the rules that need no model, before the expensive part
    if converter is None:
        converter = open_converter(request.source, custom_objects=request.custom_objects)
    _check_spatial_rank(family, version, request.spatial_dims, converter)
    tile = _tile_for(request, converter, family, version)
    steps = {
        "preprocessing": request.preprocessing,
        "postprocessing": request.postprocessing,
        "spatial_dims": tile,
    }
    if opset is None:
        converted = converter.savedmodel_zip(**steps)
    else:
        converted = converter.onnx(**steps, opset=opset)
    return package(request, converted, out_path)


def package(
    request: ConversionRequest,
    converted: ConvertedModel,
    out_path: str | os.PathLike[str],
) -> ConversionResult:
    """Check ``request.metadata`` against a finished payload and write the artifact.

    The second half of :func:`convert`, without TensorFlow: the build's payload cache
    re-packages a cached payload with new metadata through it, so the artifact is the one
    :func:`convert` would write.

    Raises:
        MetadataError, ModelError: The metadata does not fit the payload (names the field).
    """
    from czbuild.formats.archive import write_czann, write_czmodel

    family, version = _version_of(request.metadata)
    opset = _resolve_opset(version, request.opset)
    request.metadata.validate()
    path = Path(out_path)
    md = request.metadata
    written: CzannMetadata | LegacyMetadata
    if isinstance(md, CzannMetadata):
        full = _check_czann(md, converted)
        written = write_czann(path, full, converted.payload, request.license)
    else:
        _check_legacy(md, converted)
        written = write_czmodel(path, md, converted.payload, request.license)
    data = path.read_bytes()
    logger.info("wrote %s (%s %s, route %s)", path, family, version, converted.route)
    return ConversionResult(
        path=path,
        metadata=written,
        sha256=hashlib.sha256(data).hexdigest(),
        members=_member_hashes(path),
        route=converted.route,
        opset=opset,
        converted=converted,
    )


# --- seed-compatible API ------------------------------------------------------------------------


def output_file(output_path: str | os.PathLike[str], output_name: str, family: str) -> Path:
    """``<output_path>/<output_name>.<ext>``; an existing right extension is not doubled.

    Raises:
        MetadataError: ``output_name`` is empty or contains a path separator.
    """
    name = str(output_name).strip()
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise MetadataError("output_name", f"must be a plain file name, got {output_name!r}")
    ext = EXTENSIONS[family]
    accepted = (ext, ".czseg") if family == "czmodel" else (ext,)
    if not name.lower().endswith(accepted):
        name += ext
    return Path(output_path) / name


def _read_licence(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise MetadataError(
            "license_file", f"cannot read {str(path)!r}: {exc.strerror or exc}"
        ) from exc


def _metadata_for(spec: ModelSpec, format_version: str | None) -> CzannMetadata | LegacyMetadata:
    md = spec.model_metadata
    if isinstance(md, ModelMetadata):
        if format_version is not None and format_version not in vocab.LEGACY_VERSIONS:
            raise MetadataError(
                "format_version",
                f"{format_version!r} is not a legacy CZMODEL "
                f"version ({', '.join(vocab.LEGACY_VERSIONS)}); use "
                "CzannModelMetadata for .czann files",
            )
        return md.to_legacy(format_version)
    if isinstance(md, CzannModelMetadata):
        if format_version is not None and format_version not in vocab.CZANN_VERSIONS:
            raise MetadataError(
                "format_version",
                f"{format_version!r} is not a CZANN version "
                f"({', '.join(vocab.CZANN_VERSIONS)}); use ModelMetadata for "
                "legacy .czmodel files",
            )
        return md.to_czann(format_version)
    raise MetadataError(
        "model_metadata",
        "must be ModelMetadata (legacy .czmodel) or "
        f"CzannModelMetadata (.czann), got {type(md).__name__}",
    )


def convert_from_model_spec(
    spec: ModelSpec,
    output_path: str | os.PathLike[str],
    output_name: str = "DNNModel",
    *,
    preprocessing: Any = None,
    postprocessing: Any = None,
    spatial_dims: Sequence[int] | None = None,
    format_version: str | None = None,
    opset: int | None = None,
    custom_objects: Mapping[str, Any] | None = None,
) -> Path:
    """Convert a :class:`ModelSpec` into ``<output_path>/<output_name>.czmodel|.czann``.

    Args:
        spec: Model, metadata (its class decides the family) and licence.
        output_path: Folder to write to (created if missing).
        output_name: File name without extension.
        preprocessing: One step or a list (op dicts or layers), applied before the model.
        postprocessing: One step or a list, applied after the model.
        spatial_dims: ``(height, width)`` to rebuild the model at; required for models with
            undefined height/width (CZANN: unless ``InputShape`` is given).
        format_version: Overrides the metadata's version (``3.0.0`` writes a SavedModel).
        opset: ONNX opset; default per format version.
        custom_objects: Custom Keras objects needed to load the model.

    Returns:
        The path written.

    Raises:
        MetadataError, ModelError, ConversionError: see :func:`convert`.
    """
    metadata = _metadata_for(spec, format_version)
    family, _ = _version_of(metadata)
    request = ConversionRequest(
        source=spec.model,
        metadata=metadata,
        preprocessing=czops.as_chain(preprocessing),
        postprocessing=czops.as_chain(postprocessing),
        spatial_dims=tuple(spatial_dims) if spatial_dims is not None else None,
        opset=opset,
        license=_read_licence(spec.licence_path),
        custom_objects=custom_objects,
    )
    return convert(request, output_file(output_path, output_name, family)).path


def convert_from_json_spec(
    spec_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    output_name: str | None = None,
    **kwargs: Any,
) -> Path:
    """Convert the model a JSON spec describes (legacy flat or CZANN nested, format §4).

    Relative paths in the spec are resolved against the spec file's folder.

    Args:
        spec_path: The JSON spec file.
        output_path: Folder to write to.
        output_name: File name without extension; default: the spec file's stem.
        **kwargs: As :func:`convert_from_model_spec` (``preprocessing``, ``spatial_dims``,
            ``format_version``, ``opset``, ``custom_objects``).

    Returns:
        The path written.

    Raises:
        SpecError: The spec is invalid, or its metadata does not fit the model (names the
            file and the key).
        ModelError, ConversionError: see :func:`convert`.
    """
    path = Path(spec_path)
    spec = read_json_spec(path)
    name = output_name if output_name is not None else path.stem
    try:
        return convert_from_model_spec(spec.model_spec, output_path, name, **kwargs)
    except MetadataError as exc:
        if exc.field in ("output_name", "format_version", "opset"):
            raise
        raise SpecError(f"{path}: {exc}") from exc
