"""The ``semantics`` check: outputs mean what the model type says (§5, §6 rule 14).

Segmentation outputs must be per-pixel probabilities: finite, within ``[0, 1]`` and summing
to 1 over the class axis, each within the tolerance. Regression outputs must be finite and
within ``[0, 1]``. Inputs are seeded random tiles in the format's input range plus a darkest
and a brightest constant tile. Types with unpublished output encodings are skipped.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from czbuild.verify.info import REGRESSION, SEGMENTATION, ModelInfo
from czbuild.verify.inputs import random_tiles
from czbuild.verify.report import FAILED, PASSED, SKIPPED, VerifyReport

NAME = "semantics"
RANDOM_TILES = 3


def check_semantics(
    predict: Callable[[np.ndarray], np.ndarray],
    info: ModelInfo,
    report: VerifyReport,
    *,
    tolerance: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Run the packaged model on seeded tiles and add the ``semantics`` check.

    Returns:
        ``(inputs, outputs)`` of the run (for report pictures), or None if it did not run.
    """
    assert info.input_shape is not None and info.output_shape is not None
    x = random_tiles(info, info.input_shape, RANDOM_TILES, seed)
    try:
        y = predict(x)
    except Exception as exc:
        report.add(
            NAME,
            FAILED,
            "does not run",
            f"the packaged model fails on a {list(x.shape)} input: "
            f"{type(exc).__name__}: {str(exc)[:300]}",
        )
        return None
    expected = (x.shape[0], *info.output_shape)
    low, high = info.input_range
    details = {"inputs": int(x.shape[0]), "input_range": [low, high], "tolerance": tolerance}
    if tuple(y.shape) != expected:
        report.add(
            NAME,
            FAILED,
            f"shape {list(y.shape)}",
            f"output shape {list(y.shape)} differs from the declared {list(expected)}",
            **details,
        )
        return x, y
    if not np.all(np.isfinite(y)):
        report.add(NAME, FAILED, "non-finite", "the output contains NaN or infinity", **details)
        return x, y
    lo, hi = float(y.min()), float(y.max())
    details.update(min=lo, max=hi)
    if info.kind == SEGMENTATION:
        sums = y.astype(np.float64).sum(axis=-1)
        dev = float(np.max(np.abs(sums - 1.0)))
        details["max_sum_deviation"] = dev
        problems = []
        if lo < -tolerance or hi > 1.0 + tolerance:
            problems.append(f"values in [{lo:.3g}, {hi:.3g}], outside [0, 1]")
        if dev > tolerance:
            problems.append(
                f"class probabilities sum to 1 only within {dev:.3g} "
                "(softmax missing? a sigmoid head needs sigmoid_to_softmax_scores)"
            )
        figure = f"max |sum-1| {dev:.2g}"
        if problems:
            report.add(NAME, FAILED, figure, "; ".join(problems), **details)
        else:
            report.add(
                NAME,
                PASSED,
                figure,
                f"per-pixel probabilities over {y.shape[-1]} classes on "
                f"{x.shape[0]} seeded tiles in [{low:g}, {high:g}]",
                **details,
            )
    elif info.kind == REGRESSION:
        figure = f"range [{lo:.3g}, {hi:.3g}]"
        if lo < -tolerance or hi > 1.0 + tolerance:
            report.add(
                NAME,
                FAILED,
                figure,
                f"regression output in [{lo:.3g}, {hi:.3g}], outside [0, 1] "
                "(add a sigmoid or clip)",
                **details,
            )
        else:
            report.add(
                NAME,
                PASSED,
                figure,
                f"regression output within [0, 1] on "
                f"{x.shape[0]} seeded tiles in [{low:g}, {high:g}]",
                **details,
            )
    else:
        report.add(
            NAME,
            SKIPPED,
            None,
            f"Type {info.type} has an unpublished output encoding; ran, not checked",
            **details,
        )
    return x, y
