"""A fake OpenAI-compatible server on loopback speaking the real wire format.

``POST /v1/chat/completions``: JSON answers, or, with ``"stream": true``, server-sent
``chat.completion.chunk`` events, a usage chunk (``stream_options.include_usage``) and
``data: [DONE]``. Failures answer OpenAI's error body (and ``Retry-After`` for 429).

With `tool_calls` set, the fake is a model that uses tools: for a request whose messages it returns
calls for, it answers with ``tool_calls`` (streamed as OpenAI does: the id and name first, then
the arguments in fragments, ``finish_reason: "tool_calls"``) instead of text.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.vendor import SSE, Failure, VendorFake

__all__ = ["Call", "Calls", "Failure", "FakeOpenAI", "echo"]

#: A tool call the fake makes: the tool's name and its arguments.
Call = tuple[str, dict[str, Any]]
#: The calls for a request's messages (None or empty: answer in words).
Calls = Callable[[list[dict[str, Any]]], list[Call] | None]
_IDS = itertools.count(1)


def echo(messages: list[dict[str, Any]]) -> str:
    return f"echo: {messages[-1]['content']}"


def _error(failure: Failure) -> dict[str, Any]:
    return {
        "error": {"message": failure.message, "type": "server_error", "param": None, "code": None}
    }


@dataclass
class FakeOpenAI(VendorFake):
    reply: Callable[[list[dict[str, Any]]], str] = echo
    delay_s: float = 0.0  # before the first token
    chunk_size: int = 8
    chunk_interval_s: float = 0.0  # between streamed pieces (200 tokens/s: 0.005)
    stall_after: int | None = None  # pieces sent before a pause of `stall_s`
    stall_s: float = 0.0
    break_after: int | None = None  # pieces sent before the connection is dropped mid-answer
    end_marker: bool = True  # False: the stream ends cleanly with no finish reason nor [DONE]
    tool_calls: Calls | None = None  # the tools it calls, by request
    hold: Callable[[list[dict[str, Any]]], Awaitable[None]] | None = None  # awaited first

    @property
    def headers(self) -> list[dict[str, str]]:
        return [call.headers for call in self.calls]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        failure = await self.next_failure()
        if failure is not None:
            if failure.raw_body is not None:
                return web.Response(body=failure.raw_body, status=failure.status)
            if failure.in_stream:
                async with SSE(request) as sse:
                    await sse.send(_error(failure))
                return sse.response
            headers = {}
            if failure.retry_after is not None:
                headers["Retry-After"] = str(failure.retry_after)
            return web.json_response(_error(failure), status=failure.status, headers=headers)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.hold is not None:
            await self.hold(body["messages"])
        calls = self.tool_calls(body["messages"]) if self.tool_calls and body.get("tools") else None
        if calls:
            return await self._call_tools(request, body, calls)
        text = self.reply(body["messages"])
        prompt = sum(len(str(m["content"]).split()) for m in body["messages"])
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": len(text.split()),
            "total_tokens": prompt + len(text.split()),
        }
        if self.prompt_cache:
            cached = self.cached(body["messages"], lambda m: len(str(m["content"]).split()))
            usage["prompt_tokens_details"] = {"cached_tokens": cached}
        base = {"id": "chatcmpl-fake", "created": int(time.time()), "model": body["model"]}
        if not body.get("stream"):
            message = {"role": "assistant", "content": text}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return web.json_response(
                {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            )
        return await self._stream(request, body, text, usage, base)

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        text: str,
        usage: dict[str, int],
        base: dict[str, Any],
    ) -> web.StreamResponse:
        chunk = {**base, "object": "chat.completion.chunk"}

        def delta(content: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**chunk, "choices": [{"index": 0, "delta": content, "finish_reason": finish}]}

        async with SSE(request) as sse:
            await sse.send(delta({"role": "assistant", "content": ""}))
            try:
                for number, start in enumerate(range(0, len(text), self.chunk_size)):
                    if number == self.break_after:
                        sse.drop()  # the model's server dies mid-answer
                        return sse.response
                    if number == self.stall_after:
                        await asyncio.sleep(self.stall_s)
                    elif self.chunk_interval_s:
                        await asyncio.sleep(self.chunk_interval_s)
                    await sse.send(delta({"content": text[start : start + self.chunk_size]}))
            except (asyncio.CancelledError, ConnectionResetError):
                # aiohttp cancels a handler whose client went away (or a write fails)
                if request.transport is None or request.transport.is_closing():
                    self.hangups += 1
                raise
            if not self.end_marker:
                return sse.response
            await sse.send(delta({}, "stop"))
            if (body.get("stream_options") or {}).get("include_usage"):
                await sse.send({**chunk, "choices": [], "usage": usage})
            await sse.raw(b"data: [DONE]")
        return sse.response

    async def _call_tools(
        self, request: web.Request, body: dict[str, Any], calls: list[Call]
    ) -> web.StreamResponse:
        wire = [
            {
                "id": f"call_{next(_IDS)}",
                "type": "function",
                "function": {"name": name, "arguments": orjson.dumps(arguments).decode()},
            }
            for name, arguments in calls
        ]
        usage = {"prompt_tokens": 10, "completion_tokens": 5 * len(calls), "total_tokens": 0}
        base = {"id": "chatcmpl-fake", "created": int(time.time()), "model": body["model"]}
        if not body.get("stream"):
            message = {"role": "assistant", "content": None, "tool_calls": wire}
            choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
            return web.json_response(
                {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            )
        chunk = {**base, "object": "chat.completion.chunk"}

        def delta(content: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**chunk, "choices": [{"index": 0, "delta": content, "finish_reason": finish}]}

        async with SSE(request) as sse:
            await sse.send(delta({"role": "assistant", "content": None}))
            for index, call in enumerate(wire):
                head = {"index": index, "id": call["id"], "type": "function"}
                head["function"] = {"name": call["function"]["name"], "arguments": ""}
                await sse.send(delta({"tool_calls": [head]}))
                arguments = call["function"]["arguments"]
                for at in range(0, len(arguments), self.chunk_size):
                    fragment = {"arguments": arguments[at : at + self.chunk_size]}
                    await sse.send(delta({"tool_calls": [{"index": index, "function": fragment}]}))
            await sse.send(delta({}, "tool_calls"))
            if (body.get("stream_options") or {}).get("include_usage"):
                await sse.send({**chunk, "choices": [], "usage": usage})
            await sse.raw(b"data: [DONE]")
        return sse.response

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.handle)
        return app
