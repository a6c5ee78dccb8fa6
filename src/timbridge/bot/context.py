"""The context sent to a model: persona first (stable, cache-friendly), then the newest history
that fits the token budget, then the new message. Its cost does not grow with the history: only
the newest turns are loaded, and token counts were stored with each turn."""

from __future__ import annotations

from collections.abc import Sequence

from timbridge.llm.base import ChatMessage
from timbridge.llm.tokens import count_tokens
from timbridge.memory.store import Turn

__all__ = ["ANSWER_RESERVE", "build_context"]

#: Tokens kept free for the answer when a profile sets no `max_tokens`.
ANSWER_RESERVE = 1024


def build_context(
    persona: str, history: Sequence[Turn], message: str, *, budget: int, answer_tokens: int | None
) -> list[ChatMessage]:
    """Persona, as much recent history as fits `budget`, and `message`."""
    left = budget - count_tokens(persona) - count_tokens(message)
    left -= answer_tokens if answer_tokens is not None else ANSWER_RESERVE
    kept: list[ChatMessage] = []
    for turn in reversed(history):
        if turn.tokens > left:
            break
        left -= turn.tokens
        kept.append(ChatMessage("assistant" if turn.role == "assistant" else "user", turn.content))
    kept.reverse()
    return [ChatMessage("system", persona), *kept, ChatMessage("user", message)]
