"""The tools an answer used, kept as one history turn (role ``tools``, between the user's turn
and the answer), so that later answers know what was looked up and computed.

The turn holds the steps as JSON: each step the text the model said, its calls, and their
results. Replayed, it becomes the provider-neutral messages again (an assistant message with
the calls, then one ``tool`` message per result). Stored results are cut at
`STORED_RESULT_CHARS`, and the whole turn stays under the history's per-turn load limit, so a
stored turn is always read back whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson

from timbridge.llm.base import ChatMessage
from timbridge.llm.tools import ToolCall
from timbridge.storage.history import TURN_LOADED_CHARS

__all__ = ["ROLE", "STORED_RESULT_CHARS", "as_text", "decode", "encode"]

ROLE: Final = "tools"
STORED_RESULT_CHARS = 1000


def encode(messages: Sequence[ChatMessage]) -> str:
    """The turn's content for an answer's tool messages (as the agent loop made them)."""
    steps: list[dict[str, Any]] = []
    for message in messages:
        if message.tool_calls:
            calls = [
                {"id": c.id, "name": c.name, "arguments": dict(c.arguments)}
                for c in message.tool_calls
            ]
            steps.append({"text": message.content, "calls": calls, "results": []})
        elif message.role == "tool" and steps:
            steps[-1]["results"].append(
                {
                    "id": message.tool_call_id,
                    "name": message.tool_name,
                    "content": message.content[:STORED_RESULT_CHARS],
                    "error": message.is_error,
                }
            )
    text = orjson.dumps(steps).decode()
    while len(text) > TURN_LOADED_CHARS and len(steps) > 1:  # keep the latest steps
        steps.pop(0)
        text = orjson.dumps(steps).decode()
    if len(text) > TURN_LOADED_CHARS:
        for result in steps[0]["results"]:
            result["content"] = result["content"][:100]
        text = orjson.dumps(steps).decode()
    return text


def _steps(content: str) -> list[dict[str, Any]]:
    try:
        steps = orjson.loads(content)
    except orjson.JSONDecodeError:
        return []
    return [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []


def decode(content: str) -> list[ChatMessage]:
    """The messages a stored turn replays (none for a turn that cannot be read)."""
    replayed: list[ChatMessage] = []
    for step in _steps(content):
        calls = tuple(
            ToolCall(str(c.get("id", "")), str(c.get("name", "")), dict(c.get("arguments") or {}))
            for c in step.get("calls") or ()
        )
        results = step.get("results") or []
        if not calls or len(results) != len(calls):
            continue  # a step must answer every call, or providers refuse the conversation
        replayed.append(ChatMessage("assistant", str(step.get("text") or ""), tool_calls=calls))
        replayed += [
            ChatMessage(
                "tool",
                str(r.get("content", "")),
                tool_call_id=str(r.get("id", "")),
                tool_name=str(r.get("name", "")),
                is_error=bool(r.get("error")),
            )
            for r in results
        ]
    return replayed


def as_text(content: str) -> str:
    """The turn as one line per call, for summaries: ``calculator({"expression": "2+2"}) → 4``."""
    lines = []
    for step in _steps(content):
        for call, result in zip(step.get("calls") or (), step.get("results") or (), strict=False):
            arguments = orjson.dumps(call.get("arguments") or {}).decode()
            lines.append(f"{call.get('name')}({arguments}) → {str(result.get('content'))[:200]}")
    return "\n".join(lines)
