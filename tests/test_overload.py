"""Overload, as the users see it: a message that waited longer than `server.max_wait_s` is not
sent to the model; its sender is told once that the robot is busy, and the rest is answered."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from tests.fake_openai import FakeOpenAI
from tests.stack import running_stack
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
