"""Overload, as the users see it: a message that waited longer than `server.max_wait_s` is not
sent to the model; its sender is told once that the robot is busy, and the rest is answered."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp

from tests.fakes.openai import FakeOpenAI
from tests.stack import running_stack, stack_emulator
from timbridge.settings import RobotSettings

BUSY = RobotSettings(id="@RBT#x").busy_text


async def test_messages_that_waited_too_long_get_one_busy_notice_and_no_model_call(
    tmp_path: Path,
) -> None:
    llm = FakeOpenAI(delay_s=1.0)
    async with running_stack(tmp_path, llm=llm, server={"max_wait_s": 0.5}) as stack:
        for n in range(3):  # the 2nd and 3rd wait ~1 s behind the 1st, in the same chat
            stack.emu.user_send("alice", "@RBT#helper", f"question {n}")
        stack.emu.user_send("bob", "@RBT#helper", "bob's question")  # another chat: no wait
        await stack.emu.webhooks.idle()
        await stack.services.coordination.idle()  # type: ignore[attr-defined]
        to_alice = [m.text for m in stack.emu.messages(from_="@RBT#helper", to="alice")]
        to_bob = [m.text for m in stack.emu.messages(from_="@RBT#helper", to="bob")]
        metrics = stack.services.metrics.render().decode()
    assert to_alice == ["echo: question 0", BUSY]  # one notice for two shed messages
    assert to_bob == ["echo: bob's question"]
    assert sorted(r["messages"][-1]["content"] for r in llm.requests) == [
        "bob's question",
        "question 0",
    ]
    assert 'timbridge_shed_messages_total{robot="@RBT#helper"} 2.0' in metrics
    assert 'timbridge_busy_notices_total{robot="@RBT#helper"} 1.0' in metrics


async def test_a_robot_shows_its_backlog_in_the_metrics(tmp_path: Path) -> None:
    llm = FakeOpenAI(delay_s=0.5)
    async with running_stack(tmp_path, llm=llm) as stack:
        for n in range(3):
            stack.emu.user_send("alice", "@RBT#helper", f"q{n}")
        await stack.emu.webhooks.idle()
        url = stack.webhook_url.replace("/im", "/metrics")
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as response:
                waiting = await response.text()
            await stack.services.coordination.idle()  # type: ignore[attr-defined]
            async with http.get(url) as response:
                drained = await response.text()
    assert 'timbridge_backlog_jobs{robot="@RBT#helper"} 3.0' in waiting
    oldest = re.search(r"^timbridge_backlog_oldest_seconds (\S+)$", waiting, re.M)
    assert oldest is not None and float(oldest[1]) > 0
    assert 'timbridge_backlog_jobs{robot="@RBT#helper"} 0.0' in drained
    assert "timbridge_queue_depth 0.0" in drained


async def test_when_tencent_is_the_bottleneck_the_backlog_is_shed_the_same_way(
    tmp_path: Path,
) -> None:
    """Tencent allows 4 sends a second (and answers 60007 past them), and timbridge paces itself
    to it (`tencent.api_rate_limit`): replies slow down, the jobs held in memory stay within
    their window (16 here), and what waited past `max_wait_s` on disk gets a busy notice
    instead of a model call, so the backlog drains at the rate Tencent allows."""
    users = tuple(f"u{n:02d}" for n in range(32))
    emu = stack_emulator(users=users, per_api_limit=4)
    llm = FakeOpenAI()
    async with running_stack(
        tmp_path,
        llm=llm,
        emu=emu,
        server={"max_wait_s": 1.0, "busy_notice_every_s": 60, "jobs_in_memory": 16},
        tencent_extra={"api_rate_limit": 4},
        robots=[{"id": "@RBT#helper", "persona": "P"}],
    ) as stack:
        for user in users:  # one message each, all at once
            stack.emu.user_send(user, "@RBT#helper", f"hello from {user}")
        await stack.emu.webhooks.idle()
        async with asyncio.timeout(60):
            await stack.services.coordination.idle()  # type: ignore[attr-defined]
        got = {u: [m.text for m in stack.emu.messages(from_="@RBT#helper", to=u)] for u in users}
        metrics = stack.services.metrics.render().decode()
    assert [u for u, texts in got.items() if len(texts) != 1] == [], got  # each hears once
    busy = [u for u, texts in got.items() if texts == [BUSY]]
    answered = [u for u, texts in got.items() if texts == [f"echo: hello from {u}"]]
    assert busy and answered and len(busy) + len(answered) == len(users)
    assert len(llm.requests) == len(answered)  # no model call for a shed message
    assert f'timbridge_shed_messages_total{{robot="@RBT#helper"}} {float(len(busy))}' in metrics
