"""The embedded queue on its durable inbox (`LocalCoordinator` + `storage.Inbox`), on SQLite
and on a real PostgreSQL server: a job is on disk before `submit` returns, what is left at close
runs after a restart in its order, memory holds a bounded window however long the backlog, and a
message that cannot be kept is refused so that Tencent delivers it again."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.test_inline_sqlite import _locked
from tests.test_redis_coordination import _job
from timbridge.coordination import Job, LocalCoordinator
from timbridge.errors import CoordinationError
from timbridge.storage import Store


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite:///{tmp_path / 'db.sqlite'}"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url)
    yield opened
    await opened.aclose()


async def _submit(coordinator: LocalCoordinator, conversation: str, n: int) -> bool:
    job = _job(conversation, n)
    return await coordinator.submit(job.identity, [job])


def _number(job: Job) -> int:
    return int(job.identity.rsplit("#", 1)[1])


async def test_a_job_is_committed_before_submit_returns(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    store = await Store.open(f"sqlite:///{path}")
    coordinator = LocalCoordinator(inbox=store.inbox)
    try:
        assert await _submit(coordinator, "a", 1)
        with sqlite3.connect(path) as other:  # another connection sees it: it is committed
            rows = other.execute("SELECT identity, body FROM inbox").fetchall()
        assert rows == [("a#1", b'{"n": 1}')]
        assert not await _submit(coordinator, "a", 1)  # a redelivery is not kept twice
        assert coordinator.depth() == 1
    finally:
        await coordinator.close(0)
        await store.aclose()


async def test_jobs_left_at_close_run_after_a_restart_in_their_order(store_url: str) -> None:
    store = await Store.open(store_url)
    first = LocalCoordinator(inbox=store.inbox)
    stuck = asyncio.Event()

    async def never(job: Job) -> None:
        await stuck.wait()

    await first.start(never)
    for n in range(5):
        for conversation in ("a", "b"):
            assert await _submit(first, conversation, n)
    assert first.depth() == 10
    await first.close(grace_s=0.05)  # the two running jobs are cancelled; all ten stay
    await store.aclose()

    store = await Store.open(store_url)
    second = LocalCoordinator(inbox=store.inbox)
    ran: dict[str, list[int]] = {}

    async def record(job: Job) -> None:
        ran.setdefault(job.conversation, []).append(_number(job))

    await second.start(record)
    assert second.backlog() == {"@RBT#helper": 10}
    await second.idle()
    assert ran == {"a": [0, 1, 2, 3, 4], "b": [0, 1, 2, 3, 4]}
    assert second.depth() == 0
    await second.close(0)
    await store.aclose()
    store = await Store.open(store_url)  # done jobs are gone from disk too
    assert await store.inbox.pending() == (0, {})
    await store.aclose()


async def test_memory_holds_a_bounded_window_and_the_backlog_waits_on_disk(store: Store) -> None:
    coordinator = LocalCoordinator(inbox=store.inbox, window=16)
    gate = asyncio.Event()
    ran: dict[str, list[int]] = {}
    most_in_memory = 0

    async def handler(job: Job) -> None:
        nonlocal most_in_memory
        await gate.wait()
        most_in_memory = max(most_in_memory, coordinator._in_memory)
        ran.setdefault(job.conversation, []).append(_number(job))

    await coordinator.start(handler)
    for n in range(100):
        assert await _submit(coordinator, "abc"[n % 3], n)
    assert coordinator._in_memory == 16  # the 16 oldest; 84 wait in the inbox
    assert coordinator.depth() == 100
    gate.set()
    await coordinator.idle()
    assert most_in_memory <= 16
    for conversation in "abc":
        assert ran[conversation] == [n for n in range(100) if "abc"[n % 3] == conversation]
    assert coordinator.depth() == 0
    await coordinator.close(0)


async def test_the_window_is_bounded_by_bytes_too_and_large_bodies_wait_on_disk(
    store: Store,
) -> None:
    coordinator = LocalCoordinator(inbox=store.inbox, window=1000, window_bytes=4 * 1024 * 1024)
    gate = asyncio.Event()
    ran: list[int] = []
    most_bytes = 0

    async def handler(job: Job) -> None:
        nonlocal most_bytes
        await gate.wait()
        most_bytes = max(most_bytes, coordinator._bytes)
        ran.append(_number(job))

    await coordinator.start(handler)
    for n in range(40):  # 40 bodies of 900 KB: 36 MB, nine times the window
        job = replace(_job("a", n), body=b"x" * 900 * 1024)
        assert await coordinator.submit(job.identity, [job])
    assert coordinator._in_memory == 4  # as many as fit in 4 MB; 36 wait in the inbox
    assert coordinator.depth() == 40
    gate.set()
    await coordinator.idle()
    assert most_bytes <= 4 * 1024 * 1024
    assert ran == list(range(40))
    await coordinator.close(0)


async def test_jobs_accepted_while_the_window_refills_keep_their_order(store: Store) -> None:
    """Messages keep arriving while the backlog is being loaded from disk: none is skipped,
    none runs twice, each conversation stays in order."""
    coordinator = LocalCoordinator(inbox=store.inbox, window=16)
    ran: list[int] = []

    async def handler(job: Job) -> None:
        await asyncio.sleep(0)
        ran.append(_number(job))

    await coordinator.start(handler)
    for n in range(300):
        assert await _submit(coordinator, "a", n)
        if n % 7 == 0:
            await asyncio.sleep(0)
    await coordinator.idle()
    assert ran == list(range(300))
    await coordinator.close(0)


async def test_a_message_that_cannot_be_kept_is_refused_and_may_come_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite"
    store = await Store.open(f"sqlite:///{path}")
    store.database._busy_wait_s = 0.05  # type: ignore[union-attr]
    coordinator = LocalCoordinator(inbox=store.inbox)
    try:
        with _locked(path), pytest.raises(CoordinationError, match="cannot keep the message"):
            await _submit(coordinator, "a", 1)  # the webhook answers 503: Tencent retries
        assert coordinator.depth() == 0
        assert await _submit(coordinator, "a", 1)  # the retry is not taken for a duplicate
        assert coordinator.depth() == 1
    finally:
        await coordinator.close(0)
        await store.aclose()


async def test_a_finished_job_whose_removal_failed_is_removed_with_the_next_write(
    tmp_path: Path,
) -> None:
    """The store refused the transaction that would have removed a finished job from the
    inbox: the removal is kept and goes with the next write, so a restart does not run (and
    answer) that job again."""
    path = tmp_path / "db.sqlite"
    store = await Store.open(f"sqlite:///{path}")
    store.database._busy_wait_s = 0.05  # type: ignore[union-attr]
    coordinator = LocalCoordinator(inbox=store.inbox)
    ran: list[int] = []
    locker: sqlite3.Connection | None = None

    async def handler(job: Job) -> None:
        nonlocal locker
        ran.append(_number(job))
        if len(ran) == 1:  # the store fails while the first job finishes
            locker = sqlite3.connect(path, isolation_level=None)
            locker.execute("BEGIN IMMEDIATE")

    await coordinator.start(handler)
    assert await _submit(coordinator, "a", 1)
    await coordinator.idle()
    await asyncio.sleep(0.2)  # its removal was tried, and failed
    assert locker is not None
    locker.execute("ROLLBACK")
    locker.close()
    assert await _submit(coordinator, "b", 2)  # the next write takes the removal along
    await coordinator.idle()
    await coordinator.close(0)
    await store.aclose()
    assert ran == [1, 2]
    store = await Store.open(f"sqlite:///{path}")
    assert await store.inbox.pending() == (0, {})  # neither would run again
    await store.aclose()


async def test_messages_accepted_before_the_workers_start_run_after_what_was_left(
    store_url: str,
) -> None:
    """serve listens for webhooks before its workers start: a message accepted in between is
    numbered after the jobs the last process left, is stored (not taken for one of them), and
    runs after them."""
    store = await Store.open(store_url)
    first = LocalCoordinator(inbox=store.inbox)
    for n in range(3):
        assert await _submit(first, "a", n)
    await first.close(0)  # never started: all three stay
    await store.aclose()

    store = await Store.open(store_url)
    second = LocalCoordinator(inbox=store.inbox)
    assert await _submit(second, "a", 3)  # before start
    ran: list[int] = []

    async def record(job: Job) -> None:
        ran.append(_number(job))

    await second.start(record)
    await second.idle()
    assert ran == [0, 1, 2, 3]
    await second.close(0)
    await store.aclose()
