"""``OnnxConverter``: the :class:`czbuild.sources.Converter` of ONNX sources.

The source is read once; the op chains are composed onto it once per (chains, opset) with its
free dims kept; each tile of a sweep is then a shape specialisation of that composed model
(:func:`czbuild.onnx_source.graph.specialize`). The route depends only on the model, the
chains, the opset and the tile, so an artifact built alone and in a sweep has the same bytes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from czbuild import ops as czops
from czbuild.errors import ModelError
from czbuild.onnx_source.graph import SourceGraph, compose, read_source, specialize
from czbuild.sources.base import CachingConverter, Chains, positive_dims
from czbuild.sources.kinds import ConvertedModel, OnnxFile

__all__ = ["OnnxConverter", "op_chain"]

_LOCK = threading.RLock()


def op_chain(steps: Any, where: str) -> tuple[dict[str, Any], ...]:
    """Validated op dicts of one chain (a single op or a sequence).

    Raises:
        ModelError: A step is not a valid op (ONNX and PyTorch sources take op dicts only).
    """
    out = []
    for i, step in enumerate(czops.as_chain(steps)):
        if not isinstance(step, (Mapping, str)):
            raise ModelError(
                f"{where}[{i}]: ONNX and PyTorch sources take op dicts such as "
                f"{{'op': 'scale', 'scale': 0.5}}, got {type(step).__name__}"
            )
        try:
            out.append(czops.validate_op(step, where=f"{where}[{i}]"))
        except ValueError as exc:
            raise ModelError(str(exc)) from exc
    return tuple(out)


class OnnxConverter(CachingConverter):
    """Converts one ONNX source into payloads; reads the model once, lazily.

    :meth:`onnx` (with the payload cache) comes from
    :class:`~czbuild.sources.base.CachingConverter`; this class composes and specialises.

    Args:
        source: An :class:`~czbuild.sources.OnnxFile`, a ``.onnx`` path or an
            ``onnx.ModelProto``.
        max_cached: How many finished payloads to keep.
    """

    _lock = _LOCK

    def __init__(self, source: Any, *, max_cached: int = 8) -> None:
        super().__init__(source, max_cached=max_cached)
        self._graph: SourceGraph | None = None
        self._reference: Any = None
        self._composed: dict[tuple[str, int], bytes] = {}
        #: How many times the composed (free-dims) model was built: one per (chains, opset).
        self.compositions = 0

    # --- the source ------------------------------------------------------------------------

    def _read(self) -> SourceGraph:
        if isinstance(self.source, OnnxFile):
            return read_source(self.source.path, channels_first=self.source.channels_first)
        return read_source(self.source)

    @property
    def graph(self) -> SourceGraph:
        """The checked source model (read on first use)."""
        if self._graph is None:
            self._graph = self._read()
        return self._graph

    def _source_graph(self, opset: int) -> SourceGraph:
        """The source model to compose at ``opset`` (ONNX: the one file, converted later)."""
        return self.graph

    def _spatial(self) -> tuple[int | None, ...]:
        return self.graph.spatial

    @property
    def name(self) -> str:
        """The source, for messages."""
        return self.graph.origin

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """Channels-last input shape without batch, None where free."""
        return self.graph.input_shape

    @property
    def model(self) -> Any:
        """The verifier's reference (:class:`~czbuild.onnx_source.reference.OnnxReference`)."""
        if self._reference is None:
            from czbuild.onnx_source.reference import OnnxReference

            self._reference = OnnxReference(self.graph)
        return self._reference

    # --- conversions -----------------------------------------------------------------------

    def _chains(self, preprocessing: Any, postprocessing: Any) -> Chains:
        """Op dicts only; the key is their canonical JSON."""
        pre = op_chain(preprocessing, "preprocessing")
        post = op_chain(postprocessing, "postprocessing")
        return json.dumps([pre, post], sort_keys=True, separators=(",", ":")), pre, post

    def _convert_onnx(
        self,
        key: str,
        pre: tuple[Any, ...],
        post: tuple[Any, ...],
        tile: tuple[int, ...],
        opset: int,
    ) -> ConvertedModel:
        """The chains composed once per (chains, opset), then specialised to the tile."""
        composed = self._composed.get((key, opset))
        if composed is None:
            from czbuild.onnx_graph.canonical import serialize_onnx

            proto = compose(
                self._source_graph(opset), preprocessing=pre, postprocessing=post, opset=opset
            )
            composed = self._composed[(key, opset)] = serialize_onnx(proto)
            self.compositions += 1
        payload, in_shape, out_shape = specialize(composed, tile)
        return ConvertedModel(payload, in_shape, out_shape, "onnx", opset)

    def savedmodel_zip(
        self,
        *,
        preprocessing: Any = (),
        postprocessing: Any = (),
        spatial_dims: Sequence[int] | None = None,
    ) -> ConvertedModel:
        """Refused: a legacy 3.0.0 payload is a TensorFlow SavedModel.

        Raises:
            ModelError: Always, saying which formats an ONNX source converts to.
        """
        raise ModelError(
            f"{self.source!s}: legacy format 3.0.0 stores a TensorFlow SavedModel, which an "
            "ONNX or PyTorch source cannot become; use CZANN (format: czann) or legacy 3.1.0"
        )

    def _tile(self, spatial_dims: Sequence[int] | None) -> tuple[int, ...]:
        spatial = self._spatial()
        if spatial_dims is None:
            if any(d is None for d in spatial):
                raise ModelError(
                    f"{self.name}: the input's spatial dims are free {list(spatial)}; the "
                    "target format needs a fixed tile size: pass spatial_dims (recipe: tile / "
                    "spatial_dims)"
                )
            return tuple(int(d) for d in spatial)  # type: ignore[arg-type]
        return positive_dims(spatial_dims)
