"""The payload cache: converted models by what determines them, under the build folder.

Converting and verifying a real model takes tens of seconds; renaming a class does not
change the payload. A conversion job therefore first looks up its payload in
``<out>/.czbuild/payloads/``, keyed (:func:`payload_key`) by everything the payload bytes
depend on:

* the model's inputs with their content digests (model source, custom-object files,
  ``model.inputs``, and what the worker recorded the source reading last time; the
  licence is not part of it);
* the pre-/postprocessing chains, the spatial dims, the ONNX opset (or SavedModel payload)
  and the format family;
* the toolchain versions and czbuild's artifact-code digest.

A hit re-packages the cached payload with the variant's metadata through
:func:`czbuild.convert.package` (no TensorFlow for an ONNX payload) -- the same function a
conversion ends with, so the artifact is byte-identical to a from-scratch build -- and the
checks that only depend on the payload (fidelity, tiling, class order) are taken from the
cached verification record when the metadata they read is unchanged
(:func:`reuse_context`); every other check runs again on the new artifact.

An entry is a folder ``<key>/`` with ``payload.bin`` and ``entry.json`` (shapes, route,
opset, the payload's sha256, the recorded inputs and the verification record), each
written atomically; ``entry.json`` is written last, so an entry without it does not exist.
An entry whose payload does not match the recorded sha256, or that does not parse, is
ignored (and rewritten by the next conversion), never shipped. Two builds writing the same
key write the same bytes. Eviction: after each store, entries beyond :data:`MAX_ENTRIES` or
:data:`MAX_BYTES` in all are removed, least recently used first (a hit touches its entry).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from czbuild.files.atomic import atomic_write
from czbuild.files.canonical import digest_json, read_json, write_json

__all__ = [
    "MAX_BYTES",
    "MAX_ENTRIES",
    "CachedPayload",
    "can_reuse",
    "metadata_only",
    "payload_key",
    "read_entry",
    "reuse_context",
    "reused_record",
    "write_entry",
]

_FORMAT = 1
MAX_ENTRIES = 64
MAX_BYTES = 4 * 1024**3
PAYLOAD = "payload.bin"
ENTRY = "entry.json"

#: Checks whose result depends on the payload and on :func:`reuse_context` only.
REUSABLE_PREFIXES = ("fidelity", "tiling.")
#: ``semantics.class_order`` also reads the class names.
CLASS_ORDER = "semantics.class_order"
#: Checks that read the payload bytes, the format version, the type, the input range and the
#: class count only (:func:`metadata_only`).
PAYLOAD_PREFIXES = ("payload.", "semantics")


@dataclass(frozen=True)
class CachedPayload:
    """A payload read back from the cache.

    Attributes:
        payload: ONNX bytes or a zipped SavedModel.
        input_shape: Model input shape without the batch dim.
        output_shape: Model output shape without the batch dim.
        route: How it was converted (``specialized``, ``fixed``, ``savedmodel``).
        opset: ONNX opset, None for a SavedModel.
        inputs: ``(role, absolute path)`` the worker recorded while loading the model.
        verification: The record of the artifact verified with this payload, or None.
        context: :func:`reuse_context` of that verification.
        classes: The class names that verification saw.
    """

    payload: bytes
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    route: str
    opset: int | None
    inputs: tuple[tuple[str, str], ...]
    verification: dict[str, Any] | None
    context: str
    classes: tuple[str, ...] | None


def cache_dir(out_dir: Path) -> Path:
    """``<out>/.czbuild/payloads``."""
    from czbuild.builder.stamps import state_dir

    return state_dir(out_dir) / "payloads"


def payload_key(
    variant: Any, inputs: Iterable[tuple[str, str, str | None]], toolchain: Mapping[str, str]
) -> str:
    """The cache key of ``variant``'s payload (see the module docstring).

    Args:
        variant: The :class:`czbuild.recipe.Variant`.
        inputs: ``(role, path, digest)`` of every input except the licence.
        toolchain: Toolchain versions, with ``czbuild_code`` (the artifact-code digest).
    """
    spec = variant.spec
    form = {
        "format": _FORMAT,
        "inputs": sorted([list(i) for i in inputs if i[0] != "licence"], key=str),
        "model": {
            "kind": spec.model.kind,
            "path": spec.model.path,
            "function": spec.model.function,
        },
        "preprocessing": [dict(op) for op in spec.preprocessing],
        "postprocessing": [dict(op) for op in spec.postprocessing],
        "spatial_dims": list(spec.spatial_dims) if spec.spatial_dims is not None else None,
        "opset": spec.opset,
        "family": spec.format,
        "toolchain": dict(toolchain),
    }
    return hashlib.sha256(digest_json(form).encode("ascii")).hexdigest()


def reuse_context(variant: Any) -> str:
    """What the reusable checks read besides the payload: settings and metadata they use.

    The verify settings, the format family and version, the model type, the pixel types and
    colour handling (they set the input range) and the tile overlap (``min_overlap`` /
    ``border_size``). Class names, model name, scaling, id and licence are not in it.
    """
    spec = variant.spec
    md = spec.metadata
    form = {
        "verify": spec.verify.to_plain(),
        "family": spec.format,
        "version": spec.format_version,
        "type": md.type,
        "pixel_type": list(md.pixel_type) if md.pixel_type is not None else None,
        "color_handling": md.color_handling,
        "min_overlap": list(md.min_overlap) if md.min_overlap is not None else None,
        "border_size": md.border_size,
    }
    return hashlib.sha256(digest_json(form).encode("ascii")).hexdigest()


def read_entry(out_dir: Path, key: str) -> CachedPayload | None:
    """The entry under ``key``, or None when there is none or it is damaged."""
    folder = cache_dir(out_dir) / key
    data = read_json(folder / ENTRY)
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        return None
    try:
        payload = (folder / PAYLOAD).read_bytes()
    except OSError:
        return None
    try:
        if hashlib.sha256(payload).hexdigest() != data["payload_sha256"]:
            return None
        entry = CachedPayload(
            payload=payload,
            input_shape=tuple(int(d) for d in data["input_shape"]),
            output_shape=tuple(int(d) for d in data["output_shape"]),
            route=str(data["route"]),
            opset=None if data.get("opset") is None else int(data["opset"]),
            inputs=tuple((str(r), str(p)) for r, p in data.get("inputs") or ()),
            verification=data.get("verification"),
            context=str(data.get("context") or ""),
            classes=None if data.get("classes") is None else tuple(data["classes"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
    try:
        os.utime(folder / ENTRY)  # least recently used goes first
    except OSError:
        pass
    return entry


def write_entry(
    out_dir: Path,
    key: str,
    *,
    converted: Any,
    inputs: Iterable[tuple[str, str]],
    verification: Mapping[str, Any] | None,
    variant: Any,
) -> None:
    """Store a converted payload (a :class:`czbuild.keras.converter.ConvertedModel`).

    Never raises for a full disk or a read-only folder: the cache is only a speed-up.
    """
    folder = cache_dir(out_dir) / key
    classes = variant.spec.metadata.classes
    data = {
        "format": _FORMAT,
        "payload_sha256": hashlib.sha256(converted.payload).hexdigest(),
        "input_shape": list(converted.input_shape),
        "output_shape": list(converted.output_shape),
        "route": converted.route,
        "opset": converted.opset,
        "inputs": [list(i) for i in inputs],
        "verification": dict(verification) if verification is not None else None,
        "context": reuse_context(variant) if verification is not None else "",
        "classes": list(classes) if classes is not None else None,
    }
    try:
        atomic_write(folder / PAYLOAD, converted.payload, durable=False)
        write_json(folder / ENTRY, data, durable=False)
    except (OSError, TypeError, ValueError):
        return
    prune(out_dir)


def prune(out_dir: Path, *, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
    """Remove the least recently used entries beyond the bounds, and damaged leftovers."""
    root = cache_dir(out_dir)
    try:
        folders = [p for p in root.iterdir() if p.is_dir()]
    except OSError:
        return
    entries: list[tuple[float, int, Path]] = []
    now = time.time()
    for folder in folders:
        try:
            used = (folder / ENTRY).stat().st_mtime
        except OSError:
            used = None
        try:
            size = sum(p.stat().st_size for p in folder.iterdir())
        except OSError:
            size = 0
        if used is None:
            # no entry.json: a store in progress, or one killed; leave recent ones alone
            try:
                if now - folder.stat().st_mtime > 3600:
                    shutil.rmtree(folder, ignore_errors=True)
            except OSError:
                pass
            continue
        entries.append((used, size, folder))
    entries.sort(key=lambda e: e[0], reverse=True)
    total = 0
    for index, (_, size, folder) in enumerate(entries):
        total += size
        if index >= max_entries or total > max_bytes:
            shutil.rmtree(folder, ignore_errors=True)


def can_reuse(cached: CachedPayload, variant: Any) -> bool:
    """Whether ``cached``'s verification can stand in for fidelity, tiling and class order.

    False when it has no verification record (built with ``--no-verify``), when it saw other
    settings or metadata (:func:`reuse_context`), or other class names where the class-order
    check applied, or when the recipe has ``verify.samples`` (their checks report by class
    name and run only with the recipe, so the artifact is converted and verified anew).
    """
    old = cached.verification
    if not isinstance(old, Mapping) or cached.context != reuse_context(variant):
        return False
    if variant.spec.verify.samples:  # samples.* name classes and need the recipe: run them anew
        return False
    classes = variant.spec.metadata.classes
    same_classes = cached.classes == (tuple(classes) if classes is not None else None)
    for check in old.get("checks") or []:
        if (
            isinstance(check, Mapping)
            and check.get("name") == CLASS_ORDER
            and not same_classes
            and check.get("status") != "skipped"
        ):
            return False
    return True


def metadata_only(cached: CachedPayload, variant: Any) -> bool:
    """Whether only the checks that read the container and metadata must run again.

    True when :func:`can_reuse` holds and the class count is the cached verification's:
    then the payload checks (``payload.*``: the bytes, the format version, the shapes, the
    class count, the pixel types) and ``semantics`` (the packaged model's outputs on the
    seeded batch, judged by the type, input range and tolerance) would compute exactly what
    the cached record holds (:func:`reuse_context` covers everything else they read), so a
    class rename re-packages without loading onnx, onnxruntime or TensorFlow.
    """
    if not can_reuse(cached, variant):
        return False
    classes = variant.spec.metadata.classes
    new = None if classes is None else len(classes)
    old = None if cached.classes is None else len(cached.classes)
    return new == old


def _reusable(name: str, payload: bool = False) -> bool:
    if payload and name.startswith(PAYLOAD_PREFIXES):
        return True
    return name.startswith(REUSABLE_PREFIXES) or name == CLASS_ORDER


def reused_record(
    fresh: Mapping[str, Any], cached: CachedPayload, *, payload: bool = False
) -> dict[str, Any]:
    """The verification record of a re-packaged artifact (call :func:`can_reuse` first).

    ``fresh`` is the record of the checks run on the new artifact (all but fidelity, tiling
    and class order, which it reports as skipped); those three come from
    ``cached.verification``, and with ``payload`` (call :func:`metadata_only` first) also the
    payload and semantics checks. The checks keep the cached record's order.
    """
    old = cached.verification or {}
    fresh_checks = {
        c.get("name"): c
        for c in fresh.get("checks") or []
        if isinstance(c, Mapping) and not _reusable(str(c.get("name")), payload)
    }
    checks: list[Any] = []
    for check in old.get("checks") or []:
        if not isinstance(check, Mapping):
            continue
        name = str(check.get("name"))
        if _reusable(name, payload):
            checks.append(dict(check))
        elif name in fresh_checks:
            checks.append(fresh_checks.pop(name))
    checks.extend(fresh_checks.values())
    record = dict(fresh)
    record["checks"] = checks
    record["ok"] = not any(c.get("status") == "failed" for c in checks)
    if isinstance(fresh.get("summary"), Mapping):
        summary = {status: 0 for status in fresh["summary"]}
        for check in checks:
            status = str(check.get("status"))
            summary[status] = summary.get(status, 0) + 1
        record["summary"] = summary
    return record
