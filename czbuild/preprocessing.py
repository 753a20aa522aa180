"""Preprocessing and postprocessing layers, under the seed API's import path.

``from czbuild.preprocessing import RgbToBgr`` as in ZEISS's czmodel. The layers live in
:mod:`czbuild.keras.preprocessing`; this module re-exports them lazily (importing it imports
nothing; the first layer asked for imports TensorFlow). The maths of each is in
``docs/library.md`` and its NumPy reference in :mod:`czbuild.ops`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from czbuild.keras.preprocessing import (
        Clip,
        MinMaxNormalization,
        Normalization,
        PercentileNormalization,
        PerImageStandardization,
        RgbaToBgra,
        RgbToBgr,
        Scale,
        ScaleRange,
        Shift,
        Sigmoid,
        SigmoidToSoftmaxScores,
        TransposeChannels,
        layer_from_op,
        op_from_layer,
    )

__all__ = [
    "Clip",
    "MinMaxNormalization",
    "Normalization",
    "PerImageStandardization",
    "PercentileNormalization",
    "RgbToBgr",
    "RgbaToBgra",
    "Scale",
    "ScaleRange",
    "Shift",
    "Sigmoid",
    "SigmoidToSoftmaxScores",
    "TransposeChannels",
    "layer_from_op",
    "op_from_layer",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'czbuild.preprocessing' has no attribute {name!r}")
    return getattr(importlib.import_module("czbuild.keras.preprocessing"), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
