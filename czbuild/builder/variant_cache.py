"""A cache of composed variants, so a no-op build does not run Hydra (or import it).

Composing 20 recipes with Hydra and validating them takes about a second, and importing Hydra
and the recipe schema another 0.3 s: more than a whole no-op build may cost. The result of
:func:`czbuild.recipe.load_variants` depends only on

* the recipe names and overrides asked for, and the project folder;
* the content of every YAML file the composition can read: ``recipes/``, the project's
  ``configs/``, czbuild's bundled ``configs/`` (and the folder of a recipe given by path);
* the czbuild code that composes and resolves (its version and the content of its sources);
* whether each input file the variants name still exists as a file / directory.

:func:`cached_load_variants` keys a JSON record of the variants on all of that (contents
through the stat-shortcut :class:`~czbuild.builder.hashing.HashCache`, so nothing is re-read
when nothing changed) and reads them back as :class:`czbuild.recipe.variant.Variant` objects
(:meth:`~czbuild.recipe.variant.Variant.from_record`: plain dataclasses, no pydantic, no
Hydra). On a miss, the recipe layer's own errors surface as usual.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from czbuild.builder.hashing import HashCache
from czbuild.builder.toolchain import czbuild_version
from czbuild.files.canonical import read_json, write_json
from czbuild.recipe.variant import Variant

_FORMAT = 2  # 2: full Variant records (czbuild.recipe.variant)
_KEEP = 16
_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def _to_record(variant: Variant) -> dict[str, Any]:
    record = variant.to_record()
    record["input_kinds"] = [_kind(Path(p)) for p in variant.inputs]
    return record


def _from_record(record: Mapping[str, Any]) -> Variant:
    return Variant.from_record(record)


def _kind(path: Path) -> str:
    if path.is_dir():
        return "dir"
    return "file" if path.exists() else "missing"


def _yaml_files(folder: Path) -> list[Path]:
    out: list[Path] = []
    if not folder.is_dir():
        return out
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(Path(dirpath, f) for f in filenames if f.endswith((".yaml", ".yml")))
    return out


def _source_files() -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(_PACKAGE_DIR):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__")))
        out.extend(Path(dirpath, f) for f in filenames if f.endswith(".py"))
    return out


def cache_key(
    names: Sequence[str], overrides: Sequence[str], project_dir: Path, cache: HashCache
) -> str:
    """The key described in the module docstring."""
    from czbuild.builder.stamps import STATE_DIR
    from czbuild.recipe.project import BUNDLED_CONFIGS

    project = Path(project_dir).absolute()
    folders = [project / "recipes", project / "configs", BUNDLED_CONFIGS]
    for name in names:
        if name.endswith((".yaml", ".yml")) or "/" in name or os.sep in name:
            folders.append(
                (project / name).parent if not os.path.isabs(name) else Path(name).parent
            )
            folders.append(Path(name).absolute().parent)
    files = {str(p) for folder in folders for p in _yaml_files(folder) if STATE_DIR not in p.parts}
    digest = hashlib.sha256()
    head = {
        "format": _FORMAT,
        "czbuild": czbuild_version(),
        "project": str(project),
        "names": list(names),
        "overrides": list(overrides),
    }
    digest.update(json.dumps(head, sort_keys=True).encode())
    for path in sorted(files):
        digest.update(f"{path}\0{cache.file_sha256(Path(path))}\n".encode())
    for source in sorted(_source_files()):
        digest.update(f"{source}\0{cache.file_sha256(source)}\n".encode())
    return digest.hexdigest()


def cached_load_variants(
    names: Sequence[str],
    overrides: Sequence[str],
    project_dir: Path,
    cache_dir: Path,
    *,
    cache: HashCache | None = None,
) -> list[Variant]:
    """:func:`czbuild.recipe.load_variants`, answered from ``cache_dir`` when nothing changed.

    Returns:
        The variants (read back from the cache on a hit, composed and stored on a miss).
    """
    hashes = cache or HashCache.shared(Path(cache_dir) / "hashcache.json")
    try:
        key = cache_key(names, overrides, project_dir, hashes)
    except OSError:
        key = None
    folder = Path(cache_dir) / "variants"
    if key is not None:
        data = read_json(folder / f"{key}.json")
        if isinstance(data, dict) and data.get("format") == _FORMAT:
            records = data.get("variants") or []
            try:
                if all(
                    _kind(Path(p)) == kind
                    for r in records
                    for p, kind in zip(r["inputs"], r["input_kinds"], strict=True)
                ):
                    return [_from_record(r) for r in records]
            except (KeyError, TypeError, ValueError):
                pass  # an unreadable record is a miss
    from czbuild.recipe import load_variants

    variants = list(load_variants(list(names) or None, list(overrides), project_dir=project_dir))
    if key is not None:
        try:
            write_json(
                folder / f"{key}.json",
                {"format": _FORMAT, "variants": [_to_record(v) for v in variants]},
                durable=False,
            )
            _prune(folder)
            hashes.save()
        except OSError:  # read-only output folder: the cache is only a speed-up
            pass
    return variants


def _prune(folder: Path) -> None:
    entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for stale in entries[_KEEP:]:
        try:
            stale.unlink()
        except OSError:
            pass
