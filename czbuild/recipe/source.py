"""The recipe file as written: raw YAML checks and the dotted-key -> line map.

Before Hydra sees a recipe, :func:`read_source` parses it with PyYAML's composer (which keeps
``start_mark`` positions) to turn malformed YAML, an empty file, a list instead of a mapping,
duplicate keys and a reserved ``hydra:`` section into one-line :class:`RecipeError` s, and to
answer :meth:`RecipeSource.line_of` for every later error that names a key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from czbuild.errors import RecipeError
from czbuild.recipe import limits
from czbuild.recipe.keys import Key, format_key, parse_key

__all__ = ["DefaultsEntry", "RecipeSource", "read_source"]


@dataclass(frozen=True)
class DefaultsEntry:
    """One entry of a recipe's Hydra ``defaults:`` list.

    Attributes:
        index: Position in the list (for error keys ``defaults[i]``).
        group: Config group (``"target"``) or None for a plain config include.
        options: Selected option names (several for a list selection), empty for ``null``.
        optional: Whether the entry was marked ``optional``.
        override: Whether the entry was marked ``override``.
    """

    index: int
    group: str | None
    options: tuple[str, ...]
    optional: bool = False
    override: bool = False


@dataclass(frozen=True)
class RecipeSource:
    """A recipe file parsed for positions.

    Attributes:
        path: Absolute path of the recipe file.
        display: How messages name the file (relative to the project when inside it).
        root: The PyYAML node tree (a MappingNode).
        defaults: The parsed ``defaults:`` entries (``_self_`` omitted).
    """

    path: Path
    display: str
    root: yaml.MappingNode
    defaults: tuple[DefaultsEntry, ...] = field(default=())

    @property
    def stem(self) -> str:
        """File name without ``.yaml``: the recipe's config name."""
        return self.path.stem

    def groups_in_defaults(self) -> frozenset[str]:
        """Config groups the recipe's defaults list selects (for override rewriting)."""
        return frozenset(e.group for e in self.defaults if e.group)

    def node_at(self, key: Key) -> yaml.Node | None:
        """The YAML node at ``key`` (the key node for mapping entries), or None."""
        node: yaml.Node = self.root
        found: yaml.Node | None = None
        for part in key:
            found = None
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                for k_node, v_node in node.value:
                    if isinstance(k_node, yaml.ScalarNode) and k_node.value == part:
                        found, node = k_node, v_node
                        break
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(part, int)
                and 0 <= part < len(node.value)
            ):
                node = node.value[part]
                found = node
            if found is None:
                return None
        return found

    def written_key(self, key: Key) -> Key:
        """``key`` as written: drop a trailing index into a scalar (``pixel_type: Gray16``
        is validated as ``pixel_type[0]``)."""
        if key and isinstance(key[-1], int) and key[-1] == 0:
            node = self.root
            for part in key[:-1]:
                nxt = None
                if isinstance(node, yaml.MappingNode):
                    nxt = next(
                        (
                            v
                            for k, v in node.value
                            if isinstance(k, yaml.ScalarNode) and k.value == part
                        ),
                        None,
                    )
                elif (
                    isinstance(node, yaml.SequenceNode)
                    and isinstance(part, int)
                    and part < len(node.value)
                ):
                    nxt = node.value[part]
                if nxt is None:
                    return key
                node = nxt
            if isinstance(node, yaml.ScalarNode):
                return key[:-1]
        return key

    def defaults_line(self, group: str) -> int | None:
        """Line of the defaults entry selecting ``group``, or None."""
        for entry in self.defaults:
            if entry.group == group:
                return self.line_of(("defaults", entry.index))
        return None

    def line_of(self, key: Key, *, nearest: bool = False) -> int | None:
        """1-based line where ``key`` is written in the recipe, or None.

        Args:
            key: The key path.
            nearest: If the key is absent, return the line of its deepest written ancestor
                (useful for "missing key" errors); never the document root.
        """
        for end in range(len(key), 0, -1):
            node = self.node_at(key[:end])
            if node is not None:
                return node.start_mark.line + 1
            if not nearest:
                return None
        return None

    def error(
        self,
        message: str,
        key: Key | str | None = None,
        *,
        nearest: bool = False,
        line: int | None = None,
    ) -> RecipeError:
        """A :class:`RecipeError` naming this file, ``key`` and its line.

        Args:
            message: What is wrong and what to do.
            key: The dotted key (path or text); None for the whole file.
            nearest: Fall back to the line of the nearest written ancestor.
            line: An explicit line, overriding the lookup.
        """
        if isinstance(key, str):
            path = parse_key(key)
            text: str | None = key
        else:
            path = self.written_key(tuple(key or ()))
            text = format_key(path) or None
        if line is None and path:
            line = self.line_of(path, nearest=nearest)
        if line is None and path and isinstance(path[0], str):
            line = self.defaults_line(path[0])
        return RecipeError(message, file=self.display, key=text, line=line)


def _display(path: Path, project_dir: Path | None) -> str:
    if project_dir is not None:
        try:
            return path.relative_to(project_dir).as_posix()
        except ValueError:
            pass
    return str(path)


#: Tags a recipe may carry: the plain YAML types (written or resolved). Anything else, e.g.
#: ``!!python/object``, is refused: recipes are data.
_ALLOWED_TAGS: Final = frozenset(
    f"tag:yaml.org,2002:{t}"
    for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "merge")
)
_STR: Final = "tag:yaml.org,2002:str"
_MERGE: Final = "tag:yaml.org,2002:merge"


def _check_tree(root: yaml.Node, src_err: Any) -> None:
    """Duplicate keys, YAML tags, huge integers, nesting depth and the alias budget.

    Each distinct node is checked once (an alias is the same node object as its anchor), while
    the expanded size counts every alias as a full copy: a "billion laughs" recipe is refused
    after a walk proportional to the file, not to its expansion.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def walk(node: yaml.Node, path: Key, depth: int) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        line = node.start_mark.line + 1
        if id(node) in active:
            raise src_err("a YAML alias refers to itself; remove the alias", path, line)
        if depth > limits.MAX_NESTING:
            raise src_err(
                f"nested more than {limits.MAX_NESTING} levels deep; a recipe is a shallow "
                "mapping (see docs/recipes.md)",
                path[: limits.MAX_NESTING],
                line,
            )
        if node.tag not in _ALLOWED_TAGS:
            raise src_err(
                f"YAML tags are not allowed ({node.tag!r}); a recipe holds plain values only "
                "(nothing was run)",
                path,
                line,
            )
        size = 1
        active.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for k_node, v_node in node.value:
                name = k_node.value if isinstance(k_node, yaml.ScalarNode) else None
                if name is None or k_node.tag not in (_STR, _MERGE):
                    shown = name if name is not None else "a mapping or list"
                    raise src_err(
                        f"key {shown!r} is not a name (YAML reads it as "
                        f"{k_node.tag.rsplit(':', 1)[-1]}); write 'name: value', quoting "
                        "the name if needed",
                        path,
                        k_node.start_mark.line + 1,
                    )
                if name in seen:
                    raise src_err(
                        f"duplicate key {name!r} (first written on line {seen[name]}); "
                        "keep one of them",
                        path + (name,),
                        k_node.start_mark.line + 1,
                    )
                seen[name] = k_node.start_mark.line + 1
                size += walk(k_node, path + (name,), depth + 1)
                size += walk(v_node, path + (name,), depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                size += walk(item, path + (i,), depth + 1)
        elif node.tag == "tag:yaml.org,2002:int":
            digits = sum(ch.isdigit() for ch in node.value)
            if digits > limits.MAX_INT_DIGITS:
                raise src_err(
                    f"an integer with {digits} digits is too large (at most "
                    f"{limits.MAX_INT_DIGITS}); check the value",
                    path,
                    line,
                )
        active.discard(id(node))
        sizes[id(node)] = size
        if size > limits.MAX_EXPANDED_NODES:
            raise src_err(
                f"the recipe expands to more than {limits.MAX_EXPANDED_NODES} values (YAML "
                "aliases '*name' repeat what their anchor '&name' holds); write the values "
                "out or use fewer aliases",
                path,
                line,
            )
        return size

    walk(root, (), 0)


def _check_sections(root: yaml.MappingNode, src_err: Any) -> None:
    """Sections the schema defines as mappings (``metadata:``, ``model:``, ...) are mappings.

    Checked before Hydra merges the recipe over its config groups, where a list in place of a
    mapping surfaces only as Hydra's internal "Cannot merge DictConfig with ListConfig".
    """
    from czbuild.recipe.schema import mapping_sections

    sections = mapping_sections()
    for k_node, v_node in root.value:
        name = k_node.value
        if name in sections and not isinstance(v_node, yaml.MappingNode):
            if v_node.tag == "tag:yaml.org,2002:null":
                continue
            kind = "a list" if isinstance(v_node, yaml.SequenceNode) else "a single value"
            raise src_err(
                f"expected a mapping of 'key: value' lines, got {kind} (see docs/recipes.md)",
                (name,),
                v_node.start_mark.line + 1,
            )


def _parse_defaults(node: yaml.Node | None, make_error: Any) -> tuple[DefaultsEntry, ...]:
    if node is None:
        return ()
    if not isinstance(node, yaml.SequenceNode):
        raise make_error(
            "must be a list such as [/target: zen-blue-3.5, _self_]", ("defaults",), None
        )
    entries: list[DefaultsEntry] = []
    for i, item in enumerate(node.value):
        if isinstance(item, yaml.ScalarNode):
            name = item.value.strip()
            if name and name != "_self_":
                entries.append(DefaultsEntry(i, None, (name.lstrip("/"),)))
            continue
        if not (isinstance(item, yaml.MappingNode) and len(item.value) == 1):
            raise make_error(
                "each defaults entry is '_self_', a config name or '/group: option'",
                ("defaults", i),
                item.start_mark.line + 1,
            )
        k_node, v_node = item.value[0]
        words = str(k_node.value).split()
        optional = "optional" in words[:-1]
        override = "override" in words[:-1]
        group = words[-1].lstrip("/").split("@", 1)[0] if words else ""
        options: tuple[str, ...]
        if isinstance(v_node, yaml.ScalarNode):
            value = yaml.safe_load(yaml.serialize(v_node)) if v_node.value else None
            options = () if value is None else (str(value),)
        elif isinstance(v_node, yaml.SequenceNode):
            options = tuple(str(x.value) for x in v_node.value if isinstance(x, yaml.ScalarNode))
        else:
            raise make_error(
                "a defaults entry selects an option name, e.g. '/target: zen-blue-3.5'",
                ("defaults", i),
                item.start_mark.line + 1,
            )
        entries.append(DefaultsEntry(i, group, options, optional, override))
    return tuple(entries)


def read_source(path: Path, *, project_dir: Path | None = None) -> RecipeSource:
    """Read and structurally check a recipe file.

    Args:
        path: The recipe file.
        project_dir: Project folder; messages name the file relative to it.

    Returns:
        The parsed :class:`RecipeSource`.

    Raises:
        RecipeError: The file is missing, unreadable, not valid YAML, empty, not a mapping,
            has duplicate keys, a malformed ``defaults`` list or a ``hydra`` section.
    """
    path = Path(path).absolute()
    display = _display(path, project_dir)

    def err(message: str, key: Key | None = None, line: int | None = None) -> RecipeError:
        return RecipeError(message, file=display, key=format_key(key or ()) or None, line=line)

    problem = limits.recipe_name_problem(path.stem)
    if problem is not None:
        raise err(problem)
    try:
        size = path.stat().st_size
        if size > limits.MAX_RECIPE_BYTES:
            raise err(
                f"the recipe is {size} bytes, more than the {limits.MAX_RECIPE_BYTES} a recipe "
                "may have; a recipe names a model and its settings (see docs/recipes.md)"
            )
        if not path.is_file():
            raise err("not a regular file; a recipe is a .yaml file")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise err("recipe file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise err(f"cannot read the recipe: {exc}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise err(
            f"nested too deeply to read; a recipe nests at most {limits.MAX_NESTING} levels"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        line = mark.line + 1 if mark is not None else None
        raise err(
            f"malformed YAML: {problem}; fix the syntax (indentation, quotes, colons)", None, line
        ) from None
    if root is None:
        raise err("the recipe is empty; start from an example in recipes/ or docs/recipes.md")
    if not isinstance(root, yaml.MappingNode):
        kind = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
        raise err(
            f"the recipe is {kind}, not a mapping; write 'key: value' lines "
            "(name:, model:, metadata:, ...) at the top level",
            None,
            root.start_mark.line + 1,
        )
    _check_tree(root, err)
    _check_sections(root, err)
    source = RecipeSource(path=path, display=display, root=root)
    if source.node_at(("hydra",)) is not None:
        raise source.error(
            "a recipe must not configure Hydra; czbuild sets the search path itself", ("hydra",)
        )
    defaults_node = None
    for k_node, v_node in root.value:
        if isinstance(k_node, yaml.ScalarNode) and k_node.value == "defaults":
            defaults_node = v_node
    entries = _parse_defaults(defaults_node, err)
    return RecipeSource(path=path, display=display, root=root, defaults=entries)
