"""Coordination on Redis for the scale-out deployment: any number of webhook front-ends and
workers, one order per conversation.

The keys are named in `coordination.keys`, the scripts are in `coordination.lua`.

Every hand-over is one Lua script, so ordering cannot break between two commands: `submit`
dedupes, appends and schedules the conversation only if it was not active; `finish` gives the
entry up only if the mailbox is empty (else the owner keeps going), or hands it back as a new
entry (shutdown, fairness). A worker that dies leaves its entry pending: after
`visibility_s` without a heartbeat another worker takes it over with ``XAUTOCLAIM`` and runs the
head job again. Replies are idempotent on the message's identity (the store knows what was sent,
and Tencent drops a resent part with the same random), so a job run twice answers once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from timbridge.coordination import lua
from timbridge.coordination.base import Handler, Job
from timbridge.coordination.keys import Keys
from timbridge.coordination.rate import WINDOW_S, Decision
from timbridge.errors import CoordinationError, HandBack
from timbridge.redact import public_url

__all__ = ["RedisCoordinator", "decode_job", "encode_job"]

_log = structlog.get_logger("timbridge.coordination")
T = TypeVar("T")

GROUP = "workers"


def encode_job(job: Job) -> bytes:
    """A job as stored in a mailbox (the parsed event stays behind; the body is re-parsed)."""
    return orjson.dumps(
        {
            "conversation": job.conversation,
            "robot": job.robot,
            "command": job.command,
            "body": base64.b64encode(job.body).decode(),
            "identity": job.identity,
            "trace_id": job.trace_id,
            "received_at": job.received_at,
            "tries": job.tries,
        }
    )


def decode_job(raw: bytes) -> Job:
    data = orjson.loads(raw)
    data["body"] = base64.b64decode(data["body"])
    return Job(**data)


class RedisCoordinator:
    """`Coordinator` on Redis Streams with a consumer group; safe with many processes."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "timbridge",
        dedupe_ttl_s: int = 600,
        visibility_s: float = 30.0,
        concurrency: int = 256,
        batch: int = 32,
        submit_timeout_s: float = 1.0,
        client: aioredis.Redis | None = None,
    ) -> None:
        self._redis = client or aioredis.Redis.from_url(
            url,
            socket_connect_timeout=2.0,
            socket_timeout=5.0,
            health_check_interval=15,
            max_connections=max(64, concurrency + 16),
            # a pooled connection that Redis closed (restart) is retried on a new one at once
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        self._url = public_url(url)
        self._keys = Keys(prefix)
        self._ttl = dedupe_ttl_s
        self._submit_timeout_s = submit_timeout_s
        self._visibility_ms = int(visibility_s * 1000)
        self._concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._batch = batch
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._submit = self._redis.register_script(lua.SUBMIT)
        self._finish = self._redis.register_script(lua.FINISH)
        self._done = self._redis.register_script(lua.DONE)
        self._heartbeat = self._redis.register_script(lua.HEARTBEAT)
        self._rate = self._redis.register_script(lua.RATE)
        self._handler: Handler | None = None
        self._closing = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._drains: dict[str, asyncio.Task[None]] = {}  # stream entry id → its drain
        self._lost: set[str] = set()
        self._resting_until = 0.0  # loop time until which this worker takes no work
        self._handed_back_in_a_row = 0  # jobs handed back since one last ran to its end
        self._depth_seen = 0
        self._started: dict[str, float] = {}  # identity|robot → received_at, of jobs running here

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except (RedisError, OSError) as exc:
            raise CoordinationError(f"redis {self._url}: {what}: {exc}") from exc

    # --- front-end side ---------------------------------------------------------------------

    async def persistence(self) -> str | None:
        """Why Redis could lose acknowledged messages if it restarts, or None when it keeps an
        append-only file synced at least every second. Asked with ``INFO persistence`` (which
        managed Redis services allow where they refuse ``CONFIG``)."""
        info: Any = await self._call("info", lambda: self._redis.info("persistence"))
        if not int(info.get("aof_enabled", 0)):
            return (
                "Redis keeps no append-only file (appendonly no): messages acknowledged but "
                "not yet answered are lost if Redis restarts; set appendonly yes"
            )
        try:
            config: Any = await self._redis.config_get("appendfsync")
        except (RedisError, OSError):
            return None  # CONFIG refused (managed Redis): the AOF is on, its fsync policy unknown
        if config.get("appendfsync") == "no":
            return (
                "Redis's append-only file is synced by the OS only (appendfsync no): up to ~30 s "
                "of acknowledged messages can be lost on a power loss; use everysec or always"
            )
        return None

    async def submit(self, identity: str, jobs: Sequence[Job]) -> bool:
        keys = [
            self._keys.seen(identity),
            self._keys.active,
            self._keys.ready,
            self._keys.depth,
            *(self._keys.mbox(j.conversation) for j in jobs),
        ]
        args: list[str | bytes | int] = [self._ttl, len(jobs)]
        for job in jobs:
            args += [job.conversation, encode_job(job)]
        # A hung Redis must not hold the webhook: past the timeout it answers 503 and Tencent
        # delivers again. Had the script run, the redelivery is a duplicate, answered once.
        try:
            async with asyncio.timeout(self._submit_timeout_s):
                accepted = await self._call("submit", lambda: self._submit(keys=keys, args=args))
        except TimeoutError as exc:
            raise CoordinationError(
                f"redis {self._url}: submit: no answer within {self._submit_timeout_s} s"
            ) from exc
        return bool(accepted)

    async def rate(self, key: str, limit: int) -> Decision:
        if limit <= 0:
            return Decision(allowed=True)
        keys = [self._keys.rate(key), self._keys.told(key)]
        args: list[str | int] = [int(WINDOW_S * 1000), limit, uuid.uuid4().hex]
        allowed, retry_ms, told = await self._call("rate", lambda: self._rate(keys=keys, args=args))
        return Decision(allowed=bool(allowed), retry_after_s=retry_ms / 1000, notify=bool(told))

    async def peek(self, conversation: str) -> list[Job]:
        mbox = self._keys.mbox(conversation)
        raw = await self._call("peek", lambda: self._redis.lrange(mbox, 1, 63))
        return [decode_job(item) for item in raw if isinstance(item, bytes)]

    async def claim(self, key: str, owner: str, ttl_s: float) -> str:
        name = self._keys.claim(key)
        px = max(1, int(ttl_s * 1000))
        before = await self._call(
            "claim", lambda: self._redis.set(name, owner, nx=True, px=px, get=True)
        )
        return owner if before is None or isinstance(before, bool) else _text(before)

    async def once(self, key: str, ttl_s: float) -> bool:
        name = self._keys.once(key)
        px = max(1, int(ttl_s * 1000))
        return bool(await self._call("once", lambda: self._redis.set(name, "1", nx=True, px=px)))

    async def note(self, key: str, value: str, ttl_s: float) -> None:
        name = self._keys.note(key)
        px = max(1, int(ttl_s * 1000))
        await self._call("note", lambda: self._redis.set(name, value, px=px))

    async def notes(self, keys: Sequence[str]) -> list[str | None]:
        if not keys:
            return []
        names = [self._keys.note(key) for key in keys]
        found = await self._call("notes", lambda: self._redis.mget(names))
        return [None if value is None else _text(value) for value in found]

    def depth(self) -> int:
        """Jobs queued over every process, as last read (`queued` reads it afresh)."""
        return self._depth_seen

    def backlog(self) -> dict[str, int]:
        """Not kept per robot on Redis: `depth` is the whole backlog."""
        return {}

    def oldest_wait_s(self) -> float:
        """The oldest job this worker is running has waited this long (0: none)."""
        return max(0.0, time.time() - min(self._started.values())) if self._started else 0.0

    async def queued(self) -> int:
        """Jobs queued and not finished, over every process."""
        value = await self._call("depth", lambda: self._redis.get(self._keys.depth))
        self._depth_seen = int(value or 0)
        return self._depth_seen

    async def ping(self) -> None:
        await self._call("ping", self._redis.ping)
        await self.queued()

    # --- worker side --------------------------------------------------------------------------

    async def _ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self._keys.ready, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def start(self, handler: Handler) -> None:
        self._handler = handler
        try:
            await self._ensure_group()
        except (RedisError, OSError) as exc:
            raise CoordinationError(f"redis {self._url}: create group: {exc}") from exc
        loop = asyncio.get_running_loop()
        self._loops = [
            loop.create_task(self._read_loop(), name="redis-read"),
            loop.create_task(self._maintenance_loop(), name="redis-maintenance"),
        ]
        _log.info("coordination.worker_started", consumer=self.consumer)
        await self.warn_if_not_durable()

    async def warn_if_not_durable(self) -> None:
        """Log once at start when Redis could lose acknowledged messages (see `persistence`)."""
        try:
            problem = await self.persistence()
        except CoordinationError as exc:
            _log.warning("coordination.persistence_unknown", error=str(exc))
            return
        if problem is not None:
            _log.warning("coordination.redis_not_durable", problem=problem)

    async def _rest(self) -> bool:
        """Wait while this worker rests after a job was handed back (its store failed): it
        takes no work meanwhile, so a healthy worker does. True if it rested."""
        left = self._resting_until - asyncio.get_running_loop().time()
        if left <= 0:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), left)
        return True

    async def _read_loop(self) -> None:
        backoff = 0.1
        while not self._closing.is_set():
            if await self._rest():
                continue
            await self._slots.acquire()
            self._slots.release()
            free = max(1, min(self._batch, self._free()))
            try:
                answer: Any = await self._redis.xreadgroup(
                    GROUP, self.consumer, {self._keys.ready: ">"}, count=free, block=1000
                )
                backoff = 0.1
            except (RedisError, OSError) as exc:
                _log.warning("coordination.read_failed", error=str(exc), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                    # Redis came back empty (no persistence): make the group again
                    with contextlib.suppress(RedisError, OSError):
                        await self._ensure_group()
                continue
            resting = self._resting_until > asyncio.get_running_loop().time()
            for _stream, entries in answer or []:
                for entry_id, fields in entries:
                    if resting:  # read before the rest began: pass it on to a healthy worker
                        await self._pass_on(_text(entry_id), _text(fields[b"c"]))
                    else:
                        self._launch(_text(entry_id), _text(fields[b"c"]))

    async def _pass_on(self, entry: str, conversation: str) -> None:
        keys = [self._keys.mbox(conversation), self._keys.active, self._keys.ready]
        try:
            await self._finish(keys=keys, args=[GROUP, entry, conversation, "1"])
        except (RedisError, OSError) as exc:  # still ours: reclaimed after the visibility time
            _log.warning("coordination.pass_on_failed", conversation=conversation, error=str(exc))

    def _free(self) -> int:
        """Slots no drain holds or waits for: what the next read may take on."""
        return self._concurrency - len(self._drains)

    async def _maintenance_loop(self) -> None:
        """Heartbeats for the entries this worker holds; takes over entries of dead workers."""
        every = max(0.05, self._visibility_ms / 3000)
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), every)
            if self._closing.is_set():
                return
            try:
                await self._renew()
                await self._reclaim()
            except (RedisError, OSError) as exc:
                _log.warning("coordination.maintenance_failed", error=str(exc))

    async def _renew(self) -> None:
        held = list(self._drains)
        if not held:
            return
        lost = await self._heartbeat(keys=[self._keys.ready], args=[GROUP, self.consumer, *held])
        for entry in lost:
            _log.warning("coordination.entry_lost", entry=_text(entry))
            self._lost.add(_text(entry))

    async def _reclaim(self) -> None:
        free = self._free()
        if free <= 0 or self._resting_until > asyncio.get_running_loop().time():
            return
        claimed: Any = await self._redis.xautoclaim(
            self._keys.ready, GROUP, self.consumer, self._visibility_ms, "0-0", count=free
        )
        for entry_id, fields in claimed[1]:
            if fields:  # a deleted entry comes back without fields
                entry = _text(entry_id)
                if entry not in self._drains:
                    _log.warning("coordination.reclaimed", entry=entry)
                    self._launch(entry, _text(fields[b"c"]))

    def _launch(self, entry: str, conversation: str) -> None:
        task = asyncio.get_running_loop().create_task(self._drain(entry, conversation))
        self._drains[entry] = task
        task.add_done_callback(lambda _t: self._drains.pop(entry, None))

    async def _drain(self, entry: str, conversation: str) -> None:
        async with self._slots:
            backoff = 0.1
            try:
                while entry not in self._lost and not await self._drain_once(entry, conversation):
                    await asyncio.sleep(backoff)  # Redis failed mid-way: the entry is still ours
                    backoff = min(backoff * 2, 5.0)
            finally:
                self._lost.discard(entry)

    async def _drain_once(self, entry: str, conversation: str) -> bool:
        """Run the conversation's jobs until its mailbox is empty or it is handed back; False
        when Redis failed (the caller tries again while the entry is still ours)."""
        mbox = self._keys.mbox(conversation)
        keys = [mbox, self._keys.active, self._keys.ready]
        ran = 0
        try:
            while entry not in self._lost:
                raw: bytes | None = await self._redis.lindex(mbox, 0)  # type: ignore[assignment]
                if raw is None:
                    if await self._finish(keys=keys, args=[GROUP, entry, conversation, "0"]):
                        return True
                    continue
                if self._closing.is_set() or ran >= self._batch:  # hand over, stay fair
                    await self._finish(keys=keys, args=[GROUP, entry, conversation, "1"])
                    return True
                job = decode_job(raw)
                try:
                    await self._run(job)
                except HandBack as exc:  # the job stays first; any worker may take it again
                    await self._hand_back(mbox, job, exc)
                    await self._finish(keys=keys, args=[GROUP, entry, conversation, "1"])
                    return True
                self._handed_back_in_a_row = 0
                await self._done(keys=[mbox, self._keys.depth], args=[raw])
                ran += 1
        except asyncio.CancelledError:
            with contextlib.suppress(RedisError, OSError):  # hand back what is unfinished
                await self._finish(keys=keys, args=[GROUP, entry, conversation, "1"])
            raise
        except (RedisError, OSError) as exc:
            _log.warning("coordination.drain_failed", conversation=conversation, error=str(exc))
            return self._closing.is_set()  # closing: leave it pending for another worker
        return True

    async def _hand_back(self, mbox: str, job: Job, exc: HandBack) -> None:
        """Count the try in the job itself (the mailbox head is only ever touched by the holder
        of its entry, this worker), and rest: `exc.after_s`, or longer when this worker keeps
        failing (doubling per job handed back in a row, up to 30 s), so that a worker whose
        store stays down leaves the work, and the tries of each job, to the healthy ones."""
        head = encode_job(replace(job, tries=job.tries + 1)).decode()
        await self._redis.lset(mbox, 0, head)
        self._handed_back_in_a_row += 1
        rest = min(30.0, max(exc.after_s, 0.5 * 2 ** (self._handed_back_in_a_row - 1)))
        loop = asyncio.get_running_loop()
        self._resting_until = max(self._resting_until, loop.time() + rest)
        _log.warning(
            "coordination.handed_back",
            conversation=job.conversation,
            tries=job.tries + 1,
            rest_s=rest,
            reason=str(exc),
        )

    async def _run(self, job: Job) -> None:
        assert self._handler is not None
        self._started[f"{job.identity}|{job.robot}"] = job.received_at
        try:
            await self._handler(job)
        except (asyncio.CancelledError, HandBack):
            raise
        except Exception:  # noqa: BLE001 - a worker's top level: one bad job must not stop its conversation
            _log.exception("job.failed", conversation=job.conversation, trace_id=job.trace_id)

    async def close(self, grace_s: float) -> None:
        """Stop reading; let running jobs finish within `grace_s`; hand the rest back."""
        if self._closing.is_set():
            return
        self._closing.set()
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        drains = list(self._drains.values())
        if drains:
            _, pending = await asyncio.wait(drains, timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._redis.aclose()

    async def idle(self, limit_s: float = 30.0) -> None:
        """Wait until no job is queued anywhere (tests, benchmarks)."""
        deadline = time.monotonic() + limit_s
        while await self.queued() > 0 or self._drains:
            if time.monotonic() > deadline:
                raise TimeoutError("jobs still queued")
            await asyncio.sleep(0.05)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
