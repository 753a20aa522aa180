"""Dotted keys: the one way the recipe layer names a place in a recipe.

A key is a path of mapping keys and list indices, e.g. ``("metadata", "classes", 1)``,
rendered as ``metadata.classes[1]``. Error messages, the YAML line lookup and sweep keys all
use this module so that a key printed in one place can be parsed back in another.

Also home of :func:`did_you_mean`, the suggestion helper for unknown names.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence

__all__ = ["Key", "choices_hint", "did_you_mean", "format_key", "parse_key"]

Key = tuple[str | int, ...]

#: CZANN / legacy metadata JSON or XML field -> the recipe key that sets it. The format layer
#: owns the metadata rules and names its fields; the recipe layer maps them with this table
#: (``InputShape`` is special: ``tile`` or ``spatial_dims``, whichever the recipe uses).
METADATA_KEYS: dict[str, Key] = {
    "Classes": ("metadata", "classes"),
    "MinOverlap": ("metadata", "min_overlap"),
    "Scaling": ("metadata", "scaling"),
    "ModelName": ("metadata", "model_name"),
    "Type": ("metadata", "type"),
    "PixelType": ("metadata", "pixel_type"),
    "PixelTypes": ("metadata", "pixel_type"),
    "Channels": ("metadata", "pixel_type"),
    "BorderSize": ("metadata", "border_size"),
    "ColorHandling": ("metadata", "color_handling"),
    "Id": ("metadata", "id"),
    "FormatVersion": ("format_version",),
    "Version": ("format_version",),
    "opset": ("opset",),
}

_PART = re.compile(r"\[(\d+)\]|\.?([^.\[\]]+)")


def format_key(path: Sequence[str | int]) -> str:
    """Render a key path: ``("preprocessing", 0, "mean")`` -> ``preprocessing[0].mean``.

    Args:
        path: Mapping keys (str) and list indices (int).

    Returns:
        The dotted form; an empty string for the empty path.
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def parse_key(text: str) -> Key:
    """Parse a dotted key: ``preprocessing[0].mean[1]`` -> ``("preprocessing", 0, "mean", 1)``.

    Numeric dotted parts (``preprocessing.0.mean``, Hydra's spelling) become indices too.

    Args:
        text: The dotted key.

    Returns:
        The key path (empty for an empty string).
    """
    parts: list[str | int] = []
    for match in _PART.finditer(text.strip()):
        index, name = match.groups()
        if index is not None:
            parts.append(int(index))
        elif name.isdigit():
            parts.append(int(name))
        else:
            parts.append(name)
    return tuple(parts)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``"did you mean 'x'? "`` for the closest choice, or ``""``.

    Args:
        word: The unknown name the user wrote.
        choices: The valid names.

    Returns:
        A hint ending with a space, or an empty string when nothing is close.
    """
    pool = [str(c) for c in choices]
    lowered = {c.lower(): c for c in pool}
    if str(word).lower() in lowered:
        return f"did you mean {lowered[str(word).lower()]!r}? "
    close = difflib.get_close_matches(str(word), pool, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def choices_hint(word: str, choices: Iterable[str], *, noun: str = "valid choices") -> str:
    """``"did you mean 'b'? valid choices: a, b, c"`` for an unknown name."""
    pool = list(choices)
    return f"{did_you_mean(word, pool)}{noun}: {', '.join(map(str, pool)) or '(none)'}"
