"""A fake Anthropic Messages API on loopback, in Anthropic's wire format.

``POST /v1/messages``: a JSON message, or with ``"stream": true`` the SSE events
``message_start``, ``content_block_start``, ``ping``, ``content_block_delta`` (``text_delta``),
``content_block_stop``, ``message_delta`` (usage) and ``message_stop``. Scripted failures answer
``{"type": "error", "error": {"type": ..., "message": ...}}`` with their status (529 overloaded,
429 with ``retry-after``, 500). Requests and their arrival times are recorded.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

_ERROR_TYPES = {
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
    400: "invalid_request_error",
}


@dataclass
class AnthropicFailure:
    status: int = 529
    retry_after: float | None = None


@dataclass
class FakeAnthropic:
    requests: list[dict[str, Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    failures: deque[AnthropicFailure] = field(default_factory=deque)
    reply: Callable[[list[dict[str, Any]]], str] | None = None
    end_marker: bool = True  # False: the stream ends after the text, with no message_stop

    def fail(self, *failures: AnthropicFailure) -> None:
        self.failures.extend(failures)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.requests.append(
            body | {"_headers": {k.lower(): v for k, v in request.headers.items()}}
        )
        self.times.append(time.monotonic())
        if self.failures:
            failure = self.failures.popleft()
            headers = {"retry-after": str(failure.retry_after)} if failure.retry_after else {}
            error = {
                "type": "error",
                "error": {
                    "type": _ERROR_TYPES.get(failure.status, "api_error"),
                    "message": "scripted",
                },
            }
            return web.json_response(error, status=failure.status, headers=headers)
        text = (
            self.reply(body["messages"])
            if self.reply
            else "claude: " + _text(body["messages"][-1]["content"])
        )
        usage_in = sum(len(_text(m["content"]).split()) for m in body["messages"])
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": usage_in, "output_tokens": len(text.split())},
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def event(name: str, data: dict[str, Any]) -> None:
            await response.write(f"event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n")

        await event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": body["model"],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": usage_in, "output_tokens": 1},
                },
            },
        )
        await event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
        await event("ping", {"type": "ping"})
        for start in range(0, len(text), 5):
            await event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": text[start : start + 5]},
                },
            )
        if not self.end_marker:
            await response.write_eof()
            return response
        await event("content_block_stop", {"type": "content_block_stop", "index": 0})
        await event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(text.split())},
            },
        )
        await event("message_stop", {"type": "message_stop"})
        await response.write_eof()
        return response

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self.handle)
        return app


def _text(content: str | list[dict[str, Any]]) -> str:
    """A message's text: the string, or its text blocks (images carry none)."""
    if isinstance(content, str):
        return content
    return " ".join(block.get("text", "") for block in content if block.get("type") == "text")
