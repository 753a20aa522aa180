"""The conversion backend run inside a worker: one job -> one verified artifact.

Keeps one loaded model per worker (:data:`MAX_CONVERTERS`): all variants of a sweep that use
the same model (same source, same content, same custom objects) share one converter of the
source's adapter (:func:`czbuild.sources.dispatch.open_converter`: Keras, ONNX or PyTorch),
hence one model load (one PyTorch export) and, for a tiling-invariant model, one
trace/conversion. The same loaded model is the reference of the verification that runs
before the artifact gets its final name (:mod:`czbuild.builder.verification`). Imports the
framework (lazily, on first job).
"""

from __future__ import annotations

import gc
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
        from czbuild.sources.dispatch import open_converter

        if len(cache) >= MAX_CONVERTERS:
            cache.clear()
            gc.collect()
        custom: dict[str, Any] | None = None
        if spec.model.custom_objects:
            from czbuild.keras.sources import load_custom_objects

            custom = load_custom_objects(variant.custom_object_files)
        converter = open_converter(variant.model_source, custom_objects=custom)
        entry = cache[key] = (converter, custom)
    converter, custom = entry
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
    return {"sha256": result.sha256, "members": dict(result.members), "verification": record}
