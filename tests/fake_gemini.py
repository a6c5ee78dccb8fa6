"""A fake Gemini API server speaking the real wire format, for the ``google-genai`` SDK.

``POST /v1[beta]/models/{model}:generateContent`` answers one JSON ``GenerateContentResponse``;
``:streamGenerateContent?alt=sse`` answers ``data: {GenerateContentResponse}`` events, the last
with ``finishReason`` and ``usageMetadata``. Errors are Google's envelope,
``{"error": {"code", "message", "status", "details"}}``, a 429 with a ``RetryInfo`` delay.
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

_STATUS = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 400: "INVALID_ARGUMENT"}


@dataclass
class GeminiFailure:
    status: int = 503
    retry_delay_s: float | None = None


def _default_reply(contents: list[dict[str, Any]]) -> str:
    return "gemini: " + contents[-1]["parts"][0]["text"]


@dataclass
class FakeGemini:
    reply: Callable[[list[dict[str, Any]]], str] = _default_reply
    chunk_size: int = 6
    requests: list[dict[str, Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    failures: deque[GeminiFailure] = field(default_factory=deque)
    end_marker: bool = True  # False: no chunk carries a finishReason

    def fail(self, *failures: GeminiFailure) -> None:
        self.failures.extend(failures)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["spec"].partition(":")
        body = orjson.loads(await request.read())
        self.requests.append(
            body
            | {"_model": model, "_method": method, "_key": request.headers.get("x-goog-api-key")}
        )
        self.times.append(time.monotonic())
        if self.failures:
            failure = self.failures.popleft()
            details = []
            if failure.retry_delay_s is not None:
                details.append(
                    {
                        "@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": f"{failure.retry_delay_s:g}s",
                    }
                )
            error = {
                "error": {
                    "code": failure.status,
                    "message": "scripted failure",
                    "status": _STATUS.get(failure.status, "UNKNOWN"),
                    "details": details,
                }
            }
            return web.json_response(error, status=failure.status)
        text = self.reply(body["contents"])
        prompt = sum(len(p["text"].split()) for c in body["contents"] for p in c["parts"])
        usage = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": len(text.split()),
            "totalTokenCount": prompt + len(text.split()),
        }

        def response(piece: str, *, last: bool) -> dict[str, Any]:
            candidate: dict[str, Any] = {
                "content": {"parts": [{"text": piece}], "role": "model"},
                "index": 0,
            }
            out: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
            if last:
                candidate["finishReason"] = "STOP"
                out["usageMetadata"] = usage
            return out

        if method == "generateContent":
            return web.json_response(response(text, last=True))
        if method != "streamGenerateContent" or request.query.get("alt") != "sse":
            return web.json_response(
                {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}},
                status=404,
            )
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await stream.prepare(request)
        pieces = [text[i : i + self.chunk_size] for i in range(0, len(text), self.chunk_size)]
        for number, piece in enumerate(pieces):
            event = response(piece, last=self.end_marker and number == len(pieces) - 1)
            await stream.write(b"data: " + orjson.dumps(event) + b"\r\n\r\n")
            await asyncio.sleep(0)
        await stream.write_eof()
        return stream

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1beta/models/{spec}", self.handle)
        app.router.add_post("/v1/models/{spec}", self.handle)  # google-genai ≥ 3 calls v1
        return app
