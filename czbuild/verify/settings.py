"""How an artifact is verified: :class:`VerifySettings`, one type from recipe to report.

A recipe's ``verify:`` section validates into it (:mod:`czbuild.recipe.schema` takes its
defaults from here), the resolved spec carries it (``RecipeSpec.verify``), the build passes it
to :func:`czbuild.verify.verify_built_artifact`, and :func:`czbuild.verify.verify_artifact`
takes it (or the same values as keyword arguments). A plain data module: it imports nothing of
czbuild, so the recipe layer and a no-op build can use it without loading the verifier.

``overlap_analysis`` means the same everywhere: True (``"always"``) probes the receptive field
and searches the minimal overlap for every artifact; False (``"on-failure"``) only when
``tiling.seams`` fails; ``"never"`` (library only) not at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "ACCEPTABLE_CHECKS",
    "ALWAYS",
    "ANALYSIS_MODES",
    "BUILD",
    "NEVER",
    "ON_FAILURE",
    "PROXY_MODULUS",
    "STANDALONE",
    "VerifySettings",
    "analysis_mode",
    "check_tiling_max_tile",
]

#: When the receptive-field probe and the minimal-overlap search run.
ALWAYS, ON_FAILURE, NEVER = "always", "on-failure", "never"
ANALYSIS_MODES: Final = (ALWAYS, ON_FAILURE, NEVER)
#: Checks a recipe may accept by name (``verify.accept``): format expectations a model may miss
#: by design. Each is a real check name (a test keeps them so).
ACCEPTABLE_CHECKS: Final = ("semantics.output_range", "tiling.seams", "samples.seams")
#: Default of ``expect_tolerance`` (left out of the plain form).
_EXPECT_TOLERANCE: Final = 0.01
#: The deprecated single ``tolerance`` key: sets both tolerances (recipes written before the split).
DEPRECATED_TOLERANCE: Final = "tolerance"
_TOLERANCES: Final = ("fidelity_tolerance", "seam_tolerance")
#: A proxy tile keeps the artifact's tile size modulo this (down-sampling up to 2**7 aligned),
#: so ``tiling_max_tile`` is 0 (no limit) or at least this.
PROXY_MODULUS: Final = 128


def analysis_mode(value: bool | str) -> str:
    """The analysis mode of an ``overlap_analysis`` value (bool or mode name).

    Raises:
        ValueError: Neither a bool nor one of :data:`ANALYSIS_MODES`.
    """
    if value is True:
        return ALWAYS
    if value is False:
        return ON_FAILURE
    if value not in ANALYSIS_MODES:
        raise ValueError(
            f"overlap_analysis: must be true, false or one of {', '.join(ANALYSIS_MODES)}, "
            f"got {value!r}"
        )
    return str(value)


def check_tiling_max_tile(value: int) -> int:
    """``value`` if it is 0 (no limit) or at least :data:`PROXY_MODULUS`.

    Raises:
        ValueError: Otherwise (says what is allowed).
    """
    if value < 0 or 0 < value < PROXY_MODULUS:
        raise ValueError(f"must be 0 (no limit) or at least {PROXY_MODULUS}, got {value}")
    return value


@dataclass(frozen=True)
class VerifySettings:
    """Verification settings; the defaults are the build's (a recipe without ``verify:``).

    Attributes:
        fidelity_tolerance: Maximum absolute difference of the packaged model's own outputs:
            probability sums and ranges (semantics) and the packaged model against the source
            model (fidelity), in [0, 1].
        seam_tolerance: Maximum absolute difference between ZEN's stitched tiles and the
            whole-image prediction (``tiling.seams`` and the overlap search), in [0, 1].
        tiling: Run the tiling checks (they simulate many tiles).
        seed: Seed of every random test input (>= 0).
        tiling_max_tile: Check seams of larger tiles on a proxy tile of at most this size
            (0: always the artifact's own tile).
        overlap_analysis: True / ``"always"``, False / ``"on-failure"``, or ``"never"``
            (see the module docstring); stored as given, read through :attr:`analysis`.
        accept: Names of checks whose failure is accepted (reported as a warning); one of
            :data:`ACCEPTABLE_CHECKS` each. Left out of the plain form when empty, so specs
            without it keep their digest.
        samples: The user's own images (project-relative POSIX paths of ``.czi`` / ``.tif``
            files, resolved by the recipe layer): fidelity and seams run on them too
            (``samples.*`` checks). Build inputs (fingerprinted and locked).
        expect: A pinned reference output of the first sample (an OME-TIFF ``czbuild
            predict`` wrote: class indices or regression values): ``samples.expect`` compares
            the artifact's tiled prediction with it, per class.
        expect_tolerance: ``samples.expect`` fails when a class's IoU drops below
            ``1 - expect_tolerance`` (segmentation) or a value differs by more (regression).
        The three are left out of the plain form at their defaults (digests of specs without
        them are unchanged).
    """

    fidelity_tolerance: float = 1e-5
    seam_tolerance: float = 1e-5
    tiling: bool = True
    seed: int = 0
    tiling_max_tile: int = 256
    overlap_analysis: bool | str = False
    accept: tuple[str, ...] = ()
    samples: tuple[str, ...] = ()
    expect: str | None = None
    expect_tolerance: float = _EXPECT_TOLERANCE

    def __post_init__(self) -> None:
        for name in _TOLERANCES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name}: must be a number, got {value!r}")
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name}: must be between 0 and 1, got {value}")
            object.__setattr__(self, name, float(value))
        if not isinstance(self.tiling, bool):
            raise ValueError(f"tiling: must be true or false, got {self.tiling!r}")
        for name in ("seed", "tiling_max_tile"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}: must be an integer >= 0, got {value!r}")
        try:
            check_tiling_max_tile(self.tiling_max_tile)
        except ValueError as exc:
            raise ValueError(f"tiling_max_tile: {exc}") from None
        if isinstance(self.accept, str) or not all(isinstance(n, str) for n in self.accept):
            raise ValueError(f"accept: must be a list of check names, got {self.accept!r}")
        unknown = [n for n in self.accept if n not in ACCEPTABLE_CHECKS]
        if unknown:
            raise ValueError(
                f"accept: {unknown[0]!r} cannot be accepted; a recipe may accept only "
                f"{', '.join(ACCEPTABLE_CHECKS)}"
            )
        object.__setattr__(self, "accept", tuple(self.accept))
        if isinstance(self.samples, str) or not all(isinstance(n, str) for n in self.samples):
            raise ValueError(f"samples: must be a list of image paths, got {self.samples!r}")
        object.__setattr__(self, "samples", tuple(self.samples))
        if self.expect is not None and not isinstance(self.expect, str):
            raise ValueError(f"expect: must be a path, got {self.expect!r}")
        if self.expect is not None and not self.samples:
            raise ValueError("expect: pins the output of the first of verify.samples; add samples")
        value = self.expect_tolerance
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expect_tolerance: must be a number, got {value!r}")
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"expect_tolerance: must be between 0 and 1, got {value}")
        object.__setattr__(self, "expect_tolerance", float(value))
        mode = analysis_mode(self.overlap_analysis)
        if mode != NEVER:  # the recipe form: a bool
            object.__setattr__(self, "overlap_analysis", mode == ALWAYS)

    @property
    def analysis(self) -> str:
        """The overlap analysis mode: :data:`ALWAYS`, :data:`ON_FAILURE` or :data:`NEVER`."""
        return analysis_mode(self.overlap_analysis)

    @property
    def max_tile(self) -> int | None:
        """``tiling_max_tile`` for the tiling checks: None when there is no limit."""
        return self.tiling_max_tile or None

    def replace(self, **changes: Any) -> VerifySettings:
        """A copy with the given fields changed; None values leave a field as it is.

        ``tolerance=`` (the deprecated single tolerance) sets both tolerances unless one is
        given by name as well.
        """
        changes = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **_split_tolerance(changes))

    def to_plain(self) -> dict[str, Any]:
        """The JSON form (a recipe's ``verify:`` section; part of the digest)."""
        plain = dataclasses.asdict(self)
        for name in ("accept", "samples"):
            if not plain[name]:
                del plain[name]
            else:
                plain[name] = list(plain[name])
        if plain["expect"] is None:
            del plain["expect"]
        if plain["expect_tolerance"] == _EXPECT_TOLERANCE:
            del plain["expect_tolerance"]
        return plain

    @classmethod
    def from_plain(cls, data: Mapping[str, Any] | None) -> VerifySettings:
        """Settings from their JSON form; missing keys take the defaults.

        Raises:
            ValueError: An unknown key or a bad value (names the key).
        """
        data = _split_tolerance(dict(data or {}))
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown verify setting (known: {', '.join(known)})")
        return cls(**data)


def _split_tolerance(data: dict[str, Any]) -> dict[str, Any]:
    """Map the deprecated ``tolerance`` to both tolerances (a named one wins)."""
    if DEPRECATED_TOLERANCE in data:
        value = data.pop(DEPRECATED_TOLERANCE)
        if value is not None:
            for name in _TOLERANCES:
                data.setdefault(name, value)
    return data


#: A build's settings when the recipe says nothing: bounded tiling checks, analysis on failure.
BUILD: Final = VerifySettings()
#: ``czbuild verify`` / :func:`czbuild.verify.verify_artifact` on their own: the artifact's own
#: tile and the overlap analysis always (no build budget to keep).
STANDALONE: Final = VerifySettings(tiling_max_tile=0, overlap_analysis=True)
