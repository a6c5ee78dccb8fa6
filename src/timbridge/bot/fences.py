"""Code fences, decided once for every part that must not cut inside one (the splitter, the live
reply modes).

A fence opens with a line of three or more backticks or tildes (any indentation, so that fences
inside list items count; after backticks, an info string without backticks), and closes with a
line of the same character, at least as long, and nothing else. A ``~~~`` line inside a
backtick fence is code, not a close, and the other way round.
"""

from __future__ import annotations

import re

__all__ = ["Fences"]

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})(.*)$")


class Fences:
    """Follows the fences of a text fed line by line."""

    def __init__(self) -> None:
        self.opening: str | None = None  # the line that opened the fence we are in
        self._marker = ""

    @property
    def inside(self) -> bool:
        return self.opening is not None

    @property
    def closing(self) -> str:
        """The line that would close the fence we are in (for a part cut inside it)."""
        return self._marker

    def feed(self, line: str) -> bool:
        """Follow `line` (with or without its newline); True when it opened or closed a fence."""
        found = _FENCE.match(line.rstrip("\r\n"))
        if found is None:
            return False
        marker, rest = found.groups()
        if self.opening is None:
            if marker[0] == "`" and "`" in rest:
                return False  # inline code, not a fence
            self.opening, self._marker = line, marker
            return True
        if marker[0] == self._marker[0] and len(marker) >= len(self._marker) and not rest.strip():
            self.opening, self._marker = None, ""
            return True
        return False

    @classmethod
    def after(cls, text: str) -> Fences:
        """The fences' state at the end of `text` (its last line counted only if complete)."""
        fences = cls()
        for line in text.split("\n")[:-1]:
            fences.feed(line)
        return fences
