"""The one call into Hydra's private API: apply value overrides to a composed config.

What czbuild needs: apply command-line *value* overrides (``tile=512``, ``+key=v``,
``++key=v``, ``~key``, ``key=[a,b]``) to an already composed recipe, with exactly Hydra's
semantics and error messages, so that one composition serves every sweep point and every
pin-reduction attempt of :mod:`czbuild.recipe.variants` that differ only in values.

Why the public API cannot: Hydra 1.3's public ``compose(overrides=...)`` applies value
overrides only as part of a whole composition (search path scan, defaults tree, YAML
loading: about 70 ms per call against 3 ms for a copy plus this call), and a sweep of N
points with pins composes N x (1 + pins) times. Restating the override semantics with
OmegaConf's public API would make czbuild a second owner of rules Hydra owns (``+`` fails
on an existing key, ``~key=value`` checks the value, list extension ...), which drift
silently on an upgrade.

So the call is isolated here: :func:`apply_value_overrides` is the only user of
``hydra._internal``, it checks at import that the private function is still there, and
``tests/test_recipe_hydra_seam.py`` pins its behaviour against the public compose API (same
result for each override kind, same error texts). A Hydra upgrade that changes any of that
fails those tests and this import instead of silently changing recipes. hydra-core is
pinned exactly in pyproject.toml for this reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from omegaconf import DictConfig

__all__ = ["apply_value_overrides"]

_APPLY: Callable[[list[Any], DictConfig], None] | None = getattr(
    ConfigLoaderImpl, "_apply_overrides_to_config", None
)
if not callable(_APPLY):  # pragma: no cover - only on an unsupported Hydra
    raise ImportError(
        "czbuild needs hydra-core 1.3.x (ConfigLoaderImpl._apply_overrides_to_config is "
        "missing); install the version pinned in czbuild's pyproject.toml"
    )


def apply_value_overrides(cfg: DictConfig, overrides: Sequence[Any]) -> None:
    """Apply parsed Hydra value overrides to ``cfg`` in place, in order, as compose would.

    Args:
        cfg: A composed config (not read-only, struct mode as compose returns it).
        overrides: ``hydra.core.override_parser.types.Override`` objects of value overrides
            (no config-group selections, no sweeps).

    Raises:
        hydra.errors.ConfigCompositionException: Hydra's own error, e.g. "Could not
            override 'x'" for ``x=1`` on a missing key, "Could not append to config" for
            ``+x=1`` on an existing one, "Could not delete from config" for ``~x`` on a
            missing one.
    """
    assert _APPLY is not None
    _APPLY(list(overrides), cfg)
