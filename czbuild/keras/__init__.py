"""Everything in czbuild that touches TensorFlow / Keras.

Importing this package does not import TensorFlow: the submodules import it lazily, and the
most used names are re-exported lazily here (``from czbuild.keras import load_model`` loads
only ``czbuild.keras.sources``).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "load_model": "czbuild.keras.sources",
    "load_custom_objects": "czbuild.keras.sources",
    "source_kind": "czbuild.keras.sources",
    "wrap_model": "czbuild.keras.wrap",
    "io_shapes": "czbuild.keras.wrap",
    "is_tiling_invariant": "czbuild.keras.wrap",
    "layer_from_op": "czbuild.keras.preprocessing",
    "op_from_layer": "czbuild.keras.preprocessing",
}

__all__ = [
    "io_shapes",
    "is_tiling_invariant",
    "layer_from_op",
    "load_custom_objects",
    "load_model",
    "op_from_layer",
    "source_kind",
    "wrap_model",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'czbuild.keras' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
