"""Hydra composition of recipes: with :mod:`czbuild.recipe.hydra_overrides`, the only module
that imports Hydra or OmegaConf.

A recipe file is a Hydra primary config; its folder and the project's ``configs/`` (plus the
bundled configs) form the search path, so a recipe's ``defaults:`` can say
``- /target: zen-blue-3.5``. Composition uses the compose API (``initialize_config_dir`` with
``version_base="1.3"``), clearing Hydra's global state around every call so that any number
of recipes compose in one process; a lock makes that safe from several threads.

Overrides are parsed with Hydra's own parser (:func:`parse_overrides`) and split in two:
config-group selections (``target=zen-core-3.4``) go through ``compose``; value overrides
(``tile=1024``, ``+metadata.scaling=[...]``, ``~metadata.id``) are applied to the composed
config with Hydra's own override logic (:mod:`czbuild.recipe.hydra_overrides`, the seam to
Hydra's private API, says why), so one composition serves every sweep point that differs
only in values. Nothing from OmegaConf leaves this module: :class:`Composer`
returns plain dicts, and refuses resolvers (``${now:...}``, ``${oc.env:...}``, any
``${name:...}``) because they make a build depend on the clock or the environment.
"""

from __future__ import annotations

import copy
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, ListConfig, OmegaConf, grammar_parser
from omegaconf.errors import OmegaConfBaseException
from omegaconf.grammar.gen.OmegaConfGrammarParser import OmegaConfGrammarParser

from czbuild.recipe.diagnostics import Issue
from czbuild.recipe.hydra_overrides import apply_value_overrides
from czbuild.recipe.keys import Key, parse_key
from czbuild.recipe.limits import MAX_VARIANTS

__all__ = ["Composer", "ParsedOverride", "parse_overrides"]

_LOCK = threading.RLock()
_PARSER: OverridesParser | None = None


@dataclass(frozen=True)
class ParsedOverride:
    """One command-line override, parsed by Hydra.

    Attributes:
        text: The override as typed.
        key: The config key or group (``metadata.classes``, ``target``), without prefix.
        prefix: ``""``, ``"+"``, ``"++"`` or ``"~"``.
        package: The ``@package`` qualifier of a group override, or None.
        points: One ``(override line, python value)`` per value; several for a sweep
            (``tile=256,512`` -> ``("tile=256", 256), ("tile=512", 512)``).
        is_sweep: Whether the override is a sweep.
    """

    text: str
    key: str
    prefix: str
    package: str | None
    points: tuple[tuple[str, Any], ...]
    is_sweep: bool


def _parser() -> OverridesParser:
    global _PARSER
    if _PARSER is None:
        _PARSER = OverridesParser.create()
    return _PARSER


def _key_of(text: str) -> Key:
    head = text.split("=", 1)[0].lstrip("+~").split("@", 1)[0]
    return parse_key(head)


def _parse_one(text: str) -> Any:
    """Parse one override line; Issue on a syntax error."""
    try:
        return _parser().parse_overrides([text])[0]
    except (OverrideParseException, HydraException) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Issue(
            _key_of(text),
            f"invalid override {text!r}: {first}; use Hydra syntax "
            "such as key=value, +key=value, key=[a,b] or key=1,2,3",
        ) from None


def parse_overrides(texts: Sequence[str]) -> list[ParsedOverride]:
    """Parse command-line overrides and enumerate sweeps.

    Args:
        texts: Overrides in Hydra syntax: ``tile=1024``, ``metadata.classes=[bg,fg]``,
            ``+metadata.scaling=[1e-7,1e-7]``, ``target=zen-core-3.4``, sweeps
            ``tile=256,512``, ``tile=range(256,1025,256)``, ``format=czann,czmodel``.

    Returns:
        One :class:`ParsedOverride` per text, in order.

    Raises:
        Issue: A syntax error, a ``hydra.*`` override, or a sweep that cannot be enumerated
            (``interval(...)``, ``glob(...)``).
    """
    out: list[ParsedOverride] = []
    for text in texts:
        override = _parse_one(text)
        key = override.key_or_group
        if override.is_hydra_override():
            raise Issue(
                _key_of(text), f"{text!r}: Hydra's own settings cannot be overridden in czbuild"
            )
        element = override.get_key_element()
        prefix = element[: len(element) - len(element.lstrip("+~"))]
        if override.is_sweep_override():
            if not override.is_discrete_sweep() or override.value_type.name == "GLOB_CHOICE_SWEEP":
                raise Issue(
                    _key_of(text),
                    f"{text!r}: only lists of values (a,b,c), choice() "
                    "and range() sweeps can be expanded",
                )
            points = []
            for count, value_text in enumerate(override.sweep_string_iterator()):
                if count >= MAX_VARIANTS:
                    raise Issue(
                        _key_of(text),
                        f"{text!r}: a sweep may have at most {MAX_VARIANTS} values; "
                        "split it into several builds",
                    )
                line = f"{element}={value_text}"
                points.append((line, _parse_one(line).value()))
            out.append(ParsedOverride(text, key, prefix, override.package, tuple(points), True))
        else:
            out.append(
                ParsedOverride(
                    text, key, prefix, override.package, ((text, override.value()),), False
                )
            )
    return out


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _resolver_names(text: str) -> list[str]:
    """Names of resolvers called in one string value (``${now:...}`` -> ``["now"]``)."""
    if "${" not in text:
        return []
    try:
        tree = grammar_parser.parse(text)
    except Exception:
        return []
    names: list[str] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, OmegaConfGrammarParser.InterpolationResolverContext):
            names.append(node.resolverName().getText())
        stack.extend(getattr(node, "children", None) or [])
    return names


def _check_resolvers(data: Any, path: Key = ()) -> None:
    if isinstance(data, dict):
        for k, v in data.items():
            _check_resolvers(v, path + (str(k),))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _check_resolvers(v, path + (i,))
    elif isinstance(data, str):
        names = _resolver_names(data)
        if names:
            raise Issue(
                path,
                f"resolver ${{{names[0]}:...}} is not allowed: a recipe must not "
                "depend on the clock or the environment; write the value, or use a "
                "plain interpolation such as ${tile}",
            )


def _omegaconf_issue(exc: OmegaConfBaseException, prefix: str = "") -> Issue:
    key = parse_key(str(getattr(exc, "full_key", "") or ""))
    message = str(getattr(exc, "msg", "") or exc).strip().splitlines()[0]
    return Issue(key, f"{prefix}{message}")


class Composer:
    """Composes one recipe file with Hydra, any number of times (one per sweep point).

    Args:
        recipe_file: The recipe (a Hydra primary config); its folder is the primary
            config dir.
        search_path: Further config folders, highest priority first (project ``configs/``,
            bundled configs).
    """

    def __init__(self, recipe_file: Path, search_path: Sequence[Path]) -> None:
        self._file = Path(recipe_file).absolute()
        dirs = ",".join(_quote("file://" + Path(p).absolute().as_posix()) for p in search_path)
        self._searchpath = f"hydra.searchpath=[{dirs}]"
        self._bases: dict[tuple[str, ...], DictConfig] = {}

    def _base(self, group_overrides: tuple[str, ...]) -> DictConfig:
        cached = self._bases.get(group_overrides)
        if cached is not None:
            return cached
        with _LOCK:
            GlobalHydra.instance().clear()
            try:
                with (
                    initialize_config_dir(config_dir=str(self._file.parent), version_base="1.3"),
                    warnings.catch_warnings(),
                ):
                    # No `_self_` means "recipe last" (documented); the library stays silent.
                    warnings.filterwarnings("ignore", message=".*Defaults list is missing `_self_`")
                    cfg = compose(
                        config_name=self._file.stem, overrides=[self._searchpath, *group_overrides]
                    )
            except MissingConfigException as exc:
                lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
                options = [
                    ln for ln in lines[2:] if not ln.startswith(("Config search", "provider="))
                ]
                hint = f"; available: {', '.join(options)}" if options else ""
                raise Issue((), f"{lines[0]}{hint}") from None
            except HydraException as exc:
                text = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
                raise Issue((), text) from None
            except OmegaConfBaseException as exc:
                raise _omegaconf_issue(exc) from None
            finally:
                GlobalHydra.instance().clear()
        self._bases[group_overrides] = cfg
        return cfg

    def compose(
        self,
        group_overrides: Sequence[str] = (),
        value_overrides: Sequence[str] = (),
        assignments: Sequence[tuple[str, Any]] = (),
    ) -> dict[str, Any]:
        """Compose the recipe and return it as a plain, resolved dict.

        Args:
            group_overrides: Config-group overrides (``target=zen-core-3.4``,
                ``+format=czmodel``) passed to Hydra's compose.
            value_overrides: Value overrides in Hydra syntax, applied in order after
                composition with Hydra's semantics (``key=v`` needs an existing key, ``+key``
                adds, ``++key`` sets, ``~key`` deletes).
            assignments: ``(dotted key, value)`` pairs set last (recipe sweep points);
                the key is created if missing and the value replaces what is there.

        Returns:
            The composed recipe as plain Python data, interpolations resolved.

        Raises:
            Issue: Missing configs, invalid overrides, resolvers, broken interpolations.
        """
        cfg = copy.deepcopy(self._base(tuple(group_overrides)))
        for text in value_overrides:
            override = _parse_one(text)
            try:
                apply_value_overrides(cfg, [override])
            except HydraException as exc:
                if str(exc).startswith("Could not override") and not text.startswith(("+", "~")):
                    raise Issue(
                        _key_of(text),
                        f"not set in the recipe, so it cannot be changed; add it with +{text}",
                    ) from None
                cause = exc.__cause__
                detail = (
                    str(getattr(cause, "msg", "") or cause).splitlines()[0]
                    if cause is not None
                    else ""
                )
                first = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
                raise Issue(_key_of(text), f"{first}{': ' + detail if detail else ''}") from None
        for key, value in assignments:
            try:
                OmegaConf.update(cfg, key, value, merge=False, force_add=True)
            except OmegaConfBaseException as exc:
                raise Issue(parse_key(key), f"cannot set this sweep key: {exc.msg}") from None
        raw = OmegaConf.to_container(cfg, resolve=False)
        _check_resolvers(raw)
        try:
            plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        except OmegaConfBaseException as exc:
            raise _omegaconf_issue(exc, "cannot resolve: ") from None
        assert isinstance(plain, dict)
        return _plain(plain)


def _plain(data: Any) -> Any:
    """Deep copy into builtins only (defensive: no ListConfig/DictConfig may escape)."""
    if isinstance(data, (dict, DictConfig)):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, (list, tuple, ListConfig)):
        return [_plain(v) for v in data]
    return data
