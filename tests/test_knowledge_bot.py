"""Robots with a knowledge base: passages reach the model's context, sources are cited, and the
offline model answers from the passages alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai import FakeOpenAI
from tests.stack import running_stack
from timbridge.knowledge.embed import LocalEmbedder
from timbridge.knowledge.library import Library
from timbridge.knowledge.store import KnowledgeStore
from timbridge.llm.base import ChatMessage, Source
from timbridge.llm.providers.offline import NO_MATCH, OFFLINE_NOTE, OfflineModel

pytestmark = pytest.mark.usefixtures("clean_env")


async def _ingest_shop(db: Path) -> None:
    library = Library(await KnowledgeStore.open(f"sqlite:///{db}"), LocalEmbedder())
    try:
        await library.ingest_bytes(
            "shop",
            "returns.md",
            b"# Returns\nItems can be returned within 30 days with the receipt.\n"
            b"## Refunds\nRefunds reach the original card within five working days.\n",
        )
    finally:
        await library.aclose()


def _robot(**extra: Any) -> list[dict[str, Any]]:
    return [{"id": "@RBT#helper", "persona": "You are the shop's assistant.", **extra}]


async def test_passages_reach_the_model_and_the_answer_cites_them(tmp_path: Path) -> None:
    await _ingest_shop(tmp_path / "timbridge.db")
    llm = FakeOpenAI(reply=lambda messages: "Five working days.")
    async with running_stack(tmp_path, llm=llm, robots=_robot(knowledge="shop")) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "when will I get my money back?")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        stack.emu.user_send("alice", "@RBT#helper", "what's the weather?")
        second = await stack.emu.wait_message(
            from_="@RBT#helper", to="alice", where=lambda m: m.text != reply.text
        )
    messages = llm.requests[0]["messages"]
    assert [m["role"] for m in messages] == ["system", "system", "user"]
    assert messages[0]["content"] == "You are the shop's assistant."
    assert (
        "Returns › Refunds (returns.md)\nRefunds reach the original card" in messages[1]["content"]
    )
    answer, sources = reply.text.split("\n\nSources: ")
    assert answer == "Five working days."
    assert "Returns › Refunds (returns.md)" in sources.split("; ")
    # nothing relevant: no passages, no sources line; history follows the persona
    later = llm.requests[1]["messages"]
    assert [m["role"] for m in later] == ["system", "user", "assistant", "user"]
    assert second.text == "Five working days."


async def test_sources_are_not_cited_when_the_robot_says_so(tmp_path: Path) -> None:
    await _ingest_shop(tmp_path / "timbridge.db")
    llm = FakeOpenAI(reply=lambda messages: "Thirty days.")
    robots = _robot(knowledge="shop", cite_sources=False)
    async with running_stack(tmp_path, llm=llm, robots=robots) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "how long can I return things?")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
    assert reply.text == "Thirty days."
    assert "30 days" in llm.requests[0]["messages"][1]["content"]


async def test_a_missing_base_is_logged_and_the_model_still_answers(tmp_path: Path) -> None:
    llm = FakeOpenAI(reply=lambda messages: "I can still talk.")
    async with running_stack(tmp_path, llm=llm, robots=_robot(knowledge="nope")) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "hello")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
    assert reply.text == "I can still talk."
    assert [m["role"] for m in llm.requests[0]["messages"]] == ["system", "user"]


async def test_offline_model_quotes_the_best_passages_or_says_nothing_matched() -> None:
    model = OfflineModel()
    sources = (
        Source("Returns (returns.md)", "Within 30 days.", 0.70),
        Source("Refunds (returns.md)", "Five working days.", 0.68),
        Source("Shipping (faq.csv)", "Three days.", 0.40),
    )
    context = [ChatMessage("system", "persona"), ChatMessage("system", "passages", sources)]
    text = "".join([d.text async for d in model.stream([*context, ChatMessage("user", "q")])])
    assert text == (
        "Here is what I found:\n\n**Returns (returns.md)**\nWithin 30 days.\n\n"
        f"**Refunds (returns.md)**\nFive working days.\n\n{OFFLINE_NOTE}"
    )
    alone = [ChatMessage("system", "persona"), ChatMessage("user", "q")]
    assert "".join([d.text async for d in model.stream(alone)]) == NO_MATCH


async def test_with_knowledge_search_the_model_searches_instead_of_being_given_passages(
    tmp_path: Path,
) -> None:
    await _ingest_shop(tmp_path / "timbridge.db")

    def search_once(messages: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]] | None:
        if messages[-1]["role"] == "tool":
            return None
        return [("knowledge_search", {"query": "refund to card"})]

    def from_results(messages: list[dict[str, Any]]) -> str:
        return messages[-1]["content"]

    llm = FakeOpenAI(tool_calls=search_once, reply=from_results)
    robots = _robot(knowledge="shop", tools=["knowledge_search"], cite_sources=False)
    async with running_stack(tmp_path, llm=llm, robots=robots) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "when will I get my money back?")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice", limit_s=20)
    assert reply.text.startswith("[1] returns.md › Returns › Refunds")
    assert "five working days" in reply.text
    first = llm.requests[0]["messages"]
    assert [m["role"] for m in first] == ["system", "user"]  # no passages put in by timbridge
    assert [t["function"]["name"] for t in llm.requests[0]["tools"]] == ["knowledge_search"]


async def test_knowledge_search_without_a_knowledge_base_stops_start_up(tmp_path: Path) -> None:
    from timbridge.errors import ConfigError

    with pytest.raises(ConfigError, match="knowledge_search needs the robot's knowledge = NAME"):
        async with running_stack(tmp_path, robots=_robot(tools=["knowledge_search"])):
            pass
