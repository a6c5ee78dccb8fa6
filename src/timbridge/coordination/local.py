"""In-process coordination for the embedded deployment: one process, no Redis.

With an inbox (`timbridge.storage.inbox`, as `serve` runs it), an accepted message is on disk
before the webhook answers OK, and the in-memory mailboxes are a bounded window over the inbox:
they hold at most `window` jobs, the oldest ones, and the rest waits on disk until there is room.
The window is always a prefix of the inbox in acceptance order (every stored job up to
`_loaded_to` is in memory or done, none after it is), so each conversation's jobs still run in
the order they came, whatever the backlog. On start, what the inbox holds runs again; on
shutdown, what did not finish within the grace period stays there for the next start.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from dataclasses import replace

import structlog

from timbridge.coordination.ack_first import AckFirst
from timbridge.coordination.base import Handler, Job
from timbridge.coordination.rate import Decision, MessageRate
from timbridge.errors import CoordinationError, HandBack, StorageError
from timbridge.storage.inbox import Inbox, InboxEntry

__all__ = ["Expiring", "LocalCoordinator", "TTLSet"]

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

    def discard(self, key: str) -> None:
        """Forget `key` (a message that could not be kept may come again)."""
        self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


class Expiring:
    """Values that expire, at most `max_items` (past that, the expired ones are forgotten,
    then the oldest)."""

    def __init__(self, max_items: int = 100_000) -> None:
        self._max = max_items
        self._items: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def get(self, key: str) -> str | None:
        held = self._items.get(key)
        return held[0] if held is not None and held[1] > time.monotonic() else None

    def put(self, key: str, value: str, ttl_s: float) -> None:
        now = time.monotonic()
        self._items[key] = (value, now + ttl_s)
        self._items.move_to_end(key)
        if len(self._items) > self._max:
            self._items = OrderedDict((k, v) for k, v in self._items.items() if v[1] > now)
            while len(self._items) > self._max:
                self._items.popitem(last=False)


class LocalCoordinator:
    """Per-conversation mailboxes drained by one task each; conversations run concurrently.

    `inbox`: where accepted jobs are kept until done (None: in memory only, lost on exit).
    `window`: the most jobs held in memory at once, with an inbox; `window_bytes`: the most
    bytes of webhook bodies they may hold (one job is always let in, however large).
    """

    def __init__(
        self,
        *,
        inbox: Inbox | None = None,
        window: int = 2048,
        window_bytes: int = 32 * 1024 * 1024,
        dedupe_ttl_s: float = 600.0,
        dedupe_max: int = 200_000,
        priority: AckFirst | None = None,
    ) -> None:
        self._seen = TTLSet(dedupe_ttl_s, dedupe_max)
        self._priority = priority or AckFirst(0.0)  # by default, no job is held back
        self._inbox = inbox
        self._window = window
        self._window_bytes = window_bytes
        self._bytes = 0  # of the bodies of the jobs in the mailboxes
        self._mailboxes: dict[str, deque[Job]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._handler: Handler | None = None
        self._closing = False
        self._in_memory = 0  # jobs in the mailboxes
        self._backlog: Counter[str] = Counter()  # robot → jobs accepted and not finished
        self._seq = 0  # the last sequence number given out
        self._newest = 0  # the newest job known stored
        self._loaded_to = 0  # every stored job up to here is in memory or done
        self._refill: asyncio.Task[None] | None = None
        self._taken_up = False  # the inbox's jobs from before are counted (`_take_up`)
        self._taking_up = asyncio.Lock()
        self._rate = MessageRate()
        self._once = Expiring()
        self._claims = Expiring()
        self._notes = Expiring()

    async def submit(self, identity: str, jobs: Sequence[Job]) -> bool:
        if self._closing:
            raise CoordinationError("the coordinator is shutting down")
        if not self._seen.add(identity):
            return False
        self._priority.accepted()
        if self._inbox is None:
            for job in jobs:
                self._backlog[job.robot] += 1
                self._admit(job)
            return True
        await self._take_up()
        stamped = []
        for job in jobs:
            self._seq += 1
            stamped.append(replace(job, seq=self._seq))
        try:
            await self._inbox.put(
                [_entry(job) for job in stamped], then=lambda: self._kept(stamped)
            )
        except StorageError as exc:
            self._seen.discard(identity)  # not kept: Tencent's redelivery must get through
            raise CoordinationError(f"cannot keep the message: {exc}") from exc
        return True

    def _kept(self, jobs: list[Job]) -> None:
        """`jobs` are committed to the inbox: into memory if the window has room and nothing
        older waits on disk, else they wait there for `_fill`."""
        for job in jobs:
            self._backlog[job.robot] += 1
            if self._loaded_to == self._newest and self._room_for(job):
                self._loaded_to = job.seq
                self._admit(job)
            self._newest = max(self._newest, job.seq)

    def _room_for(self, job: Job) -> bool:
        """Whether the window can take `job` (by count, and by bytes unless it is empty)."""
        if self._in_memory >= self._window:
            return False
        return self._in_memory == 0 or self._bytes + len(job.body) <= self._window_bytes

    def _admit(self, job: Job) -> None:
        self._in_memory += 1
        self._bytes += len(job.body)
        self._mailboxes.setdefault(job.conversation, deque()).append(job)
        if self._handler is not None and job.conversation not in self._workers:
            self._spawn(job.conversation)

    def _finished(self, job: Job) -> None:
        self._in_memory -= 1
        self._bytes -= len(job.body)
        left = self._backlog[job.robot] - 1
        if left > 0:
            self._backlog[job.robot] = left
        else:
            del self._backlog[job.robot]
        if self._inbox is not None and job.seq:
            self._inbox.done(job.seq)
            self._maybe_fill()

    def _maybe_fill(self) -> None:
        """Load waiting jobs from the inbox once the window is half empty."""
        if (
            self._refill is None
            and not self._closing
            and self._handler is not None
            and self._loaded_to < self._newest
            and self._in_memory <= self._window // 2
            and self._bytes <= self._window_bytes // 2
        ):
            self._refill = asyncio.get_running_loop().create_task(self._fill())

    async def _fill(self) -> None:
        assert self._inbox is not None
        try:
            while not self._closing and self._loaded_to < self._newest:
                room = self._window - self._in_memory
                if room <= 0:
                    return
                newest = self._newest  # every job up to here is committed
                try:
                    entries = await self._inbox.load(self._loaded_to, room)
                except StorageError as exc:
                    _log.error("inbox.load_failed", error=str(exc))
                    await asyncio.sleep(1.0)  # the jobs stay on disk; try again
                    continue
                for entry in entries:
                    if entry.seq <= self._loaded_to:
                        continue
                    job = _job(entry)
                    if not self._room_for(job):  # full by bytes: the rest waits on disk
                        return
                    self._seen.add(entry.identity)
                    self._loaded_to = entry.seq
                    self._admit(job)
                if len(entries) < room:  # nothing else is stored up to `newest`
                    self._loaded_to = max(self._loaded_to, newest)
        finally:
            self._refill = None

    async def rate(self, key: str, limit: int) -> Decision:
        return self._rate.check(key, limit)

    async def peek(self, conversation: str) -> list[Job]:
        mailbox = self._mailboxes.get(conversation)
        return list(mailbox)[1:] if mailbox else []

    async def claim(self, key: str, owner: str, ttl_s: float) -> str:
        held = self._claims.get(key)
        if held is not None:
            return held
        self._claims.put(key, owner, ttl_s)
        return owner

    async def once(self, key: str, ttl_s: float) -> bool:
        if self._once.get(key) is not None:
            return False
        self._once.put(key, "1", ttl_s)
        return True

    async def note(self, key: str, value: str, ttl_s: float) -> None:
        self._notes.put(key, value, ttl_s)

    async def notes(self, keys: Sequence[str]) -> list[str | None]:
        return [self._notes.get(key) for key in keys]

    def _spawn(self, conversation: str) -> None:
        task = asyncio.get_running_loop().create_task(self._drain(conversation))
        self._workers[conversation] = task

    async def _take_up(self) -> None:
        """Once, before the first job is numbered or run: continue the numbering of what the
        inbox holds from before, and count it, so that it runs first and no new job reuses
        its number (the webhook listens before the workers start)."""
        if self._inbox is None or self._taken_up:
            return
        async with self._taking_up:
            if not self._taken_up:  # (not done by a caller that held the lock before)
                await self._count_inbox(self._inbox)

    async def _count_inbox(self, inbox: Inbox) -> None:
        try:
            newest, stored = await inbox.pending()
        except StorageError as exc:
            raise CoordinationError(f"cannot read the inbox: {exc}") from exc
        self._seq = self._newest = newest
        self._backlog.update(stored)
        self._taken_up = True
        if stored:
            _log.info("coordination.resumed", jobs=sum(stored.values()))

    async def start(self, handler: Handler) -> None:
        """Begin running jobs; with an inbox, what it holds from before runs first."""
        await self._take_up()
        self._handler = handler
        for conversation in list(self._mailboxes):
            if conversation not in self._workers:
                self._spawn(conversation)
        self._maybe_fill()

    async def _drain(self, conversation: str) -> None:
        mailbox = self._mailboxes[conversation]
        assert self._handler is not None
        try:
            while mailbox and not (self._closing and self._inbox is not None):
                # (closing with an inbox, the queued jobs wait there for the next start)
                job = mailbox[0]
                await self._priority.turn(time.time() - job.received_at)
                try:
                    await self._handler(job)
                except asyncio.CancelledError:
                    raise
                except HandBack as exc:  # again later, in its place (it stays in the inbox)
                    mailbox[0] = replace(job, tries=job.tries + 1)
                    await asyncio.sleep(exc.after_s)
                    continue
                except Exception:  # noqa: BLE001 - a worker's top level: one bad job must not stop its conversation
                    _log.exception("job.failed", conversation=conversation, trace_id=job.trace_id)
                mailbox.popleft()
                self._finished(job)
        finally:
            del self._workers[conversation]
            if not mailbox:
                del self._mailboxes[conversation]

    async def close(self, grace_s: float) -> None:
        """Stop taking jobs; let running ones finish within `grace_s`. What is left stays in
        the inbox for the next start (without one, it is lost, and logged so)."""
        if self._closing:
            return
        self._closing = True
        self._priority.close()
        if self._refill is not None:
            self._refill.cancel()
        workers = list(self._workers.values())
        if workers:
            _, pending = await asyncio.wait(workers, timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        left = sum(self._backlog.values())
        if left and self._inbox is not None:
            _log.warning("coordination.left_for_restart", jobs=left)
        elif left:
            _log.warning("coordination.dropped_on_shutdown", jobs=left)

    def depth(self) -> int:
        return sum(self._backlog.values())

    def backlog(self) -> dict[str, int]:
        return dict(self._backlog)

    def oldest_wait_s(self) -> float:
        """The window holds the oldest jobs, and each mailbox's head is its oldest."""
        heads = [mailbox[0].received_at for mailbox in self._mailboxes.values() if mailbox]
        return max(0.0, time.time() - min(heads)) if heads else 0.0

    async def ping(self) -> None:
        return None

    async def idle(self) -> None:
        """Wait until every accepted job has finished (for tests and benchmarks)."""
        while self._workers or self._refill is not None:
            await asyncio.gather(
                *list(self._workers.values()),
                *([self._refill] if self._refill else []),
                return_exceptions=True,
            )
            await asyncio.sleep(0)  # a finished job may have started a refill


def _entry(job: Job) -> InboxEntry:
    return InboxEntry(
        job.seq,
        job.robot,
        job.conversation,
        job.identity,
        job.command,
        job.body,
        job.trace_id,
        job.received_at,
    )


def _job(entry: InboxEntry) -> Job:
    return Job(
        conversation=entry.conversation,
        robot=entry.robot,
        command=entry.command,
        body=entry.body,
        identity=entry.identity,
        trace_id=entry.trace_id,
        received_at=entry.received_at,
        seq=entry.seq,
    )
