"""Model sources: the small protocol every framework adapter implements.

* :mod:`czbuild.sources.kinds` -- plain data: :class:`~czbuild.sources.kinds.OnnxFile`,
  :class:`~czbuild.sources.kinds.TorchFactory`, :class:`~czbuild.sources.kinds.ConvertedModel`
  and :func:`~czbuild.sources.kinds.source_family` (no framework imported);
* :mod:`czbuild.sources.dispatch` -- :func:`~czbuild.sources.dispatch.open_converter` and
  :func:`~czbuild.sources.dispatch.open_reference`, which import the adapter of a source
  (``czbuild/keras/``, ``czbuild/onnx_source/``, ``czbuild/torch_source/``) lazily.

This ``__init__`` imports nothing, so an adapter importing the kinds does not import the
dispatch (and with it, the other adapters).
"""
