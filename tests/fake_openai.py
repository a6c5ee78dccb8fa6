"""A fake OpenAI-compatible server on loopback speaking the real wire format.

``POST /v1/chat/completions``: JSON answers, or, with ``"stream": true``, server-sent
``chat.completion.chunk`` events, a usage chunk (``stream_options.include_usage``) and
``data: [DONE]``. Failures are scripted: an HTTP status with OpenAI's error body (and a
``Retry-After`` header for 429), or a delay. Every request is recorded.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Failure:
    status: int = 500
    delay_s: float = 0.0
    retry_after: float | None = None
    message: str = "scripted failure"
    raw_body: bytes | None = None  # sent as is (with `status`) instead of OpenAI's error body
    in_stream: bool = False  # a 200 stream whose first event is an error object


def echo(messages: list[dict[str, Any]]) -> str:
    return f"echo: {messages[-1]['content']}"


@dataclass
class FakeOpenAI:
    reply: Callable[[list[dict[str, Any]]], str] = echo
    delay_s: float = 0.0  # before the first token
    chunk_size: int = 8
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    failures: deque[Failure] = field(default_factory=deque)
    times: list[float] = field(default_factory=list)
    chunk_interval_s: float = 0.0  # between streamed pieces (200 tokens/s: 0.005)
    stall_after: int | None = None  # pieces sent before a pause of `stall_s`
    stall_s: float = 0.0
    break_after: int | None = None  # pieces sent before the connection is dropped mid-answer
    end_marker: bool = True  # False: the stream ends cleanly with no finish reason nor [DONE]

    def fail(self, *failures: Failure) -> None:
        self.failures.extend(failures)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.requests.append(body)
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        self.times.append(time.monotonic())
        if self.failures:
            failure = self.failures.popleft()
            if failure.delay_s:
                await asyncio.sleep(failure.delay_s)
            if failure.raw_body is not None:
                return web.Response(body=failure.raw_body, status=failure.status)
            if failure.in_stream:
                stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
                await stream.prepare(request)
                error = {"error": {"message": failure.message, "type": "server_error"}}
                await stream.write(b"data: " + orjson.dumps(error) + b"\n\n")
                await stream.write_eof()
                return stream
            headers = {}
            if failure.retry_after is not None:
                headers["Retry-After"] = str(failure.retry_after)
            error = {
                "error": {
                    "message": failure.message,
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }
            return web.json_response(error, status=failure.status, headers=headers)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        text = self.reply(body["messages"])
        prompt = sum(len(str(m["content"]).split()) for m in body["messages"])
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": len(text.split()),
            "total_tokens": prompt + len(text.split()),
        }
        base = {"id": "chatcmpl-fake", "created": int(time.time()), "model": body["model"]}
        if not body.get("stream"):
            return web.json_response(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
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
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def event(payload: dict[str, Any]) -> None:
            await response.write(b"data: " + orjson.dumps(payload) + b"\n\n")

        chunk = {**base, "object": "chat.completion.chunk"}
        await event(
            {
                **chunk,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                    }
                ],
            }
        )
        for number, start in enumerate(range(0, len(text), self.chunk_size)):
            piece = text[start : start + self.chunk_size]
            if number == self.break_after:
                assert request.transport is not None
                request.transport.close()  # the model's server dies mid-answer
                return response
            if number == self.stall_after:
                await asyncio.sleep(self.stall_s)
            elif self.chunk_interval_s:
                await asyncio.sleep(self.chunk_interval_s)
            await event(
                {
                    **chunk,
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                }
            )
        if not self.end_marker:
            await response.write_eof()
            return response
        await event({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            await event({**chunk, "choices": [], "usage": usage})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.handle)
        return app
