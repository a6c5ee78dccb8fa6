"""A webhook receiver on loopback: records what the emulator delivers, checks each Sign."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from timbridge.protocol.callbacks import callback_sign


@dataclass
class Hook:
    query: dict[str, str]
    body: dict[str, Any]
    sign_ok: bool | None


@dataclass
class Receiver:
    token: str | None = None
    hooks: list[Hook] = field(default_factory=list)
    statuses: deque[int] = field(default_factory=deque)  # scripted HTTP answers, then 200 OK
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        sign_ok = None
        if self.token is not None:
            sign_ok = query.get("Sign") == callback_sign(self.token, query.get("RequestTime", ""))
        self.hooks.append(Hook(query, orjson.loads(await request.read()), sign_ok))
        self.changed.set()
        self.changed = asyncio.Event()
        status = self.statuses.popleft() if self.statuses else 200
        if status != 200:
            return web.Response(status=status, text="scripted failure")
        return web.json_response({"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/im", self.handle)
        return app

    async def wait(self, count: int, limit_s: float = 10.0) -> list[Hook]:
        async with asyncio.timeout(limit_s):
            while len(self.hooks) < count:
                await self.changed.wait()
        return self.hooks[:count]
