"""In-process coordination for the embedded deployment: one process, no Redis."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Sequence

import structlog

from timbridge.coordination.base import Handler, Job
from timbridge.coordination.limits import Decision, MessageRate
from timbridge.coordination.priority import AckFirst
from timbridge.errors import CoordinationError

__all__ = ["LocalCoordinator", "TTLSet"]

_log = structlog.get_logger("timbridge.coordination")


class TTLSet:
    """Identities seen within `ttl_s`, at most `max_items` (the oldest are forgotten first)."""

    def __init__(self, ttl_s: float = 600.0, max_items: int = 200_000) -> None:
        self._ttl = ttl_s
        self._max = max_items
        self._items: OrderedDict[str, float] = OrderedDict()

    def add(self, key: str, now: float | None = None) -> bool:
        """Add `key`; False if it is already present and not expired."""
        now = time.monotonic() if now is None else now
        expiry = self._items.get(key)
        if expiry is not None and expiry > now:
            return False
        self._items[key] = now + self._ttl
        self._items.move_to_end(key)
        while self._items:
            oldest, until = next(iter(self._items.items()))
            if until > now and len(self._items) <= self._max:
                break
            del self._items[oldest]
        return True

    def __len__(self) -> int:
        return len(self._items)


class LocalCoordinator:
    """Per-conversation mailboxes drained by one task each; conversations run concurrently."""

    def __init__(
        self,
        *,
        dedupe_ttl_s: float = 600.0,
        dedupe_max: int = 200_000,
        priority: AckFirst | None = None,
    ) -> None:
        self._seen = TTLSet(dedupe_ttl_s, dedupe_max)
        self._priority = priority or AckFirst(0.0)  # by default, no job is held back
        self._mailboxes: dict[str, deque[Job]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._handler: Handler | None = None
        self._closing = False
        self._depth = 0
        self._rate = MessageRate()
        self._once: dict[str, float] = {}
        self._claims: dict[str, tuple[str, float]] = {}

    async def submit(self, identity: str, jobs: Sequence[Job]) -> bool:
        if self._closing:
            raise CoordinationError("the coordinator is shutting down")
        if not self._seen.add(identity):
            return False
        self._priority.accepted()
        for job in jobs:
            await self.enqueue(job)
        return True

    async def rate(self, key: str, limit: int) -> Decision:
        return self._rate.check(key, limit)

    async def peek(self, conversation: str) -> list[Job]:
        mailbox = self._mailboxes.get(conversation)
        return list(mailbox)[1:] if mailbox else []

    async def claim(self, key: str, owner: str, ttl_s: float) -> str:
        now = time.monotonic()
        held = self._claims.get(key)
        if held is not None and held[1] > now:
            return held[0]
        if len(self._claims) > 100_000:  # forget the expired ones
            self._claims = {k: v for k, v in self._claims.items() if v[1] > now}
        self._claims[key] = (owner, now + ttl_s)
        return owner

    async def once(self, key: str, ttl_s: float) -> bool:
        now = time.monotonic()
        if len(self._once) > 100_000:  # forget the expired ones
            self._once = {k: until for k, until in self._once.items() if until > now}
        if self._once.get(key, 0.0) > now:
            return False
        self._once[key] = now + ttl_s
        return True

    async def enqueue(self, job: Job) -> None:
        """Queue one job without dedupe."""
        if self._closing:
            raise CoordinationError("the coordinator is shutting down")
        self._depth += 1
        self._mailboxes.setdefault(job.conversation, deque()).append(job)
        if self._handler is not None and job.conversation not in self._workers:
            self._spawn(job.conversation)

    def _spawn(self, conversation: str) -> None:
        task = asyncio.get_running_loop().create_task(self._drain(conversation))
        self._workers[conversation] = task

    async def start(self, handler: Handler) -> None:
        self._handler = handler
        for conversation in list(self._mailboxes):
            if conversation not in self._workers:
                self._spawn(conversation)

    async def _drain(self, conversation: str) -> None:
        mailbox = self._mailboxes[conversation]
        assert self._handler is not None
        try:
            while mailbox:
                job = mailbox[0]
                await self._priority.turn()
                try:
                    await self._handler(job)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - a worker's top level: one bad job must not stop its conversation
                    _log.exception("job.failed", conversation=conversation, trace_id=job.trace_id)
                mailbox.popleft()
                self._depth -= 1
        finally:
            del self._workers[conversation]
            if not mailbox:
                del self._mailboxes[conversation]

    async def close(self, grace_s: float) -> None:
        if self._closing:
            return
        self._closing = True
        self._priority.close()
        workers = list(self._workers.values())
        if workers:
            _, pending = await asyncio.wait(workers, timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        lost = sum(len(m) for m in self._mailboxes.values())
        if lost:
            _log.warning("coordination.dropped_on_shutdown", jobs=lost)

    def depth(self) -> int:
        return self._depth

    async def ping(self) -> None:
        return None

    async def idle(self) -> None:
        """Wait until every accepted job has finished (for tests and benchmarks)."""
        while self._workers:
            await asyncio.gather(*list(self._workers.values()), return_exceptions=True)
