"""The ``fidelity`` check: the packaged model computes what the recipe declares.

On the seeded batch ``semantics`` ran (:func:`czbuild.verify.inputs.seeded_batch`: random
tiles in the format's input range, a darkest and a brightest tile, as many as a megapixel
holds), the packaged model's output (remembered from ``semantics`` when ``predict`` is a
:class:`czbuild.verify.runs.RunMemo`) is compared with the independent reference of
:mod:`czbuild.verify.source`: NumPy preprocessing, the unwrapped source model in Keras,
NumPy postprocessing. The figure is the maximum absolute difference; the check fails above
the tolerance (default 1e-5).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from czbuild.verify.info import ModelInfo
from czbuild.verify.inputs import seeded_batch
from czbuild.verify.report import FAILED, PASSED, VerifyReport
from czbuild.verify.source import SourceChain

NAME = "fidelity"


def check_fidelity(
    predict: Callable[[np.ndarray], np.ndarray],
    reference: SourceChain,
    info: ModelInfo,
    report: VerifyReport,
    *,
    tolerance: float,
    seed: int,
) -> None:
    """Compare packaged and reference outputs; add the ``fidelity`` check."""
    assert info.input_shape is not None
    x = seeded_batch(info, info.input_shape, seed)
    details = {
        "tiles": int(x.shape[0]),
        "tolerance": tolerance,
        "reference": reference.origin,
        "preprocessing": list(reference.preprocessing),
        "postprocessing": list(reference.postprocessing),
    }
    try:
        want = reference.predict(x)
    except Exception as exc:
        report.add(
            NAME,
            FAILED,
            "no reference",
            f"the reference (source model + NumPy chain) fails: {type(exc).__name__}: "
            f"{str(exc)[:300]}",
            **details,
        )
        return
    got = predict(x).astype(np.float64)
    if got.shape != want.shape:
        report.add(
            NAME,
            FAILED,
            f"shape {list(got.shape)}",
            f"packaged output {list(got.shape)} vs reference {list(want.shape)}: the "
            "artifact does not compute the declared chain",
            **details,
        )
        return
    diff = np.abs(got - want)
    worst = float(np.nanmax(diff)) if diff.size else 0.0
    if not np.all(np.isfinite(diff)):
        worst = float("inf")
    per_tile = [float(np.max(d)) if d.size else 0.0 for d in diff]
    details.update(
        max_abs_diff=worst,
        per_tile=per_tile,
        mean_abs_diff=float(np.mean(diff)) if diff.size else 0.0,
    )
    figure = f"max abs diff {worst:.2g}"
    if worst > tolerance:
        report.add(
            NAME,
            FAILED,
            figure,
            f"packaged output differs from source model + recipe chain by up to "
            f"{worst:.3g} (> {tolerance:g}) on {x.shape[0]} seeded tiles: wrong "
            "preprocessing, postprocessing or model?",
            **details,
        )
    else:
        report.add(
            NAME,
            PASSED,
            figure,
            f"packaged output equals source model + recipe chain within {tolerance:g} "
            f"on {x.shape[0]} seeded tiles",
            **details,
        )
