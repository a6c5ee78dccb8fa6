"""One contract, two backends: the same coordination scenarios against the embedded queue on
its durable inbox (SQLite) and against Redis (a real server). Dedupe, per-conversation order
with conversations running together, and a restart that takes up what the last process left,
each job run once."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.test_redis_coordination import _job
from timbridge.coordination import Job, LocalCoordinator
from timbridge.coordination.redis import RedisCoordinator
from timbridge.errors import HandBack
from timbridge.storage import Store

Coordinators = Callable[[], Awaitable[Any]]


@pytest.fixture(params=["embedded", "redis"])
async def make(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Coordinators]:
    """A factory of coordinators sharing one backend, as successive processes would."""
    stores: list[Store] = []
    made: list[Any] = []
    if request.param == "embedded":

        async def factory() -> Any:
            for store in stores:  # the previous "process" is gone: its file is closed
                await store.aclose()
            stores.clear()
            store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
            stores.append(store)
            made.append(LocalCoordinator(inbox=store.inbox))
            return made[-1]

    else:
        redis_url: str = request.getfixturevalue("redis_url")
        prefix: str = request.getfixturevalue("redis_prefix")

        async def factory() -> Any:
            made.append(RedisCoordinator(redis_url, prefix=prefix, visibility_s=0.5))
            return made[-1]

    yield factory
    for coordinator in made:
        await coordinator.close(0.1)
    for store in stores:
        await store.aclose()
    if request.param == "redis":
        cleanup = aioredis.Redis.from_url(redis_url)
        keys = [k async for k in cleanup.scan_iter(f"{prefix}:*")]
        if keys:
            await cleanup.delete(*keys)
        await cleanup.aclose()


async def _submit(coordinator: Any, conversation: str, n: int) -> bool:
    job = _job(conversation, n)
    accepted: bool = await coordinator.submit(job.identity, [job])
    return accepted


async def test_a_message_is_queued_once(make: Coordinators) -> None:
    coordinator = await make()
    assert await _submit(coordinator, "a", 1) is True
    assert await _submit(coordinator, "a", 1) is False  # Tencent delivered it twice


async def test_each_conversation_in_order_and_conversations_together(make: Coordinators) -> None:
    coordinator = await make()
    ran: dict[str, list[int]] = defaultdict(list)
    running: set[str] = set()
    together = 0

    async def handler(job: Job) -> None:
        nonlocal together
        assert job.conversation not in running, "two jobs of one conversation at once"
        running.add(job.conversation)
        together = max(together, len(running))
        await asyncio.sleep(0.02)
        ran[job.conversation].append(int(job.identity.rsplit("#", 1)[1]))
        running.discard(job.conversation)

    for n in range(5):
        for conversation in "abc":
            assert await _submit(coordinator, conversation, n)
    await coordinator.start(handler)
    await coordinator.idle()
    assert dict(ran) == {c: [0, 1, 2, 3, 4] for c in "abc"}
    assert together == 3


async def test_what_a_stopped_process_left_runs_once_in_the_next(make: Coordinators) -> None:
    first = await make()
    stuck = asyncio.Event()

    async def never(job: Job) -> None:
        await stuck.wait()

    await first.start(never)
    for n in range(4):
        for conversation in "ab":
            assert await _submit(first, conversation, n)
    await asyncio.sleep(0.1)  # the heads of both conversations are running
    await first.close(0.05)  # they are cancelled; nothing of the eight was done

    second = await make()
    ran: dict[str, list[int]] = defaultdict(list)
    all_ran = asyncio.Event()

    async def record(job: Job) -> None:
        ran[job.conversation].append(int(job.identity.rsplit("#", 1)[1]))
        if sum(len(v) for v in ran.values()) == 8:
            all_ran.set()

    await second.start(record)
    async with asyncio.timeout(20):  # Redis: after the dead entries' visibility timeout
        await all_ran.wait()
    await second.idle()
    assert dict(ran) == {"a": [0, 1, 2, 3], "b": [0, 1, 2, 3]}


async def test_a_handed_back_job_runs_again_in_its_place_with_its_tries_counted(
    make: Coordinators,
) -> None:
    coordinator = await make()
    runs: list[tuple[str, int, int]] = []
    five = asyncio.Event()

    async def handler(job: Job) -> None:
        runs.append((job.conversation, int(job.identity.rsplit("#", 1)[1]), job.tries))
        if len(runs) == 5:
            five.set()
        if job.identity == "a#0" and job.tries < 2:
            raise HandBack("the store is down", after_s=0.05)

    for n in range(3):
        assert await _submit(coordinator, "a", n)
    await coordinator.start(handler)
    async with asyncio.timeout(10):
        await five.wait()
    await coordinator.idle()
    assert runs == [("a", 0, 0), ("a", 0, 1), ("a", 0, 2), ("a", 1, 0), ("a", 2, 0)]
    assert coordinator.depth() == 0


async def test_notes_are_kept_replaced_and_forgotten_when_they_expire(make: Coordinators) -> None:
    coordinator = await make()
    assert await coordinator.notes([]) == []
    await coordinator.note("a", "first", 30)
    await coordinator.note("a", "second", 30)  # a later note replaces the earlier
    await coordinator.note("brief", "x", 0.05)
    assert await coordinator.notes(["a", "brief", "never"]) == ["second", "x", None]
    await asyncio.sleep(0.1)
    assert await coordinator.notes(["brief", "a"]) == [None, "second"]
