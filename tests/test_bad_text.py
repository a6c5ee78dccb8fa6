"""Text a store cannot keep or a client should not show, from users and from models: it is
normalised once at each edge, one bad write never sinks the others of its transaction, and the
usage ledger (what budgets count) never depends on the history write succeeding."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai import FakeOpenAI
from tests.stack import running_stack
from timbridge.errors import StorageError
from timbridge.printable import printable
from timbridge.storage.history import Turn, UsageRecord, utc_day
from timbridge.storage.store import Store

pytestmark = pytest.mark.usefixtures("clean_env")

HOSTILE = "red \x1b[31malert\x1b[0m, \u202eexe.txt\u202c, nul\x00, bell\x07, crlf\r\nend\ud800"


def test_printable_keeps_text_and_drops_what_no_client_should_render() -> None:
    assert printable(HOSTILE) == "red [31malert[0m, exe.txt, nul, bell, crlf\nend\ufffd"
    hebrew = "\u200f\u05e9\u05dc\u05d5\u05dd\u200f"  # with the right-to-left marks it needs
    kept = f"第一行\n\tindented, emoji 👍🏽, Hebrew {hebrew}, joiner 👨\u200d👩"
    assert printable(kept) == kept
    plain = "plain ascii"
    assert printable(plain) is plain


async def test_users_text_with_nul_on_postgresql_is_kept_and_the_budget_holds(
    tmp_path: Path, postgres_url: str
) -> None:
    llm = FakeOpenAI()
    robots = [{"id": "@RBT#helper", "persona": "P", "tokens_per_user_per_day": 60}]
    async with running_stack(
        tmp_path, llm=llm, robots=robots, store={"url": postgres_url}
    ) as stack:
        told = False
        for n in range(8):
            mark = stack.emu.mark()
            stack.emu.user_send("alice", "@RBT#helper", f"question {n} with some words\x00")
            if not told:  # once told, the robot says nothing more today
                answer = await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
                told = "00:00 UTC" in answer.text
        await asyncio.wait_for(stack.services.coordination.idle(), 10)
        history = stack.services.store.history
        turns = await history.recent_turns("c2c:@RBT#helper:alice")
        used = await history.tokens_on(utc_day(), "@RBT#helper", sender="alice")
    said = [m.text for m in stack.emu.messages(from_="@RBT#helper", to="alice")]
    notices = [text for text in said if "00:00 UTC" in text]
    assert len(notices) == 1  # the budget stopped the model and said so, once
    assert len(llm.requests) < 8
    assert used >= 60
    assert turns[0].content == "question 0 with some words"  # stored, without the NUL
    assert all("\x00" not in m["content"] for r in llm.requests for m in r["messages"])


async def test_a_models_control_characters_never_reach_the_user_nor_the_history(
    tmp_path: Path,
) -> None:
    hostile = HOSTILE.removesuffix("\ud800")  # JSON on the wire cannot carry a lone surrogate
    llm = FakeOpenAI(reply=lambda messages: hostile, chunk_size=3)
    async with running_stack(tmp_path, llm=llm) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "say something odd")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        turns = await stack.services.store.history.recent_turns("c2c:@RBT#helper:alice")
    assert reply.text == printable(hostile)
    assert turns[-1].content == printable(hostile)


def _usage(identity: str, sender: str) -> UsageRecord:
    return UsageRecord(
        robot="@RBT#helper",
        sender=sender,
        group_id=None,
        identity=identity,
        purpose="answer",
        profile="default",
        model="m",
        input_tokens=10,
        output_tokens=5,
    )


async def test_a_row_postgresql_refuses_fails_alone_and_its_usage_is_still_counted(
    postgres_url: str,
) -> None:
    store = await Store.open(postgres_url)
    try:
        history = store.history
        bad = history.add_turns(
            "c2c:@RBT#helper:alice",
            "bad",
            [Turn("user", "nul \x00 inside", 3)],  # past the edge's normalisation, on purpose
            usage_record=_usage("bad", "alice"),
        )
        good = history.add_turns(
            "c2c:@RBT#helper:bob",
            "good",
            [Turn("user", "fine", 1)],
            usage_record=_usage("good", "bob"),
        )
        outcomes = await asyncio.gather(bad, good, return_exceptions=True)
        assert isinstance(outcomes[0], StorageError)
        assert outcomes[1] is None
        assert [t.content for t in await history.recent_turns("c2c:@RBT#helper:bob")] == ["fine"]
        assert await history.recent_turns("c2c:@RBT#helper:alice") == []
        # both answers were paid for: the ledger did not go down with alice's turns
        assert await history.tokens_on(utc_day(), "@RBT#helper", sender="alice") == 15
        assert await history.tokens_on(utc_day(), "@RBT#helper", sender="bob") == 15
    finally:
        await store.aclose()


async def test_a_store_that_refuses_every_write_costs_a_batch_three_transactions_not_one_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        with sqlite3.connect(tmp_path / "db.sqlite") as broken:
            broken.execute("DROP TABLE reply_parts")  # every insert of reply parts fails
        transactions = 0
        run = store.database.run

        async def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal transactions
            transactions += 1
            return await run(*args, **kwargs)

        monkeypatch.setattr(store.database, "run", counted)
        writes = [store.history.record_parts(f"id{n}", {0: f"handle{n}"}) for n in range(10)]
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        assert all(isinstance(o, StorageError) for o in outcomes)  # every caller is told
        assert transactions <= 3  # the batch, then two alone; not ten more
    finally:
        await store.aclose()
