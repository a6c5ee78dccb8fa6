"""The Redis coordinator against a real redis-server: atomic dedupe + enqueue, per-conversation
order across several workers, take-over of a dead worker's conversation, hand-back on shutdown,
the shared rate limit, and a clear error when Redis is down."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.servers import redis_server_on
from timbridge.coordination.base import Job
from timbridge.coordination.redis import GROUP, RedisCoordinator, decode_job, encode_job
from timbridge.errors import CoordinationError, HandBack


def _job(conversation: str, n: int) -> Job:
    return Job(
        conversation=conversation,
        robot="@RBT#helper",
        command="Bot.OnC2CMessage",
        body=f'{{"n": {n}}}'.encode(),
        identity=f"{conversation}#{n}",
        trace_id=f"t{n}",
        received_at=time.time(),
    )


@pytest.fixture
async def make(redis_url: str, redis_prefix: str) -> AsyncIterator[Callable[..., RedisCoordinator]]:
    made: list[RedisCoordinator] = []

    def factory(**options: object) -> RedisCoordinator:
        coordinator = RedisCoordinator(redis_url, prefix=redis_prefix, **options)  # type: ignore[arg-type]
        made.append(coordinator)
        return coordinator

    yield factory
    for coordinator in made:
        await coordinator.close(0.1)
    cleanup = aioredis.Redis.from_url(redis_url)
    keys = [k async for k in cleanup.scan_iter(f"{redis_prefix}:*")]
    if keys:
        await cleanup.delete(*keys)
    await cleanup.aclose()


def test_jobs_survive_the_trip_through_redis() -> None:
    job = _job("c2c:@RBT#helper:alice", 1)
    assert decode_job(encode_job(job)) == job


async def test_submit_dedupes_and_queues_atomically(make: Callable[..., RedisCoordinator]) -> None:
    coordinator = make()
    jobs = [_job("a", 1), _job("b", 1)]  # one message for two robots
    assert await coordinator.submit("m1", jobs) is True
    assert await coordinator.submit("m1", jobs) is False  # a redelivery: nothing queued
    assert await coordinator.queued() == 2
    await coordinator.ping()
    assert coordinator.depth() == 2


async def test_order_per_conversation_holds_across_two_workers(
    make: Callable[..., RedisCoordinator],
) -> None:
    seen: dict[str, list[int]] = defaultdict(list)
    running: set[str] = set()
    overlaps: list[str] = []
    ran_by: dict[str, set[str]] = defaultdict(set)

    def handler_for(name: str):  # type: ignore[no-untyped-def]
        async def handle(job: Job) -> None:
            if job.conversation in running:
                overlaps.append(job.conversation)
            running.add(job.conversation)
            await asyncio.sleep(0.002)
            seen[job.conversation].append(int(job.body[6:-1]))
            ran_by[name].add(job.conversation)
            running.discard(job.conversation)

        return handle

    front = make()
    workers = [make(batch=4), make(batch=4)]
    for n in range(20):  # bursts: every conversation gets job n before any gets n + 1
        for c in range(15):
            await front.submit(f"c{c}#{n}", [_job(f"c{c}", n)])
    for index, worker in enumerate(workers):
        await worker.start(handler_for(f"w{index}"))
    await front.idle(limit_s=30)
    assert not overlaps
    assert all(seen[f"c{c}"] == list(range(20)) for c in range(15)), seen
    assert ran_by["w0"] and ran_by["w1"]  # both workers took part


async def test_a_dead_workers_conversation_is_taken_over(
    make: Callable[..., RedisCoordinator], redis_url: str, redis_prefix: str
) -> None:
    front = make()
    await front.submit("m1", [_job("c", 1)])
    await front.submit("m2", [_job("c", 2)])
    # a worker reads the conversation's entry, then dies without a word
    raw = aioredis.Redis.from_url(redis_url)
    await raw.xgroup_create(f"{redis_prefix}:ready", GROUP, id="0", mkstream=True)
    taken = await raw.xreadgroup(GROUP, "dead-worker", {f"{redis_prefix}:ready": ">"}, count=1)
    assert taken and taken[0][1][0][1][b"c"] == b"c"
    await raw.aclose()

    done: list[int] = []

    async def handle(job: Job) -> None:
        done.append(int(job.body[6:-1]))

    survivor = make(visibility_s=0.3)
    await survivor.start(handle)
    await front.idle(limit_s=10)
    assert done == [1, 2]


async def test_shutdown_hands_unfinished_work_back(make: Callable[..., RedisCoordinator]) -> None:
    front = make()
    for n in range(3):
        await front.submit(f"m{n}", [_job("c", n)])
    started = asyncio.Event()

    async def stuck(job: Job) -> None:
        started.set()
        await asyncio.sleep(60)

    leaving = make()
    await leaving.start(stuck)
    await asyncio.wait_for(started.wait(), 10)
    began = time.monotonic()
    await leaving.close(0.2)
    assert time.monotonic() - began < 5
    done: list[int] = []

    async def handle(job: Job) -> None:
        done.append(int(job.body[6:-1]))

    staying = make(visibility_s=60)  # no waiting for a timeout: the entry was handed back
    await staying.start(handle)
    await front.idle(limit_s=10)
    assert done == [0, 1, 2]  # the interrupted job runs again, first; replies are idempotent


async def test_rate_limit_is_shared_by_every_process(make: Callable[..., RedisCoordinator]) -> None:
    one, two = make(), make()
    assert (await one.rate("bot|alice", 2)).allowed
    assert (await two.rate("bot|alice", 2)).allowed
    third = await one.rate("bot|alice", 2)
    assert not third.allowed and third.notify and 0 < third.retry_after_s <= 60
    fourth = await two.rate("bot|alice", 2)
    assert not fourth.allowed and not fourth.notify  # told once per window
    assert (await one.rate("bot|bob", 2)).allowed
    assert (await one.rate("bot|alice", 0)).allowed  # 0: no limit


async def test_redis_down_is_a_coordination_error_and_recovery_is_automatic(
    tmp_path: Path, redis_prefix: str
) -> None:
    with redis_server_on(tmp_path) as (url, restart_redis, stop_redis):
        coordinator = RedisCoordinator(url, prefix=redis_prefix)
        try:
            assert await coordinator.submit("m1", [_job("c", 1)])
            stop_redis()
            began = time.monotonic()
            down = r"redis redis://127\.0\.0\.1:\d+/0: submit: "
            with pytest.raises(CoordinationError, match=down):
                await coordinator.submit("m2", [_job("c", 2)])
            assert time.monotonic() - began < 5
            with pytest.raises(CoordinationError):
                await coordinator.ping()
            restart_redis()
            assert await coordinator.submit("m2", [_job("c", 2)])  # the same client, reconnected
        finally:
            await coordinator.close(0.1)


async def test_once_is_true_once_per_ttl_across_processes(
    make: Callable[..., RedisCoordinator],
) -> None:
    one, two = make(), make()
    assert await one.once("budget|bot|alice|day", 0.3) is True
    assert await two.once("budget|bot|alice|day", 0.3) is False
    assert await one.once("budget|bot|bob|day", 0.3) is True
    await asyncio.sleep(0.35)
    assert await two.once("budget|bot|alice|day", 0.3) is True


async def test_a_hung_redis_gets_the_webhook_a_prompt_error_and_the_message_once(
    tmp_path: Path, redis_prefix: str
) -> None:
    """Redis stopped (SIGSTOP), not down: the connection stays open and nothing answers. The
    submit gives up after its timeout (the webhook answers 503 and Tencent delivers again)
    instead of waiting out the socket timeouts; once Redis runs again, the redelivery is
    queued, or found already queued if the script ran after all: one job either way."""
    with redis_server_on(tmp_path) as (url, _restart, _stop):
        coordinator = RedisCoordinator(url, prefix=redis_prefix, submit_timeout_s=0.5)
        probe = aioredis.Redis.from_url(url)
        pid = int((await probe.info("server"))["process_id"])
        try:
            assert await coordinator.submit("m1", [_job("c", 1)])
            os.kill(pid, signal.SIGSTOP)
            try:
                with pytest.raises(CoordinationError, match=r"submit: no answer within 0\.5 s"):
                    async with asyncio.timeout(5):  # the socket timeout alone would be 5 s+
                        await coordinator.submit("m2", [_job("c", 2)])
            finally:
                os.kill(pid, signal.SIGCONT)
            await coordinator.submit("m2", [_job("c", 2)])  # Tencent's redelivery
            assert await coordinator.queued() == 2
        finally:
            await coordinator.close(0.1)
            await probe.aclose()


async def test_persistence_says_what_a_restart_of_redis_would_lose(
    tmp_path: Path, redis_prefix: str
) -> None:
    with redis_server_on(tmp_path) as (url, _restart, _stop):  # started with appendonly no
        coordinator = RedisCoordinator(url, prefix=redis_prefix)
        admin = aioredis.Redis.from_url(url)
        try:
            problem = await coordinator.persistence()
            assert problem is not None and "appendonly no" in problem
            await admin.config_set("appendonly", "yes")
            await admin.config_set("appendfsync", "no")
            problem = await coordinator.persistence()
            assert problem is not None and "appendfsync no" in problem
            await admin.config_set("appendfsync", "everysec")
            assert await coordinator.persistence() is None
        finally:
            await admin.config_set("appendonly", "no")  # a quick stop: no final AOF flush
            await coordinator.close(0.1)
            await admin.aclose()


async def test_a_worker_whose_store_fails_rests_and_a_healthy_one_takes_its_work(
    make: Callable[..., RedisCoordinator],
) -> None:
    failing, healthy = make(), make()
    handed_back = 0
    answered: dict[str, int] = {}
    resting, all_answered = asyncio.Event(), asyncio.Event()

    async def broken(job: Job) -> None:
        nonlocal handed_back
        handed_back += 1
        resting.set()
        raise HandBack("store: connection refused", after_s=5.0)

    async def record(job: Job) -> None:
        answered[job.identity] = job.tries
        if len(answered) == 10:
            all_answered.set()

    await failing.start(broken)
    for n in range(10):
        job = _job(f"c{n}", 0)
        assert await failing.submit(job.identity, [job])
    async with asyncio.timeout(3):  # the failing worker has taken work and now rests
        await resting.wait()
    await healthy.start(record)
    async with asyncio.timeout(4):  # well within the failing worker's rest of 5 s
        await all_answered.wait()
    assert handed_back <= 10  # each job at most once: it took no work while it rested
    assert sorted(answered) == sorted(f"c{n}#0" for n in range(10))
    assert max(answered.values()) <= 1
