"""A scripted Tencent REST server on loopback, for testing the client's fault handling.

Each received call is recorded; answers come from a per-command script (JSON envelopes, raw bytes,
HTTP statuses, delays, dropped connections), falling back to ``{"ActionStatus":"OK",...}``.
The emulator (timbridge.emulator) is the faithful stand-in; this server exists to produce the
faults a test needs, exactly once, in order.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Received:
    command: str
    query: dict[str, str]
    body: dict[str, Any]


@dataclass
class Answer:
    """One scripted answer: a JSON envelope, raw bytes, a status, a delay, or a dropped socket."""

    json: dict[str, Any] | None = None
    raw: bytes | None = None
    status: int = 200
    delay_s: float = 0.0
    drop: bool = False
    chunked: bool = False


def ok(**extra: Any) -> Answer:
    return Answer(json={"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": "", **extra})


def fail(code: int, info: str = "scripted failure") -> Answer:
    return Answer(json={"ActionStatus": "FAIL", "ErrorCode": code, "ErrorInfo": info})


@dataclass
class ScriptedTencent:
    received: list[Received] = field(default_factory=list)
    scripts: dict[str, deque[Answer]] = field(default_factory=lambda: defaultdict(deque))
    defaults: dict[str, Answer] = field(default_factory=dict)

    def script(self, command: str, *answers: Answer) -> None:
        self.scripts[command].extend(answers)

    def calls(self, command: str) -> list[Received]:
        return [r for r in self.received if r.command == command]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        command = f"{request.match_info['service']}/{request.match_info['command']}"
        raw_body = await request.read()
        self.received.append(
            Received(command, dict(request.query), orjson.loads(raw_body) if raw_body else {})
        )
        queue = self.scripts.get(command)
        answer = queue.popleft() if queue else self.defaults.get(command, ok())
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        if answer.drop:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        body = answer.raw if answer.raw is not None else orjson.dumps(answer.json)
        if answer.chunked:
            response = web.StreamResponse(status=answer.status)
            response.enable_chunked_encoding()
            await response.prepare(request)
            for start in range(0, len(body), 65536):
                await response.write(body[start : start + 65536])
            await response.write_eof()
            return response
        return web.Response(status=answer.status, body=body, content_type="application/json")

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v4/{service}/{command}", self.handle)
        return app
