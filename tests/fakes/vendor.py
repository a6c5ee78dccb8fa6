"""What every fake model server shares: one recording of each request, one scripted-failure
type, one server-sent-events writer. Each vendor's fake renders these in its own wire format.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass(frozen=True)
class Call:
    """One request as the fake received it."""

    body: dict[str, Any]
    headers: dict[str, str]  # lower-case names
    path: str
    query: dict[str, str]
    at: float  # time.monotonic()


@dataclass
class Failure:
    """A scripted failure, answered instead of the next request, in the vendor's own error
    envelope. `retry_after` is sent the vendor's way (a header, or Google's ``RetryInfo``)."""

    status: int = 500
    retry_after: float | None = None
    delay_s: float = 0.0
    message: str = "scripted failure"
    raw_body: bytes | None = None  # sent as is (with `status`) instead of the envelope
    in_stream: bool = False  # a 200 stream whose first event is an error (OpenAI)


@dataclass
class VendorFake:
    """The recording and the failure queue; subclasses answer."""

    calls: list[Call] = field(default_factory=list)
    failures: deque[Failure] = field(default_factory=deque)
    hangups: int = 0  # streams the client closed before their end
    #: Report a prompt cache as the vendors' servers keep one: the longest run of messages
    #: this request starts with, identical to the previous request's, counts as cached.
    prompt_cache: bool = False
    _previous: list[Any] = field(default_factory=list)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The bodies of every request, in order."""
        return [call.body for call in self.calls]

    @property
    def times(self) -> list[float]:
        return [call.at for call in self.calls]

    def cached(self, messages: list[Any], words: Any) -> int:
        """The tokens (counted as `words(message)`) a prompt cache would have for `messages`."""
        if not self.prompt_cache:
            return 0
        same = 0
        for before, now in zip(self._previous, messages, strict=False):
            if before != now:
                break
            same += 1
        self._previous = list(messages)
        return int(sum(words(m) for m in messages[:same]))

    def fail(self, *failures: Failure) -> None:
        self.failures.extend(failures)

    async def record(self, request: web.Request) -> dict[str, Any]:
        body: dict[str, Any] = orjson.loads(await request.read())
        self.calls.append(
            Call(
                body=body,
                headers={k.lower(): v for k, v in request.headers.items()},
                path=request.path,
                query=dict(request.query),
                at=time.monotonic(),
            )
        )
        return body

    async def next_failure(self) -> Failure | None:
        """The failure scripted for this request, after its delay; None: answer normally."""
        if not self.failures:
            return None
        failure = self.failures.popleft()
        if failure.delay_s:
            await asyncio.sleep(failure.delay_s)
        return failure


class SSE:
    """A server-sent-events response: ``event:`` lines when named, ``data:`` as JSON."""

    def __init__(self, request: web.Request, *, separator: bytes = b"\n\n") -> None:
        self.request = request
        self.response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        self._separator = separator

    async def __aenter__(self) -> SSE:
        await self.response.prepare(self.request)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if not self.request.transport or self.request.transport.is_closing():
            return
        await self.response.write_eof()

    async def send(self, data: object, *, event: str | None = None) -> None:
        head = f"event: {event}\n".encode() if event else b""
        await self.response.write(head + b"data: " + orjson.dumps(data) + self._separator)

    async def raw(self, line: bytes) -> None:
        await self.response.write(line + self._separator)

    def drop(self) -> None:
        """Close the connection mid-answer, as a dying server does."""
        assert self.request.transport is not None
        self.request.transport.close()
