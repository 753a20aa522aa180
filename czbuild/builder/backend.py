"""The conversion backend run inside a worker: one job -> one verified artifact.

Keeps one loaded model per worker (:data:`MAX_CONVERTERS`): all variants of a sweep that use
the same model (same source, same content, same custom objects) share one converter of the
source's adapter (:func:`czbuild.sources.dispatch.open_converter`: Keras, ONNX or PyTorch),
hence one model load (one PyTorch export) and, for a tiling-invariant model, one
trace/conversion. The same loaded model is the reference of the verification that runs
before the artifact gets its final name (:mod:`czbuild.builder.verification`). Imports the
framework of the job's source (lazily, on its first job; no TensorFlow for ONNX or PyTorch).

Before converting, a job looks in the payload cache (:mod:`czbuild.builder.payload_cache`):
on a hit the cached payload is re-packaged with the variant's metadata and only the checks
that read the metadata run again -- no model load, no conversion, and for an ONNX payload no
TensorFlow. After a conversion the payload and its verification are stored there.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_CONVERTERS = 1
_RECORDED_ROLES = ("read by the model source", "imported by the model source")


def convert_job(job: Any, cache: dict[Any, Any]) -> dict[str, Any]:
    """Convert ``job.variant`` into ``job.out_path``, verified unless ``job.verify`` is False.

    Returns sha256, member hashes, the verification record (None when not verified) and the
    inputs recorded while the model loaded.

    Args:
        job: A :class:`czbuild.builder.protocol.Job`.
        cache: Worker-lifetime dict: model key -> (converter, custom objects, recorded inputs).
    """
    from czbuild.builder import payload_cache
    from czbuild.builder.request import to_request
    from czbuild.builder.verification import install_verified, verify_with_reference
    from czbuild.convert import convert

    variant = job.variant
    out_dir = _out_dir(job)
    toolchain = _toolchain(variant)
    lookup = payload_cache.payload_key(variant, job.source_key, toolchain)
    if getattr(job, "reuse", True):
        hit = payload_cache.read_entry(out_dir, lookup)
        if hit is not None and (not job.verify or payload_cache.can_reuse(hit, variant)):
            return _repackage(job, hit)

    spec = variant.spec
    key = (job.source_key, variant.model_source, tuple(spec.model.custom_objects))
    entry = cache.get(key)
    if entry is None:
        entry = cache[key] = _load(job, cache)
    converter, custom, recorded = entry
    request = _restated(variant, lambda: to_request(variant, custom_objects=custom))
    output = Path(str(variant.output)).as_posix()

    def verify(path: Path) -> dict[str, Any]:
        return verify_with_reference(path, variant, source_model=converter.model, output=output)

    def write(path: Path) -> Any:
        return _restated(variant, lambda: convert(request, path, converter=converter))

    result, record = install_verified(Path(job.out_path), write, verify if job.verify else None)
    if result.converted is not None:
        payload_cache.write_entry(
            out_dir,
            payload_cache.payload_key(variant, _store_inputs(job, recorded), toolchain),
            converted=result.converted,
            inputs=recorded,
            verification=record,
            variant=variant,
        )
    return {
        "sha256": result.sha256,
        "members": dict(result.members),
        "verification": record,
        "inputs": list(recorded),
    }


def _repackage(job: Any, hit: Any) -> dict[str, Any]:
    """Write the artifact from a cached payload; verify what the metadata decides."""
    from czbuild.builder.payload_cache import reused_record
    from czbuild.builder.request import to_request
    from czbuild.builder.verification import install_verified, report_record
    from czbuild.convert import package
    from czbuild.sources.kinds import ConvertedModel

    variant = job.variant
    output = Path(str(variant.output)).as_posix()
    request = _restated(variant, lambda: to_request(variant, custom_objects={}))
    converted = ConvertedModel(hit.payload, hit.input_shape, hit.output_shape, hit.route, hit.opset)

    def write(path: Path) -> Any:
        return _restated(variant, lambda: package(request, converted, path))

    def verify(path: Path) -> dict[str, Any]:
        from czbuild.verify.api import build_settings, verify_artifact
        from czbuild.verify.recipe_metadata import check_recipe_metadata

        settings = build_settings(variant)
        report = verify_artifact(path, settings=settings.replace(tiling=False), strict=True)
        check_recipe_metadata(report, variant)
        report.accept(settings.accept)
        fresh = report_record(
            report,
            output=output,
            temporary=path,
            settings=settings.to_plain(),
            project_dir=variant.project_dir,
        )
        return reused_record(fresh, hit)

    result, record = install_verified(Path(job.out_path), write, verify if job.verify else None)
    return {
        "sha256": result.sha256,
        "members": dict(result.members),
        "verification": record,
        "inputs": list(hit.inputs),
        "cached": True,
    }


def _restated(variant: Any, call: Callable[[], Any]) -> Any:
    """Run ``call``; a metadata error names the recipe's key and line, not the library field."""
    from czbuild.builder.request import recipe_error_for
    from czbuild.errors import MetadataError

    try:
        return call()
    except MetadataError as exc:
        restated = recipe_error_for(variant, exc)
        if restated is exc:
            raise
        raise restated from exc


def _toolchain(variant: Any) -> dict[str, str]:
    from czbuild.builder.toolchain import czbuild_code_digest, toolchain_versions

    return {**toolchain_versions(variant.spec.model.kind), "czbuild_code": czbuild_code_digest()}


def _out_dir(job: Any) -> Path:
    """The build folder: ``job.out_path`` without the variant's output path."""
    parts = len(Path(str(job.variant.output)).parts)
    return Path(job.out_path).parents[parts - 1]


def _store_inputs(
    job: Any, recorded: tuple[tuple[str, str], ...]
) -> list[tuple[str, str, str | None]]:
    """The key inputs after a conversion: declared ones, and what this load recorded."""
    from czbuild.builder.fingerprint import display_path
    from czbuild.files.content import content_sha256

    declared = [tuple(i) for i in job.source_key if i[0] not in _RECORDED_ROLES]
    project = Path(job.variant.project_dir)
    found = []
    for role, path in recorded:
        try:
            digest: str | None = content_sha256(path)
        except (OSError, ValueError):
            digest = None
        found.append((role, display_path(Path(path), project), digest))
    return [*declared, *found]


def _load(job: Any, cache: dict[Any, Any]) -> tuple[Any, Any, tuple[tuple[str, str], ...]]:
    """Load the job's custom objects and model, recording what they read and import.

    Returns ``(converter, custom objects, recorded inputs)``; a previously loaded model (and
    the user modules it executed) is dropped first, so every model's reads are recorded in
    full whatever ran in this worker before.
    """
    from czbuild.builder.reads import ReadRecorder
    from czbuild.progress import phase
    from czbuild.sources.dispatch import (
        forget_user_modules,
        import_framework,
        load_custom_objects,
        open_converter,
    )

    phase("loading model")
    variant = job.variant
    spec = variant.spec
    # before recording: the framework's own start-up reads do not count; only the
    # framework this source needs (no TensorFlow for an ONNX or PyTorch source)
    import_framework(variant.model_source)
    if len(cache) >= MAX_CONVERTERS:
        previous = [path for entry in cache.values() for _, path in entry[2]]
        cache.clear()
        forget_user_modules(previous)
        gc.collect()
    custom: dict[str, Any] | None = None
    with ReadRecorder(exclude=[_out_dir(job)], project_dir=variant.project_dir) as recorder:
        if spec.model.custom_objects:
            custom = load_custom_objects(variant.custom_object_files)
        converter = open_converter(variant.model_source, custom_objects=custom)
        converter.model  # noqa: B018 - load now, inside the recorder
    declared = {os.path.abspath(p) for p in variant.inputs}
    recorded = tuple((role, path) for role, path in recorder.inputs if path not in declared)
    return converter, custom, recorded
