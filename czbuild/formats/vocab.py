"""Closed vocabularies and the ZEN compatibility matrix (czmodel-format.md sections 1, 2.2, 3.2).

Pure data and tiny lookups, no imports beyond the standard library: the recipe schema, the
metadata models and the verifier all take their enums from here.
"""

from __future__ import annotations

import difflib
from typing import Final


def did_you_mean(value: object, choices: tuple[str, ...]) -> str:
    """The hint after an unknown ``value``: `` (did you mean X?); known: a, b, c``."""
    close = difflib.get_close_matches(str(value), choices, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"{hint}; known: {', '.join(choices)}"


# --- CZANN -----------------------------------------------------------------------------------

CZANN_VERSIONS: Final = ("1.0.0", "1.1.0", "2.0.0", "2.1.0")
DEFAULT_CZANN_VERSION: Final = "2.1.0"

MODEL_TYPES: Final = (
    "SingleClassInstanceSegmentation",
    "MultiClassInstanceSegmentation",
    "SingleClassSemanticSegmentation",
    "MultiClassSemanticSegmentation",
    "SingleClassClassification",
    "MultiClassClassification",
    "ObjectDetection",
    "Regression",
)
SEGMENTATION_TYPES: Final = ("SingleClassSemanticSegmentation", "MultiClassSemanticSegmentation")
REGRESSION_TYPES: Final = ("Regression",)
# Output encodings unpublished: refused unless explicitly enabled (allow_experimental_types).
EXPERIMENTAL_TYPES: Final = tuple(
    t for t in MODEL_TYPES if t not in SEGMENTATION_TYPES + REGRESSION_TYPES
)

# --- Legacy CZMODEL ----------------------------------------------------------------------------

LEGACY_VERSIONS: Final = ("3.0.0", "3.1.0")
DEFAULT_LEGACY_VERSION: Final = "3.1.0"

PIXEL_TYPES: Final = (
    "Gray8",
    "Gray16",
    "Gray32Float",
    "Bgr24",
    "Bgr48",
    "Bgr96Float",
    "Bgra32",
    "Gray64ComplexFloat",
    "Bgr192ComplexFloat",
)
COMPLEX_PIXEL_TYPES: Final = ("Gray64ComplexFloat", "Bgr192ComplexFloat")
# Channel count a pixel type carries (used for warnings only, §6 rule 13).
PIXEL_TYPE_CHANNELS: Final = {
    "Gray8": 1,
    "Gray16": 1,
    "Gray32Float": 1,
    "Bgr24": 3,
    "Bgr48": 3,
    "Bgr96Float": 3,
    "Bgra32": 4,
    "Gray64ComplexFloat": 1,
    "Bgr192ComplexFloat": 3,
}
# Native value range maximum for integer pixel types (legacy models receive raw values).
PIXEL_TYPE_MAX: Final = {"Gray8": 255, "Bgr24": 255, "Bgra32": 255, "Gray16": 65535, "Bgr48": 65535}

COLOR_HANDLINGS: Final = ("ConvertToMonochrome", "SplitRgb")

ALL_VERSIONS: Final = CZANN_VERSIONS + LEGACY_VERSIONS


def family_of(version: str) -> str:
    """Return ``"czann"`` or ``"czmodel"`` for a format version string."""
    if version in CZANN_VERSIONS:
        return "czann"
    if version in LEGACY_VERSIONS:
        return "czmodel"
    raise ValueError(f"unknown format version {version!r}; known: {', '.join(ALL_VERSIONS)}")


# --- ONNX opsets -----------------------------------------------------------------------------

# The opset czbuild emits by default for each version (None: no ONNX payload).
DEFAULT_OPSET: Final = {
    "1.0.0": 12,
    "1.1.0": 12,
    "2.0.0": 12,
    "2.1.0": 18,
    "3.1.0": 12,
    "3.0.0": None,
}
# The highest opset a reader of that version is known to run; overrides above this are refused.
MAX_OPSET: Final = {
    "1.0.0": 12,
    "1.1.0": 12,
    "2.0.0": 12,
    "2.1.0": 18,
    "3.1.0": 12,
    "3.0.0": None,
}
MIN_OPSET: Final = 9


def opset_problem(version: str, opset: int | None) -> str | None:
    """Why ``opset`` cannot be written into format ``version`` (None: it can; None opset: the
    version's default)."""
    limit = MAX_OPSET[version]
    if limit is None:
        if opset is not None:
            return f"format version {version} carries a SavedModel, not ONNX; remove opset"
        return None
    if opset is None:
        return None
    if opset > limit:
        return (
            f"opset {opset} is too high for format version {version} (at most {limit}); "
            f"use {limit} or lower"
        )
    if opset < MIN_OPSET:
        return f"opset {opset} is below the minimum {MIN_OPSET}; use {DEFAULT_OPSET[version]}"
    return None


# ONNX Runtime 1.4.0 (opset-12 targets) reads IR version <= 7.
MAX_IR_VERSION: Final = {"1.0.0": 7, "1.1.0": 7, "2.0.0": 7, "3.1.0": 7, "2.1.0": 10}
# The runtime that executes each version's payload on its oldest ZEN target, for messages;
# the limits above are what czbuild assumes it reads (format reference §1; per ZEN release
# unconfirmed). Legacy 3.0.0 runs a SavedModel on TensorFlow 2.0.0 (czbuild.formats.runtime).
ONNX_RUNTIME: Final = {
    "1.0.0": "ONNX Runtime 1.4.0 (ZEN 3.4/3.5)",
    "1.1.0": "ONNX Runtime 1.4.0 (ZEN 3.4/3.5)",
    "2.0.0": "the ONNX Runtime of ZEN 3.13 (opset-12 models)",
    "2.1.0": "the ONNX Runtime of ZEN 3.13",
    "3.1.0": "ONNX Runtime 1.4.0 (ZEN 3.3/3.4)",
}

# --- ZEN targets -----------------------------------------------------------------------------

# Minimum ZEN release per format version: (blue, core) as (major, minor) tuples.
MIN_ZEN: Final = {
    "2.1.0": ((3, 13), (3, 13)),
    "2.0.0": ((3, 13), (3, 13)),
    "1.1.0": ((3, 5), (3, 4)),
    "1.0.0": ((3, 5), (3, 4)),
    "3.1.0": ((3, 4), (3, 3)),
    "3.0.0": ((3, 2), (3, 1)),
}
ZEN_PRODUCTS: Final = ("blue", "core")


def parse_zen_version(text: str) -> tuple[int, int]:
    """Parse ``"3.13"`` into ``(3, 13)``; raise ValueError on anything else."""
    parts = str(text).strip().split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"ZEN version must look like '3.5', got {text!r}")
    return int(parts[0]), int(parts[1])


def readable_versions(product: str, zen_version: str) -> tuple[str, ...]:
    """All format versions a ZEN ``product`` (blue|core) at ``zen_version`` can read."""
    if product not in ZEN_PRODUCTS:
        raise ValueError(f"unknown ZEN product {product!r}; known: blue, core")
    have = parse_zen_version(zen_version)
    idx = ZEN_PRODUCTS.index(product)
    return tuple(v for v in ALL_VERSIONS if MIN_ZEN[v][idx] <= have)


def newest_version(family: str, product: str, zen_version: str) -> str | None:
    """The newest version of ``family`` (czann|czmodel) the target reads, or None."""
    pool = CZANN_VERSIONS if family == "czann" else LEGACY_VERSIONS
    ok = [v for v in pool if v in readable_versions(product, zen_version)]
    return ok[-1] if ok else None
