"""Text that ZEN shows in its interface (model names, class names): the control-character rule.

ZEN lists a model by its ``ModelName`` and its classes by name in menus and legends. A NUL, a
line break, a tab or any other control character there is never intended and breaks that
display (and in a CZMODEL, XML cannot carry most of them at all), so both formats refuse them.
"""

from __future__ import annotations

import unicodedata

__all__ = ["display_text_problem"]

#: Unicode categories refused in display text: controls (C0, DEL, C1) and line/paragraph
#: separators.
_REFUSED = ("Cc", "Zl", "Zp")


def display_text_problem(value: str) -> str | None:
    """Why ``value`` cannot be shown as a name in ZEN, or None when it can.

    Example: ``contains the control character U+000A (line feed) at position 7; ZEN shows this
    name in its interface: remove it``.
    """
    for position, char in enumerate(value):
        if unicodedata.category(char) in _REFUSED:
            label = unicodedata.name(char, "").lower() or _CONTROL_NAMES.get(char, "control")
            return (
                f"contains the control character U+{ord(char):04X} ({label}) at position "
                f"{position}; ZEN shows this name in its interface: remove it"
            )
    return None


_CONTROL_NAMES = {
    "\x00": "NUL",
    "\t": "tab",
    "\n": "line feed",
    "\r": "carriage return",
    "\x1b": "escape",
    "\x7f": "delete",
}
