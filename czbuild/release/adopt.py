"""Move checked artifacts from a scratch build into the build folder (``build --locked``).

``czbuild build --locked`` rebuilds in a scratch folder and compares with the lock; when
everything matches, the scratch artifacts *are* the build's result. Converting again into the
build folder would double the cost, so the artifacts and their build stamps are copied
instead, in the build layer's own order (artifact atomically first, then its stamp, then the
manifest) and under the build folder's lock. Stamps do not depend on the output folder (all
their paths are relative), so a copied stamp is exactly what a build there would have written;
:func:`adopt` finally asks the build layer's ``status`` whether it agrees.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from czbuild.files.atomic import atomic_write
from czbuild.files.digest import file_sha256
from czbuild.recipe.variant import Variant


def _sha256(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except FileNotFoundError:
        return None


def adopt(
    scratch_dir: Path, out_dir: Path, variants: Sequence[Variant], *, lock_timeout: float = 60.0
) -> list[str]:
    """Copy the scratch artifacts (and stamps) of ``variants`` into ``out_dir``.

    Args:
        scratch_dir: The checked scratch build folder.
        out_dir: The build folder.
        variants: The variants to adopt.
        lock_timeout: Seconds to wait for another build of ``out_dir``.

    Returns:
        Names of variants that are still not up to date in ``out_dir`` afterwards (the
        caller builds those normally); empty when everything was adopted.

    Raises:
        BuildError: Another build holds ``out_dir``'s lock.
    """
    from czbuild.builder import locking, status
    from czbuild.builder.hashing import HashCache
    from czbuild.builder.manifest import write_manifest
    from czbuild.builder.stamps import read_stamp, remove_stamp, state_dir, write_stamp

    scratch_dir, out_dir = Path(scratch_dir), Path(out_dir).absolute()
    locking.hold(out_dir, lock_timeout)
    try:
        for variant in variants:
            rel = PurePosixPath(variant.output).as_posix()
            stamp = read_stamp(scratch_dir, rel)
            source = scratch_dir / rel
            if stamp is None or not source.is_file():
                continue
            target = out_dir / rel
            if read_stamp(out_dir, rel) == stamp and _sha256(target) == stamp["artifact"]["sha256"]:
                continue
            remove_stamp(out_dir, rel)
            atomic_write(target, source.read_bytes())
            write_stamp(out_dir, stamp)
        cache = HashCache.shared(state_dir(out_dir) / "hashcache.json")
        for variant in variants:
            cache.forget(out_dir / PurePosixPath(variant.output))
        write_manifest(out_dir, cache)
        cache.save()
    finally:
        locking.release(out_dir)
    return [s.variant for s in status(list(variants), out_dir) if not s.up_to_date]
