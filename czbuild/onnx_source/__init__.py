"""The ONNX source adapter: an ``.onnx`` file (or ``onnx.ModelProto``) as a model source.

Modules: :mod:`~czbuild.onnx_source.op_nodes` (the op registry as ONNX nodes),
:mod:`~czbuild.onnx_source.graph` (read, check, opset conversion, composition, tile
specialisation), :mod:`~czbuild.onnx_source.converter` (:class:`OnnxConverter`, the
:class:`czbuild.sources.Converter` of ONNX sources) and :mod:`~czbuild.onnx_source.reference`
(the verifier's reference: onnxruntime on the unmodified source). No TensorFlow.
"""
