"""Budgets, the usage ledger, /usage, and summaries (/compact and automatic), end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai import FakeOpenAI
from tests.stack import running_stack
from timbridge.bot.sentences import NOTHING_TO_COMPACT_TEXT
from timbridge.bot.summaries import SUMMARY_PROMPT
from timbridge.storage.history import utc_day

pytestmark = pytest.mark.usefixtures("clean_env")


def _robot(**extra: Any) -> list[dict[str, Any]]:
    return [{"id": "@RBT#helper", "persona": "You are Helper.", **extra}]


def _summarising(messages: list[dict[str, Any]]) -> str:
    if messages[0]["content"] == SUMMARY_PROMPT:
        return "SUMMARY: alice likes tea."
    return f"echo: {messages[-1]['content']}"


async def test_daily_token_budget_stops_the_model_and_says_when(tmp_path: Path) -> None:
    llm = FakeOpenAI()
    async with running_stack(tmp_path, llm=llm, robots=_robot(tokens_per_user_per_day=10)) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "one two three four five six")
        first = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        assert first.text == "echo: one two three four five six"
        used = await stack.services.store.history.tokens_on(
            utc_day(), "@RBT#helper", sender="alice"
        )
        assert used == 9 + 7  # the fake's prompt words + answer words, from the ledger
        for n in range(2):
            mark = stack.emu.mark()
            stack.emu.user_send("alice", "@RBT#helper", f"more {n}")
            if n == 0:
                notice = await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
                assert notice.text.startswith(
                    "You have used today's 10 tokens. You can write again after 00:00 UTC, in "
                )
        mark = stack.emu.mark()
        stack.emu.user_send("alice", "@RBT#helper", "/usage")
        usage = await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        assert usage.text == f"Today (UTC) you have used {used} tokens of your 10 daily limit."
        # bob has his own budget
        stack.emu.user_send("bob", "@RBT#helper", "hi")
        assert (await stack.emu.wait_message(from_="@RBT#helper", to="bob")).text == "echo: hi"
    assert len(llm.requests) == 2  # the over-budget messages never reached the model
    notices = [m for m in stack.emu.messages(from_="@RBT#helper", to="alice") if "00:00" in m.text]
    assert len(notices) == 1  # told once, not for every message


async def test_group_budget_counts_everyone_in_the_group(tmp_path: Path) -> None:
    llm = FakeOpenAI()
    async with running_stack(tmp_path, llm=llm, robots=_robot(tokens_per_group_per_day=5)) as stack:
        stack.emu.world.create_group(
            type="Work", name="G", owner="alice", group_id="g1", members=["bob", "@RBT#helper"]
        )
        stack.emu.user_send_group("alice", "g1", "@Helper hello there", ("@RBT#helper",))
        await stack.emu.wait_message(from_="@RBT#helper", group="g1")
        stack.emu.user_send_group("bob", "g1", "@Helper and me?", ("@RBT#helper",))
        notice = await stack.emu.wait_message(
            from_="@RBT#helper", group="g1", where=lambda m: "00:00 UTC" in m.text
        )
        assert notice.text.startswith("@bob This group has used today's 5 tokens.")
    assert len(llm.requests) == 1


async def test_compact_on_demand_then_the_summary_leads_the_context(tmp_path: Path) -> None:
    llm = FakeOpenAI(reply=_summarising)
    async with running_stack(tmp_path, llm=llm, robots=_robot()) as stack:
        mark = stack.emu.mark()
        stack.emu.user_send("alice", "@RBT#helper", "/compact")
        nothing = await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        assert nothing.text == NOTHING_TO_COMPACT_TEXT
        for text in ("I like tea", "and biscuits"):
            mark = stack.emu.mark()
            stack.emu.user_send("alice", "@RBT#helper", text)
            await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        mark = stack.emu.mark()
        stack.emu.user_send("alice", "@RBT#helper", "/compact")
        done = await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        assert done.text == "Done: I summarised our conversation (4 turns) to keep it short."
        summary_call = llm.requests[-1]["messages"]
        assert summary_call[0]["content"] == SUMMARY_PROMPT
        assert "user: I like tea" in summary_call[1]["content"]
        mark = stack.emu.mark()
        stack.emu.user_send("alice", "@RBT#helper", "what do I like?")
        await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
    context = llm.requests[-1]["messages"]
    assert [m["role"] for m in context] == ["system", "system", "user"]
    assert context[1]["content"] == "Summary of the earlier conversation: SUMMARY: alice likes tea."


async def test_history_over_the_budget_is_summarised_automatically(tmp_path: Path) -> None:
    llm = FakeOpenAI(reply=_summarising)
    options = {"context_tokens": 300, "max_tokens": 100}
    async with running_stack(tmp_path, llm=llm, robots=_robot(), model_options=options) as stack:
        for n in range(8):
            mark = stack.emu.mark()
            stack.emu.user_send("alice", "@RBT#helper", f"message {n} " + "word " * 40)
            await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
    summaries = [r for r in llm.requests if r["messages"][0]["content"] == SUMMARY_PROMPT]
    assert summaries  # the history outgrew 300 tokens, so older turns were folded
    last = llm.requests[-1]["messages"]
    if last[0]["content"] == SUMMARY_PROMPT:
        last = next(
            r["messages"]
            for r in reversed(llm.requests)
            if r["messages"][0]["content"] != SUMMARY_PROMPT
        )
    assert any(m["content"].startswith("Summary of the earlier conversation:") for m in last)
