"""The ``handoff`` tool: the model hands the conversation to a person, with a reason (a robot
with `[robots.handoff]`). The tool only records the request, in a variable of the answer's
own task (`REQUESTS`); the engine opens the ticket once the answer is out."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from timbridge.llm.tools import ToolSpec
from timbridge.tools.toolbox import Tool, ToolError

__all__ = ["HANDOFF", "REQUESTS"]

#: The reasons the model gave for handing over, during one answer (None: no answer is asking).
REQUESTS: ContextVar[list[str] | None] = ContextVar("timbridge_handoff", default=None)

_DONE = (
    "Done: a human agent has been asked to take over this conversation. Tell the customer, "
    "briefly, that a colleague will reply here soon; do not try to solve it yourself now."
)


async def _handoff(arguments: Mapping[str, Any]) -> str:
    requests = REQUESTS.get()
    if requests is None:
        raise ToolError("no person can take over here")
    reason = str(arguments.get("reason") or "").strip()
    requests.append(reason[:500] or "the assistant asked for a person")
    return _DONE


HANDOFF = Tool(
    ToolSpec(
        "handoff",
        "Hand this conversation to a human agent. Use it when the customer asks for a person, "
        "is upset, or needs something you cannot do or do not know. Say why.",
        {
            "type": "object",
            "properties": {
                "reason": {"type": "string", "description": "why a person should take over"}
            },
            "required": ["reason"],
        },
    ),
    _handoff,
)
