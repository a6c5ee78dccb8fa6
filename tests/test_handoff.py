"""Handing a conversation to human agents, end to end in the emulator: a ticket in the agents'
group with the recent turns, the user's messages relayed under it, an agent's words delivered
as the robot and kept in the history, ``close`` giving the conversation back; opened by the
user, by the model's ``handoff`` tool, or after answers the knowledge base found nothing for;
and nothing lost across a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai import FakeOpenAI
from tests.processes import timbridge
from tests.stack import Stack, running_stack, stack_emulator
from timbridge.bot.sentences import (
    BACK_TEXT,
    HANDOFF_TEXT,
    NO_HANDOFF_TEXT,
    RATE_THANKS,
    RATE_USAGE,
)
from timbridge.bot.summaries import BRIEF_PROMPT
from timbridge.emulator import Emulator
from timbridge.emulator.world import Message
from timbridge.knowledge.embed import LocalEmbedder
from timbridge.knowledge.library import Library
from timbridge.knowledge.store import KnowledgeStore

pytestmark = pytest.mark.usefixtures("clean_env")

AGENTS = "agents"


def _robots(**handoff: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": "@RBT#helper",
            "nick": "Shop",
            "persona": "You are the shop's assistant.",
            "handoff": {"group": AGENTS, **handoff},
        },
        {"id": "@RBT#member", "persona": "You are Member."},
    ]


def _emulator() -> Emulator:
    emu = stack_emulator()
    emu.world.create_group(
        type="Work", name="Agents", owner="bob", group_id=AGENTS, members=["@RBT#helper"]
    )
    return emu


def _context(llm: FakeOpenAI) -> list[str]:
    return [str(m["content"]) for m in llm.requests[-1]["messages"]]


async def _agent_says(stack: Stack, text: str) -> None:
    stack.emu.user_send_group("bob", AGENTS, f"@Shop {text}", ("@RBT#helper",))


async def _posts(stack: Stack, count: int) -> list[Message]:
    return await stack.emu.wait_messages(count, from_="@RBT#helper", group=AGENTS)


async def test_a_c2c_customer_asks_for_a_person_and_gets_one_then_the_robot_again(
    tmp_path: Path,
) -> None:
    llm = FakeOpenAI(reply=lambda messages: "robot answer")
    async with running_stack(tmp_path, llm=llm, emu=_emulator(), robots=_robots()) as stack:
        emu = stack.emu
        emu.user_send("alice", "@RBT#helper", "where is my parcel?")
        await emu.wait_message(from_="@RBT#helper", to="alice")
        mark = emu.mark()
        emu.user_send("alice", "@RBT#helper", "/human")
        told = await emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        assert told.text == HANDOFF_TEXT.format(ticket=1)
        [ticket] = await _posts(stack, 1)
        assert ticket.text.startswith("New ticket #1 from alice: the customer asked for a person.")
        assert "customer: where is my parcel?\nrobot: robot answer" in ticket.text
        assert "@Shop #1 your words" in ticket.text

        emu.user_send("alice", "@RBT#helper", "order 1234")
        emu.user_send("alice", "@RBT#helper", "it was due Monday")
        relayed = await _posts(stack, 3)
        assert [m.text for m in relayed[1:]] == [
            "#1 alice: order 1234",
            "#1 alice: it was due Monday",
        ]
        mark = emu.mark()
        await _agent_says(stack, "#1 It left the depot today; you will have it tomorrow.")
        delivered = await emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        assert delivered.text == "It left the depot today; you will have it tomorrow."
        mark = emu.mark()
        await _agent_says(stack, "#1 close")
        back = await emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        assert back.text == BACK_TEXT
        assert (await _posts(stack, 4))[3].text.startswith("Ticket #1 is closed")

        mark = emu.mark()
        emu.user_send("alice", "@RBT#helper", "thanks! one more question")
        answer = await emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        assert answer.text == "robot answer"
    context = _context(llm)
    # the model wrote two answers and the agents' brief; the relayed messages and the agent's
    # words reached it only as history
    assert len(llm.calls) == 3
    assert llm.requests[1]["messages"][0]["content"] == BRIEF_PROMPT
    assert "order 1234" in context and "it was due Monday" in context
    assert "[bob, a colleague of mine] It left the depot today; you will have it tomorrow." in (
        context
    )


async def test_in_a_group_a_phrase_hands_over_and_the_agent_answers_the_asker_there(
    tmp_path: Path,
) -> None:
    emu = _emulator()
    emu.world.create_group(
        type="Work", name="Shop", owner="carol", group_id="shop", members=["alice", "@RBT#helper"]
    )
    async with running_stack(tmp_path, emu=emu, robots=_robots()) as stack:
        emu.user_send_group("alice", "shop", "@Shop I want a real person please", ("@RBT#helper",))
        told = await emu.wait_message(from_="@RBT#helper", group="shop")
        assert told.text == f"@alice {HANDOFF_TEXT.format(ticket=1)}"
        [ticket] = await _posts(stack, 1)
        assert ticket.text.startswith("New ticket #1 from alice in group shop:")
        assert "customer: alice: I want a real person please" in ticket.text
        await _agent_says(stack, "#1 Hello alice, Bob here.")
        answer = await emu.wait_messages(2, from_="@RBT#helper", group="shop")
        assert answer[1].text == "@alice Hello alice, Bob here."
        assert answer[1].at_accounts == ("alice",)
    # the one model call wrote the agents' brief, which heads the ticket
    assert [r["messages"][0]["content"] for r in stack.llm.requests] == [BRIEF_PROMPT]
    assert "In short: " in ticket.text


async def test_the_model_hands_over_through_the_tool_and_says_so_itself(tmp_path: Path) -> None:
    def decide(messages: list[dict[str, Any]]) -> list[Any] | None:
        return None if messages[-1]["role"] == "tool" else [("handoff", {"reason": "refund"})]

    llm = FakeOpenAI(
        tool_calls=decide, reply=lambda messages: "A colleague will take this over shortly."
    )
    async with running_stack(tmp_path, llm=llm, emu=_emulator(), robots=_robots()) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "I want my money back")
        said = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        [ticket] = await _posts(stack, 1)
        stack.emu.user_send("alice", "@RBT#helper", "hello?")
        relayed = await _posts(stack, 2)
    assert said.text == "A colleague will take this over shortly."
    assert ticket.text.startswith("New ticket #1 from alice: refund.")
    assert relayed[1].text == "#1 alice: hello?"
    assert [t["function"]["name"] for t in llm.requests[0]["tools"]] == ["handoff"]
    assert len(stack.emu.messages(from_="@RBT#helper", to="alice")) == 1  # no second notice


async def test_answers_the_knowledge_base_found_nothing_for_hand_over_after_the_limit(
    tmp_path: Path,
) -> None:
    library = Library(
        await KnowledgeStore.open(f"sqlite:///{tmp_path / 'timbridge.db'}"), LocalEmbedder()
    )
    try:
        await library.ingest_bytes("shop", "returns.md", b"# Returns\nReturns take 14 days.\n")
    finally:
        await library.aclose()
    robots = _robots(after_misses=2)
    robots[0]["knowledge"] = "shop"
    async with running_stack(tmp_path, emu=_emulator(), robots=robots) as stack:
        for question in ("what about quantum gravity?", "and black holes?"):
            mark = stack.emu.mark()
            stack.emu.user_send("alice", "@RBT#helper", question)
            await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        told = await stack.emu.wait_messages(3, from_="@RBT#helper", to="alice")
        [ticket] = await _posts(stack, 1)
    assert told[2].text == HANDOFF_TEXT.format(ticket=1)
    assert "the knowledge base had no answer 2 times in a row" in ticket.text


async def test_a_restart_in_the_middle_of_a_ticket_loses_nothing(tmp_path: Path) -> None:
    emu = _emulator()
    async with running_stack(tmp_path, emu=emu, robots=_robots()) as stack:
        emu.user_send("alice", "@RBT#helper", "/human")
        await _posts(stack, 1)
    async with running_stack(tmp_path, emu=emu, robots=_robots()) as stack:  # same store
        emu.user_send("alice", "@RBT#helper", "still there?")
        relayed = await _posts(stack, 2)
        assert relayed[1].text == "#1 alice: still there?"
        mark = emu.mark()
        await _agent_says(stack, "#1 Yes, still here.")
        answer = await emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        assert answer.text == "Yes, still here."
    assert stack.llm.calls == []


async def test_agents_are_told_how_to_answer_and_which_tickets_are_open(tmp_path: Path) -> None:
    async with running_stack(tmp_path, emu=_emulator(), robots=_robots()) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "/human")
        await _posts(stack, 1)
        await _agent_says(stack, "hello robot")
        await _agent_says(stack, "#7 are you there?")
        posts = await _posts(stack, 3)
        stack.emu.user_send("bob", "@RBT#member", "/human")  # a robot without a handoff
        refused = await stack.emu.wait_message(from_="@RBT#member", to="bob")
    assert posts[1].text.startswith("To answer a customer, write @Shop #N your words")
    assert posts[1].text.endswith("Open tickets: #1 (alice).")
    assert posts[2].text.startswith("There is no open ticket #7.")
    assert refused.text == NO_HANDOFF_TEXT
    assert stack.llm.calls == []  # agents' messages never reach the model


async def test_operators_list_and_show_tickets(tmp_path: Path) -> None:
    async with running_stack(tmp_path, emu=_emulator(), robots=_robots()) as stack:
        stack.emu.user_send(
            "alice", "@RBT#helper", "I need a real person, my card was charged twice"
        )
        await _posts(stack, 1)
        await _agent_says(stack, "#1 Refunded.")
        await stack.emu.wait_messages(2, from_="@RBT#helper", to="alice")
        await _agent_says(stack, "#1 close")
        await _posts(stack, 2)
        mark = stack.emu.mark()
        stack.emu.user_send("alice", "@RBT#helper", "/rate 9")
        stack.emu.user_send("alice", "@RBT#helper", "/rate 5 quick and kind")
        told = await stack.emu.wait_messages(2, from_="@RBT#helper", to="alice", after=mark)
        rated = stack.services.metrics.ratings.labels("@RBT#helper", "5", "ticket")._value.get()
    assert [m.text for m in told] == [RATE_USAGE, RATE_THANKS.format(score=5)]
    assert rated == 1
    config = tmp_path / "timbridge.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "timbridge.db"}"\n'
        f'[[robots]]\nid = "@RBT#helper"\n[robots.handoff]\ngroup = "{AGENTS}"\n',
        encoding="utf-8",
    )
    listed = await timbridge("tickets", "list", "--config", str(config), cwd=tmp_path)
    out, err = await asyncio.wait_for(listed.communicate(), 60)
    assert listed.returncode == 0, err.decode()
    [line] = out.decode().splitlines()
    assert line.startswith("#1  closed  @RBT#helper  alice  ")
    assert line.endswith("the customer asked for a person")
    shown = await timbridge("tickets", "show", "1", "--config", str(config), cwd=tmp_path)
    out, err = await asyncio.wait_for(shown.communicate(), 60)
    assert shown.returncode == 0, err.decode()
    text = out.decode()
    assert "closed:" in text and "by bob" in text
    assert "rating:   5/5 by alice quick and kind" in text
    assert "customer: I need a real person, my card was charged twice" in text
    assert "robot: [bob, a colleague of mine] Refunded." in text
    missing = await timbridge("tickets", "show", "9", "--config", str(config), cwd=tmp_path)
    _, err = await asyncio.wait_for(missing.communicate(), 60)
    assert missing.returncode == 1 and "no ticket #9" in err.decode()


async def test_tickets_work_on_postgresql_with_redis_coordination_across_a_restart(
    tmp_path: Path, postgres_url: str, redis_url: str, redis_prefix: str
) -> None:
    scale = {
        "store": {"url": postgres_url},
        "coordination": {"url": redis_url, "prefix": redis_prefix},
    }
    emu = _emulator()
    async with running_stack(tmp_path, emu=emu, robots=_robots(), **scale) as stack:
        emu.user_send("alice", "@RBT#helper", "/human")
        emu.user_send("carol", "@RBT#helper", "talk to a human please")
        posts = await _posts(stack, 2)
    openers = sorted(p.text.split(":", 1)[0] for p in posts)  # the two may come in either order
    assert openers in (
        ["New ticket #1 from alice", "New ticket #2 from carol"],
        ["New ticket #1 from carol", "New ticket #2 from alice"],
    )
    alice = 1 if "New ticket #1 from alice" in openers else 2
    async with running_stack(tmp_path, emu=emu, robots=_robots(), **scale) as stack:
        mark = emu.mark()
        await _agent_says(stack, f"#{alice} Hello alice, this is Bob.")
        answer = await emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        assert answer.text == "Hello alice, this is Bob."
        emu.user_send("alice", "@RBT#helper", "thanks Bob")
        relayed = await emu.wait_until(
            lambda: next(
                (
                    m
                    for m in emu.messages(from_="@RBT#helper", group=AGENTS, after=mark)
                    if m.text == f"#{alice} alice: thanks Bob"
                ),
                None,
            )
        )
    assert relayed is not None and stack.llm.calls == []
