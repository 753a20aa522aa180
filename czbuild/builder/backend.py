"""The conversion backend run inside a worker: one job -> one verified artifact.

Keeps one loaded model per worker (:data:`MAX_CONVERTERS`): all variants of a sweep that use
the same model (same source, same content, same custom objects) share one
:class:`czbuild.keras.converter.ModelConverter`, hence one model load and, for a
tiling-invariant model, one trace/conversion. The same loaded model is the reference of the
verification that runs before the artifact gets its final name
(:mod:`czbuild.builder.verification`). Imports TensorFlow (lazily, on first job).
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

MAX_CONVERTERS = 1


def convert_job(job: Any, cache: dict[Any, Any]) -> dict[str, Any]:
    """Convert ``job.variant`` into ``job.out_path``, verified unless ``job.verify`` is False.

    Returns sha256, member hashes and the verification record (None when not verified).

    Args:
        job: A :class:`czbuild.builder.protocol.Job`.
        cache: Worker-lifetime dict: model key -> (converter, custom objects).
    """
    from czbuild.builder.request import recipe_error_for, to_request
    from czbuild.builder.verification import install_verified, verify_with_reference
    from czbuild.convert import convert
    from czbuild.errors import MetadataError

    variant = job.variant
    spec = variant.spec
    key = (job.source_key, variant.model_source, tuple(spec.model.custom_objects))
    entry = cache.get(key)
    if entry is None:
        entry = cache[key] = _load(job, cache)
    converter, custom, recorded = entry
    try:
        request = to_request(variant, custom_objects=custom)
    except MetadataError as exc:
        restated = recipe_error_for(variant, exc)
        if restated is exc:
            raise
        raise restated from exc
    output = Path(str(variant.output)).as_posix()

    def verify(path: Path) -> dict[str, Any]:
        return verify_with_reference(path, variant, source_model=converter.model, output=output)

    def write(path: Path) -> Any:
        try:
            return convert(request, path, converter=converter)
        except MetadataError as exc:
            # name the recipe's key and line, not the library's metadata field
            restated = recipe_error_for(variant, exc)
            if restated is exc:
                raise
            raise restated from exc

    result, record = install_verified(
        Path(job.out_path), write, verify if getattr(job, "verify", False) else None
    )
    return {
        "sha256": result.sha256,
        "members": dict(result.members),
        "verification": record,
        "inputs": list(recorded),
    }


def _load(job: Any, cache: dict[Any, Any]) -> tuple[Any, Any, tuple[tuple[str, str], ...]]:
    """Load the job's custom objects and model, recording what they read and import.

    Returns ``(converter, custom objects, recorded inputs)``; a previously loaded model (and
    the user modules it executed) is dropped first, so every model's reads are recorded in
    full whatever ran in this worker before.
    """
    from czbuild.builder.reads import ReadRecorder
    from czbuild.keras.converter import ModelConverter
    from czbuild.keras.sources import forget_user_modules, import_framework

    import_framework()  # before recording: Keras' own start-up reads do not count

    variant = job.variant
    spec = variant.spec
    if len(cache) >= MAX_CONVERTERS:
        previous = [path for entry in cache.values() for _, path in entry[2]]
        cache.clear()
        forget_user_modules(previous)
        gc.collect()
    output_parts = len(Path(str(variant.output)).parts)
    out_dir = Path(job.out_path).parents[output_parts - 1]
    custom: dict[str, Any] | None = None
    with ReadRecorder(exclude=[out_dir], project_dir=variant.project_dir) as recorder:
        if spec.model.custom_objects:
            from czbuild.keras.sources import load_custom_objects

            custom = load_custom_objects(variant.custom_object_files)
        converter = ModelConverter(variant.model_source, custom_objects=custom)
        converter.model  # noqa: B018 - load now, inside the recorder
    declared = {os.path.abspath(p) for p in variant.inputs}
    recorded = tuple((role, path) for role, path in recorder.inputs if path not in declared)
    return converter, custom, recorded
