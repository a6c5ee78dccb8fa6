"""The offline model: answers from the knowledge passages in its context, with no language model,
no key and no network. It is what robots use until a real model is configured.

It quotes the best passage (and a second one when it scores nearly as well and says something
else), says that the answer comes from the offline model, and says plainly when no passage
matched. The retrieval itself is the engine's (it puts the passages into the context as
`ChatMessage.sources`), so every model gets the same passages.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Sequence

from timbridge.llm.base import ChatMessage, Delta, Source, Usage
from timbridge.llm.tokens import count_tokens
from timbridge.llm.tools import ToolSpec

__all__ = ["NO_MATCH", "OFFLINE_NOTE", "OfflineModel", "reflow"]

NO_MATCH = (
    "I couldn't find anything about that in my knowledge base, so I can't answer it. "
    "Try other words, or ask about something the documents cover."
)
OFFLINE_NOTE = (
    "(Offline model: quoted from the knowledge base, no language model involved. "
    "Configure a model to get written answers.)"
)
_SECOND_WITHIN = 0.05  # a second passage is quoted when it scores this close to the best
_MAX_QUOTE_CHARS = 1800


_BLOCK_START = re.compile(r"^\s*(?:[-*+] |\d+[.)] |#|>|\||```|~~~)")
_ENDS_ITS_LINE = re.compile(r"^\s*(?:#|\||```|~~~)")  # nothing joins a heading or table row


def reflow(text: str) -> str:
    """`text` with the hard line wraps of its paragraphs joined, as a chat shows paragraphs:
    a line joins the one before unless either is blank or in a code fence, the line starts a
    list item, heading, quote or table row, or the one before is a heading or table row (a
    list item or quote takes its continuation lines)."""
    out: list[str] = []
    fenced = False
    for line in text.splitlines():
        starts_block = bool(_BLOCK_START.match(line))
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            out.append(line)
            continue
        joinable = (
            not fenced
            and out
            and out[-1].strip()
            and line.strip()
            and not starts_block
            and not _ENDS_ITS_LINE.match(out[-1])
        )
        if joinable:
            out[-1] = out[-1].rstrip() + " " + line.strip()
        else:
            out.append(line)
    return "\n".join(out)


def _quote(sources: Sequence[Source]) -> str:
    best = max(sources, key=lambda s: s.score)
    chosen = [best]
    for other in sorted(sources, key=lambda s: -s.score):
        if other is best or other.text == best.text:
            continue
        if best.score - other.score <= _SECOND_WITHIN:
            chosen.append(other)
        break
    parts: list[str] = []
    used = 0
    for source in chosen:
        text = reflow(source.text.strip())
        if used + len(text) > _MAX_QUOTE_CHARS:
            text = text[: max(0, _MAX_QUOTE_CHARS - used)].rsplit(" ", 1)[0] + " …"
        used += len(text)
        parts.append(f"**{source.title}**\n{text}")
    return "\n\n".join(parts)


class OfflineModel:
    """A `ChatModel` that answers with the passages it was given."""

    name = "offline:retrieval"

    #: Whether `stream` takes tools (function calling).
    supports_tools = False

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncGenerator[Delta, None]:
        sources = [source for message in messages for source in message.sources]
        question = next((m.content for m in reversed(messages) if m.role == "user"), "")
        answer = (
            f"Here is what I found:\n\n{_quote(sources)}\n\n{OFFLINE_NOTE}" if sources else NO_MATCH
        )
        yield Delta(text=answer)
        yield Delta(usage=Usage(input_tokens=count_tokens(question), output_tokens=0))

    async def aclose(self) -> None:
        return None
