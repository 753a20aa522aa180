"""Framework-neutral ONNX tools shared by every model-source adapter.

* :mod:`czbuild.onnx_graph.canonical` -- the canonical form (:func:`canonicalize_onnx`), the
  deterministic serialisation and the walk over all nodes;
* :mod:`czbuild.onnx_graph.checks` -- :func:`check_onnx`, :func:`ir_version_for_opset`,
  :func:`specialize_onnx`.

Pure ONNX: the Keras adapter's tf2onnx export (``czbuild/keras/onnx_export.py``), the ONNX
adapter and the PyTorch adapter all build on it; nothing here imports a framework.
"""
