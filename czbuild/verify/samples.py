"""The ``samples.*`` checks: fidelity, seams and pinned results on the user's own images.

A recipe's ``verify.samples`` names microscope images (CZI / TIFF); each is read through
:mod:`czbuild.images` and predicted the way ``czbuild predict`` does (:mod:`czbuild.predict`:
ZEN's tiling, CZANN input in [0, 1]), after the synthetic checks:

* ``samples.fidelity``: on a few tiles of each sample (first, middle, last), the packaged
  model against the source model. Figure: the largest absolute difference.
* ``samples.seams``: the stitched tiles of the packaged model against the source model run on
  the whole sample at once. Figure: the largest absolute difference. Per-tile statistics in
  the preprocessing make it a warning (no overlap removes them; ``verify.accept`` may accept
  ``samples.seams``).
* ``samples.expect``: the stitched prediction of the first sample against ``verify.expect``,
  a pinned output of an earlier artifact: per class the IoU of the labels (segmentation) or
  the largest absolute error (regression); fails when a class's IoU drops below
  ``1 - expect_tolerance`` (or the error exceeds it), naming the classes.

Samples are read whole into memory; keep them to a few megapixels.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from czbuild.errors import CzbuildError
from czbuild.progress import phase
from czbuild.verify.report import FAILED, PASSED, SKIPPED, WARNING, VerifyReport
from czbuild.verify.settings import VerifySettings

FIDELITY = "samples.fidelity"
SEAMS = "samples.seams"
EXPECT = "samples.expect"
NAMES = (FIDELITY, SEAMS, EXPECT)
#: Tiles per sample compared in ``samples.fidelity``.
FIDELITY_TILES = 3


def check_samples(
    runner: Callable[[np.ndarray], np.ndarray],
    reference: Any,
    artifact_path: Path,
    report: VerifyReport,
    settings: VerifySettings,
    project_dir: Path,
) -> None:
    """Add the ``samples.*`` checks for ``settings.samples`` (nothing when there are none)."""
    if not settings.samples:
        return
    from czbuild.formats.reader import read_artifact
    from czbuild.images import open_image
    from czbuild.predict.engine import ArraySource, Feeder, model_plan, predict_array

    plan = model_plan(read_artifact(artifact_path), runner)
    fidelity: list[float] = []
    seams: list[tuple[str, float]] = []
    problems: list[str] = []
    first_output: np.ndarray | None = None
    for i, rel in enumerate(settings.samples):
        phase(f"verifying: sample {i + 1}/{len(settings.samples)}")
        try:
            source = open_image(project_dir / rel)
            try:
                feed = Feeder(plan, source)
                fed = feed(
                    source.read((0, source.shape[0]), (0, source.shape[1]), (0, source.shape[2]))
                )
            finally:
                source.close()
            # fed once: the tiles are cut from the scaled image as they are
            tiled = predict_array(runner, plan, ArraySource(fed, path=rel), lambda box: box)
        except CzbuildError as exc:
            problems.append(f"{rel}: {exc}")
            continue
        if i == 0:
            first_output = tiled
        if reference is None:
            continue
        fidelity.append(_tile_fidelity(runner, reference, plan, fed))
        try:
            whole = _whole(reference, plan, fed)
        except Exception as exc:
            problems.append(
                f"{rel}: the source model cannot predict the whole sample "
                f"({type(exc).__name__}: {str(exc)[:200]})"
            )
            continue
        seams.append((rel, float(np.max(np.abs(tiled - whole)))))
    if problems:
        for name in NAMES:
            report.add(name, FAILED, "unreadable", "; ".join(problems))
        return
    _report_fidelity(report, reference, fidelity, settings)
    _report_seams(report, reference, seams, settings)
    _report_expect(report, plan, first_output, settings, project_dir)


def _tile_fidelity(runner: Any, reference: Any, plan: Any, fed: np.ndarray) -> float:
    from czbuild.predict.engine import tile_layout

    zax, yax, xax, (tz, th, tw) = tile_layout(plan, fed.shape)
    picks = sorted({0, len(yax.starts) // 2, len(yax.starts) - 1})[:FIDELITY_TILES]
    crops = []
    for k in picks:
        y, x = yax.starts[k], xax.starts[min(k, len(xax.starts) - 1)]
        crop = fed[zax.starts[0] : zax.starts[0] + tz, y : y + th, x : x + tw]
        crops.append(crop if len(plan.tile) == 3 else crop[0])
    batch = np.stack(crops)
    packaged = np.asarray(runner(batch), np.float64)
    source = np.asarray(reference.predict(batch), np.float64)
    return float(np.max(np.abs(packaged - source)))


def _whole(reference: Any, plan: Any, fed: np.ndarray) -> np.ndarray:
    if len(plan.tile) == 3:
        return np.asarray(reference.predict(fed[None]))[0]
    return np.concatenate([np.asarray(reference.predict(fed[z : z + 1])) for z in range(len(fed))])


def _report_fidelity(
    report: VerifyReport, reference: Any, errors: list[float], s: VerifySettings
) -> None:
    if reference is None:
        report.add(FIDELITY, SKIPPED, None, "no source model to compare with")
        return
    worst = max(errors)
    status = PASSED if worst <= s.fidelity_tolerance else FAILED
    report.add(
        FIDELITY,
        status,
        f"max abs diff {worst:.3g}",
        f"packaged vs source model on {len(errors)} sample(s): {worst:.3g} "
        f"({'within' if status == PASSED else 'above'} {s.fidelity_tolerance:g})",
        tolerance=s.fidelity_tolerance,
    )


def _report_seams(
    report: VerifyReport, reference: Any, seams: list[tuple[str, float]], s: VerifySettings
) -> None:
    if reference is None:
        report.add(SEAMS, SKIPPED, None, "no source model for the whole-sample prediction")
        return
    worst_name, worst = max(seams, key=lambda item: item[1])
    if worst <= s.seam_tolerance:
        status, verdict = PASSED, "within"
    elif reference.tiling_dependent:
        status, verdict = WARNING, "above (per-tile statistics in the preprocessing)"
    else:
        status, verdict = FAILED, "above"
    report.add(
        SEAMS,
        status,
        f"max seam error {worst:.3g}",
        f"stitched tiles vs whole-sample prediction, worst {worst_name}: {worst:.3g} "
        f"{verdict} the tolerance {s.seam_tolerance:g}",
        per_sample={name: err for name, err in seams},
        tolerance=s.seam_tolerance,
    )


def _report_expect(
    report: VerifyReport,
    plan: Any,
    output: np.ndarray | None,
    s: VerifySettings,
    project_dir: Path,
) -> None:
    if s.expect is None or output is None:
        report.add(EXPECT, SKIPPED, None, "no verify.expect pinned")
        return
    from czbuild.images import read_tiff

    try:
        expected = read_tiff(project_dir / s.expect)
    except CzbuildError as exc:
        report.add(EXPECT, FAILED, "unreadable", str(exc))
        return
    segmentation = plan.kind == "segmentation"
    got = np.argmax(output, axis=-1) if segmentation else output
    if not segmentation and got.shape[-1] == 1:
        got = got[..., 0]
    shaped = got[0] if got.shape[0] == 1 else got
    if expected.shape != shaped.shape:
        report.add(
            EXPECT,
            FAILED,
            "shape",
            f"{s.expect} has shape {list(expected.shape)}, the prediction of "
            f"{s.samples[0]} {list(shaped.shape)}: pin an output of this sample "
            "(czbuild predict ARTIFACT SAMPLE --out EXPECT)",
        )
        return
    if segmentation:
        names = plan.classes or tuple(f"class {i}" for i in range(plan.outputs))
        scores: dict[str, float] = {}
        for k, name in enumerate(names):
            a, b = expected == k, shaped == k
            union = int(np.count_nonzero(a | b))
            scores[name] = 1.0 if union == 0 else int(np.count_nonzero(a & b)) / union
        floor = 1.0 - s.expect_tolerance
        low = [n for n, v in scores.items() if v < floor]
        worst = min(scores, key=lambda n: scores[n])
        listing = ", ".join(f"{n} IoU {v:.4f}" for n, v in scores.items())
        if low:
            report.add(
                EXPECT,
                FAILED,
                f"{worst} IoU {scores[worst]:.4f}",
                f"agreement with {s.expect} dropped for "
                + ", ".join(f"{n} (IoU {scores[n]:.4f} < {floor:g})" for n in low)
                + f"; all classes: {listing}",
                iou=scores,
                tolerance=s.expect_tolerance,
            )
        else:
            report.add(
                EXPECT,
                PASSED,
                f"{worst} IoU {scores[worst]:.4f}",
                f"agreement with {s.expect}: {listing}",
                iou=scores,
                tolerance=s.expect_tolerance,
            )
        return
    error = float(np.max(np.abs(shaped.astype(np.float64) - expected.astype(np.float64))))
    status = PASSED if error <= s.expect_tolerance else FAILED
    report.add(
        EXPECT,
        status,
        f"max abs error {error:.3g}",
        f"agreement with {s.expect}: max abs error {error:.3g} "
        f"({'within' if status == PASSED else 'above'} {s.expect_tolerance:g})",
        tolerance=s.expect_tolerance,
    )
