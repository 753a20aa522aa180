"""The ``semantics.class_order`` check: a sigmoid head's pixels land in the recipe's class.

``sigmoid_to_softmax_scores`` turns one sigmoid channel ``p`` into two class scores; which
channel holds ``p`` decides whether ZEN (argmax over channels -> class index) labels the
pixels the model detects as the detected class or as the other one. Fidelity cannot see a
wrong order: the reference computes the same chain. This check goes back to the meaning: on
the synthetic test image (:func:`czbuild.verify.inputs.sample_image`), where the *source
model's* sigmoid is confidently high (``p >= 0.5 + margin``) the packaged model's label must
be the class the recipe calls ``positive`` -- looked up by name in the artifact's own class
list -- and where it is confidently low, the other class.

Without a named ``positive`` (library use) the check is a warning that says which class the
high-sigmoid pixels get, so a ``[p, 1 - p]`` default with ``classes: [Background, Cell]``
does not pass unnoticed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from czbuild import ops as ops_mod
from czbuild.verify.info import SEGMENTATION, ModelInfo
from czbuild.verify.inputs import sample_image
from czbuild.verify.report import FAILED, PASSED, WARNING, VerifyReport
from czbuild.verify.source import SourceChain

NAME = "semantics.class_order"
#: Pixels with ``|p - 0.5| < MARGIN`` are not confident enough to decide a label.
MARGIN = 0.05


def check_class_order(
    predict: Callable[[np.ndarray], np.ndarray],
    reference: SourceChain,
    info: ModelInfo,
    report: VerifyReport,
    *,
    seed: int,
) -> None:
    """Add ``semantics.class_order`` when the postprocessing turns a sigmoid into scores.

    Args:
        predict: The packaged model.
        reference: Source model and chains; its postprocessing decides whether the check runs.
        info: The artifact's facts (classes in output channel order).
        report: Receives the check.
        seed: Seed of the synthetic test image.
    """
    steps = list(reference.postprocessing)
    index = next((i for i, s in enumerate(steps) if s["op"] == ops_mod.SIGMOID_SCORES), None)
    if index is None:
        return
    op = steps[index]
    classes = tuple(info.classes or ())
    if info.kind != SEGMENTATION or len(classes) != 2:
        report.add(
            NAME,
            FAILED,
            f"{len(classes)} classes",
            f"{ops_mod.SIGMOID_SCORES} makes 2 class scores but the artifact declares "
            f"{len(classes)} classes ({info.type})",
        )
        return
    assert info.input_shape is not None  # a tile (2D) or a volume tile (3D)
    positive = op.get("positive")
    if positive is not None and positive not in classes:
        report.add(
            NAME,
            FAILED,
            "unknown class",
            f"the recipe calls {positive!r} positive but the artifact's classes are "
            f"{list(classes)}",
        )
        return
    expected = classes.index(positive) if positive is not None else op.get("positive_channel", 0)
    image = sample_image(info, info.input_shape, seed)
    p = reference.predict(image, postprocessing=steps[:index])[..., 0]
    labels = np.argmax(np.asarray(predict(image)), axis=-1)
    high, low = p >= 0.5 + MARGIN, p <= 0.5 - MARGIN
    details: dict[str, Any] = {
        "positive": positive,
        "positive_channel": int(expected),
        "classes": list(classes),
        "margin": MARGIN,
        "high_pixels": int(high.sum()),
        "low_pixels": int(low.sum()),
        "sigmoid_range": [float(p.min()), float(p.max())],
    }
    if not high.any() and not low.any():
        report.add(
            NAME,
            WARNING,
            "not decidable",
            f"the source model's sigmoid stays within 0.5 +- {MARGIN:g} on the test image "
            f"(range [{p.min():.3g}, {p.max():.3g}]); class order not checked",
            **details,
        )
        return
    wrong_high = int(np.count_nonzero(labels[high] != expected))
    wrong_low = int(np.count_nonzero(labels[low] != 1 - expected))
    details.update(wrong_high=wrong_high, wrong_low=wrong_low)
    detected, other = classes[expected], classes[1 - expected]
    if wrong_high or wrong_low:
        share = (wrong_high + wrong_low) / max(1, int(high.sum() + low.sum()))
        report.add(
            NAME,
            FAILED,
            f"{share:.0%} mislabelled",
            f"where the source model's sigmoid is high ({int(high.sum())} px of the test "
            f"image) ZEN labels {wrong_high} px as {other!r}, not {detected!r}"
            + (" (the class the recipe calls positive)" if positive is not None else "")
            + f", and {wrong_low} of {int(low.sum())} low px as {detected!r}: the two "
            "scores are in the wrong order for metadata.classes",
            fix="name the class the sigmoid scores with positive: (one of metadata.classes)",
            **details,
        )
        return
    text = (
        f"ZEN labels the {int(high.sum())} px of the test image where the source model's "
        f"sigmoid is high as {detected!r} (channel {expected}) and the {int(low.sum())} low "
        f"px as {other!r}"
    )
    if positive is None:
        report.add(
            NAME,
            WARNING,
            f"sigmoid -> {detected}",
            f"{text}; the chain does not name the class the sigmoid scores -- if that is "
            f"not {detected!r}, set positive (recipes) or positive_channel",
            **details,
        )
    else:
        report.add(NAME, PASSED, f"sigmoid -> {detected}", f"{text}, as the recipe says", **details)
