"""Sweeps: from a recipe's ``sweep:`` section and command-line overrides to sweep points.

A recipe's ``sweep: {tile: [256, 512]}`` and command-line sweeps in Hydra syntax
(``tile=256,512``, ``tile=range(256,1025,256)``, ``format=czann,czmodel``) are axes; the
variants are their product. A command-line value for a key the recipe sweeps replaces that
sweep (``tile=1024`` builds one variant, still named ``...@tile=1024`` so that it shares its
output with the matching sweep point). Each :class:`SweepPoint` knows how to compose itself
(config-group overrides, value overrides, direct assignments), its readable name items, and
where each swept value was written (for error lines).

Pure Python: the overrides arrive already parsed by :func:`czbuild.recipe.compose.parse_overrides`.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from czbuild.recipe.compose import ParsedOverride
from czbuild.recipe.diagnostics import Issue, fields_at
from czbuild.recipe.keys import Key, choices_hint, format_key, parse_key
from czbuild.recipe.schema import Recipe

__all__ = [
    "SweepPoint",
    "check_recipe_key",
    "check_sweep_key",
    "format_value",
    "plan_points",
    "variant_dir",
    "variant_name",
]

_UNSWEEPABLE = ("name", "sweep", "defaults")
_FREE_FORM = ("preprocessing", "postprocessing")
_SAFE = re.compile(r"[^A-Za-z0-9._,=+-]")
_MAX_DIR = 80


@dataclass(frozen=True)
class SweepPoint:
    """One point of the sweep product.

    Attributes:
        items: ``(key, value text)`` pairs that name the variant, sorted by key.
        group_overrides: Config-group overrides for Hydra's compose, in order.
        value_overrides: Value overrides (Hydra syntax) applied after composition, in order.
        assignments: ``(dotted key, value)`` pairs from the recipe's sweep, set last.
        origins: ``(key, origin)`` where origin is ``("sweep", key, index)`` for a value from
            the recipe's sweep section or ``("cli", text)`` for one from the command line.
    """

    items: tuple[tuple[str, str], ...] = ()
    group_overrides: tuple[str, ...] = ()
    value_overrides: tuple[str, ...] = ()
    assignments: tuple[tuple[str, Any], ...] = ()
    origins: tuple[tuple[str, tuple[Any, ...]], ...] = ()


def format_value(value: Any) -> str:
    """Canonical text of a swept value for variant names: ``512``, ``czann``, ``[bg,fg]``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def variant_name(recipe: str, items: Sequence[tuple[str, str]]) -> str:
    """``nuclei`` or ``nuclei@format=czann,tile=512`` (keys sorted)."""
    if not items:
        return recipe
    return recipe + "@" + ",".join(f"{k}={v}" for k, v in sorted(items))


def variant_dir(items: Sequence[tuple[str, str]]) -> str:
    """A filesystem-safe folder name for a variant: ``tile=512``, or ``default``.

    Characters other than letters, digits and ``._,=+-`` become ``_``; when anything was
    replaced, or the name is long, a short hash of the exact text keeps names distinct.
    """
    if not items:
        return "default"
    text = ",".join(f"{k}={v}" for k, v in sorted(items))
    safe = _SAFE.sub("_", text)
    if safe != text or len(safe) > _MAX_DIR:
        tag = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
        safe = f"{safe[: _MAX_DIR - 9]}-{tag}"
    return safe


def check_recipe_key(key: str) -> Key:
    """Check that a dotted key names a key of the recipe schema.

    Keys below ``preprocessing`` / ``postprocessing`` are free-form op arguments (the op
    registry checks them later).

    Args:
        key: A dotted key such as ``tile`` or ``metadata.classes``.

    Returns:
        The parsed key path.

    Raises:
        Issue: The key is unknown (with "did you mean"), naming the key itself.
    """
    path = parse_key(key)
    if not path or not isinstance(path[0], str):
        raise Issue(path, f"{key!r} is not a recipe key")
    if path[0] in _FREE_FORM:
        return path
    for depth, part in enumerate(path):
        if isinstance(part, int):
            continue
        valid = fields_at(Recipe, path[:depth])
        if valid is None:
            break
        if part not in valid:
            raise Issue(path[: depth + 1], f"unknown key {part!r}; "
                                           f"{choices_hint(part, valid, noun='valid keys')}")
    return path


def check_sweep_key(key: str) -> Key:
    """Check that ``key`` names a recipe key that can be swept.

    Args:
        key: A dotted key such as ``tile`` or ``metadata.classes``.

    Returns:
        The parsed key path.

    Raises:
        Issue: The key is unknown (with "did you mean") or cannot be swept; the issue's key
            is ``sweep.<key>``.
    """
    path = parse_key(key)
    if path and path[0] in _UNSWEEPABLE:
        raise Issue(("sweep", key), f"{path[0]!r} cannot be swept")
    try:
        return check_recipe_key(key)
    except Issue as issue:
        raise Issue(("sweep", key), issue.message) from None


def _norm(key: str) -> str:
    return format_key(parse_key(key))


def _is_group_value(key: str, value: Any, groups: Mapping[str, Sequence[str]]) -> bool:
    return key in groups and (
        isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str)
                                                                   for v in value))
    )


def _group_line(line: str, key: str, prefix: str, in_defaults: frozenset[str]) -> str:
    """Turn ``target=x`` into ``+target=x`` when the recipe's defaults list lacks the group."""
    if prefix == "" and key not in in_defaults:
        return "+" + line
    return line


def plan_points(
    recipe_sweep: Mapping[str, Sequence[Any]],
    cli: Sequence[ParsedOverride],
    *,
    groups: Mapping[str, Sequence[str]],
    groups_in_defaults: frozenset[str],
) -> list[SweepPoint]:
    """Expand the recipe's sweep section and the command-line overrides into points.

    Args:
        recipe_sweep: The composed ``sweep:`` mapping (dotted key -> values).
        cli: Parsed command-line overrides, in order.
        groups: Config groups on the search path and their options.
        groups_in_defaults: Groups the recipe's defaults list selects.

    Returns:
        The sweep points in a fixed order (axes sorted by key, values in written order);
        one empty point when nothing is swept.
    """
    cli_keys = {_norm(o.key) for o in cli}
    # Axis: list of (key, value text, kind, payload, origin) per value.
    axes: list[tuple[str, list[tuple[str, str, Any, tuple[Any, ...]]]]] = []
    for key in sorted(recipe_sweep, key=_norm):
        if _norm(key) in cli_keys:
            continue
        entries = []
        for index, value in enumerate(recipe_sweep[key]):
            if _is_group_value(key, value, groups):
                kind, payload = "group", _group_line(f"{key}={value}", key, "", groups_in_defaults)
            else:
                kind, payload = "assign", (key, value)
            entries.append((format_value(value), kind, payload, ("sweep", key, index)))
        axes.append((_norm(key), entries))
    for override in cli:
        if not override.is_sweep:
            continue
        entries = []
        for line, value in override.points:
            grouped = override.prefix == "~" or _is_group_value(override.key, value, groups)
            kind = "group" if grouped else "value"
            payload = _group_line(line, override.key, override.prefix, groups_in_defaults) \
                if grouped else line
            entries.append((format_value(value), kind, payload, ("cli", line)))
        axes.append((_norm(override.key), entries))
    axes.sort(key=lambda axis: axis[0])

    fixed_groups: list[str] = []
    fixed_values: list[str] = []
    named_fixed: list[tuple[str, str]] = []
    for override in cli:
        if override.is_sweep:
            continue
        line, value = override.points[0]
        if (override.prefix == "~" and override.key in groups) or \
                _is_group_value(override.key, value, groups):
            fixed_groups.append(_group_line(line, override.key, override.prefix,
                                            groups_in_defaults))
        else:
            fixed_values.append(line)
        if any(_norm(k) == _norm(override.key) for k in recipe_sweep):
            named_fixed.append((_norm(override.key), format_value(value)))

    points: list[SweepPoint] = []
    for combo in itertools.product(*(entries for _, entries in axes)):
        items = list(named_fixed)
        group_o, value_o, assigns, origins = list(fixed_groups), list(fixed_values), [], []
        for (key, _), (text, kind, payload, origin) in zip(axes, combo):
            items.append((key, text))
            origins.append((key, origin))
            if kind == "group":
                group_o.append(payload)
            elif kind == "value":
                value_o.append(payload)
            else:
                assigns.append(payload)
        points.append(SweepPoint(
            items=tuple(sorted(items)),
            group_overrides=tuple(group_o),
            value_overrides=tuple(value_o),
            assignments=tuple(assigns),
            origins=tuple(origins),
        ))
    return points
