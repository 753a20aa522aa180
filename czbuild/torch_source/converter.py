"""``TorchConverter``: the :class:`czbuild.sources.dispatch.Converter` of PyTorch sources.

The factory runs once; the module is exported once per opset (a tile sweep shares that one
export: batch and spatial dims stay free) and from there on it is an ONNX source: the
:class:`~czbuild.onnx_source.converter.OnnxConverter` composes the op chains and the
channels-last transposes onto the export and specialises it per tile.
"""

from __future__ import annotations

from typing import Any

import onnx

from czbuild.onnx_source.converter import OnnxConverter
from czbuild.onnx_source.graph import SourceGraph, read_source
from czbuild.sources.kinds import TorchFactory
from czbuild.torch_source.module import ModuleLayout, layout_of, load_module

__all__ = ["TorchConverter"]


class TorchConverter(OnnxConverter):
    """Converts one PyTorch source into payloads.

    Args:
        source: A :class:`~czbuild.sources.kinds.TorchFactory` or a ``torch.nn.Module``
            (channels-first).
        max_cached: How many finished payloads to keep.

    Attributes:
        exports: How many times the module was exported (one per opset).
    """

    def __init__(self, source: Any, *, max_cached: int = 8) -> None:
        super().__init__(source, max_cached=max_cached)
        self._module: Any = None
        self._layout: ModuleLayout | None = None
        self._exported: dict[int, SourceGraph] = {}
        self.exports = 0

    @property
    def channels_first(self) -> bool:
        """Whether the module takes ``[N, C, spatial...]``."""
        return self.source.channels_first if isinstance(self.source, TorchFactory) else True

    @property
    def module(self) -> Any:
        """The ``torch.nn.Module`` (the factory runs on first use)."""
        if self._module is None:
            self._module = load_module(self.source)
        return self._module

    @property
    def layout(self) -> ModuleLayout:
        """The module's input layout."""
        if self._layout is None:
            self._layout = layout_of(self.module, self.name)
        return self._layout

    @property
    def name(self) -> str:
        """The factory (``file.py:function``) or the module's class name."""
        if isinstance(self.source, TorchFactory):
            return str(self.source)
        return type(self.source).__name__

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """Channels-last input shape without batch: free spatial dims."""
        return (*(None,) * self.layout.spatial_rank, self.layout.channels)

    @property
    def graph(self) -> SourceGraph:
        """The export at the newest opset made so far (opset 18 if none)."""
        return self._source_graph(max(self._exported, default=18))

    @property
    def model(self) -> Any:
        """The verifier's reference: the module run by PyTorch."""
        if self._reference is None:
            from czbuild.torch_source.reference import TorchReference

            self._reference = TorchReference(
                self.module,
                name=self.name,
                channels=self.layout.channels,
                rank=self.layout.spatial_rank,
                channels_first=self.channels_first,
            )
        return self._reference

    def _spatial(self) -> tuple[int | None, ...]:
        return (None,) * self.layout.spatial_rank

    def _source_graph(self, opset: int) -> SourceGraph:
        if opset not in self._exported:
            from czbuild.torch_source.export import export_module

            data = export_module(
                self.module, self.layout, opset=opset, channels_first=self.channels_first
            )
            self.exports += 1
            proto = onnx.load_from_string(data)
            graph = read_source(proto, channels_first=self.channels_first)
            self._exported[opset] = SourceGraph(
                graph.proto,
                self.name,
                graph.channels_first,
                graph.input_dims,
                graph.output_dims,
                graph.opset,
            )
        return self._exported[opset]
