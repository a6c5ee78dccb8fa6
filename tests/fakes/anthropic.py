"""A fake Anthropic Messages API on loopback, in Anthropic's wire format.

``POST /v1/messages``: a JSON message, or with ``"stream": true`` the SSE events
``message_start``, ``content_block_start``, ``ping``, ``content_block_delta`` (``text_delta``),
``content_block_stop``, ``message_delta`` (usage) and ``message_stop``. Failures answer
``{"type": "error", "error": {"type": ..., "message": ...}}`` with their status (529 overloaded,
429 with ``retry-after``, 500).

With `tool_calls` set, it answers requests that offer tools with ``tool_use`` blocks (streamed:
``content_block_start`` with the id and name, then ``input_json_delta`` fragments;
``stop_reason: "tool_use"``) for the messages it returns calls for.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.openai import Calls
from tests.fakes.vendor import SSE, Failure, VendorFake

__all__ = ["Failure", "FakeAnthropic"]

_IDS = itertools.count(1)

_ERROR_TYPES = {
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
    400: "invalid_request_error",
}


def _text(content: str | list[dict[str, Any]]) -> str:
    """A message's text: the string, or its text blocks (images carry none)."""
    if isinstance(content, str):
        return content
    return " ".join(block.get("text", "") for block in content if block.get("type") == "text")


def _claude(messages: list[dict[str, Any]]) -> str:
    return "claude: " + _text(messages[-1]["content"])


@dataclass
class FakeAnthropic(VendorFake):
    reply: Callable[[list[dict[str, Any]]], str] = _claude
    end_marker: bool = True  # False: the stream ends after the text, with no message_stop
    tool_calls: Calls | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        failure = await self.next_failure()
        if failure is not None:
            headers = {"retry-after": str(failure.retry_after)} if failure.retry_after else {}
            kind = _ERROR_TYPES.get(failure.status, "api_error")
            error = {"type": "error", "error": {"type": kind, "message": failure.message}}
            return web.json_response(error, status=failure.status, headers=headers)
        calls = self.tool_calls(body["messages"]) if self.tool_calls and body.get("tools") else []
        if calls:
            return await self._call_tools(request, body, calls)
        text = self.reply(body["messages"])
        usage_in = sum(len(_text(m["content"]).split()) for m in body["messages"])
        read = self.cached(body["messages"], lambda m: len(_text(m["content"]).split()))
        cache = {"cache_read_input_tokens": read} if self.prompt_cache else {}
        message = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "stop_sequence": None,
        }
        if not body.get("stream"):
            return web.json_response(
                message
                | {
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "usage": {
                        "input_tokens": usage_in - read,
                        "output_tokens": len(text.split()),
                        **cache,
                    },
                }
            )
        async with SSE(request) as sse:
            start = message | {
                "content": [],
                "stop_reason": None,
                "usage": {"input_tokens": usage_in - read, "output_tokens": 1, **cache},
            }
            await sse.send({"type": "message_start", "message": start}, event="message_start")
            block = {"type": "text", "text": ""}
            opened = {"type": "content_block_start", "index": 0, "content_block": block}
            await sse.send(opened, event="content_block_start")
            await sse.send({"type": "ping"}, event="ping")
            for at in range(0, len(text), 5):
                piece = {"type": "text_delta", "text": text[at : at + 5]}
                delta = {"type": "content_block_delta", "index": 0, "delta": piece}
                await sse.send(delta, event="content_block_delta")
            if not self.end_marker:
                return sse.response
            stop = {"type": "content_block_stop", "index": 0}
            await sse.send(stop, event="content_block_stop")
            end = {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(text.split())},
            }
            await sse.send(end, event="message_delta")
            await sse.send({"type": "message_stop"}, event="message_stop")
        return sse.response

    async def _call_tools(
        self, request: web.Request, body: dict[str, Any], calls: list[tuple[str, dict[str, Any]]]
    ) -> web.StreamResponse:
        blocks = [
            {"type": "tool_use", "id": f"toolu_{next(_IDS)}", "name": name, "input": arguments}
            for name, arguments in calls
        ]
        message = {"id": "msg_2", "type": "message", "role": "assistant", "model": body["model"]}
        usage = {"input_tokens": 10, "output_tokens": 5 * len(calls)}
        if not body.get("stream"):
            return web.json_response(
                message
                | {"content": blocks, "stop_reason": "tool_use", "stop_sequence": None}
                | {"usage": usage}
            )
        async with SSE(request) as sse:
            start = message | {"content": [], "stop_reason": None, "stop_sequence": None}
            start["usage"] = {"input_tokens": 10, "output_tokens": 1}
            await sse.send({"type": "message_start", "message": start}, event="message_start")
            for index, block in enumerate(blocks):
                opened = {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": block | {"input": {}},
                }
                await sse.send(opened, event="content_block_start")
                arguments = orjson.dumps(block["input"]).decode()
                for at in range(0, len(arguments), 4):
                    piece = {"type": "input_json_delta", "partial_json": arguments[at : at + 4]}
                    delta = {"type": "content_block_delta", "index": index, "delta": piece}
                    await sse.send(delta, event="content_block_delta")
                stop = {"type": "content_block_stop", "index": index}
                await sse.send(stop, event="content_block_stop")
            end = {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]},
            }
            await sse.send(end, event="message_delta")
            await sse.send({"type": "message_stop"}, event="message_stop")
        return sse.response

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self.handle)
        return app
