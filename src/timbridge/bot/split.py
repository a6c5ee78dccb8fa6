"""Splitting a reply into messages under Tencent's size limit.

A part's serialised text stays under `limit` bytes (Tencent refuses over 12 KB; 11 KB leaves room
for the envelope). Parts break at line ends, never inside a line unless one line alone is too
long, so Markdown table rows and list items stay whole; a code fence cut between parts is closed
at the end of one and re-opened, with its language, at the start of the next. Python strings
are split between characters, so no UTF-8 sequence is ever cut.
"""

from __future__ import annotations

import orjson

from timbridge.bot.fences import Fences

__all__ = ["DEFAULT_LIMIT", "fitting_prefix", "json_size", "split_reply"]

DEFAULT_LIMIT = 11 * 1024


def json_size(text: str) -> int:
    """Bytes `text` takes inside a JSON string (without the quotes)."""
    return len(orjson.dumps(text)) - 2


def fitting_prefix(text: str, budget: int, start: int = 0) -> int:
    """Length of the longest prefix of ``text[start:]`` that takes at most `budget` JSON bytes.

    Every character takes at least one byte, so only the first `budget` characters are
    searched: the cost depends on the budget, never on the length of `text`.
    """
    window = text[start : start + max(budget, 0)]
    low, high = 0, len(window)
    while low < high:
        mid = (low + high + 1) // 2
        if json_size(window[:mid]) <= budget:
            low = mid
        else:
            high = mid - 1
    return low


def _hard_split(line: str, budget: int) -> list[str]:
    pieces: list[str] = []
    start = 0
    while json_size(line[start : start + budget + 1]) > budget:
        cut = max(1, fitting_prefix(line, budget, start))
        pieces.append(line[start : start + cut])
        start += cut
    pieces.append(line[start:])
    return pieces


def split_reply(text: str, limit: int = DEFAULT_LIMIT) -> list[str]:
    """`text` as one or more parts, each under `limit` bytes once serialised."""
    if json_size(text) <= limit:
        return [text]
    parts: list[str] = []
    current: list[str] = []
    size = 0
    fences = Fences()

    def reopened() -> str | None:
        opening = fences.opening
        if opening is None:
            return None
        return opening if opening.endswith("\n") else opening + "\n"

    def flush() -> None:
        nonlocal current, size
        body = "".join(current)
        if fences.inside:
            body = body.rstrip("\n") + "\n" + fences.closing
        if body.strip():
            parts.append(body.rstrip("\n"))
        opening = reopened()
        current = [opening] if opening is not None else []
        size = json_size(opening) if opening is not None else 0

    # room for a closing fence line: the longest marker a fence of this text could have
    reserve = max((json_size(line) for line in text.splitlines() if _is_marker(line)), default=3)
    reserve += 2
    for line in text.splitlines(keepends=True):
        line_size = json_size(line)
        if size + line_size + reserve > limit and current:
            flush()
        if size + line_size + reserve > limit:  # one line longer than a part: cut it
            for piece in _hard_split(line, limit - reserve - size):
                if size + json_size(piece) + reserve > limit:
                    flush()
                current.append(piece)
                size += json_size(piece)
        else:
            current.append(line)
            size += line_size
        fences.feed(line)
    opening = reopened()
    body = "".join(current)
    if body.strip() and body.strip() != (opening or "").strip():
        parts.append(body.rstrip("\n"))
    return parts


def _is_marker(line: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= 3 and (set(stripped) == {"`"} or set(stripped) == {"~"})
