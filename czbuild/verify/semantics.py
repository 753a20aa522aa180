"""The ``semantics`` checks: outputs mean what the model type says (§5, §6 rule 14).

``semantics``: segmentation outputs must be per-pixel probabilities: finite, within ``[0, 1]``
and summing to 1 over the class axis, each within the tolerance; regression outputs must be
finite. ``semantics.output_range`` (regression only): ZEN expects regression outputs in
``[0, 1]``; the check fails with the figures and the fix (a ``clip`` or ``sigmoid``
postprocessing step) unless the recipe accepts it (``verify.accept``). Inputs are the seeded
batch that ``fidelity`` compares too (:func:`czbuild.verify.inputs.seeded_batch`: random tiles
in the format's input range, a darkest and a brightest constant tile), and for the range also
the synthetic test image (:func:`czbuild.verify.inputs.sample_image`). Pass a
:class:`czbuild.verify.runs.RunMemo` as ``predict`` and the packaged model runs each of them
once for every check.
Types with unpublished output encodings are skipped.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from czbuild.verify.info import REGRESSION, SEGMENTATION, ModelInfo
from czbuild.verify.inputs import sample_image, seeded_batch
from czbuild.verify.report import FAILED, PASSED, SKIPPED, VerifyReport

NAME = "semantics"
#: The regression [0, 1] range rule; a recipe may accept it (``verify.accept``).
OUTPUT_RANGE = "semantics.output_range"


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
    x = seeded_batch(info, info.input_shape, seed)
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
                "(softmax missing? a sigmoid head needs "
                "{op: sigmoid_to_softmax_scores, positive: <class>})"
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
        report.add(
            NAME,
            PASSED,
            f"range [{lo:.3g}, {hi:.3g}]",
            f"finite regression output of the declared shape on "
            f"{x.shape[0]} seeded tiles in [{low:g}, {high:g}]",
            **details,
        )
        _check_output_range(predict, info, report, y, tolerance=tolerance, seed=seed)
    else:
        report.add(
            NAME,
            SKIPPED,
            None,
            f"Type {info.type} has an unpublished output encoding; ran, not checked",
            **details,
        )
    return x, y


def _check_output_range(
    predict: Callable[[np.ndarray], np.ndarray],
    info: ModelInfo,
    report: VerifyReport,
    tile_outputs: np.ndarray,
    *,
    tolerance: float,
    seed: int,
) -> None:
    """Add ``semantics.output_range``: regression output within [0, 1] (format §6 rule 14)."""
    assert info.input_shape is not None
    ranges = {"seeded tiles": (float(tile_outputs.min()), float(tile_outputs.max()))}
    # one tile of the synthetic test image (a volume tile for a 3D model)
    image = np.asarray(predict(sample_image(info, info.input_shape, seed)))
    if not np.all(np.isfinite(image)):
        report.add(
            OUTPUT_RANGE,
            FAILED,
            "non-finite",
            "the output on the synthetic test image contains NaN or infinity",
        )
        return
    ranges = {"test image": (float(image.min()), float(image.max())), **ranges}
    lo = min(r[0] for r in ranges.values())
    hi = max(r[1] for r in ranges.values())
    details = {name.replace(" ", "_"): list(r) for name, r in ranges.items()}
    figure = f"range [{lo:.3g}, {hi:.3g}]"
    where = " and ".join(f"[{a:.3g}, {b:.3g}] on the {name}" for name, (a, b) in ranges.items())
    if lo < -tolerance or hi > 1.0 + tolerance:
        fix = (
            "add {op: clip, min: 0, max: 1} (or {op: sigmoid} for a linear head) to "
            f"postprocessing, or accept it with verify.accept: [{OUTPUT_RANGE}]"
        )
        report.add(
            OUTPUT_RANGE,
            FAILED,
            figure,
            f"regression output {where}: ZEN expects [0, 1]; {fix}",
            tolerance=tolerance,
            fix=fix,
            **details,
        )
    else:
        report.add(
            OUTPUT_RANGE,
            PASSED,
            figure,
            f"regression output within [0, 1]: {where}",
            tolerance=tolerance,
            **details,
        )
