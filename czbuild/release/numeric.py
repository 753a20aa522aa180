"""Numeric equivalence of two network payloads: the fallback for non-byte-stable members.

Both payloads run on the same seeded random tensors (uniform in [0, 1), float32, the input
shape the payload declares, batch 1, undefined spatial dims :data:`DEFAULT_SPATIAL`); the
largest absolute difference of the outputs decides. Both run in the one payload runner
(:mod:`czbuild.formats.runner`), which imports onnxruntime / TensorFlow only when called.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from czbuild.errors import ArchiveError, ModelError
from czbuild.formats.reader import payload_kind
from czbuild.formats.runner import open_runner
from czbuild.release.policy import NUMERIC_TOLERANCE

DEFAULT_SPATIAL = 64
DEFAULT_SAMPLES = 2


@dataclass(frozen=True)
class NumericResult:
    """Outcome of :func:`compare_payloads`.

    Attributes:
        ok: The largest difference is within ``tolerance``.
        max_abs_diff: Largest absolute output difference over all samples.
        tolerance: The tolerance used.
        samples: Number of seeded input tensors.
        input_shape: Shape of each input tensor (with batch).
        message: One sentence for reports.
    """

    ok: bool
    max_abs_diff: float
    tolerance: float
    samples: int
    input_shape: tuple[int, ...]
    message: str


def compare_payloads(
    expected: bytes,
    actual: bytes,
    *,
    tolerance: float = NUMERIC_TOLERANCE,
    seed: int = 0,
    samples: int = DEFAULT_SAMPLES,
) -> NumericResult:
    """Run both payloads on seeded tensors and compare their outputs.

    Raises:
        ArchiveError: A payload cannot be loaded, or the two take different input shapes.
    """
    if payload_kind(expected) != payload_kind(actual):
        raise ArchiveError("the payloads are of different kinds (ONNX vs SavedModel zip)")
    runners = []
    try:
        for data in (expected, actual):
            try:
                runners.append(open_runner(data))
            except ModelError as exc:
                raise ArchiveError(f"the payload does not load: {exc}") from exc
        run_e, run_a = runners
        shape_e, shape_a = tuple(run_e.input_dims), tuple(run_a.input_dims)
        if shape_e != shape_a:
            raise ArchiveError(f"the payloads take different inputs: {shape_e} vs {shape_a}")
        shape = tuple(1 if i == 0 else (d or DEFAULT_SPATIAL) for i, d in enumerate(shape_e))
        rng = np.random.default_rng(seed)
        worst = 0.0
        for _ in range(samples):
            x = rng.random(shape, dtype=np.float32)
            ye, ya = run_e(x), run_a(x)
            if ye.shape != ya.shape:
                raise ArchiveError(
                    f"the payloads give different output shapes: {ye.shape} vs {ya.shape}"
                )
            worst = max(worst, float(np.max(np.abs(ye.astype(np.float64) - ya.astype(np.float64)))))
    finally:
        for runner in runners:
            runner.close()
    ok = worst <= tolerance
    verdict = "functionally identical" if ok else "NOT functionally identical"
    message = (
        f"{verdict} within tol {tolerance:g}: max abs diff {worst:.3g} on {samples} "
        f"seeded tensors of shape {list(shape)}"
    )
    return NumericResult(
        ok=ok,
        max_abs_diff=worst,
        tolerance=tolerance,
        samples=samples,
        input_shape=shape,
        message=message,
    )
