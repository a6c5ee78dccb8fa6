"""Function calling in the model layer: what a tool looks like to a model (`ToolSpec`), a call
the model asked for (`ToolCall`), and the assembly of calls streamed in pieces.

Every provider family speaks its own format; these types are the one the engine sees. A call's
arguments arrive as JSON text (OpenAI streams it in fragments); they are parsed once the call is
complete, and a call whose arguments are not a JSON object keeps its raw text so that the tool
can answer with a clear error instead of the loop failing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["MAX_ARGUMENT_BYTES", "MAX_CALLS_PER_STEP", "CallAssembler", "ToolCall", "ToolSpec"]

#: A model asking for more calls in one step than this gets the first ones only.
MAX_CALLS_PER_STEP = 16
#: The arguments of one call, as JSON text; larger is not a tool call but a runaway.
MAX_ARGUMENT_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as models are told of it: its name, what it does, its parameters (JSON Schema)."""

    name: str
    description: str
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the model asked for. `arguments` is the parsed object (empty when `raw` is not
    a JSON object: `error` then says why)."""

    id: str
    name: str
    arguments: Mapping[str, Any]
    raw: str = ""
    error: str = ""

    @classmethod
    def parsed(cls, call_id: str, name: str, raw: str) -> ToolCall:
        if len(raw.encode()) > MAX_ARGUMENT_BYTES:
            return cls(call_id, name, {}, raw[:200], f"arguments over {MAX_ARGUMENT_BYTES} bytes")
        try:
            value = orjson.loads(raw or "{}")
        except orjson.JSONDecodeError as exc:
            return cls(call_id, name, {}, raw, f"arguments are not JSON ({exc})")
        if not isinstance(value, dict):
            return cls(call_id, name, {}, raw, "arguments are not a JSON object")
        return cls(call_id, name, value, raw)

    def arguments_json(self) -> str:
        """The arguments as JSON text, as they are sent back to the model with the call."""
        return orjson.dumps(dict(self.arguments)).decode() if not self.error else self.raw


class CallAssembler:
    """Calls streamed in pieces (OpenAI: by index, the id and name first, the arguments in
    fragments), bounded in count and size."""

    def __init__(self) -> None:
        self._parts: dict[int, list[str]] = {}  # index → [id, name, arguments so far]
        self._size = 0

    def add(self, index: int, call_id: str | None, name: str | None, arguments: str) -> None:
        if index not in self._parts:
            if len(self._parts) >= MAX_CALLS_PER_STEP:
                return
            self._parts[index] = ["", "", ""]
        part = self._parts[index]
        part[0] = call_id or part[0]
        part[1] = name or part[1]
        if self._size <= MAX_ARGUMENT_BYTES * MAX_CALLS_PER_STEP:
            part[2] += arguments
            self._size += len(arguments)

    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall.parsed(call_id or f"call_{index}", name, raw)
            for index, (call_id, name, raw) in sorted(self._parts.items())
            if name
        )
