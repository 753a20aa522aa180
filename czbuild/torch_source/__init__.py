"""The PyTorch source adapter: a factory returning a ``torch.nn.Module`` as a model source.

Modules: :mod:`~czbuild.torch_source.module` (load the factory, read the module's input
layout), :mod:`~czbuild.torch_source.export` (the pinned ``torch.onnx.export`` settings),
:mod:`~czbuild.torch_source.converter` (:class:`TorchConverter`: one export per model and
opset, then the ONNX adapter's composition and specialisation) and
:mod:`~czbuild.torch_source.reference` (the module itself, run by PyTorch, as the verifier's
reference). PyTorch is an optional extra (``pip install 'czbuild[torch]'``) and is imported
inside functions only.
"""
