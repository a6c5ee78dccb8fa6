"""The context sent to a model, stable parts first so that providers' prompt caches keep the
prefix: the persona, what is remembered about the user (long-term memory, oldest fact first),
then the knowledge passages retrieved for this message, then the stored summary of older turns,
then the newest history that fits the token budget, then the new message. Its cost does not
grow with the history: only the newest turns are loaded, and token counts were stored with each
turn.
"""

from __future__ import annotations

from collections.abc import Sequence

from timbridge.bot import tool_turns
from timbridge.bot.summaries import SUMMARY_INTRO, split_summary
from timbridge.knowledge.retrieval import Hit
from timbridge.llm.base import ChatMessage, Source
from timbridge.llm.tokens import count_tokens
from timbridge.storage.history import Turn

__all__ = [
    "ANSWER_RESERVE",
    "build_context",
    "cite",
    "knowledge_message",
]

#: Tokens kept free for the answer when a profile sets no `max_tokens`.
ANSWER_RESERVE = 1024

_KNOWLEDGE_INTRO = (
    "Passages from the knowledge base that may answer the user's next message. Answer from them "
    "when they are relevant; if they do not cover the question, say you do not know rather than "
    "guess."
)


def _title(hit: Hit) -> str:
    return f"{hit.heading} ({hit.source})"


def knowledge_message(hits: Sequence[Hit]) -> ChatMessage | None:
    """The system message carrying `hits`, with the passages attached as `sources`."""
    if not hits:
        return None
    body = "\n\n".join(f"[{n}] {_title(h)}\n{h.text}" for n, h in enumerate(hits, start=1))
    sources = tuple(Source(_title(h), h.text, h.score) for h in hits)
    return ChatMessage("system", f"{_KNOWLEDGE_INTRO}\n\n{body}", sources)


def cite(answer: str, hits: Sequence[Hit]) -> str:
    """`answer` followed by a line naming the documents it drew on, each once."""
    if not hits:
        return answer
    names = list(dict.fromkeys(_title(h) for h in hits))
    return f"{answer}\n\nSources: " + "; ".join(names)


def build_context(
    persona: str,
    history: Sequence[Turn],
    message: str,
    *,
    budget: int,
    answer_tokens: int | None,
    knowledge: Sequence[Hit] = (),
    facts: ChatMessage | None = None,
) -> tuple[list[ChatMessage], int]:
    """Persona, the remembered facts, the knowledge passages, the conversation's summary, as
    much recent history as fits `budget`, and `message`; with how many uncovered turns did not
    fit (time to compact).
    """
    passages = knowledge_message(knowledge)
    summary, recent = split_summary(history)
    left = budget - count_tokens(persona) - count_tokens(message)
    left -= answer_tokens if answer_tokens is not None else ANSWER_RESERVE
    head = [ChatMessage("system", persona)]
    if facts is not None:
        left -= count_tokens(facts.content)
        head.append(facts)
    if passages is not None:
        left -= count_tokens(passages.content)
        head.append(passages)
    if summary is not None:
        left -= summary.tokens
        head.append(ChatMessage("system", f"{SUMMARY_INTRO} {summary.content}"))
    kept: list[Turn] = []
    for turn in reversed(recent):
        if turn.tokens > left:
            break
        left -= turn.tokens
        kept.append(turn)
    kept.reverse()
    while kept and kept[0].role == tool_turns.ROLE:  # its question did not fit: nor do its calls
        kept.pop(0)
    replayed = [m for turn in kept for m in _messages(turn)]
    return [*head, *replayed, ChatMessage("user", message)], len(recent) - len(kept)


def _messages(turn: Turn) -> list[ChatMessage]:
    if turn.role == tool_turns.ROLE:
        return tool_turns.decode(turn.content)
    return [ChatMessage("assistant" if turn.role == "assistant" else "user", turn.content)]
