"""``czbuild predict``: run an artifact on a microscope image the way ZEN does.

:func:`predict_image` (files in, OME-TIFF / PNG out, streamed) and the engine under it
(:mod:`czbuild.predict.engine`: the model plan, input scaling, tiled stitching band by band)
that verification on sample images shares. Imports formats, images, files and progress;
the payload runs in the formats runner.
"""

from __future__ import annotations

from czbuild.predict.engine import (
    ArraySource,
    Feeder,
    ModelPlan,
    model_plan,
    parse_input_range,
    predict_array,
)
from czbuild.predict.run import PredictResult, predict_image

__all__ = [
    "ArraySource",
    "Feeder",
    "ModelPlan",
    "PredictResult",
    "model_plan",
    "parse_input_range",
    "predict_array",
    "predict_image",
]
