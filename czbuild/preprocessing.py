"""Preprocessing and postprocessing layers, under the seed API's import path.

``from czbuild.preprocessing import RgbToBgr`` as in ZEISS's czmodel. The layers live in
:mod:`czbuild.keras.preprocessing` (importing this module imports TensorFlow); the maths of
each is in ``docs/library.md`` and its NumPy reference in :mod:`czbuild.ops`.
"""

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
