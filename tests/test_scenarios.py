"""End to end over loopback: a user writes in the emulator, Tencent-style webhooks reach
timbridge, the fake OpenAI server answers, and the reply lands back in the emulator."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.fakes.openai import Failure, FakeOpenAI
from tests.stack import APP, KEY, TOKEN, running_stack
from timbridge.bot.sentences import APOLOGY, STORE_FAILED
from timbridge.emulator import Emulator, EmulatorConfig, Fault
from timbridge.storage.schema import turns

pytestmark = pytest.mark.usefixtures("clean_env")


async def test_c2c_reply_with_persona(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "What is timbridge?")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        assert reply.text == "echo: What is timbridge?"
        [request] = stack.llm.requests
        assert request["messages"][0] == {"role": "system", "content": "You are Helper."}
        assert request["stream"] is True
        assert request["model"] == "fake-model"


async def test_non_streaming_model(tmp_path: Path) -> None:
    async with running_stack(tmp_path, model_options={"stream": False}) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "plain JSON please")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        assert reply.text == "echo: plain JSON please"
        assert "stream" not in stack.llm.requests[0]


async def test_second_message_carries_history_even_after_restart(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "My name is Alice.")
        await stack.emu.wait_message(from_="@RBT#helper", to="alice")
    llm = FakeOpenAI()
    async with running_stack(tmp_path, llm=llm) as stack:  # same SQLite file: a restart
        stack.emu.user_send("alice", "@RBT#helper", "What is my name?")
        await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        assert llm.requests[0]["messages"] == [
            {"role": "system", "content": "You are Helper."},
            {"role": "user", "content": "My name is Alice."},
            {"role": "assistant", "content": "echo: My name is Alice."},
            {"role": "user", "content": "What is my name?"},
        ]


async def test_reset_empties_the_context(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        emu = stack.emu
        emu.user_send("alice", "@RBT#helper", "remember 42")
        await emu.wait_message(from_="@RBT#helper", to="alice")
        mark = emu.mark()
        emu.user_send("alice", "@RBT#helper", "/reset")
        done = await emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        assert "forgotten" in done.text
        mark = emu.mark()
        emu.user_send("alice", "@RBT#helper", "what number?")
        await emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        assert stack.llm.requests[-1]["messages"] == [
            {"role": "system", "content": "You are Helper."},
            {"role": "user", "content": "what number?"},
        ]
        assert len(stack.llm.requests) == 2  # /reset itself made no model call


async def test_help_and_unknown_command_make_no_model_call(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "/help")
        stack.emu.user_send("alice", "@RBT#helper", "/frobnicate now")
        help_reply, unknown = await stack.emu.wait_messages(2, from_="@RBT#helper")
        assert "/reset" in help_reply.text
        assert "don't know the command /frobnicate" in unknown.text
        assert stack.llm.requests == []


async def _group(stack: Any, members: tuple[str, ...]) -> str:
    group = stack.emu.world.create_group(
        type="Public", name="team", owner="alice", group_id=None, members=list(members)
    )
    return str(group.group_id)


async def test_group_shared_context_mentions_asker(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        group = await _group(stack, ("bob", "@RBT#helper"))
        stack.emu.user_send_group("bob", group, "just chatting")  # no mention: no reply
        stack.emu.user_send_group("alice", group, "@@RBT#helper first", ("@RBT#helper",))
        first = await stack.emu.wait_message(from_="@RBT#helper", group=group)
        assert first.text == "@alice echo: alice: first"
        assert first.at_accounts == ("alice",)
        stack.emu.user_send_group("bob", group, "@Helper second", ("@RBT#helper",))
        await stack.emu.wait_messages(2, from_="@RBT#helper", group=group)
        second = stack.llm.requests[1]["messages"]
        assert [m["content"] for m in second[1:]] == [
            "alice: first",
            "echo: alice: first",
            "bob: second",
        ]
        assert len(stack.llm.requests) == 2


async def test_group_member_context_is_per_member(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        group = await _group(stack, ("bob", "@RBT#member"))
        stack.emu.user_send_group("alice", group, "@@RBT#member alice here", ("@RBT#member",))
        await stack.emu.wait_message(from_="@RBT#member", group=group)
        stack.emu.user_send_group("bob", group, "@@RBT#member bob here", ("@RBT#member",))
        await stack.emu.wait_messages(2, from_="@RBT#member", group=group)
        bob_context = stack.llm.requests[1]["messages"]
        assert [m["content"] for m in bob_context[1:]] == ["bob here"]


async def test_two_robots_mentioned_both_answer(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        group = await _group(stack, ("@RBT#helper", "@RBT#member", "@RBT#stranger"))
        stack.emu.user_send_group(
            "alice",
            group,
            "@@RBT#helper @@RBT#member @@RBT#stranger hi",
            ("@RBT#helper", "@RBT#member", "@RBT#stranger"),
        )
        replies = await stack.emu.wait_messages(
            2, group=group, where=lambda m: m.from_account.startswith("@RBT#")
        )
        assert {r.from_account for r in replies} == {"@RBT#helper", "@RBT#member"}
        await stack.emu.webhooks.idle()
        await stack.services.coordination.idle()  # type: ignore[attr-defined]
        assert not stack.emu.messages(from_="@RBT#stranger")  # not configured here
        assert len(stack.llm.requests) == 2


async def test_same_event_delivered_four_times_is_answered_once(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.emu.faults.duplicate(3, times=1)
        stack.emu.user_send("alice", "@RBT#helper", "once please")
        await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        await stack.emu.webhooks.idle()
        await stack.services.coordination.idle()  # type: ignore[attr-defined]
        assert stack.emu.webhooks.log[0].copies == 3
        assert len(stack.emu.messages(from_="@RBT#helper")) == 1
        assert len(stack.llm.requests) == 1


async def test_model_500s_then_apology(tmp_path: Path) -> None:
    llm = FakeOpenAI()
    llm.fail(Failure(500), Failure(503))  # retries: 1 → two attempts, both fail
    async with running_stack(tmp_path, llm=llm) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "are you there?")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        assert reply.text == APOLOGY
        assert len(llm.requests) == 2
        mark = stack.emu.mark()
        stack.emu.user_send("alice", "@RBT#helper", "and now?")
        later = await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        assert later.text == "echo: and now?"
        # the unanswered question stays in the history, the apology does not
        assert [m["content"] for m in llm.requests[-1]["messages"][1:]] == [
            "are you there?",
            "and now?",
        ]


async def test_model_500_once_is_retried(tmp_path: Path) -> None:
    llm = FakeOpenAI()
    llm.fail(Failure(500))
    async with running_stack(tmp_path, llm=llm) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "retry")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        assert reply.text == "echo: retry"


async def test_model_timeout_then_apology(tmp_path: Path) -> None:
    llm = FakeOpenAI(delay_s=2.0)
    async with running_stack(tmp_path, llm=llm, model_options={"timeout_s": 0.3}) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "slow?")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        assert reply.text == APOLOGY
        assert len(llm.requests) == 2  # the first attempt and one retry


async def test_tencent_60007_is_retried_nothing_lost(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.emu.faults.add("openim/sendmsg", Fault(error_code=60007, times=2))
        stack.emu.user_send("alice", "@RBT#helper", "through the limit")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        assert reply.text == "echo: through the limit"
        assert len(stack.emu.messages(from_="@RBT#helper")) == 1


async def test_long_answer_is_split_and_fences_survive(tmp_path: Path) -> None:
    code = "```python\n" + "".join(f"print({i})  # 中文\n" for i in range(1500)) + "```"
    llm = FakeOpenAI(reply=lambda messages: code, chunk_size=4096)
    async with running_stack(tmp_path, llm=llm) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "code please")

        def all_parts() -> list[Any] | None:
            found = stack.emu.messages(from_="@RBT#helper")
            return found if sum(m.text.count("print(") for m in found) == 1500 else None

        parts = await stack.emu.wait_until(all_parts)
        assert len(parts) >= 3
        for part in parts:
            assert part.text.startswith("```python\n") and part.text.endswith("```")
        assert "".join(p.text for p in parts).count("print(1499)") == 1


async def test_order_holds_under_load_50_conversations_x_20(tmp_path: Path) -> None:
    """Every conversation's replies come in order, and each reply's context holds every
    earlier turn of its conversation (so no job ran before an earlier one finished)."""

    def reply(messages: list[dict[str, Any]]) -> str:
        users = [m["content"] for m in messages if m["role"] == "user"]
        return f"{users[-1]} seen-after {len(users) - 1}"

    llm = FakeOpenAI(reply=reply)
    emu_users = tuple(f"user{n:02d}" for n in range(50))
    emu = Emulator(
        EmulatorConfig(
            sdkappid=APP,
            secret_key=KEY,
            callback_token=TOKEN,
            robots=("@RBT#helper",),
            users=emu_users,
            webhook_backoff_s=0.01,
            per_api_limit=10_000,
        )
    )
    async with running_stack(
        tmp_path,
        llm=llm,
        emu=emu,
        model_options={"context_tokens": 100_000},
        tencent_extra={"api_rate_limit": 10_000},
    ) as stack:
        for burst in range(4):  # 4 bursts of 5 messages per user, interleaved across users
            for user in emu_users:
                for n in range(5):
                    stack.emu.user_send(user, "@RBT#helper", f"m{burst * 5 + n}")
            await asyncio.sleep(0.05)
        replies = await stack.emu.wait_messages(1000, from_="@RBT#helper", limit_s=60)
        by_user: dict[str, list[str]] = {}
        for message in replies:
            assert message.to_account is not None
            by_user.setdefault(message.to_account, []).append(message.text)
        assert len(by_user) == 50
        for user, texts in by_user.items():
            assert texts == [f"m{n} seen-after {n}" for n in range(20)], user


async def test_over_per_minute_limit_gets_one_notice_and_no_model_call(tmp_path: Path) -> None:
    robots = [{"id": "@RBT#helper", "persona": "You are Helper.", "messages_per_minute": 2}]
    async with running_stack(tmp_path, robots=robots) as stack:
        for n in range(4):
            stack.emu.user_send("alice", "@RBT#helper", f"q{n}")
        await stack.emu.wait_messages(3, from_="@RBT#helper", to="alice")
        await stack.emu.webhooks.idle()  # all four delivered …
        await stack.services.coordination.idle()  # type: ignore[attr-defined]  # … and handled
        replies = [m.text for m in stack.emu.messages(from_="@RBT#helper", to="alice")]
        assert replies[:2] == ["echo: q0", "echo: q1"]
        assert len(replies) == 3  # the 4th message is not answered: the user was told
        assert "at most 2 messages a minute" in replies[2]
        assert len(stack.llm.requests) == 2
        stack.emu.user_send("bob", "@RBT#helper", "my own limit")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="bob")
        assert reply.text == "echo: my own limit"
        metrics = stack.services.metrics.render().decode()
        assert 'timbridge_limited_messages_total{robot="@RBT#helper"} 2.0' in metrics


async def test_typing_notice_while_a_slow_model_thinks_and_none_for_a_fast_one(
    tmp_path: Path,
) -> None:
    from timbridge.emulator.world import Change, ChangeKind

    async with running_stack(tmp_path) as stack:
        typing: list[tuple[str, str | None]] = []

        def watch(change: Change) -> None:
            if change.kind is ChangeKind.TYPING and change.typing and change.message:
                typing.append((change.message.from_account, change.message.to_account))

        stack.emu.world.listeners.append(watch)
        stack.emu.user_send("alice", "@RBT#helper", "quick one")
        await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        assert typing == []  # answered before the notice was due: no sendmsg spent on it

        stack.llm.delay_s = 1.5
        mark = stack.emu.mark()
        stack.emu.user_send("alice", "@RBT#helper", "slow one")
        await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        assert typing == [("@RBT#helper", "alice")]  # after 0.8 s, once (the next is at 4.8 s)

        stack.llm.delay_s = 0.0
        mark = stack.emu.mark()
        stack.emu.user_send("alice", "@RBT#helper", "another quick one")
        await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        await asyncio.sleep(1.0)
        assert len(typing) == 1  # the finished reply's notices stopped with it


async def test_a_store_that_cannot_write_still_lets_the_answer_out(tmp_path: Path) -> None:
    """The message was accepted (it is in the inbox); then the store stops taking writes
    while the model answers: the answer goes out all the same, only its history is lost."""
    async with running_stack(tmp_path) as stack:
        # SQLite waits 5 s for a locked file before it gives up; 0.3 s keeps the test short
        stack.services.store.database._busy_wait_s = 0.3  # type: ignore[union-attr]
        stack.llm.delay_s = 1.0
        stack.emu.user_send("alice", "@RBT#helper", "remember me?")
        await stack.emu.webhooks.idle()  # accepted: the job is on disk
        locker = sqlite3.connect(tmp_path / "timbridge.db", isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
            assert reply.text == "echo: remember me?"
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        stack.llm.delay_s = 0.0
        mark = stack.emu.mark()
        stack.emu.user_send("alice", "@RBT#helper", "and now?")
        later = await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        assert later.text == "echo: and now?"
        # the first exchange could not be kept: the second answer's context lacks it
        assert [m["content"] for m in stack.llm.requests[-1]["messages"][1:]] == ["and now?"]


async def test_a_message_the_store_cannot_keep_is_refused_then_answered_on_redelivery(
    tmp_path: Path,
) -> None:
    """A webhook is acknowledged only once its job is on disk: while the store cannot write,
    Tencent gets a 503 and delivers again; the redelivery after the store recovers is
    answered, once."""
    async with running_stack(tmp_path) as stack:
        stack.services.store.database._busy_wait_s = 0.1  # type: ignore[union-attr]
        stack.emu.webhooks.backoff_s = 0.5  # Tencent's next try comes after the lock is gone
        locker = sqlite3.connect(tmp_path / "timbridge.db", isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")
        try:
            stack.emu.user_send("alice", "@RBT#helper", "are you there?")
            (delivery,) = stack.emu.webhooks.log
            async with asyncio.timeout(5):
                while not delivery.errors:  # noqa: ASYNC110 - the emulator signals whole deliveries only; this waits for the first try
                    await asyncio.sleep(0.01)
            refused = delivery.errors[0]
            assert refused.startswith("HTTP 503")
            assert "unavailable: cannot queue the message now; retry" in refused
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice", limit_s=10)
        assert reply.text == "echo: are you there?"
        await stack.emu.webhooks.idle()
        assert delivery.status == 200 and delivery.attempts >= 2
        await asyncio.sleep(0.3)
        assert len(stack.emu.messages(from_="@RBT#helper", to="alice")) == 1


async def test_a_store_that_fails_for_a_moment_costs_the_user_nothing(tmp_path: Path) -> None:
    """The job is handed back and runs again (0.5 s, then 1 s later): no apology once the store
    is back, and one answer."""
    async with running_stack(tmp_path) as stack:
        path = tmp_path / "timbridge.db"
        with sqlite3.connect(path) as broken:
            broken.execute("DROP TABLE turns")  # every history read fails until it is back
        stack.emu.user_send("bob", "@RBT#helper", "hello?")
        await asyncio.sleep(0.7)
        turns.create(sa.create_engine(f"sqlite:///{path}"))  # the store is back
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="bob")
        assert reply.text == "echo: hello?"
        await asyncio.sleep(0.3)
        assert len(stack.emu.messages(from_="@RBT#helper", to="bob")) == 1
        assert len(stack.llm.requests) == 1


async def test_a_store_that_cannot_read_gets_the_user_an_apology(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        with sqlite3.connect(tmp_path / "timbridge.db") as broken:
            broken.execute("DROP TABLE turns")  # a store that fails every history read
        stack.emu.user_send("bob", "@RBT#helper", "hello?")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="bob")
        assert reply.text == STORE_FAILED
        assert stack.llm.requests == []  # no answer is asked for that could not be kept
