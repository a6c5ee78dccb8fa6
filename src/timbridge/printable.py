"""Text as a store can keep it and a chat client should show it, applied once at each edge:
what users send (before it is stored or shown to a model) and what models answer (before any of
it is sent or stored).

Removed: NUL (PostgreSQL's text type refuses it), the other C0 controls but tab and line feed
(carriage returns included: replies use ``\\n``), DEL, the C1 controls (terminal escapes), the
bidirectional embeddings, overrides and isolates (a right-to-left override makes ``exe.txt`` of
``txt.exe``; the marks U+200E/U+200F, which real right-to-left text uses, stay), and the two
noncharacters U+FFFE/U+FFFF. A lone surrogate, which no UTF-8 store can take, becomes U+FFFD.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

_DROP = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufffe\uffff]+")
_SURROGATE = re.compile("[\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` without the characters above; the same object when there are none."""
    if text.isascii() and text.isprintable():
        return text  # the common case, without a regex pass
    cleaned = _DROP.sub("", text)
    return _SURROGATE.sub("\ufffd", cleaned)
