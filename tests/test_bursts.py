"""Bursts: messages one user sends in quick succession, before the reply starts, are answered
together, once; another user's message, a command, or a pause ends the burst."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.fakes.openai import FakeOpenAI
from tests.stack import running_stack

pytestmark = pytest.mark.usefixtures("clean_env")

ROBOT = [{"id": "@RBT#helper", "persona": "You are Helper.", "burst_window_s": 0.6}]


async def test_a_burst_is_answered_once_and_a_pause_starts_a_new_answer(tmp_path: Path) -> None:
    llm = FakeOpenAI()
    async with running_stack(tmp_path, llm=llm, robots=ROBOT) as stack:
        for text in ("hi", "I have a question", "about refunds"):
            stack.emu.user_send("alice", "@RBT#helper", text)
            await asyncio.sleep(0.1)
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        assert reply.text == "echo: hi\nI have a question\nabout refunds"
        mark = stack.emu.mark()
        stack.emu.user_send("alice", "@RBT#helper", "thanks")  # after the reply: its own answer
        later = await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        assert later.text == "echo: thanks"
        await asyncio.sleep(1.0)  # a doubled answer would land now
        assert len(stack.emu.messages(from_="@RBT#helper", to="alice")) == 2
    assert len(llm.requests) == 2
    first = llm.requests[0]["messages"]
    assert first[-1] == {"role": "user", "content": "hi\nI have a question\nabout refunds"}


async def test_other_users_and_commands_end_a_burst(tmp_path: Path) -> None:
    llm = FakeOpenAI()
    async with running_stack(tmp_path, llm=llm, robots=ROBOT) as stack:
        stack.emu.world.create_group(
            type="Work", name="G", owner="alice", group_id="g1", members=["bob", "@RBT#helper"]
        )
        stack.emu.user_send_group("alice", "g1", "@Helper one", ("@RBT#helper",))
        stack.emu.user_send_group("bob", "g1", "@Helper two", ("@RBT#helper",))
        stack.emu.user_send_group("bob", "g1", "@Helper /help", ("@RBT#helper",))
        replies = await stack.emu.wait_messages(3, from_="@RBT#helper", group="g1", limit_s=15)
    texts = [m.text for m in replies]
    assert texts[0] == "@alice echo: alice: one"
    assert texts[1] == "@bob echo: bob: two"  # alice's burst ended at bob
    assert texts[2].startswith("@bob Commands:")


async def test_a_user_who_keeps_writing_is_answered_in_bursts_of_at_most_eight(
    tmp_path: Path,
) -> None:
    """Twelve messages, each well within the burst window of the one before: without a cap the
    burst would never end while the user types, and nobody would be answered."""
    llm = FakeOpenAI()
    async with running_stack(tmp_path, llm=llm, robots=ROBOT) as stack:
        for n in range(12):
            stack.emu.user_send("alice", "@RBT#helper", f"part {n}")
            await asyncio.sleep(0.05)
        replies = await stack.emu.wait_messages(2, from_="@RBT#helper", to="alice", limit_s=15)
        await asyncio.sleep(1.0)  # a third answer would land now
        assert len(stack.emu.messages(from_="@RBT#helper", to="alice")) == 2
    assert replies[0].text == "echo: " + "\n".join(f"part {n}" for n in range(8))
    assert replies[1].text == "echo: " + "\n".join(f"part {n}" for n in range(8, 12))
