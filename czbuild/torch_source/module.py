"""Load a PyTorch factory and read the module's input layout.

The factory file is executed as a fresh module and ``function()`` must return a
``torch.nn.Module``. PyTorch's random generator is seeded (0) before the call, so a factory
that initialises weights without seeding still builds the same module every time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from czbuild.errors import ModelError
from czbuild.sources.kinds import TorchFactory

__all__ = ["ModuleLayout", "import_torch", "layout_of", "load_module"]

#: The seed set before a factory runs.
FACTORY_SEED = 0


def import_torch() -> Any:
    """``import torch`` with the fix in the message when the extra is missing.

    Raises:
        ModelError: PyTorch is not installed.
    """
    try:
        import torch
    except ImportError:
        raise ModelError(
            "PyTorch sources need PyTorch: pip install 'czbuild[torch]' (CPU build)"
        ) from None
    return torch


def load_module(source: TorchFactory | Any) -> Any:
    """The ``torch.nn.Module`` of ``source`` (a factory, or a module returned as is), in eval
    mode.

    Raises:
        ModelError: The file cannot be run, lacks the function, or it returns no module.
    """
    torch = import_torch()
    if isinstance(source, torch.nn.Module):
        return source.eval()
    path = Path(source.path)
    if not path.is_file():
        raise ModelError(f"{source}: PyTorch factory file not found")
    name = "czbuild_torch_factory_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelError(f"{source}: cannot load {path} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ModelError(
            f"{source}: running {path.name} failed: {type(exc).__name__}: {exc}"
        ) from exc
    function = getattr(module, source.function, None)
    if not callable(function):
        raise ModelError(f"{source}: {path.name} defines no function {source.function!r}")
    torch.manual_seed(FACTORY_SEED)
    try:
        made = function()
    except Exception as exc:
        raise ModelError(
            f"{source}: {source.function}() failed: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(made, torch.nn.Module):
        raise ModelError(
            f"{source}: {source.function}() returned {type(made).__name__}; it must return a "
            "torch.nn.Module"
        )
    return made.eval()


@dataclass(frozen=True)
class ModuleLayout:
    """What the exporter needs to know about a module's input.

    Attributes:
        channels: Input channel count.
        spatial_rank: 2 (images) or 3 (volumes).
        example_spatial: The spatial size traced for the export.
    """

    channels: int
    spatial_rank: int
    example_spatial: tuple[int, ...]


#: The spatial size traced when the module names none (free dims are kept in the export).
EXAMPLE_SIZE = 32


def layout_of(module: Any, origin: str) -> ModuleLayout:
    """The input layout: ``module.example_input_shape`` (channels-first, no batch) if set, else
    the first convolution's ``in_channels`` and kernel rank.

    Raises:
        ModelError: Neither tells the layout.
    """
    example = getattr(module, "example_input_shape", None)
    if example is not None:
        dims = tuple(int(d) for d in example)
        if len(dims) not in (3, 4):
            raise ModelError(
                f"{origin}: example_input_shape {list(dims)} must be (C, H, W) or (C, Z, H, W)"
            )
        return ModuleLayout(dims[0], len(dims) - 1, dims[1:])
    for layer in module.modules():
        channels = getattr(layer, "in_channels", None)
        kernel = getattr(layer, "kernel_size", None)
        if isinstance(channels, int) and isinstance(kernel, tuple) and len(kernel) in (2, 3):
            rank = len(kernel)
            return ModuleLayout(channels, rank, (EXAMPLE_SIZE,) * rank)
    raise ModelError(
        f"{origin}: cannot tell the module's input layout (no 2D/3D convolution found); set "
        "module.example_input_shape = (channels, height, width) (3D: (channels, z, h, w))"
    )
