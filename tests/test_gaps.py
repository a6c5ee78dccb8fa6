"""Knowledge gaps: questions a robot's knowledge base could not answer are kept (no passage, or
the model said it did not know), and `timbridge kb gaps` groups their paraphrases together,
the most asked first (real MiniLM embeddings, shipped weights)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.fakes.openai import FakeOpenAI
from tests.processes import timbridge
from tests.stack import running_stack
from timbridge.knowledge.embed import LocalEmbedder
from timbridge.knowledge.gaps import cluster, sounds_unsure
from timbridge.knowledge.library import Library
from timbridge.knowledge.store import KnowledgeStore
from timbridge.storage import Store

pytestmark = pytest.mark.usefixtures("clean_env")

RETURNS = [
    "How do I return an item?",
    "Can I send my order back?",
    "what's your return policy",
    "I want to return a product I bought",
]
GIFTS = [
    "Do you sell gift cards?",
    "can I buy a gift voucher",
    "are gift cards available",
    "Is there a gift certificate I can purchase?",
]
VISITS = [
    "Where is your physical shop?",
    "do you have a store I can visit",
    "what is the address of your shop",
    "Can I visit your shop in person?",
]
ALONE = ["what's the weather like", "tell me a joke"]


async def test_paraphrases_are_grouped_and_the_groups_come_largest_first() -> None:
    questions = [q for group in zip(RETURNS, GIFTS, VISITS, strict=True) for q in group]
    questions += ALONE + RETURNS[:1]  # one of the returns questions asked twice
    vectors = await LocalEmbedder().embed(questions)
    groups = cluster(questions, vectors)
    assert sorted(groups[0].questions) == sorted(RETURNS + RETURNS[:1])
    assert [sorted(g.questions) for g in groups[1:3]] in (
        [sorted(GIFTS), sorted(VISITS)],
        [sorted(VISITS), sorted(GIFTS)],
    )
    assert [g.size for g in groups[3:]] == [1, 1]
    assert groups[0].name in RETURNS


@pytest.mark.parametrize(
    ("answer", "unsure"),
    [
        ("I don't know the answer to that, sorry.", True),
        ("I couldn't find that in the documents.", True),
        ("我不知道这个问题的答案。", True),
        ("Refunds take five days. I don't know why you'd wait longer, though.", True),
        ("Refunds reach your card within five working days.", False),
    ],
)
def test_an_answer_that_says_it_does_not_know_is_told_apart(answer: str, unsure: bool) -> None:
    assert sounds_unsure(answer) is unsure


async def test_unanswered_questions_are_kept_and_kb_gaps_lists_them_grouped(
    tmp_path: Path,
) -> None:
    db = tmp_path / "timbridge.db"
    library = Library(await KnowledgeStore.open(f"sqlite:///{db}"), LocalEmbedder())
    try:
        await library.ingest_bytes(
            "shop", "refunds.md", b"# Refunds\nRefunds reach the original card within five days.\n"
        )
    finally:
        await library.aclose()

    def reply(messages: list[dict[str, object]]) -> str:
        return "I'm not sure about that." if "refund" in str(messages[-1]["content"]) else "Hm."

    llm = FakeOpenAI(reply=reply)
    robots = [{"id": "@RBT#helper", "persona": "You are the shop.", "knowledge": "shop"}]
    async with running_stack(tmp_path, llm=llm, robots=robots) as stack:
        for question in [*GIFTS, *VISITS[:2], "when do refunds reach my card?"]:
            mark = stack.emu.mark()
            stack.emu.user_send("alice", "@RBT#helper", question)
            await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
    store = await Store.open(f"sqlite:///{db}")
    try:
        kept = await store.gaps.listing("shop")
    finally:
        await store.aclose()
    assert [(g.question, g.why) for g in kept[-1:]] == [
        ("when do refunds reach my card?", "model_unsure")
    ]
    assert {g.question for g in kept if g.why == "no_passage"} == {*GIFTS, *VISITS[:2]}

    config = tmp_path / "timbridge.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{db}"\n', encoding="utf-8")
    proc = await timbridge("kb", "gaps", "--kb", "shop", "--config", str(config), cwd=tmp_path)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0] == "7 unanswered questions in 3 groups"
    assert lines[1].startswith("    4  ") and lines[1].strip().split("  ", 1)[1] in GIFTS
    assert sum(line.strip().startswith("also:") for line in lines) == 3 + 1
