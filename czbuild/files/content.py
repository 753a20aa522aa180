"""Content digests of model files: what a model *is*, not how its container was written.

Saving an unchanged Keras model again gives new bytes: a ``.keras`` file is a ZIP whose
entry times and ``metadata.json`` ``date_saved`` change with every save, an HDF5 file may
lay the same datasets out differently, and a SavedModel's ``fingerprint.pb`` is new each
time. A build that hashed those bytes would rebuild (and churn the lock file) for nothing.
:func:`content_sha256` hashes what determines the converted payload instead:

* ``.keras``: every member by name -- ``config.json`` as canonical JSON with its
  ``shared_object_id`` values (Keras writes a Python ``id()``, a memory address, there)
  renumbered in order of first appearance and dropped where an id occurs only once (it
  then links nothing; a reloaded model saves without it), ``metadata.json`` as canonical
  JSON without ``date_saved``, each ``.h5`` member (the weights) by :func:`h5_sha256`,
  anything else (assets) by its bytes. Entry times, order and compression do not count.
* ``.h5`` / ``.hdf5``: :func:`h5_sha256` -- every group and dataset by path, each dataset's
  dtype, shape and values, every attribute's name and value; not the file's layout bytes.
* a SavedModel directory: the tree digest (:func:`czbuild.files.digest.tree_sha256`) of
  every file except the top-level ``fingerprint.pb``.
* anything else: :func:`czbuild.files.digest.path_sha256` (file or tree digest).

h5py is imported lazily, only when an HDF5 file's digest is actually computed (the build's
stat cache answers for unchanged files without it). Reading a ``.keras`` member holds it in
memory once (the weights' size).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from czbuild.files.canonical import digest_json
from czbuild.files.digest import file_sha256, path_sha256, tree_sha256

__all__ = ["CONTENT_KINDS", "content_kind", "content_sha256", "h5_sha256", "keras_sha256"]

#: File suffix (lower case) -> content kind; a SavedModel directory is ``savedmodel``.
CONTENT_KINDS = {".keras": "keras", ".h5": "h5", ".hdf5": "h5"}
_SAVEDMODEL_VOLATILE = frozenset({"fingerprint.pb"})
_KERAS_VOLATILE_METADATA = ("date_saved",)


def content_kind(path: Path | str) -> str | None:
    """``keras``, ``h5``, ``savedmodel`` or None (hashed by bytes), from the path alone."""
    if os.path.isdir(path):
        return "savedmodel" if os.path.isfile(os.path.join(path, "saved_model.pb")) else None
    return CONTENT_KINDS.get(Path(path).suffix.lower())


def content_sha256(path: Path | str, *, file_hash: Callable[[Path], str] = file_sha256) -> str:
    """The content digest of a model file or folder (see the module docstring).

    Args:
        path: A ``.keras`` / ``.h5`` file, a SavedModel directory, or any file or directory.
        file_hash: One file's byte digest (a stat cache may answer); used for SavedModel
            files and for paths of no model kind.

    Raises:
        OSError: The path cannot be read.
        ValueError: A ``.keras`` / ``.h5`` file is not a valid ZIP / HDF5 file (names it).
    """
    kind = content_kind(path)
    if kind == "keras":
        return keras_sha256(path)
    if kind == "h5":
        return h5_sha256(path)
    if kind == "savedmodel":
        return tree_sha256(path, file_hash=file_hash, exclude=_SAVEDMODEL_VOLATILE)
    if os.path.isdir(path):
        return path_sha256(path)
    return file_hash(Path(path))


def keras_sha256(path: Path | str) -> str:
    """Content digest of a ``.keras`` archive (see the module docstring).

    Raises:
        ValueError: Not a ZIP file, or a JSON / HDF5 member that does not parse.
    """
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(path) as archive:
            for info in sorted(archive.infolist(), key=lambda i: i.filename):
                if info.is_dir():
                    continue
                data = archive.read(info)
                digest.update(f"{info.filename}\0{_member_digest(info.filename, data)}\n".encode())
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path}: not a .keras archive ({exc})") from exc
    return digest.hexdigest()


def _member_digest(name: str, data: bytes) -> str:
    base = name.rsplit("/", 1)[-1]
    if base in ("config.json", "metadata.json"):
        try:
            value = json.loads(data)
        except ValueError as exc:
            raise ValueError(f"{name}: not JSON ({exc})") from exc
        if base == "metadata.json" and isinstance(value, dict):
            for key in _KERAS_VOLATILE_METADATA:
                value.pop(key, None)
        else:
            counts: dict[Any, int] = {}
            _count_shared(value, counts)
            value = _renumber_shared(value, {k for k, n in counts.items() if n > 1}, {})
        return "json:" + hashlib.sha256(digest_json(value).encode("ascii")).hexdigest()
    if base.lower().endswith((".h5", ".hdf5")):
        return "h5:" + h5_sha256(io.BytesIO(data))
    return "bytes:" + hashlib.sha256(data).hexdigest()


def _count_shared(value: Any, counts: dict[Any, int]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "shared_object_id" and isinstance(item, (int, str)):
                counts[item] = counts.get(item, 0) + 1
            else:
                _count_shared(item, counts)
    elif isinstance(value, list):
        for item in value:
            _count_shared(item, counts)


def _renumber_shared(value: Any, shared: set[Any], ids: dict[Any, int]) -> Any:
    """``value`` with each ``shared_object_id`` replaced by its order of first appearance.

    The ids only link the uses of one shared object inside the config; their values are
    memory addresses. Ids not in ``shared`` (used once) are dropped. Keys are walked in
    sorted order, so the numbering is canonical.
    """
    if isinstance(value, dict):
        out = {}
        for key in sorted(value):
            item = value[key]
            if key == "shared_object_id" and isinstance(item, (int, str)):
                if item in shared:
                    out[key] = ids.setdefault(item, len(ids))
            else:
                out[key] = _renumber_shared(item, shared, ids)
        return out
    if isinstance(value, list):
        return [_renumber_shared(v, shared, ids) for v in value]
    return value


def h5_sha256(source: Path | str | io.BytesIO) -> str:
    """Content digest of an HDF5 file: groups, datasets (dtype, shape, values), attributes.

    Raises:
        ValueError: Not an HDF5 file.
    """
    import h5py
    import numpy as np

    digest = hashlib.sha256()

    def attrs(obj: Any) -> None:
        for name in sorted(obj.attrs):
            digest.update(f"@{name}\0{_value_text(obj.attrs[name], np)}\n".encode())

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            digest.update(f"D {name}\0{obj.dtype.str}\0{obj.shape}\n".encode())
            value = obj[()]
            if isinstance(value, np.ndarray) and value.dtype.kind not in "OUSV":
                digest.update(np.ascontiguousarray(value).tobytes())
            else:
                digest.update(_value_text(value, np).encode())
        else:
            digest.update(f"G {name}\n".encode())
        attrs(obj)

    try:
        handle = h5py.File(source, "r")
    except OSError as exc:
        raise ValueError(f"{getattr(source, 'name', source)}: not an HDF5 file ({exc})") from exc
    with handle:
        attrs(handle)
        names: list[str] = []
        handle.visit(names.append)
        for name in sorted(names):
            visit(name, handle[name])
    return digest.hexdigest()


def _value_text(value: Any, np: Any) -> str:
    """A stable text for an attribute or a string/object dataset value."""
    if isinstance(value, bytes):
        return "b:" + value.hex()
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OUSV":
            return f"a{value.shape}:" + json.dumps([_value_text(v, np) for v in value.ravel()])
        return f"n{value.dtype.str}{value.shape}:" + np.ascontiguousarray(value).tobytes().hex()
    if isinstance(value, np.generic):
        return f"s{value.dtype.str}:" + value.tobytes().hex()
    return f"{type(value).__name__}:{value!r}"
