"""MCP servers as tools, on the official ``mcp`` SDK: a server started as a command (stdio) or
reached over streamable HTTP, connected at start and kept connected in the background.

A server that is down never holds an answer up: start waits a few seconds for it, then goes on;
its tools are simply not offered until it is back, and a call to a server that died mid-call
is an error result the model sees. The keeper reconnects with backoff (1 s doubling to 30 s).
Tool names reach models as ``SERVER__TOOL`` (the characters every provider accepts).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Mapping
from typing import Any

import httpx2
import structlog
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from timbridge.llm.tools import ToolSpec
from timbridge.settings import McpServerSettings
from timbridge.tools.toolbox import Tool, ToolError

__all__ = ["CONNECT_WAIT_S", "McpServer", "tool_name"]

_log = structlog.get_logger("timbridge.mcp")

#: How long start waits for a server's first connection before going on without it.
CONNECT_WAIT_S = 10.0
_BACKOFF_MAX_S = 30.0
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def tool_name(server: str, tool: str) -> str:
    """The name a model sees for `tool` of `server` (at most 64 characters, safe everywhere)."""
    return _UNSAFE.sub("_", f"{server}__{tool}")[:64]


class McpServer:
    """One configured MCP server and its tools, as last listed."""

    def __init__(self, name: str, settings: McpServerSettings) -> None:
        self.name = name
        self._settings = settings
        self._session: ClientSession | None = None
        self._listed: dict[str, Any] = {}  # tool name → the server's mcp.types.Tool
        self._up = asyncio.Event()
        self._connected = asyncio.Event()
        self._broken = asyncio.Event()
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Why the server is not connected (None: it is, or it was never tried).
        self.error: str | None = None

    @property
    def connected(self) -> bool:
        return self._session is not None

    async def wait_connected(self, timeout_s: float) -> bool:
        """Whether the server is connected within `timeout_s` (now, or once the keeper is
        through)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        return self.connected

    async def start(self, wait_s: float = CONNECT_WAIT_S) -> None:
        """Connect in the background; wait up to `wait_s` for the first connection."""
        self._task = asyncio.get_running_loop().create_task(self._keep())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._up.wait(), wait_s)
        if not self.connected:
            _log.warning("mcp.unreachable", server=self.name, error=self.error or "timed out")

    async def close(self) -> None:
        self._closing.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def tools(self, wanted: str) -> list[Tool]:
        """The server's tools `wanted` names (``*``: all), as the toolbox runs them."""
        return [
            Tool(
                ToolSpec(
                    tool_name(self.name, listed.name),
                    listed.description or listed.title or listed.name,
                    listed.input_schema or {"type": "object", "properties": {}},
                ),
                self._caller(listed.name),
                admin_only=self._side_effects(listed),
            )
            for listed in self._listed.values()
            if wanted in ("*", listed.name)
        ]

    def _side_effects(self, listed: Any) -> bool:
        """Whether a listed tool is for admins only: named in `admin_tools`, or annotated
        destructive (and not read-only) by its server."""
        named = self._settings.admin_tools
        if "*" in named or listed.name in named:
            return True
        hints = listed.annotations
        return bool(hints and hints.destructive_hint is True and hints.read_only_hint is not True)

    def _caller(self, tool: str) -> Any:
        async def call(arguments: Mapping[str, Any]) -> str:
            return await self._call(tool, dict(arguments))

        return call

    async def _call(self, tool: str, arguments: dict[str, Any]) -> str:
        session = self._session
        if session is None:
            raise ToolError(f"the MCP server {self.name!r} is not connected")
        try:
            result = await session.call_tool(
                tool, arguments, read_timeout_seconds=self._settings.timeout_s
            )
        except Exception as exc:
            self._broken.set()  # the keeper reconnects
            reason = str(exc) or type(exc).__name__
            raise ToolError(f"the MCP server {self.name!r} failed: {reason}") from exc
        text = _text(getattr(result, "content", None) or [])
        if getattr(result, "is_error", False):
            raise ToolError(text or f"{tool} failed")
        return text

    async def _keep(self) -> None:
        backoff = 1.0
        while not self._closing.is_set():
            try:
                await self._connected_until_broken()
                backoff = 1.0
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - ExceptionGroups from the SDK's tasks
                self.error = _reason(exc)
                _log.warning("mcp.disconnected", server=self.name, error=self.error)
            self._session = None
            self._connected.clear()
            self._listed = {}
            self._up.set()  # whoever waits for the first attempt stops waiting
            if self._closing.is_set():
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX_S)

    async def _connected_until_broken(self) -> None:
        async with contextlib.AsyncExitStack() as stack:
            if self._settings.command is not None:
                env = {**self._settings.env}
                env |= {
                    name: os.environ[name] for name in self._settings.pass_env if name in os.environ
                }
                params = StdioServerParameters(
                    command=self._settings.command,
                    args=list(self._settings.args),
                    env={"PATH": os.environ.get("PATH", ""), **env},
                )
                read, write = await stack.enter_async_context(stdio_client(params))
            else:
                assert self._settings.url is not None
                headers = {**self._settings.headers}
                headers |= {
                    header: os.environ.get(variable, "")
                    for header, variable in self._settings.headers_env.items()
                }
                client = await stack.enter_async_context(
                    httpx2.AsyncClient(
                        headers=headers,
                        timeout=httpx2.Timeout(self._settings.timeout_s),
                        follow_redirects=False,  # a redirect would carry the headers elsewhere
                    )
                )
                read, write = await stack.enter_async_context(
                    streamable_http_client(self._settings.url, http_client=client)
                )
            session = await stack.enter_async_context(
                ClientSession(read, write, read_timeout_seconds=self._settings.timeout_s)
            )
            await session.initialize()
            listed = await session.list_tools()
            self._listed = {tool.name: tool for tool in listed.tools}
            self._session = session
            self.error = None
            self._broken.clear()
            self._connected.set()
            self._up.set()
            _log.info("mcp.connected", server=self.name, tools=sorted(self._listed))
            closing = asyncio.ensure_future(self._closing.wait())
            broken = asyncio.ensure_future(self._broken.wait())
            try:
                await asyncio.wait([closing, broken], return_when=asyncio.FIRST_COMPLETED)
            finally:
                closing.cancel()
                broken.cancel()
            self._session = None
            self._connected.clear()


def _text(content: list[Any]) -> str:
    parts = []
    for item in content:
        kind = getattr(item, "type", "")
        parts.append(getattr(item, "text", "") if kind == "text" else f"[{kind or 'content'}]")
    return "\n".join(parts)


def _reason(exc: BaseException) -> str:
    """The first real cause inside the SDK's exception groups, in one line."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"[:300]
