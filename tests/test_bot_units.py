"""The engine's pure parts: splitting, text extraction, commands, keys, derived numbers, the
in-process queue and dedupe, context building."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_protocol import C2C_SAMPLE, GROUP_SAMPLE
from timbridge.bot.commands import parse_command
from timbridge.bot.context import build_context
from timbridge.bot.conversation import Conversation
from timbridge.bot.fences import Fences
from timbridge.bot.split import DEFAULT_LIMIT, json_size, split_reply
from timbridge.bot.text import extract_text, strip_mentions
from timbridge.coordination import Job, LocalCoordinator, TTLSet
from timbridge.errors import CoordinationError
from timbridge.llm.providers.offline import reflow
from timbridge.llm.tokens import count_tokens
from timbridge.protocol import parse_event
from timbridge.protocol.callbacks import C2CMessageEvent, GroupMessageEvent
from timbridge.storage import Turn
from timbridge.tencent.outbound import derive_random, derive_seq

# --- splitting --------------------------------------------------------------------------------

texts = st.text(alphabet=st.sampled_from(list('ab中🙂\n"\\`| -')), max_size=3000)


@given(text=texts, limit=st.integers(min_value=80, max_value=400))
@settings(max_examples=200, deadline=None)
def test_split_parts_fit_and_keep_every_line(text: str, limit: int) -> None:
    parts = split_reply(text, limit)
    for part in parts:
        assert json_size(part) <= limit
        part.encode("utf-8")  # never a broken character
    if "```" not in text:
        joined = "".join(p.replace("\n", "") for p in parts)
        assert joined == text.replace("\n", "").rstrip() or joined == text.replace("\n", "")


def test_split_short_text_is_one_part() -> None:
    assert split_reply("hello") == ["hello"]


def test_split_keeps_table_rows_whole() -> None:
    rows = "| a | b |\n|---|---|\n" + "".join(f"| {n} | {'x' * 50} |\n" for n in range(400))
    parts = split_reply(rows)
    assert len(parts) > 1
    for part in parts:
        for line in part.splitlines():
            assert line.startswith("|") and line.endswith("|")


def test_split_reopens_code_fences_with_language() -> None:
    code = "Intro\n```python\n" + "".join(f"x = {n}\n" for n in range(3000)) + "```\nBye"
    parts = split_reply(code)
    assert len(parts) >= 3
    assert all(p.count("```") % 2 == 0 for p in parts)
    assert all(p.startswith("```python\n") for p in parts[1:-1])
    assert all(json_size(p) <= DEFAULT_LIMIT for p in parts)


# --- text -------------------------------------------------------------------------------------


def test_extract_text_describes_other_elements() -> None:
    body = [
        {"MsgType": "TIMTextElem", "MsgContent": {"Text": "look"}},
        {"MsgType": "TIMImageElem", "MsgContent": {"UUID": "x"}},
        {"MsgType": "TIMFileElem", "MsgContent": {"FileName": "a.pdf"}},
        {"MsgType": "TIMHoloElem", "MsgContent": {}},
    ]
    event = parse_event(orjson.dumps({**C2C_SAMPLE, "MsgBody": body}))
    assert isinstance(event, C2CMessageEvent)
    assert extract_text(event.msg_body) == "look [image] [file: a.pdf] [holo]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@@RBT#helper hello", "hello"),
        ("@Helper  @bob what now?", "what now?"),
        ("\uff20Helper full-width", "full-width"),
        ("no mention @here", "no mention @here"),
        ("@@RBT#helper", ""),
    ],
)
def test_strip_mentions(text: str, expected: str) -> None:
    assert strip_mentions(text) == expected


def test_commands() -> None:
    assert parse_command("/help").name == "/help"  # type: ignore[union-attr]
    assert parse_command("/RESET please").name == "/reset"  # type: ignore[union-attr]
    assert parse_command("/etc/hosts is a file") is None
    assert parse_command("hello /help") is None
    unknown = parse_command("/nope")
    assert unknown is not None and not unknown.known


# --- keys and numbers -------------------------------------------------------------------------


def test_conversation_keys() -> None:
    c2c = parse_event(orjson.dumps(C2C_SAMPLE))
    group = parse_event(orjson.dumps({**GROUP_SAMPLE, "TopicId": "t"}))
    assert isinstance(c2c, C2CMessageEvent) and isinstance(group, GroupMessageEvent)
    assert Conversation.of("@RBT#a", c2c, member_scoped=False).key == "c2c:@RBT#a:user01"
    assert Conversation.of("@RBT#a", group, member_scoped=False).key == (
        "group:@RBT#a:@TGS#2J4SZEAEL:t"
    )
    assert Conversation.of("@RBT#a", group, member_scoped=True).key == (
        "group:@RBT#a:@TGS#2J4SZEAEL:t:jared"
    )


def test_derived_numbers_are_stable_and_distinct() -> None:
    assert derive_random("@RBT#a", "k", 0) == derive_random("@RBT#a", "k", 0)
    values = {derive_random("@RBT#a", "k", n) for n in range(100)}
    assert len(values) == 100
    assert all(0 <= v < 2**32 for v in values)
    assert derive_random("@RBT#a", "k", 0) != derive_random("@RBT#b", "k", 0)
    assert all(0 <= derive_seq("@RBT#a", "k", n) < 2**31 for n in range(100))


# --- context ----------------------------------------------------------------------------------


def test_context_keeps_newest_turns_within_budget() -> None:
    history = [
        Turn(
            "user" if n % 2 == 0 else "assistant",
            f"turn {n} " + "word " * 50,
            count_tokens(f"turn {n} " + "word " * 50),
        )
        for n in range(40)
    ]
    messages, dropped = build_context("persona", history, "new", budget=2000, answer_tokens=500)
    assert dropped == len(history) - (len(messages) - 2)
    assert messages[0].role == "system" and messages[-1].content == "new"
    kept = messages[1:-1]
    assert kept[-1].content.startswith("turn 39")
    assert 10 < len(kept) < 40
    assert sum(count_tokens(m.content) for m in messages) <= 2000 - 500


# --- coordination -----------------------------------------------------------------------------


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


def test_the_offline_model_reflows_hard_wrapped_paragraphs_and_keeps_blocks() -> None:
    wrapped = (
        "A paragraph wrapped\nby hand at seventy\ncolumns.\n\n- one item\n  continued\n- two\n\n"
        "```toml\n[a]\nb = 1\n```\n## Heading\nunder it\n| x | y |\n|---|---|"
    )
    assert reflow(wrapped) == (
        "A paragraph wrapped by hand at seventy columns.\n\n- one item continued\n- two\n\n"
        "```toml\n[a]\nb = 1\n```\n## Heading\nunder it\n| x | y |\n|---|---|"
    )


def test_fences_are_decided_once_tildes_and_backticks_alike() -> None:
    fences = Fences()
    assert not fences.feed("Use ```inline``` code") and not fences.inside  # not a fence
    assert fences.feed("~~~python") and fences.inside
    assert not fences.feed("```") and fences.inside  # backticks inside a tilde fence are code
    assert not fences.feed("~~~ not a close")
    assert fences.feed("~~~~") and not fences.inside  # the same character, at least as long
    assert Fences.after("```\ncode\n").inside and not Fences.after("```\ncode\n```\n").inside


def test_a_tilde_fence_cut_between_parts_is_closed_and_reopened_with_its_own_marker() -> None:
    text = "~~~python\n" + "".join(f"print({i})\n" for i in range(3000)) + "~~~"
    parts = split_reply(text)
    assert len(parts) >= 3
    for part in parts:
        assert part.startswith("~~~python\n") and part.endswith("~~~")
        assert "```" not in part
    joined = "".join(p.removeprefix("~~~python\n").removesuffix("~~~") for p in parts)
    assert joined.count("print(") == 3000
