"""What the later checks need to know about an artifact, whatever its family.

:class:`ModelInfo` flattens CZANN and legacy metadata into one shape: task kind, tile and
output shapes, classes, the tiling overlap ZEN uses and the range of input values ZEN feeds.
Legacy files carry no shapes in their metadata; the payload check fills them in from the model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from czbuild.formats import vocab

SEGMENTATION = "segmentation"
REGRESSION = "regression"
OTHER = "other"


@dataclass(frozen=True)
class ModelInfo:
    """Family-independent facts about an artifact.

    Attributes:
        family: ``"czann"`` or ``"czmodel"``.
        version: Format version.
        type: CZANN ``Type``; ``"SemanticSegmentation"`` for legacy files (their only task).
        input_shape: Tile shape without batch (``[H, W, C]`` / ``[Z, H, W, C]``), None until known.
        output_shape: Output shape without batch, None until known.
        classes: Class names, if any.
        overlap: Tile overlap per spatial dim (``MinOverlap``; legacy ``2 × BorderSize``),
            None when the metadata declares none.
        input_range: ``(low, high)`` of the values ZEN feeds: ``(0, 1)`` for CZANN, the pixel
            type's native range for legacy files.
        integer_input: Whether ZEN feeds whole numbers (legacy integer pixel types).
        pixel_types: Legacy pixel types (empty for CZANN).
    """

    family: str
    version: str
    type: str
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None
    classes: tuple[str, ...] | None = None
    overlap: tuple[int, ...] | None = None
    input_range: tuple[float, float] = (0.0, 1.0)
    integer_input: bool = False
    pixel_types: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """``"segmentation"``, ``"regression"`` or ``"other"`` (unpublished output encodings)."""
        if self.family == "czmodel" or self.type in vocab.SEGMENTATION_TYPES:
            return SEGMENTATION
        if self.type in vocab.REGRESSION_TYPES:
            return REGRESSION
        return OTHER

    def with_shapes(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> ModelInfo:
        """A copy with the shapes set (legacy: taken from the payload)."""
        return replace(self, input_shape=tuple(input_shape), output_shape=tuple(output_shape))


def legacy_input_range(pixel_types: tuple[str, ...]) -> tuple[tuple[float, float], bool]:
    """Native value range of the legacy pixel types and whether the values are integers.

    Integer types give ``(0, type max)`` (the largest maximum when types are mixed); float
    pixel types are assumed to carry values in ``[0, 1]`` (ZEN's float range is unconfirmed).
    """
    maxima = [vocab.PIXEL_TYPE_MAX[p] for p in pixel_types if p in vocab.PIXEL_TYPE_MAX]
    if maxima and len(maxima) == len(pixel_types):
        return (0.0, float(max(maxima))), True
    return (0.0, 1.0), False
