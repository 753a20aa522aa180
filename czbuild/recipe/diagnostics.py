"""Problems found in a composed recipe, before they become :class:`RecipeError` s.

Validation code raises :class:`Issue` (a key path and a message, no file); the loader, which
knows the recipe file, the variant and where each value came from, turns it into a
one-line :class:`czbuild.errors.RecipeError`. :func:`issue_from_validation` translates
pydantic's errors into the same form, with "did you mean" for unknown keys and enum values.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from czbuild.recipe.keys import Key, choices_hint, format_key

__all__ = ["Issue", "fields_at", "issue_from_validation"]


class Issue(Exception):
    """One problem at one key of the composed recipe.

    Attributes:
        key: The key path (empty: the recipe as a whole).
        message: What is wrong and what to do (without the key).
        nearest: For missing keys: point at the nearest written ancestor's line.
    """

    def __init__(self, key: Key, message: str, *, nearest: bool = False) -> None:
        super().__init__(f"{format_key(key)}: {message}" if key else message)
        self.key = tuple(key)
        self.message = message
        self.nearest = nearest


def _model_at(model: type[BaseModel], path: Key) -> type[BaseModel] | None:
    """The pydantic model class reached by following ``path`` from ``model``."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = _inner_model(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def fields_at(model: type[BaseModel], path: Key) -> tuple[str, ...] | None:
    """Field names of the nested model at ``path`` (None if ``path`` is not a model)."""
    target = _model_at(model, path)
    return tuple(target.model_fields) if target is not None else None


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


_TYPE_WORDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "string_type": "a string",
    "bool_type": "true or false",
    "float_type": "a number",
    "tuple_type": "a list",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _message(error: ErrorDetails, model: type[BaseModel], loc: Key) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else "?"
        valid = fields_at(model, loc[:-1]) or ()
        return f"unknown key {name!r}; {choices_hint(name, valid, noun='valid keys')}"
    if kind == "missing":
        parent = _model_at(model, loc[:-1])
        field = parent.model_fields.get(str(loc[-1])) if parent is not None and loc else None
        text = (field.description or "").rstrip(".") if field is not None else ""
        about = f" ({text[:1].lower()}{text[1:]})" if text else ""
        return f"required key is missing{about}"
    if kind == "literal_error":
        expected = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
        return f"unknown value {value!r}; {choices_hint(str(value), expected)}"
    if kind in _TYPE_WORDS:
        hint = ""
        if kind == "string_type" and isinstance(value, (bool, int, float)):
            hint = " (quote it: YAML reads yes/no/on/off as booleans and digits as numbers)"
        return f"expected {_TYPE_WORDS[kind]}, got {_describe(value)}{hint}"
    if kind == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern", "")
        if "0-9a-fA-F]{64}" in pattern:
            return f"{value!r} is not a sha256 hex digest (64 hex digits)"
        if r"\.[0-9]+" in pattern:
            return f"{value!r} is not a ZEN version such as '3.13'"
        return f"{value!r} is not a valid name (letters, digits, '_', '.', '-'; no spaces)"
    if kind == "greater_than_equal":
        return f"must be at least {error.get('ctx', {}).get('ge')}, got {value!r}"
    if kind == "less_than_equal":
        return f"must be at most {error.get('ctx', {}).get('le')}, got {value!r}"
    if kind in ("too_short", "too_long"):
        return str(error["msg"]).replace("Tuple", "list").replace("Dictionary", "mapping")
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    return f"{error['msg']} (got {_describe(value)})"


def _clean_loc(loc: tuple[Any, ...]) -> Key:
    """Drop pydantic's union/validator tags (``'function-before[...]'``, ``'int'``)."""
    out: list[str | int] = []
    for part in loc:
        if isinstance(part, int):
            out.append(part)
        elif isinstance(part, str) and ("[" in part or part in ("int", "float", "str")):
            continue
        else:
            out.append(part)
    return tuple(out)


def issue_from_validation(exc: ValidationError, model: type[BaseModel]) -> Issue:
    """The first error of a pydantic ValidationError as an :class:`Issue`.

    Args:
        exc: The validation error.
        model: The model class that was validated (for "valid keys" hints).

    Returns:
        An Issue; if there were several errors the message says how many more.
    """
    errors = exc.errors(include_url=False)
    # An unknown key usually explains a "missing" one (a typo): report it first.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = _clean_loc(first["loc"])
    message = _message(first, model, loc)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return Issue(loc, message, nearest=first["type"] == "missing")
