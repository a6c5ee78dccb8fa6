"""A fake Gemini API server speaking the real wire format, for the ``google-genai`` SDK.

``POST /v1[beta]/models/{model}:generateContent`` answers one JSON ``GenerateContentResponse``;
``:streamGenerateContent?alt=sse`` answers ``data: {GenerateContentResponse}`` events, the last
with ``finishReason`` and ``usageMetadata``. Errors are Google's envelope,
``{"error": {"code", "message", "status", "details"}}``, a 429 with a ``RetryInfo`` delay.

With `tool_calls` set, a request that declares functions is answered, for the contents it
returns calls for, with ``functionCall`` parts (each call whole, as Gemini sends them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.openai import Calls
from tests.fakes.vendor import SSE, Failure, VendorFake

__all__ = ["Failure", "FakeGemini", "spec"]

_STATUS = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 400: "INVALID_ARGUMENT"}


def _gemini(contents: list[dict[str, Any]]) -> str:
    return "gemini: " + contents[-1]["parts"][0]["text"]


def spec(path: str) -> tuple[str, str]:
    """The model and the method of a request path (``…/models/{model}:{method}``)."""
    model, _, method = path.rsplit("/", 1)[-1].partition(":")
    return model, method


def _error(failure: Failure) -> dict[str, Any]:
    details = []
    if failure.retry_after is not None:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": f"{failure.retry_after:g}s",
            }
        )
    status = _STATUS.get(failure.status, "UNKNOWN")
    return {
        "error": {
            "code": failure.status,
            "message": failure.message,
            "status": status,
            "details": details,
        }
    }


@dataclass
class FakeGemini(VendorFake):
    reply: Callable[[list[dict[str, Any]]], str] = _gemini
    chunk_size: int = 6
    end_marker: bool = True  # False: no chunk carries a finishReason
    tool_calls: Calls | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        model, method = spec(request.path)
        failure = await self.next_failure()
        if failure is not None:
            return web.json_response(_error(failure), status=failure.status)
        declared = any(t.get("functionDeclarations") for t in body.get("tools") or ())
        calls = self.tool_calls(body["contents"]) if self.tool_calls and declared else None
        text = "" if calls else self.reply(body["contents"])
        prompt = sum(len(p.get("text", "").split()) for c in body["contents"] for p in c["parts"])
        usage = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": len(text.split()),
            "totalTokenCount": prompt + len(text.split()),
        }
        if self.prompt_cache:
            words = lambda c: sum(len(p.get("text", "").split()) for p in c["parts"])  # noqa: E731
            usage["cachedContentTokenCount"] = self.cached(body["contents"], words)

        def response(piece: str, *, last: bool) -> dict[str, Any]:
            parts: list[dict[str, Any]] = [{"text": piece}] if piece else []
            if last and calls:
                parts += [
                    {"functionCall": {"id": f"fc_{n}", "name": name, "args": args}}
                    for n, (name, args) in enumerate(calls)
                ]
            candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
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
        pieces = [text[i : i + self.chunk_size] for i in range(0, len(text), self.chunk_size)]
        pieces = pieces or [""]  # a call alone comes in one chunk
        async with SSE(request, separator=b"\r\n\r\n") as sse:
            for number, piece in enumerate(pieces):
                await sse.send(response(piece, last=self.end_marker and number == len(pieces) - 1))
                await asyncio.sleep(0)
        return sse.response

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1beta/models/{spec}", self.handle)
        app.router.add_post("/v1/models/{spec}", self.handle)  # google-genai ≥ 3 calls v1
        return app
