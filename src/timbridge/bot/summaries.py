"""Summaries: when a conversation's history outgrows the context budget (or the user sends
``/compact``), the older turns are folded by the model into one summary turn, which the context
then carries in their place.

A summary turn's identity is ``summary|<identity of the last turn it covers>``, so the turns it
covers are known without a second table, and folding again includes the old summary.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from timbridge.bot import tool_turns
from timbridge.bot.admission import ledger_entry
from timbridge.bot.conversation import Conversation
from timbridge.errors import LLMError
from timbridge.llm.base import ChatMessage
from timbridge.llm.chain import ModelChain
from timbridge.llm.tokens import count_tokens
from timbridge.settings import Settings
from timbridge.storage.history import History, Turn

__all__ = [
    "BRIEF_PROMPT",
    "SUMMARY_INTRO",
    "SUMMARY_PROMPT",
    "Summaries",
    "split_summary",
    "summary_request",
]

_log = structlog.get_logger("timbridge.summaries")

SUMMARY_PROMPT = (
    "Summarise the conversation below for your own memory, in the language it is written in: "
    "keep names, facts, numbers, decisions, the user's preferences and open questions. At most "
    "200 words, no preamble."
)
SUMMARY_INTRO = "Summary of the earlier conversation:"
BRIEF_PROMPT = (
    "A human agent takes over the customer conversation below. Brief them in the language it is "
    "written in, in at most three sentences: what the customer wants, what they said that "
    "matters (order numbers, dates), and what was already tried. No preamble."
)


def split_summary(history: Sequence[Turn]) -> tuple[Turn | None, list[Turn]]:
    """The newest summary in `history`, and the turns it does not cover (oldest first).

    A summary turn's identity is ``summary|<identity of the last turn it covers>``.
    """
    index = max((i for i, t in enumerate(history) if t.role == "summary"), default=None)
    if index is None:
        return None, list(history)
    summary = history[index]
    covered = summary.identity.removeprefix("summary|")
    last = max(
        (i for i, t in enumerate(history) if t.identity == covered and t.role != "summary"),
        default=-1,
    )
    return summary, [t for t in history[last + 1 :] if t.role != "summary"]


def _line(turn: Turn) -> str:
    if turn.role == tool_turns.ROLE:
        return f"tools: {tool_turns.as_text(turn.content)}"
    return f"{'assistant' if turn.role == 'assistant' else 'user'}: {turn.content}"


def summary_request(previous: Turn | None, turns: Sequence[Turn]) -> list[ChatMessage]:
    """The messages that ask a model to fold `turns` (and an earlier summary) into one."""
    lines = [f"{SUMMARY_INTRO} {previous.content}"] if previous is not None else []
    lines += [_line(t) for t in turns]
    return [ChatMessage("system", SUMMARY_PROMPT), ChatMessage("user", "\n\n".join(lines))]


class Summaries:
    """Folds a conversation's older turns into a summary turn."""

    def __init__(self, settings: Settings, store: History, models: ModelChain) -> None:
        self._models_of = {r.id: r.model for r in settings.robots}
        #: The robots whose model is the offline one (it writes no summaries).
        self.offline = frozenset(
            r.id for r in settings.robots if settings.models[r.model].provider == "offline"
        )
        self._store = store
        self._models = models

    async def brief(self, conv: Conversation, identity: str) -> str | None:
        """A few sentences on the conversation for the person taking it over; None when the
        robot's model is the offline one (it writes nothing of its own) or fails."""
        if conv.robot in self.offline:
            return None
        summary, recent = split_summary(await self._store.recent_turns(conv.key))
        if not recent and summary is None:
            return None
        request = summary_request(summary, recent[-16:])
        request[0] = ChatMessage("system", BRIEF_PROMPT)
        try:
            answer = await self._models.answer(self._models_of[conv.robot], request)
        except LLMError as exc:
            _log.warning("handoff.brief_failed", error=str(exc))
            return None
        key = f"brief|{identity}"
        await self._store.add_turns(
            conv.key, key, [], usage_record=ledger_entry(conv, key, answer, "summary")
        )
        return answer.text.strip()[:1000] or None

    async def compact(self, conv: Conversation, *, keep: int) -> int:
        """Fold all but the newest `keep` uncovered turns (and the old summary) into a new
        summary turn; how many turns were folded (0: nothing to do, or the model failed)."""
        summary, recent = split_summary(await self._store.recent_turns(conv.key))
        fold = recent[: max(0, len(recent) - keep)]
        if not fold:
            return 0
        request = summary_request(summary, fold)
        try:
            answer = await self._models.answer(self._models_of[conv.robot], request)
        except LLMError as exc:
            _log.warning("context.compact_failed", error=str(exc))
            return 0
        text = answer.text.strip()
        identity = f"summary|{fold[-1].identity}"
        await self._store.add_turns(
            conv.key,
            identity,
            [Turn("summary", text, count_tokens(text))],
            usage_record=ledger_entry(conv, identity, answer, "summary"),
        )
        _log.info("context.compacted", turns=len(fold), summary_tokens=count_tokens(text))
        return len(fold)
