"""czbuild: reproducible ZEISS ZEN Intellesis model files (.czann / .czmodel) from Keras models.

The public names are re-exported lazily: ``import czbuild`` is cheap and never imports
TensorFlow; TensorFlow is imported by the first conversion.

Library use (the seed's API)::

    from czbuild.model_metadata import ModelMetadata, ModelSpec
    from czbuild.convert import convert_from_model_spec

    metadata = ModelMetadata.from_params(name="Nuclei", color_handling="ConvertToMonochrome",
                                         pixel_type="Gray16", classes=["Background", "Nucleus"],
                                         border_size=16)
    convert_from_model_spec(ModelSpec(model=model, model_metadata=metadata), "out", "Nuclei")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    # library API
    "ModelMetadata": "czbuild.model_metadata",
    "CzannModelMetadata": "czbuild.model_metadata",
    "ModelSpec": "czbuild.model_metadata",
    "read_json_spec": "czbuild.json_spec",
    "ConversionRequest": "czbuild.convert",
    "ConversionResult": "czbuild.convert",
    "convert_from_model_spec": "czbuild.convert",
    "convert_from_json_spec": "czbuild.convert",
    # formats (no TensorFlow)
    "CzannMetadata": "czbuild.formats",
    "LegacyMetadata": "czbuild.formats",
    "inspect": "czbuild.formats",
    "unpack": "czbuild.formats",
    "read_artifact": "czbuild.formats",
    # converting many variants of one model
    "ModelConverter": "czbuild.keras.converter",
    "ConvertedModel": "czbuild.keras.converter",
    # errors
    "CzbuildError": "czbuild.errors",
    "ConversionError": "czbuild.errors",
    "MetadataError": "czbuild.errors",
    "ModelError": "czbuild.errors",
    "SpecError": "czbuild.errors",
}

__all__ = [
    "ConversionError",
    "ConversionRequest",
    "ConversionResult",
    "ConvertedModel",
    "CzannMetadata",
    "CzannModelMetadata",
    "CzbuildError",
    "LegacyMetadata",
    "MetadataError",
    "ModelConverter",
    "ModelError",
    "ModelMetadata",
    "ModelSpec",
    "SpecError",
    "__version__",
    "convert_from_json_spec",
    "convert_from_model_spec",
    "inspect",
    "read_artifact",
    "read_json_spec",
    "unpack",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'czbuild' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
