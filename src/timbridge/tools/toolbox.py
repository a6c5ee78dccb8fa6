"""A robot's tools, and running the calls a model asks for: concurrently, each within a time
limit and a size cap on its result. A tool that fails, is too slow, is unknown to the robot or
gets arguments it cannot use answers with an error result, which goes back to the model; the
loop never crashes and never goes silent for a tool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from timbridge.errors import TimbridgeError
from timbridge.llm.tools import ToolCall, ToolSpec

__all__ = ["Tool", "ToolError", "ToolResult", "Toolbox"]

_log = structlog.get_logger("timbridge.tools")

Run = Callable[[Mapping[str, Any]], Awaitable[str]]
#: Tools that come and go (an MCP server's, while it is connected), asked for at each step.
Source = Callable[[], Iterable["Tool"]]


class ToolError(TimbridgeError):
    """What a tool raises for a call it cannot carry out; its message goes to the model."""


@dataclass(frozen=True, slots=True)
class Tool:
    spec: ToolSpec
    run: Run
    #: A tool with side effects: offered, and run, only when a robot's admin asks.
    admin_only: bool = False


@dataclass(frozen=True, slots=True)
class ToolResult:
    call: ToolCall
    content: str
    is_error: bool = False


class Toolbox:
    """The tools one robot may call."""

    def __init__(
        self,
        tools: Iterable[Tool],
        *,
        timeout_s: float,
        max_result_chars: int,
        sources: Iterable[Source] = (),
    ) -> None:
        self._tools = {tool.spec.name: tool for tool in tools}
        self._sources = tuple(sources)
        self._timeout_s = timeout_s
        self._max_chars = max_result_chars

    def __bool__(self) -> bool:
        return bool(self._tools or self._sources)

    def _current(self) -> dict[str, Tool]:
        found = dict(self._tools)
        for source in self._sources:
            found |= {tool.spec.name: tool for tool in source()}
        return found

    def specs(self, *, admin: bool) -> tuple[ToolSpec, ...]:
        """The tools offered now (a disconnected server's are not; those with side effects
        only to an `admin`)."""
        return tuple(t.spec for t in self._current().values() if admin or not t.admin_only)

    async def run(self, calls: Iterable[ToolCall], *, admin: bool) -> list[ToolResult]:
        """Every call's result, in the calls' order (a tool with side effects runs only
        for an `admin`; others get an error result)."""
        tools = self._current()
        return list(await asyncio.gather(*(self._one(call, tools, admin) for call in calls)))

    async def _one(self, call: ToolCall, tools: dict[str, Tool], admin: bool) -> ToolResult:
        tool = tools.get(call.name)
        if tool is None:
            return ToolResult(call, f"error: no tool named {call.name!r}", is_error=True)
        if tool.admin_only and not admin:
            _log.warning("tool.not_allowed", tool=call.name)
            return ToolResult(
                call, f"error: only this robot's admins may use {call.name}", is_error=True
            )
        if call.error:
            return ToolResult(call, f"error: {call.error}", is_error=True)
        try:
            async with asyncio.timeout(self._timeout_s):
                content = await tool.run(call.arguments)
        except TimeoutError:
            _log.warning("tool.timed_out", tool=call.name, timeout_s=self._timeout_s)
            return ToolResult(call, f"error: no result within {self._timeout_s:g} s", True)
        except ToolError as exc:
            _log.info("tool.refused", tool=call.name, error=str(exc))
            return ToolResult(call, f"error: {exc}", is_error=True)
        except Exception as exc:  # noqa: BLE001 - a tool's bug must not end the answer
            _log.exception("tool.failed", tool=call.name)
            return ToolResult(call, f"error: the tool failed ({type(exc).__name__})", True)
        if len(content) > self._max_chars:
            content = content[: self._max_chars] + f"\n[cut at {self._max_chars} characters]"
        _log.info("tool.ran", tool=call.name, chars=len(content))
        return ToolResult(call, content)
