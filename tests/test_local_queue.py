"""The in-process queue (`coordination.local`): order per conversation, concurrency across
conversations, failing jobs, dedupe, the message-rate window."""

from __future__ import annotations

import asyncio

import pytest

from timbridge.coordination import Job, LocalCoordinator, TTLSet
from timbridge.errors import CoordinationError


def _job(conversation: str, n: int) -> Job:
    return Job(
        conversation=conversation,
        robot="@RBT#a",
        command="Bot.OnC2CMessage",
        body=b"",
        identity=f"{conversation}-{n}",
        trace_id="t",
        received_at=0.0,
    )


async def test_local_queue_orders_per_conversation_and_runs_conversations_together() -> None:
    coordinator = LocalCoordinator()
    seen: dict[str, list[int]] = {}
    running = 0
    peak = 0

    async def handler(job: Job) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        seen.setdefault(job.conversation, []).append(int(job.identity.rsplit("-", 1)[1]))
        running -= 1

    await coordinator.start(handler)
    for n in range(10):
        for conversation in ("a", "b", "c"):
            job = _job(conversation, n)
            assert await coordinator.submit(job.identity, [job])
    assert coordinator.depth() == 30
    await coordinator.idle()
    assert seen == {c: list(range(10)) for c in "abc"}
    assert peak == 3  # one at a time per conversation, all three at once
    assert coordinator.depth() == 0


async def test_local_queue_survives_a_failing_job_and_drains_on_close() -> None:
    coordinator = LocalCoordinator()
    done: list[int] = []

    async def handler(job: Job) -> None:
        n = int(job.identity.rsplit("-", 1)[1])
        if n == 1:
            raise RuntimeError("boom")
        await asyncio.sleep(0.01)
        done.append(n)

    await coordinator.start(handler)
    for n in range(4):
        job = _job("a", n)
        await coordinator.submit(job.identity, [job])
    await coordinator.close(grace_s=5)
    assert done == [0, 2, 3]
    with pytest.raises(CoordinationError, match="shutting down"):  # the webhook answers 503
        await coordinator.submit("new", [_job("a", 10)])


def test_ttl_set_expires_and_bounds() -> None:
    seen = TTLSet(ttl_s=10, max_items=3)
    assert seen.add("a", now=0) and not seen.add("a", now=5)
    assert seen.add("a", now=11)  # expired: seen again
    for key in "bcd":
        seen.add(key, now=12)
    assert len(seen) == 3  # bounded: the oldest went first
    assert seen.add("a", now=12)


def test_message_rate_window_and_single_notice() -> None:
    from timbridge.coordination.rate import MessageRate

    now = [0.0]
    rate = MessageRate(clock=lambda: now[0])
    assert rate.check("u", 0).allowed  # no limit
    assert rate.check("u", 2).allowed and rate.check("u", 2).allowed
    over = rate.check("u", 2)
    assert not over.allowed and over.notify and 59 < over.retry_after_s <= 60
    again = rate.check("u", 2)
    assert not again.allowed and not again.notify  # told once per window
    assert rate.check("other", 2).allowed  # per key
    now[0] = 60.5
    assert rate.check("u", 2).allowed  # the window slid
