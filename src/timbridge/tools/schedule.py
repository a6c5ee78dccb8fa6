"""The ``schedule`` tool: the model sets a reminder for the user it is talking to ("remind me
tomorrow at 9 to call Lin"). The reminder is kept by the engine, through a callback it puts in
a variable of the answer's own task (`SCHEDULER`): the tool knows no conversation itself."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any

from timbridge.llm.tools import ToolSpec
from timbridge.tools.toolbox import Tool, ToolError

__all__ = ["SCHEDULE", "SCHEDULER"]

#: Keeps a reminder (``when``, ``text``) for the current conversation; what to tell the model.
SCHEDULER: ContextVar[Callable[[str, str], Awaitable[str]] | None] = ContextVar(
    "timbridge_scheduler", default=None
)


async def _schedule(arguments: Mapping[str, Any]) -> str:
    keep = SCHEDULER.get()
    if keep is None:
        raise ToolError("reminders cannot be set here")
    when = str(arguments.get("when") or "").strip()
    text = str(arguments.get("text") or "").strip()
    if not when or not text:
        raise ToolError("give both when and text")
    return await keep(when, text)


SCHEDULE = Tool(
    ToolSpec(
        "schedule",
        "Set a reminder: at the given time this chat gets the text, from you. Use it when the "
        "user asks to be reminded of something.",
        {
            "type": "object",
            "properties": {
                "when": {
                    "type": "string",
                    "description": "in the user's words: 'in 20 minutes', 'at 9:30', "
                    "'tomorrow at 8', or 'YYYY-MM-DD HH:MM' (the robot's time zone)",
                },
                "text": {"type": "string", "description": "what to remind the user of"},
            },
            "required": ["when", "text"],
        },
    ),
    _schedule,
)
