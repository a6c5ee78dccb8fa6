"""Webhook first (`coordination.ack_first.AckFirst`): during a burst of webhooks, jobs wait for
it to stop, start a batch per loop pass, and never wait longer than `max_wait_s`."""

from __future__ import annotations

import asyncio
import time

from timbridge.coordination.ack_first import AckFirst
from timbridge.coordination.base import Job
from timbridge.coordination.local import LocalCoordinator


def gate(max_wait_s: float, batch: int = 16) -> AckFirst:
    """A burst is 8 messages within 0.2 s: wide enough that a loaded CI machine's hiccups
    neither end a burst of one message per millisecond nor make one out of slow traffic."""
    return AckFirst(max_wait_s, window_s=0.2, dense=8, batch=batch)


async def burst(priority: AckFirst, seconds: float) -> None:
    """Accept a message about every millisecond for `seconds`."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        priority.accepted()
        await asyncio.sleep(0.001)


def returns_at_once(priority: AckFirst) -> bool:
    """Whether `turn()` returns without suspending (a coroutine that does raises StopIteration)."""
    turn = priority.turn()
    try:
        turn.send(None)
    except StopIteration:
        return True
    turn.close()
    return False


async def test_slow_traffic_holds_no_job() -> None:
    priority = gate(2.0)
    for _ in range(20):  # 20 messages, 50 ms apart: 20 per second, far from a burst
        priority.accepted()
        assert returns_at_once(priority)
        await asyncio.sleep(0.05)


async def test_jobs_wait_for_the_burst_to_stop_then_start_in_arrival_order() -> None:
    priority = gate(5.0)
    started: list[int] = []

    async def job(n: int) -> None:
        await priority.turn()
        started.append(n)

    flood = asyncio.create_task(burst(priority, 0.5))
    await asyncio.sleep(0.05)
    jobs = [asyncio.create_task(job(n)) for n in range(40)]
    await asyncio.sleep(0.3)
    assert started == [], "a job started while webhooks kept arriving"
    await flood
    ended = time.monotonic()
    await asyncio.gather(*jobs)
    assert time.monotonic() - ended < 1.5
    assert started == list(range(40))


async def test_held_jobs_are_let_go_a_batch_per_loop_pass() -> None:
    priority = gate(5.0, batch=4)
    started: list[int] = []
    first = asyncio.Event()

    async def job(n: int) -> None:
        await priority.turn()
        started.append(n)
        first.set()

    await burst(priority, 0.02)
    jobs = [asyncio.create_task(job(n)) for n in range(12)]
    await first.wait()  # the first pass after the burst lets 4 go; later passes 4 more each
    assert started == [0, 1, 2, 3]
    await asyncio.gather(*jobs)
    assert started == list(range(12))


async def test_a_burst_longer_than_max_wait_lets_jobs_start_during_it() -> None:
    priority = gate(0.3)
    flood = asyncio.create_task(burst(priority, 1.5))
    await asyncio.sleep(0.05)
    assert not returns_at_once(priority), "the burst held no job"
    began = time.monotonic()
    await asyncio.wait_for(priority.turn(), 1.0)
    assert time.monotonic() - began < 1.0
    assert not flood.done(), "the job started only because the burst ended"
    # past max_wait, jobs and webhooks share the loop: a new job does not wait at all
    assert returns_at_once(priority)
    await flood


async def test_max_wait_zero_turns_holding_off() -> None:
    priority = gate(0.0)
    flood = asyncio.create_task(burst(priority, 0.2))
    await asyncio.sleep(0.05)
    assert returns_at_once(priority)
    await flood


async def test_close_lets_every_held_job_go() -> None:
    priority = AckFirst(60.0, window_s=60.0, dense=1)
    priority.accepted()
    held = asyncio.create_task(priority.turn())
    await asyncio.sleep(0.05)
    assert not held.done()
    priority.close()
    await asyncio.wait_for(held, 1.0)
    assert returns_at_once(priority)


async def test_a_cancelled_job_does_not_use_up_a_release() -> None:
    priority = AckFirst(5.0, window_s=0.05, dense=1, batch=1)
    priority.accepted()
    first = asyncio.create_task(priority.turn())
    second = asyncio.create_task(priority.turn())
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.wait_for(second, 1.0)
    assert first.cancelled()


async def test_the_local_coordinator_answers_once_the_burst_of_submits_stops() -> None:
    coordinator = LocalCoordinator(priority=gate(5.0))
    handled: list[tuple[int, float]] = []

    async def handler(job: Job) -> None:
        handled.append((int(job.identity[1:]), time.monotonic()))

    await coordinator.start(handler)
    last_submit = 0.0
    for n in range(200):
        job = Job(f"c{n % 10}", "@RBT#a", "Bot.OnC2CMessage", b"{}", f"m{n}", f"t{n}", time.time())
        assert await coordinator.submit(job.identity, [job])
        last_submit = time.monotonic()
        await asyncio.sleep(0.001)
    await coordinator.idle()
    assert len(handled) == 200
    # the first 7 messages are not a burst yet: theirs may run at once; no later one may
    assert min(at for n, at in handled if n >= 8) >= last_submit, "a job ran during the burst"
    assert min(at for n, at in handled if n < 8) < last_submit
    for conversation in range(10):  # per-conversation order is kept
        mine = [n for n, _ in handled if n % 10 == conversation]
        assert mine == sorted(mine)
    await coordinator.close(1.0)


async def test_no_job_is_held_past_its_share_however_the_bursts_come() -> None:
    """A sustained flood dips below the burst threshold now and then; each dip used to start a
    new burst and a new hold, and the workers starved. A job is never held once it is
    `max_wait_s` old, counted from its acceptance."""
    priority = gate(60.0)  # bursts alone would hold a job for a minute
    for _ in range(8):
        priority.accepted()
    assert priority._held(time.monotonic())
    # accepted 59.9 s ago: it goes within its last 0.1 s, though the burst goes on
    await asyncio.wait_for(priority.turn(age_s=59.9), 5.0)
    for _ in range(8):
        priority.accepted()
    await asyncio.wait_for(priority.turn(age_s=61.0), 5.0)  # past its share: at once
    for _ in range(8):
        priority.accepted()
    held = asyncio.create_task(priority.turn(age_s=1.0))  # a fresh one is still held
    await asyncio.sleep(0.02)  # well within the burst's window of 0.2 s
    assert not held.done()
    held.cancel()
