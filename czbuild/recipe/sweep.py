"""Sweeps: from a recipe's ``sweep:`` section and command-line overrides to sweep points.

A recipe's ``sweep: {tile: [256, 512]}`` and command-line sweeps in Hydra syntax
(``tile=256,512``, ``tile=range(256,1025,256)``, ``format=czann,czmodel``) are axes; the
variants are their product. A command-line value for a key the recipe sweeps replaces that
sweep (``tile=1024`` builds one variant, still named ``...@tile=1024`` so that it shares its
output with the matching sweep point). Every other one-value command-line override
(``tile=256`` on a recipe without a sweep, ``target=zen-core-3.4``, ``~metadata.scaling``) is a
:class:`Pin`: it is part of the variant's name too, unless the loader finds that it does not
change the resolved spec (then it is dropped from the name, see
:meth:`SweepPoint.without`). Each :class:`SweepPoint` knows how to compose itself
(config-group overrides, value overrides, direct assignments), its readable name items, the
Python values behind them, and where each swept value was written (for error lines).

Pure Python: the overrides arrive already parsed by :func:`czbuild.recipe.compose.parse_overrides`.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from czbuild.recipe.compose import ParsedOverride
from czbuild.recipe.diagnostics import Issue, fields_at
from czbuild.recipe.keys import Key, choices_hint, format_key, parse_key
from czbuild.recipe.limits import MAX_VARIANTS
from czbuild.recipe.schema import Recipe

__all__ = [
    "Pin",
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
class Pin:
    """A one-value command-line override of a key the recipe does not sweep.

    Attributes:
        key: The name key: the normalised dotted key (``metadata.scaling``), with a leading
            ``~`` for a deletion (``~metadata.scaling``).
        text: The value as it appears in the variant name (``256``; ``""`` for a deletion).
        value: The Python value (``256``; None for a deletion).
        kind: ``"group"`` for a config-group selection, ``"value"`` for a value override.
        line: The override as passed to the composer (e.g. ``+target=zen-core-3.4``).
    """

    key: str
    text: str
    value: Any
    kind: Literal["group", "value"]
    line: str


@dataclass(frozen=True)
class SweepPoint:
    """One point of the sweep product.

    Attributes:
        items: ``(key, value text)`` pairs that name the variant, sorted by key (a deletion
            from the command line is ``("~key", "")``).
        group_overrides: Config-group overrides for Hydra's compose, in order.
        value_overrides: Value overrides (Hydra syntax) applied after composition, in order.
        assignments: ``(dotted key, value)`` pairs from the recipe's sweep, set last.
        origins: ``(key, origin)`` where origin is ``("sweep", key, index)`` for a value from
            the recipe's sweep section or ``("cli", text)`` for one from the command line.
        values: ``(key, Python value)`` for each of ``items``, same order: what the text
            stands for (``("tile", 256)``; None for a deletion).
        pins: The one-value command-line overrides of keys the recipe does not sweep (also
            in ``items`` and in the override tuples); see :meth:`without`.
    """

    items: tuple[tuple[str, str], ...] = ()
    group_overrides: tuple[str, ...] = ()
    value_overrides: tuple[str, ...] = ()
    assignments: tuple[tuple[str, Any], ...] = ()
    origins: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    values: tuple[tuple[str, Any], ...] = ()
    pins: tuple[Pin, ...] = ()

    def without(self, *pins: Pin) -> SweepPoint:
        """This point without some of its pins: their overrides and their name items.

        The loader uses it to leave out of a variant's name a command-line override that
        does not change the resolved spec (``tile=128`` when the recipe says ``tile: 128``).
        """
        if not pins:
            return self
        drop_items = [(p.key, p.text) for p in pins]
        items, values = [], []
        for item, value in zip(self.items, self.values):
            if item in drop_items:
                drop_items.remove(item)
                continue
            items.append(item)
            values.append(value)
        return replace(
            self,
            items=tuple(items),
            values=tuple(values),
            group_overrides=_drop(
                self.group_overrides, [p.line for p in pins if p.kind == "group"]
            ),
            value_overrides=_drop(
                self.value_overrides, [p.line for p in pins if p.kind == "value"]
            ),
            pins=tuple(p for p in self.pins if p not in pins),
        )


def _drop(lines: tuple[str, ...], remove: list[str]) -> tuple[str, ...]:
    """``lines`` without one occurrence of each of ``remove``, order kept."""
    remove = list(remove)
    out = []
    for line in lines:
        if line in remove:
            remove.remove(line)
        else:
            out.append(line)
    return tuple(out)


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


def _item_text(key: str, text: str) -> str:
    """``tile=512``; a command-line deletion is just ``~key``."""
    return key if key.startswith("~") else f"{key}={text}"


def variant_name(recipe: str, items: Sequence[tuple[str, str]]) -> str:
    """``nuclei`` or ``nuclei@format=czann,tile=512`` (keys sorted)."""
    if not items:
        return recipe
    return recipe + "@" + ",".join(_item_text(k, v) for k, v in sorted(items))


def variant_dir(items: Sequence[tuple[str, str]]) -> str:
    """A filesystem-safe folder name for a variant: ``tile=512``, or ``default``.

    Characters other than letters, digits and ``._,=+-`` become ``_``; when anything was
    replaced, or the name is long, a short hash of the exact text keeps names distinct.
    """
    if not items:
        return "default"
    text = ",".join(_item_text(k, v) for k, v in sorted(items))
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
            raise Issue(
                path[: depth + 1],
                f"unknown key {part!r}; {choices_hint(part, valid, noun='valid keys')}",
            )
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
        isinstance(value, str)
        or (isinstance(value, list) and all(isinstance(v, str) for v in value))
    )


def _group_line(line: str, key: str, prefix: str, in_defaults: frozenset[str]) -> str:
    """Turn ``target=x`` into ``+target=x`` when the recipe's defaults list lacks the group."""
    if prefix == "" and key not in in_defaults:
        return "+" + line
    return line


def _fixed(
    override: ParsedOverride, groups: Mapping[str, Sequence[str]], in_defaults: frozenset[str]
) -> tuple[str, str, Any, Literal["group", "value"], str]:
    """Name key, name text, value, kind and composer line of a one-value override."""
    line, value = override.points[0]
    key = _norm(override.key)
    if override.prefix == "~":
        key, text, value = "~" + key, "", None
    else:
        text = format_value(value)
    if (override.prefix == "~" and override.key in groups) or _is_group_value(
        override.key, value, groups
    ):
        return (
            key,
            text,
            value,
            "group",
            _group_line(line, override.key, override.prefix, in_defaults),
        )
    return key, text, value, "value", line


def plan_points(
    recipe_sweep: Mapping[str, Sequence[Any]],
    cli: Sequence[ParsedOverride],
    *,
    groups: Mapping[str, Sequence[str]],
    groups_in_defaults: frozenset[str],
) -> list[SweepPoint]:
    """Expand the recipe's sweep section and the command-line overrides into points.

    Every command-line override is part of every point's name: a sweep as an axis, a single
    value for a key the recipe sweeps as that axis pinned, any other single value as a
    :class:`Pin` (which the loader drops from the name when it does not change the spec).

    Args:
        recipe_sweep: The composed ``sweep:`` mapping (dotted key -> values).
        cli: Parsed command-line overrides, in order.
        groups: Config groups on the search path and their options.
        groups_in_defaults: Groups the recipe's defaults list selects.

    Returns:
        The sweep points in a fixed order (axes sorted by key, values in written order);
        one point when nothing is swept.
    """
    cli_keys = {_norm(o.key) for o in cli}
    # Axis: (key, [(value text, value, kind, payload, origin) per value]).
    axes: list[tuple[str, list[tuple[str, Any, str, Any, tuple[Any, ...]]]]] = []
    for key in sorted(recipe_sweep, key=_norm):
        if _norm(key) in cli_keys:
            continue
        entries: list[tuple[str, Any, str, Any, tuple[Any, ...]]] = []
        for index, value in enumerate(recipe_sweep[key]):
            payload: Any
            if _is_group_value(key, value, groups):
                kind, payload = "group", _group_line(f"{key}={value}", key, "", groups_in_defaults)
            else:
                kind, payload = "assign", (key, value)
            entries.append((format_value(value), value, kind, payload, ("sweep", key, index)))
        axes.append((_norm(key), entries))
    for override in cli:
        if not override.is_sweep:
            continue
        entries = []
        for line, value in override.points:
            grouped = override.prefix == "~" or _is_group_value(override.key, value, groups)
            kind = "group" if grouped else "value"
            payload = (
                _group_line(line, override.key, override.prefix, groups_in_defaults)
                if grouped
                else line
            )
            entries.append((format_value(value), value, kind, payload, ("cli", line)))
        axes.append((_norm(override.key), entries))
    axes.sort(key=lambda axis: axis[0])

    swept = {_norm(k) for k in recipe_sweep}
    fixed_groups: list[str] = []
    fixed_values: list[str] = []
    named_fixed: list[tuple[str, str, Any]] = []
    pins: list[Pin] = []
    for override in cli:
        if override.is_sweep:
            continue
        key, text, value, kind, line = _fixed(override, groups, groups_in_defaults)
        (fixed_groups if kind == "group" else fixed_values).append(line)
        if _norm(override.key) in swept:  # a swept key pinned: keeps its place in the name
            named_fixed.append((key, text, value))
        else:
            pins.append(Pin(key=key, text=text, value=value, kind=kind, line=line))

    total = math.prod(len(entries) for _, entries in axes)
    if total > MAX_VARIANTS:
        sizes = " x ".join(f"{key} ({len(entries)})" for key, entries in axes)
        raise Issue(
            ("sweep",),
            f"{sizes} make {total} variants, more than the {MAX_VARIANTS} one recipe may "
            "have; sweep fewer values per build",
        )
    points: list[SweepPoint] = []
    for combo in itertools.product(*(entries for _, entries in axes)):
        named = list(named_fixed) + [(p.key, p.text, p.value) for p in pins]
        group_o, value_o, assigns, origins = list(fixed_groups), list(fixed_values), [], []
        for (key, _), (text, value, kind, payload, origin) in zip(axes, combo):
            named.append((key, text, value))
            origins.append((key, origin))
            if kind == "group":
                group_o.append(payload)
            elif kind == "value":
                value_o.append(payload)
            else:
                assigns.append(payload)
        named.sort(key=lambda n: (n[0], n[1]))
        points.append(
            SweepPoint(
                items=tuple((k, t) for k, t, _ in named),
                group_overrides=tuple(group_o),
                value_overrides=tuple(value_o),
                assignments=tuple(assigns),
                origins=tuple(origins),
                values=tuple((k, v) for k, _, v in named),
                pins=tuple(pins),
            )
        )
    return points
