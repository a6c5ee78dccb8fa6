"""Webhook delivery from the emulator to the app's callback URL, as Tencent does it (§5).

POST with ``SdkAppid``, ``CallbackCommand``, ``contenttype``, ``ClientIP``, ``OptPlatform`` and,
when a token is set, ``Sign`` / ``RequestTime``. Deliveries of one conversation go out one at a
time, in order; a failed or non-OK delivery is retried with backoff a bounded number of times,
so the app sees at-least-once delivery (and, with the duplicate fault, doubles).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import structlog

from timbridge.emulator.faults import Faults
from timbridge.http import http_session, read_capped
from timbridge.protocol.callbacks import callback_sign

__all__ = ["Delivery", "WebhookDispatcher"]

_log = structlog.get_logger("timbridge.emulator")
#: The largest webhook answer read: Tencent expects a few bytes of JSON back.
_ANSWER_LIMIT = 64 * 1024


@dataclass(slots=True)
class Delivery:
    """One webhook, and what happened to it."""

    command: str
    conversation: str
    body: dict[str, Any]
    platform: str
    attempts: int = 0
    status: int | None = None
    answer: dict[str, Any] | None = None
    delivered: bool = False
    copies: int = 0
    errors: list[str] = field(default_factory=list)


class WebhookDispatcher:
    """Queues webhooks per conversation and delivers them in order with bounded retries."""

    def __init__(
        self,
        faults: Faults,
        *,
        sdkappid: int,
        url: str | None,
        token: str | None,
        attempts: int = 4,
        backoff_s: float = 0.25,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.faults = faults
        self.sdkappid = sdkappid
        self.url = url
        self.token = token
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.clock = clock
        self.log: list[Delivery] = []
        self.changed = asyncio.Event()
        self._queues: dict[str, deque[Delivery]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = http_session(limit=100)

    async def close(self) -> None:
        for task in self._workers.values():
            task.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        self._workers.clear()
        if self._session is not None:
            await self._session.close()

    def submit(
        self, command: str, conversation: str, body: dict[str, Any], platform: str
    ) -> Delivery | None:
        """Queue a webhook behind the conversation's earlier ones; None if no URL is set."""
        if not self.url:
            return None
        delivery = Delivery(command, conversation, body, platform)
        self.log.append(delivery)
        self._queues.setdefault(conversation, deque()).append(delivery)
        if conversation not in self._workers:
            task = asyncio.get_running_loop().create_task(self._drain(conversation))
            self._workers[conversation] = task
        return delivery

    async def idle(self) -> None:
        """Wait until every queued webhook has been delivered or given up."""
        while self._workers:
            await asyncio.gather(*list(self._workers.values()), return_exceptions=True)

    async def _drain(self, conversation: str) -> None:
        queue = self._queues[conversation]
        try:
            while queue:
                delivery = queue[0]
                copies = self.faults.take_duplicates()
                delivery.copies = copies
                for _ in range(1 + copies):
                    await self._deliver(delivery)
                queue.popleft()
                self._notify()
        finally:
            del self._workers[conversation]
            if not queue:
                self._queues.pop(conversation, None)

    def _notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    async def _deliver(self, delivery: Delivery) -> None:
        assert self._session is not None
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            delivery.attempts += 1
            try:
                async with self._session.post(
                    self._url(delivery),
                    data=orjson.dumps(delivery.body),
                    headers={"Content-Type": "application/json"},
                    timeout=self.timeout,
                ) as resp:
                    delivery.status = resp.status
                    raw = await read_capped(resp, _ANSWER_LIMIT)
                if raw is None:
                    raise ValueError(f"webhook answer over {_ANSWER_LIMIT} bytes")
                answer = orjson.loads(raw) if raw else {}
                delivery.answer = answer if isinstance(answer, dict) else {}
                if resp.status == 200 and delivery.answer.get("ErrorCode") == 0:
                    delivery.delivered = True
                    return
                delivery.errors.append(f"HTTP {resp.status}: {raw[:200]!r}")
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                delivery.errors.append(repr(exc))
        _log.warning(
            "emulator.webhook_gave_up",
            command=delivery.command,
            conversation=delivery.conversation,
            errors=delivery.errors[-1:],
        )

    def _url(self, delivery: Delivery) -> str:
        assert self.url is not None
        query: dict[str, str] = {
            "SdkAppid": str(self.sdkappid),
            "CallbackCommand": delivery.command,
            "contenttype": "json",
            "ClientIP": "127.0.0.1",
            "OptPlatform": delivery.platform,
        }
        if self.token:
            request_time = str(int(self.clock()))
            query |= {"Sign": callback_sign(self.token, request_time), "RequestTime": request_time}
        separator = "&" if "?" in self.url else "?"
        return f"{self.url}{separator}{urlencode(query)}"
