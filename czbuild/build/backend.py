"""The conversion backend run inside a worker: one job -> one artifact.

Keeps one loaded model per worker (:data:`MAX_CONVERTERS`): all variants of a sweep that use
the same model (same source, same content, same custom objects) share one
:class:`czbuild.keras.converter.ModelConverter`, hence one model load and, for a
tiling-invariant model, one trace/conversion. Imports TensorFlow (lazily, on first job).
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

MAX_CONVERTERS = 1


def convert_job(job: Any, cache: dict[Any, Any]) -> dict[str, Any]:
    """Convert ``job.variant`` into ``job.out_path``; returns sha256 and member hashes.

    Args:
        job: A :class:`czbuild.build.protocol.Job`.
        cache: Worker-lifetime dict: model key -> (converter, custom objects).
    """
    from czbuild.build.request import custom_object_files, model_source, to_request
    from czbuild.build.variant_cache import materialize
    from czbuild.convert import convert

    variant = materialize(job.variant)
    spec = variant.spec
    project = Path(variant.project_dir)
    key = (job.source_key, model_source(spec, project), tuple(spec.model.custom_objects))
    entry = cache.get(key)
    if entry is None:
        from czbuild.keras.converter import ModelConverter

        if len(cache) >= MAX_CONVERTERS:
            cache.clear()
            gc.collect()
        custom: dict[str, Any] | None = None
        if spec.model.custom_objects:
            from czbuild.keras.sources import load_custom_objects

            custom = load_custom_objects(custom_object_files(spec, project))
        converter = ModelConverter(model_source(spec, project), custom_objects=custom)
        entry = cache[key] = (converter, custom)
    converter, custom = entry
    request = to_request(variant, custom_objects=custom)
    result = convert(request, Path(job.out_path), converter=converter)
    return {"sha256": result.sha256, "members": dict(result.members)}
