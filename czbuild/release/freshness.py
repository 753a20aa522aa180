"""Is a lock entry still about the variant the recipes define today? (no building, no TensorFlow)

Before anything is rebuilt, each variant's current fingerprint (spec digest, input hashes,
toolchain) is compared with its lock entry:

* no entry: ``missing`` (a new recipe or sweep point);
* another spec digest, output path or input hash: ``stale`` (the lock predates a change);
* only the toolchain differs: fresh, with a note (the bytes may then legitimately differ,
  and a difference is reported with that note).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from czbuild.recipe.variant import Variant
from czbuild.release.collect import lock_toolchain
from czbuild.release.difference import short_hash
from czbuild.release.lockfile import LockEntry, LockFile

MISSING = "missing"
STALE = "stale"


@dataclass(frozen=True)
class Freshness:
    """How a variant relates to its lock entry.

    Attributes:
        variant: Variant name.
        status: None when the entry is current, else :data:`MISSING` or :data:`STALE`.
        reasons: Why it is missing or stale (one sentence each).
        notes: Context that does not make it stale (toolchain differences).
        inputs: The variant's current inputs (path -> sha256).
        toolchain: The current toolchain (with python).
    """

    variant: str
    status: str | None
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    inputs: dict[str, str] = field(default_factory=dict)
    toolchain: dict[str, str] = field(default_factory=dict)


def _cache(reference_dir: Path | None) -> Any:
    from czbuild.builder.hashing import HashCache
    from czbuild.builder.stamps import state_dir

    if reference_dir is not None:
        path = state_dir(Path(reference_dir)) / "hashcache.json"
        if path.is_file():
            return HashCache(path)  # read-only use: never saved from here
    return HashCache(None)


def freshness(
    variants: Iterable[Variant], lock: LockFile, *, reference_dir: Path | None = None
) -> dict[str, Freshness]:
    """Compare each variant's fingerprint with its lock entry (see the module docstring).

    Args:
        variants: :class:`czbuild.recipe.Variant` objects (or build-layer doubles).
        lock: The lock file.
        reference_dir: A build folder whose hash cache may spare re-reading large inputs.
    """
    from czbuild.builder.fingerprint import compute_fingerprint

    cache = _cache(reference_dir)
    out: dict[str, Freshness] = {}
    for variant in variants:
        entry = lock.get(variant.name)
        # inputs the worker recorded (files a factory read): the lock's inputs the recipe
        # does not name, hashed again now -- so `check` sees what `build` rebuilds for
        declared = compute_fingerprint(variant, cache)
        named = {i.path for i in declared.inputs}
        recorded = [
            ("recorded", path) for path in (entry.inputs if entry else {}) if path not in named
        ]
        fp = compute_fingerprint(variant, cache, recorded) if recorded else declared
        inputs = {i.path: i.sha256 for i in fp.inputs if i.sha256}
        toolchain = lock_toolchain(fp.toolchain)
        if entry is None:
            out[variant.name] = Freshness(
                variant.name,
                MISSING,
                (f"{variant.name} has no entry in the lock file (a new recipe or sweep point?)",),
                inputs=inputs,
                toolchain=toolchain,
            )
            continue
        reasons = _stale_reasons(entry, variant, fp, inputs)
        out[variant.name] = Freshness(
            variant.name,
            STALE if reasons else None,
            tuple(reasons),
            tuple(_toolchain_notes(entry, toolchain)),
            inputs=inputs,
            toolchain=toolchain,
        )
    return out


def _stale_reasons(
    entry: LockEntry, variant: Variant, fp: Any, inputs: dict[str, str]
) -> list[str]:
    reasons = []
    if entry.spec_digest != variant.digest:
        reasons.append(
            f"the resolved recipe changed since the lock was written (spec digest "
            f"{short_hash(entry.spec_digest)} in the lock, {short_hash(variant.digest)} "
            f"now; see `czbuild show {variant.recipe}`)"
        )
    output = PurePosixPath(variant.output).as_posix()
    if entry.path != output:
        reasons.append(f"the output path changed: {entry.path} in the lock, {output} now")
    for missing in fp.missing_inputs:
        reasons.append(f"input {missing.path} ({missing.role}) is missing")
    recorded = {i.path for i in fp.inputs if i.recorded}
    for path in sorted(set(entry.inputs) | set(inputs)):
        old, new = entry.inputs.get(path), inputs.get(path)
        if old == new or (new is None and any(m.path == path for m in fp.missing_inputs)):
            continue
        if new is None and path in recorded:
            reasons.append(f"input {path} (read by the model source) is missing")
        elif old is None:
            reasons.append(f"new input {path} (not in the lock)")
        elif new is None:
            reasons.append(f"input {path} is no longer used")
        else:
            reasons.append(
                f"input {path} changed (sha256 {short_hash(old)} in the lock, "
                f"{short_hash(new)} now)"
            )
    return reasons


def _toolchain_notes(entry: LockEntry, toolchain: dict[str, str]) -> list[str]:
    changes = [
        f"{name} {entry.toolchain.get(name, '-')} (lock) vs {toolchain.get(name, '-')} (here)"
        for name in sorted(set(entry.toolchain) | set(toolchain))
        if entry.toolchain.get(name) != toolchain.get(name)
    ]
    if not changes:
        return []
    return [
        "the toolchain differs from the one that wrote the lock: "
        + ", ".join(changes)
        + "; different bytes are then possible"
    ]


def extra_entries(lock: LockFile, variants: Iterable[Variant]) -> list[str]:
    """Lock entries whose variant no recipe defines any more."""
    names = {v.name for v in variants}
    return sorted(name for name in lock.entries if name not in names)
