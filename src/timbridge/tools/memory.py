"""The ``remember`` and ``forget`` tools: the model keeps or drops a fact about the user it is
talking to (robots with long-term memory have them). The engine does the keeping, through the
`Notebook` it puts in a variable of the answer's own task (`NOTEBOOK`): the tools know no
conversation themselves."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, Protocol

from timbridge.llm.tools import ToolSpec
from timbridge.tools.toolbox import Tool, ToolError

__all__ = ["FORGET", "NOTEBOOK", "REMEMBER", "Notebook"]


class Notebook(Protocol):
    """Long-term memory for the current conversation's user; each returns what to tell the
    model."""

    async def remember(self, fact: str) -> str: ...

    async def forget(self, fact: str) -> str: ...


NOTEBOOK: ContextVar[Notebook | None] = ContextVar("timbridge_notebook", default=None)


def _notebook() -> Notebook:
    notebook = NOTEBOOK.get()
    if notebook is None:
        raise ToolError("long-term memory is not kept here")
    return notebook


def _fact(arguments: Mapping[str, Any]) -> str:
    fact = " ".join(str(arguments.get("fact") or "").split())
    if not fact:
        raise ToolError("give the fact")
    return fact


async def _remember(arguments: Mapping[str, Any]) -> str:
    return await _notebook().remember(_fact(arguments))


async def _forget(arguments: Mapping[str, Any]) -> str:
    return await _notebook().forget(_fact(arguments))


_FACT = {
    "type": "object",
    "properties": {"fact": {"type": "string", "description": "one short sentence"}},
    "required": ["fact"],
}

REMEMBER = Tool(
    ToolSpec(
        "remember",
        "Keep a fact about the user for later conversations (their name, a preference, "
        "someone or something in their life, or what they ask you to remember). A fact that "
        "corrects one you know replaces it.",
        _FACT,
    ),
    _remember,
)

FORGET = Tool(
    ToolSpec(
        "forget",
        "Delete what you remember about the user that matches the fact's words, when they ask "
        "you to forget it or it is no longer true.",
        _FACT,
    ),
    _forget,
)
