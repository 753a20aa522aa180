"""Which ZEN releases a recipe may target.

The compatibility matrix (:data:`czbuild.formats.vocab.MIN_ZEN`) names, per product, the
releases from which each format version opens. czbuild therefore knows a range of releases
per product: from the oldest one that opens any ZEN model file (ZEN Blue 3.2, ZEN Core 3.1)
to the newest one the matrix mentions (3.13). The rule for ``target.version``:

* older than the oldest known release: refused (no ZEN model file opens there, so the target
  is a typo or a misunderstanding);
* written with leading zeros (``'3.05'``): refused (ambiguous: ``3.5`` or a ``3.50``?);
* within the known range: used as is;
* newer than the newest known release: accepted, with a note — a newer ZEN release reads
  every format version the older ones read, so czbuild picks what the newest known release
  reads (newer format versions it may also read are unknown to czbuild).

The shape ``major.minor`` (a quoted string) is the schema's business
(:class:`czbuild.recipe.schema.Target`).
"""

from __future__ import annotations

from czbuild.formats import vocab
from czbuild.recipe.diagnostics import Issue
from czbuild.recipe.schema import Target

__all__ = ["check_target", "known_zen_range"]

_KEY = ("target", "version")


def _text(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def known_zen_range(product: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """The oldest and the newest ZEN release of ``product`` the compatibility matrix knows.

    Args:
        product: ``"blue"`` or ``"core"``.

    Returns:
        ``((major, minor), (major, minor))``: the oldest release that opens any ZEN model
        file, and the newest release the matrix names.
    """
    idx = vocab.ZEN_PRODUCTS.index(product)
    releases = [needs[idx] for needs in vocab.MIN_ZEN.values()]
    return min(releases), max(releases)


def check_target(target: Target | None) -> tuple[str, ...]:
    """Check a validated ``target`` against the releases czbuild knows.

    Args:
        target: The recipe's target (schema-valid: known product, ``major.minor`` string),
            or None.

    Returns:
        Notes for the user (empty, or one note for a release newer than czbuild knows).

    Raises:
        Issue: On ``target.version``: leading zeros, or a release older than the oldest
            one that opens a ZEN model file.
    """
    if target is None:
        return ()
    product = target.product
    zen = f"ZEN {product.capitalize()}"
    parts = target.version.strip().split(".")
    if any(len(p) > 1 and p.startswith("0") for p in parts):
        clean = ".".join(str(int(p)) for p in parts)
        raise Issue(
            _KEY,
            f"{target.version!r} has leading zeros; write the release as ZEN "
            f"names it, e.g. '{clean}'",
        )
    version = vocab.parse_zen_version(target.version)
    oldest, newest = known_zen_range(product)
    if version < oldest:
        raise Issue(
            _KEY,
            f"{zen} {_text(version)} is older than {zen} {_text(oldest)}, the "
            f"first release that opens ZEN model files; use '{_text(oldest)}' "
            f"or newer (e.g. the bundled /target: zen-{product}-{_text(oldest)})",
        )
    if version > newest:
        note = (
            f"{zen} {_text(version)} is newer than the newest release czbuild knows "
            f"({zen} {_text(newest)}); assuming it reads every format version "
            f"{zen} {_text(newest)} reads"
        )
        return (note,)
    return ()
