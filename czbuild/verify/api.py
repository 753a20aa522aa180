"""Verify one artifact: run every check group in order and return the report.

Groups build on each other — a container that cannot be read has no payload to check, a
payload that does not load cannot be run — so a failure skips the later checks with the
reason. No stage may crash verification: an unexpected exception inside a stage becomes a
failed check that names it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from czbuild import progress
from czbuild.errors import ArchiveError, CzbuildError
from czbuild.formats.runner import OnnxRunner, Runner
from czbuild.verify import hygiene, images
from czbuild.verify.archive import MAX_UNPACKED_BYTES, check_archive
from czbuild.verify.class_order import NAME as CLASS_ORDER
from czbuild.verify.class_order import check_class_order
from czbuild.verify.fidelity import check_fidelity
from czbuild.verify.info import REGRESSION, SEGMENTATION, ModelInfo
from czbuild.verify.members import check_members
from czbuild.verify.memory import check_memory, release
from czbuild.verify.metadata import check_metadata
from czbuild.verify.recipe_metadata import NAME as RECIPE_METADATA
from czbuild.verify.recipe_metadata import check_recipe_metadata
from czbuild.verify.report import FAILED, SKIPPED, VerifyReport
from czbuild.verify.runs import RunMemo
from czbuild.verify.runtime_compat import NAME as RUNTIME_COMPAT
from czbuild.verify.runtime_compat import check_runtime_compat
from czbuild.verify.semantics import check_semantics
from czbuild.verify.settings import BUILD, STANDALONE, VerifySettings
from czbuild.verify.source import SourceChain, from_variant, load_source
from czbuild.verify.tiling import check_tiling, skip_all

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE = BUILD.fidelity_tolerance
_ZIP_MAGIC = b"PK\x03\x04"
_LATER = {
    "container": (
        "container.members",
        "container.metadata",
        "container.layout",
        "container.hygiene",
    ),
    "payload": ("payload.model", "payload.io", "payload.opset", "payload.runtime_compat"),
    "run": ("semantics",),
    "fidelity": ("fidelity",),
    "tiling": ("tiling.seams", "tiling.receptive_field", "tiling.min_overlap"),
    "samples": ("samples.fidelity", "samples.seams", "samples.expect"),
}


def verify_artifact(
    path: str | os.PathLike[str],
    *,
    settings: VerifySettings | None = None,
    recipe_variant: Any = None,
    source_model: Any = None,
    preprocessing: Sequence[Any] | None = None,
    postprocessing: Sequence[Any] | None = None,
    custom_objects: Mapping[str, Any] | None = None,
    strict: bool = False,
    max_bytes: int = MAX_UNPACKED_BYTES,
    tolerance: float | None = None,
    fidelity_tolerance: float | None = None,
    seam_tolerance: float | None = None,
    seed: int | None = None,
    tiling: bool | None = None,
    overlap_analysis: bool | str | None = None,
    tiling_max_tile: int | None = None,
    accept: Sequence[str] | None = None,
    threads: int | None = None,
) -> VerifyReport:
    """Verify a ``.czann`` / ``.czmodel`` file (czbuild-built or not).

    Args:
        path: The artifact.
        settings: Tolerance, seed and tiling settings
            (:class:`~czbuild.verify.settings.VerifySettings`); default
            :data:`~czbuild.verify.settings.STANDALONE` (the artifact's own tile, overlap
            analysis always).
        recipe_variant: A :class:`czbuild.recipe.Variant`; its model source and op chains give
            the fidelity and tiling reference.
        source_model: ``keras.Model``, model path or ``"file.py:function"`` to use as the
            reference (with ``preprocessing`` / ``postprocessing``); with ``recipe_variant``
            it replaces loading the recipe's model.
        preprocessing: Op dicts the artifact is declared to apply before the model.
        postprocessing: Op dicts applied after it.
        custom_objects: For loading a source model with custom layers.
        strict: Treat writer-rule deviations (``container.layout``, ``container.hygiene``,
            ``payload.hygiene``) as failures, as for czbuild's own artifacts.
        max_bytes: Refuse archives unpacking to more bytes.
        tolerance: Overrides both tolerances (deprecated single tolerance).
        fidelity_tolerance: Overrides ``settings.fidelity_tolerance`` (max abs difference for
            probabilities, output ranges and fidelity).
        seam_tolerance: Overrides ``settings.seam_tolerance`` (max abs seam error).
        seed: Overrides ``settings.seed`` (seed of every random input).
        tiling: Overrides ``settings.tiling`` (run the tiling checks).
        overlap_analysis: Overrides ``settings.overlap_analysis``: True / ``"always"``,
            False / ``"on-failure"`` (only when ``tiling.seams`` failed), ``"never"``.
        tiling_max_tile: Overrides ``settings.tiling_max_tile``: check seams of larger tiles
            on a proxy tile of at most this size (0: the artifact's tile).
        accept: Overrides ``settings.accept``: names of checks whose failure the caller
            accepts (a recipe's ``verify.accept``, e.g. ``["semantics.output_range"]``): such
            a failure becomes a warning that says so (:meth:`VerifyReport.accept`).
        threads: onnxruntime threads (default: the CPU share,
            :func:`czbuild.formats.runner.cpu_share`); figures stay within float32 rounding.

    Returns:
        The report; ``report.ok`` is False if any check failed.

    Raises:
        ArchiveError: ``path`` does not exist or is not a file.
        ValueError: A setting is out of range (names it).
        ModelError: ``recipe_variant``'s custom objects cannot be loaded (other source
            problems are reported as a failed ``fidelity`` check).
    """
    chosen = (settings or STANDALONE).replace(
        tolerance=tolerance,
        fidelity_tolerance=fidelity_tolerance,
        seam_tolerance=seam_tolerance,
        seed=seed,
        tiling=tiling,
        overlap_analysis=overlap_analysis,
        tiling_max_tile=tiling_max_tile,
        accept=None if accept is None else tuple(accept),
    )
    tolerance, seed = chosen.fidelity_tolerance, chosen.seed
    path = Path(path)
    if not path.exists():
        raise ArchiveError(f"{path}: no such file")
    if not path.is_file():
        raise ArchiveError(f"{path}: not a file")
    report = VerifyReport(path=path)
    runner: Runner | None = None
    try:
        info, runner = _static_checks(
            path, report, strict=strict, max_bytes=max_bytes, threads=threads
        )
        if recipe_variant is not None:
            _stage(
                report,
                RECIPE_METADATA,
                "none",
                lambda: check_recipe_metadata(report, recipe_variant),
            )
        if info is None or runner is None:
            return report
        if not check_memory(info, report, chosen):
            _skip_from(report, "run", "the machine cannot hold the tiles verification needs")
            return report
        release()  # what the conversion and the payload checks freed, before the model runs
        packaged = RunMemo(runner)  # each distinct input runs once, whatever checks share it
        samples = _stage(
            report,
            "semantics",
            "run",
            lambda: check_semantics(packaged, info, report, tolerance=tolerance, seed=seed),
        )
        if samples is None:
            _skip_from(report, "fidelity", "the packaged model does not run")
            return report
        _pictures(report, info, samples)
        release()  # the packaged model's run, before the source model's
        reference = _reference(
            report, recipe_variant, source_model, preprocessing, postprocessing, custom_objects
        )
        if reference is not None:
            _stage(
                report,
                "fidelity",
                "fidelity",
                lambda: check_fidelity(
                    packaged, reference, info, report, tolerance=tolerance, seed=seed
                ),
            )
        elif report.get("fidelity") is None:
            report.add(
                "fidelity",
                SKIPPED,
                None,
                "no recipe or source model given "
                "(use --recipe, or pass recipe_variant= / source_model=)",
            )
        if reference is not None:
            _stage(
                report,
                CLASS_ORDER,
                "none",
                lambda: check_class_order(packaged, reference, info, report, seed=chosen.seed),
            )
        if not chosen.tiling:
            skip_all(report, "tiling checks disabled (--no-tiling)")
        else:
            release()  # the source model's tile run, before the tiled simulation
            fidelity = report.get("fidelity")
            unfaithful = fidelity is not None and fidelity.status == FAILED
            arrays = _stage(
                report,
                "tiling.seams",
                "tiling",
                lambda: check_tiling(
                    packaged,
                    reference,
                    info,
                    report,
                    tolerance=chosen.seam_tolerance,
                    seed=seed,
                    reference_tiles=unfaithful,
                    analysis=chosen.analysis,
                    max_tile=chosen.max_tile,
                ),
            )
            _tiling_pictures(report, info, arrays or {}, chosen.seam_tolerance)
        if chosen.samples and recipe_variant is not None:
            from czbuild.verify.samples import check_samples

            project_dir = Path(recipe_variant.project_dir)
            _stage(
                report,
                "samples.fidelity",
                "samples",
                lambda: check_samples(packaged, reference, path, report, chosen, project_dir),
            )
        return report
    finally:
        if runner is not None:
            runner.close()
        report.accept(chosen.accept)


def verify_built_artifact(
    path: str | os.PathLike[str],
    variant: Any,
    *,
    settings: VerifySettings | None = None,
    source_model: Any = None,
) -> VerifyReport:
    """The build layer's hook: verify an artifact czbuild just built from ``variant``.

    Strict: layout and reproducibility deviations fail, and the entry times must match
    ``SOURCE_DATE_EPOCH`` as the build saw it. Fidelity and tiling use the variant's model
    and chains (``source_model`` may pass an already loaded ``keras.Model``).

    Args:
        path: The built artifact.
        variant: The :class:`czbuild.recipe.Variant` it was built from.
        settings: Default: the variant's ``spec.verify`` (the recipe's ``verify:`` section,
            :data:`~czbuild.verify.settings.BUILD` values where it says nothing).
        source_model: Optional loaded ``keras.Model`` of the variant's source.

    Returns:
        The report; the build fails the artifact when ``report.ok`` is False.
    """
    return verify_artifact(
        path,
        settings=settings or build_settings(variant),
        recipe_variant=variant,
        source_model=source_model,
        strict=True,
    )


def recipe_verify_settings(variant: Any) -> VerifySettings:
    """What ``czbuild verify --recipe`` uses: the variant's build settings, analysis always.

    The tolerances, seed, tiling switch, proxy tile and accepted checks are exactly the
    build's, so ``verify`` passes what the build accepted; the overlap analysis (advice that
    never fails a report) runs for every artifact, to help choose ``MinOverlap``.
    """
    return build_settings(variant).replace(overlap_analysis=True)


def build_settings(variant: Any) -> VerifySettings:
    """The verification settings of ``variant``: its ``spec.verify``, else :data:`BUILD`."""
    section = getattr(getattr(variant, "spec", None), "verify", None)
    return section if isinstance(section, VerifySettings) else BUILD


# --- stages ---------------------------------------------------------------------------------


def _stage(report: VerifyReport, name: str, later: str, func: Any) -> Any:
    """Run ``func``; turn an unexpected exception into a failed check.

    The failure is reported under ``name``, or -- when ``func`` added ``name`` before it
    failed -- under the first check of its group it did not add yet (never a second row of
    the same name).
    """
    progress.phase(f"verifying: {name.split('.', 1)[0]}")
    try:
        return func()
    except CzbuildError as exc:
        report.add(_failing(report, name, later), FAILED, "error", str(exc))
    except Exception as exc:
        log.debug("verification stage %s failed", name, exc_info=True)
        report.add(
            _failing(report, name, later),
            FAILED,
            "verifier error",
            f"unexpected {type(exc).__name__} while checking: {str(exc)[:300]}",
        )
    for skipped in _LATER.get(later, ()):
        if report.get(skipped) is None and skipped != name:
            report.add(skipped, SKIPPED, None, f"{name} could not complete")
    return None


def _failing(report: VerifyReport, name: str, later: str) -> str:
    """The check a failed stage is reported under (see :func:`_stage`)."""
    if report.get(name) is None:
        return name
    rest = [n for n in _LATER.get(later, ()) if report.get(n) is None]
    return rest[0] if rest else f"{name}.error"


def verify_container(
    path: str | os.PathLike[str],
    *,
    recipe_variant: Any = None,
    strict: bool = True,
    max_bytes: int = MAX_UNPACKED_BYTES,
    reason: str,
) -> VerifyReport:
    """The checks that read only the container and its metadata; the others skipped.

    For an artifact whose payload was verified before under the same settings and the same
    payload-relevant metadata (the build's payload cache re-packaging it after a class
    rename): ``container.*`` and, with ``recipe_variant``, ``recipe.metadata`` run; the
    payload, semantics, fidelity and tiling checks are added as skipped with ``reason`` for
    the caller to fill in from the earlier record. Imports neither onnx, onnxruntime nor
    TensorFlow.

    Raises:
        ArchiveError: ``path`` does not exist or is not a file.
    """
    path = Path(path)
    if not path.is_file():
        raise ArchiveError(f"{path}: no such file")
    report = VerifyReport(path=path)
    parts = _container_checks(path, report, strict=strict, max_bytes=max_bytes)
    if recipe_variant is not None:
        _stage(
            report,
            RECIPE_METADATA,
            "none",
            lambda: check_recipe_metadata(report, recipe_variant),
        )
    if parts is not None:
        _skip_from(report, "payload", reason)
    return report


def _container_checks(
    path: Path, report: VerifyReport, *, strict: bool, max_bytes: int
) -> tuple[Any, Any, ModelInfo] | None:
    """The container checks; ``(container, layout, info)`` when the metadata is valid."""
    container = _stage(
        report,
        "container.archive",
        "none",
        lambda: check_archive(path, report, max_bytes=max_bytes),
    )
    if container is None:
        _skip_from(report, "container", "the archive is unreadable")
        return None
    layout = _stage(report, "container.members", "none", lambda: check_members(container, report))
    if layout is None:
        _skip_from(report, "container", "the members are not usable", first=1)
        return None
    parsed = _stage(
        report,
        "container.metadata",
        "none",
        lambda: check_metadata(container.read(layout.metadata), layout, report),
    )
    info, metadata = parsed if parsed else (None, None)
    _stage(
        report,
        "container.layout",
        "none",
        lambda: hygiene.check_layout(container, layout, report, strict=strict),
    )
    expected = _expected_date_time() if strict else None
    _stage(
        report,
        "container.hygiene",
        "none",
        lambda: hygiene.check_hygiene(
            container, layout, metadata, report, strict=strict, expected_date_time=expected
        ),
    )
    if info is None:
        _skip_from(report, "payload", "the metadata is not valid")
        return None
    return container, layout, info


def _static_checks(
    path: Path, report: VerifyReport, *, strict: bool, max_bytes: int, threads: int | None = None
) -> tuple[ModelInfo | None, Runner | None]:
    """Container and payload checks; the filled-in info and a runner when the model can run."""
    parts = _container_checks(path, report, strict=strict, max_bytes=max_bytes)
    if parts is None:
        return None, None
    container, layout, info = parts
    data = container.read(layout.model)
    result = _stage(
        report,
        "payload.model",
        "payload",
        lambda: _payload(data, info, report, strict=strict, max_bytes=max_bytes, threads=threads),
    )
    if report.get(RUNTIME_COMPAT) is None:
        _stage(
            report,
            RUNTIME_COMPAT,
            "none",
            lambda: check_runtime_compat(data, info, report, max_bytes=max_bytes),
        )
    if result is None:
        _skip_from(report, "run", "the payload cannot be run")
        return None, None
    return result


def _payload(
    data: bytes,
    info: ModelInfo,
    report: VerifyReport,
    *,
    strict: bool,
    max_bytes: int,
    threads: int | None = None,
) -> tuple[ModelInfo, Runner] | None:
    is_zip = data.startswith(_ZIP_MAGIC)
    savedmodel_ok = info.version == "3.0.0" or (
        info.family == "czann" and info.version in ("1.0.0", "1.1.0")
    )
    if is_zip and not savedmodel_ok:
        report.add(
            "payload.model",
            FAILED,
            "SavedModel zip",
            f"a zipped SavedModel payload is not allowed in {info.family.upper()} "
            f"{info.version}; it needs ONNX",
        )
        return None
    if info.version == "3.0.0" and not is_zip:
        report.add(
            "payload.model",
            FAILED,
            "not a zip",
            "legacy 3.0.0 needs a zipped SavedModel payload (starts with PK\\x03\\x04)",
        )
        return None
    if is_zip:
        from czbuild.verify.savedmodel_payload import check_savedmodel

        return check_savedmodel(data, info, report, strict=strict, max_bytes=max_bytes)
    from czbuild.verify.onnx_payload import check_onnx

    filled = check_onnx(data, info, report)
    if filled is None:
        return None
    try:
        runner = OnnxRunner(data, threads=threads)
    except Exception as exc:
        report.add(
            "semantics",
            FAILED,
            "does not run",
            f"onnxruntime cannot load the model: {type(exc).__name__}: {str(exc)[:300]}",
        )
        return None
    return filled, runner


def _reference(
    report: VerifyReport, variant: Any, source: Any, pre: Any, post: Any, custom_objects: Any
) -> SourceChain | None:
    if variant is None and source is None:
        return None
    what = "the recipe's source model" if variant is not None else "the source model"
    try:
        if variant is not None:
            return from_variant(variant, source=source)
        return load_source(
            source,
            preprocessing=pre or (),
            postprocessing=post or (),
            custom_objects=custom_objects,
        )
    except CzbuildError as exc:
        message = f"cannot load {what}: {exc}"
    except Exception as exc:
        message = f"cannot load {what}: {type(exc).__name__}: {exc}"
    report.add("fidelity", FAILED, "no reference", message)
    return None


def _expected_date_time() -> tuple[int, ...] | None:
    try:
        from czbuild.formats.ziputil import zip_date_time

        return zip_date_time()
    except CzbuildError:
        return None


def _skip_from(report: VerifyReport, group: str, reason: str, first: int = 0) -> None:
    order = ["container", "payload", "run", "fidelity", "tiling"]
    names: list[str] = []
    for g in order[order.index(group) :]:
        names.extend(_LATER[g][first if g == group else 0 :])
    for name in names:
        if report.get(name) is None:
            report.add(name, SKIPPED, None, reason)


# --- pictures -------------------------------------------------------------------------------


def _render_output(info: ModelInfo, output: np.ndarray) -> np.ndarray | None:
    if info.kind == SEGMENTATION:
        from czbuild.formats.legacy import class_colors

        return images.render_classes(output, class_colors(output.shape[-1]))
    if info.kind == REGRESSION:
        return images.render_regression(output)
    return None


def _pictures(report: VerifyReport, info: ModelInfo, samples: Any) -> None:
    if not samples or len(info.input_shape or ()) != 3:
        return
    x, y = samples
    try:
        report.images["input"] = images.render_input(x[0], info.input_range)
        out = _render_output(info, y[0]) if y.ndim == 4 else None
        if out is not None:
            report.images["output"] = out
    except Exception:
        log.debug("rendering sample pictures failed", exc_info=True)


def _tiling_pictures(
    report: VerifyReport, info: ModelInfo, arrays: dict[str, Any], tolerance: float
) -> None:
    if not arrays:
        return
    try:
        report.images["input"] = images.render_input(arrays["input"], info.input_range)
        out = _render_output(info, arrays["output"])
        if out is not None:
            report.images["output"] = out
        report.images["seam_error"] = images.render_error(
            arrays["seam_error"], tolerance, arrays.get("cuts")
        )
    except Exception:
        log.debug("rendering tiling pictures failed", exc_info=True)
