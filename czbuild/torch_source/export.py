"""``torch.nn.Module`` -> ONNX bytes with pinned, deterministic settings.

The exporter is pinned to PyTorch's TorchScript-based exporter (``dynamo=False``): it needs
no ``onnxscript``, exports the batch and spatial dims as free (``dynamic_axes``), and in two
fresh processes gives the same bytes for the same module. (PyTorch 2.13's default, the dynamo
exporter, needs ``onnxscript`` and its output depends on that package's version.) Constant
folding is on, the module is in eval mode and traced under ``torch.no_grad()``. The bytes are
canonicalised afterwards by the ONNX adapter, so PyTorch's node names do not reach artifacts.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

from czbuild.errors import ConversionError
from czbuild.torch_source.module import ModuleLayout, import_torch

__all__ = ["export_module"]


def export_module(
    module: Any, layout: ModuleLayout, *, opset: int, channels_first: bool = True
) -> bytes:
    """Export ``module`` at ``opset`` with free batch and spatial dims.

    Args:
        module: The module, in eval mode.
        layout: Its input layout (channels, spatial rank, traced size).
        opset: The ONNX opset to export at (the target's: no version conversion needed).
        channels_first: Whether the module takes ``[N, C, spatial...]``.

    Raises:
        ConversionError: The exporter fails (its message, shortened).
    """
    torch = import_torch()
    rank = layout.spatial_rank
    spatial_axes = list(range(2, 2 + rank)) if channels_first else list(range(1, 1 + rank))
    shape = (
        (1, layout.channels, *layout.example_spatial)
        if channels_first
        else (1, *layout.example_spatial, layout.channels)
    )
    example = torch.zeros(shape, dtype=torch.float32)
    dynamic = {
        "input": {0: "batch", **{a: f"s{i}" for i, a in enumerate(spatial_axes)}},
        "output": {0: "batch", **{a: f"o{i}" for i, a in enumerate(spatial_axes)}},
    }
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (example,),
                buffer,
                dynamo=False,
                opset_version=opset,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes=dynamic,
                do_constant_folding=True,
                export_params=True,
                training=torch.onnx.TrainingMode.EVAL,
            )
    except Exception as exc:
        raise ConversionError(
            f"torch.onnx.export failed at opset {opset}: {type(exc).__name__}: "
            f"{str(exc).strip()[:400]}"
        ) from exc
    return buffer.getvalue()
