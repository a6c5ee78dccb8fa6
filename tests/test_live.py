"""Live reply modes end to end: emulator → webhook → engine → fake vendor server → emulator.

The emulator's history must show the whole answer in every mode; stream updates keep to 5 a
second and never leave a 15 s gap; a mode Tencent refuses falls back once; an answer cut off
mid-way says so.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI
from tests.stack import Stack, running_stack, vendor_models
from timbridge.bot.sentences import INTERRUPTED
from timbridge.emulator.faults import Fault
from timbridge.emulator.world import Change, ChangeKind, Message

pytestmark = pytest.mark.usefixtures("clean_env")

ANSWER = (
    "First paragraph: timbridge answers as the robot.\n\n"
    "```python\nprint('a fence')\n\nprint('stays whole')\n```\n\n"
    "| col | value |\n|---|---|\n| a | 1 |\n\n"
    "Last paragraph, with the end of the answer."
)
PARAGRAPHS = [
    "First paragraph: timbridge answers as the robot.",
    "```python\nprint('a fence')\n\nprint('stays whole')\n```",
    "| col | value |\n|---|---|\n| a | 1 |",
    "Last paragraph, with the end of the answer.",
]


def _robots(mode: str) -> list[dict[str, Any]]:
    return [
        {"id": "@RBT#helper", "persona": "You are Helper.", "reply_mode": mode},
        {"id": "@RBT#member", "persona": "You are Member.", "reply_mode": mode},
    ]


@asynccontextmanager
async def _stack(tmp: Path, provider: str, mode: str, llm: FakeOpenAI) -> AsyncIterator[Stack]:
    if provider == "openai":
        async with running_stack(tmp, llm=llm, robots=_robots(mode)) as stack:
            yield stack
        return
    fake: FakeAnthropic | FakeGemini = (
        FakeAnthropic(reply=lambda messages: ANSWER)
        if provider == "anthropic"
        else FakeGemini(reply=lambda contents: ANSWER)
    )
    async with (
        vendor_models(fake, provider, key_env="FAKE_VENDOR_KEY") as models,
        running_stack(tmp, llm=llm, models=models, robots=_robots(mode)) as stack,
    ):
        yield stack


def _visible(messages: list[Message], *, group: bool = False) -> list[str]:
    texts = [m.text for m in messages]
    if group:
        texts = [re.sub(r"^@\w+ ", "", t) for t in texts]
    return texts


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("mode", ["stream", "edit", "segments"])
async def test_every_mode_shows_the_whole_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: str, mode: str
) -> None:
    monkeypatch.setenv("FAKE_VENDOR_KEY", "vendor-test-key")
    llm = FakeOpenAI(reply=lambda messages: ANSWER, chunk_size=6, chunk_interval_s=0.002)
    async with _stack(tmp_path, provider, mode, llm) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "tell me")
        if mode == "segments":
            shown = await stack.emu.wait_messages(4, from_="@RBT#helper", to="alice")
            assert _visible(shown) == PARAGRAPHS
        else:
            first = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
            done = await stack.emu.wait_until(
                lambda: (
                    first
                    if first.text == ANSWER and (first.stream is None or first.stream.finished)
                    else None
                )
            )
            assert done.text == ANSWER
            if mode == "stream":
                assert first.body[0]["MsgType"] == "TIMStreamElem"
                assert first.body[0]["MsgContent"]["CompatibleText"]
            else:
                assert first.body[0]["MsgType"] == "TIMTextElem"
        # the whole answer is the stored turn: the next message's context holds it once
        mark = stack.emu.mark()
        stack.emu.user_send("alice", "@RBT#helper", "again")
        await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
    sent = llm.requests[-1]["messages"] if provider == "openai" else None
    if sent is not None:
        assert [m["content"] for m in sent if m["role"] == "assistant"] == [ANSWER]


async def test_group_stream_mentions_the_asker(tmp_path: Path) -> None:
    llm = FakeOpenAI(reply=lambda messages: ANSWER, chunk_size=8)
    async with running_stack(tmp_path, llm=llm, robots=_robots("stream")) as stack:
        group = stack.emu.world.create_group(
            type="Work", name="G", owner="alice", group_id="g1", members=["bob", "@RBT#helper"]
        )
        stack.emu.user_send_group("bob", group.group_id, "@Helper tell me", ("@RBT#helper",))
        reply = await stack.emu.wait_message(from_="@RBT#helper", group="g1")
        await stack.emu.wait_until(lambda: reply.stream is not None and reply.stream.finished)
        assert reply.text == f"@bob {ANSWER}"


async def test_stream_updates_keep_to_five_a_second(tmp_path: Path) -> None:
    long_answer = " ".join(f"word{n}" for n in range(400))  # ~2 s at 200 tokens/s
    llm = FakeOpenAI(reply=lambda messages: long_answer, chunk_size=5, chunk_interval_s=0.005)
    async with running_stack(tmp_path, llm=llm, robots=_robots("stream")) as stack:
        calls: list[float] = []

        def record(change: Change) -> None:
            message = change.message
            if (
                message is not None
                and message.stream is not None
                and change.kind
                in (
                    ChangeKind.MESSAGE,
                    ChangeKind.UPDATE,
                )
            ):
                calls.append(time.monotonic())

        stack.emu.world.listeners.append(record)
        stack.emu.user_send("alice", "@RBT#helper", "a long one")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        await stack.emu.wait_until(
            lambda: reply.stream is not None and reply.stream.finished, limit_s=20
        )
    assert reply.text == long_answer
    assert len(calls) >= 5  # it did stream
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert min(gaps) >= 0.19  # ≤ 5 updates a second, the last one included
    window = max(sum(1 for t in calls if start <= t < start + 1.0) for start in calls)
    assert window <= 5


async def test_a_20_second_stall_ends_the_stream_and_continues_in_a_new_one(
    tmp_path: Path,
) -> None:
    answer = "Before the stall. " * 3 + "After the stall."
    llm = FakeOpenAI(reply=lambda messages: answer, chunk_size=18, stall_after=3, stall_s=20)
    async with running_stack(
        tmp_path, llm=llm, robots=_robots("stream"), model_options={"timeout_s": 60}
    ) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "stall please")
        both = await stack.emu.wait_messages(2, from_="@RBT#helper", to="alice", limit_s=40)
        await stack.emu.wait_until(lambda: all(m.stream and m.stream.finished for m in both))
    first, second = both
    assert first.text == "Before the stall. " * 3
    assert second.text == "After the stall."
    assert first.stream is not None and second.stream is not None
    # the first stream was ended by us, well inside Tencent's 15 s gap
    assert first.stream.last_chunk_at - first.stream.started_at < 15


async def test_a_refused_mode_falls_back_once_and_the_user_still_gets_the_answer(
    tmp_path: Path,
) -> None:
    llm = FakeOpenAI(reply=lambda messages: ANSWER, chunk_size=8)
    async with running_stack(tmp_path, llm=llm, robots=_robots("stream")) as stack:
        stack.emu.faults.add("stream_msg/send_c2c_stream_msg", Fault(error_code=10007, times=-1))
        stack.emu.user_send("alice", "@RBT#helper", "tell me")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        await stack.emu.wait_until(lambda: reply if reply.text == ANSWER else None)
    assert reply.body[0]["MsgType"] == "TIMTextElem"  # shown by editing a plain message


async def test_an_answer_cut_off_mid_way_says_so(tmp_path: Path) -> None:
    llm = FakeOpenAI(reply=lambda messages: ANSWER, chunk_size=10, break_after=3)
    async with running_stack(
        tmp_path, llm=llm, robots=_robots("edit"), model_options={"retries": 2}
    ) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "tell me")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        await stack.emu.wait_until(lambda: reply if reply.text.endswith(INTERRUPTED) else None)
    assert reply.text == ANSWER[:30] + INTERRUPTED
    assert len(llm.requests) == 1  # no retry once text was shown: it would repeat the start


async def test_the_answer_ending_during_a_slow_tencent_call_is_shown_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model finishes while the first segment's sendmsg is still in flight: the rest is
    shown as soon as that call returns, not after the idle wait (made an hour here; it was
    lost when the wake-up came during the call)."""
    monkeypatch.setattr("timbridge.bot.live.STREAM_IDLE_S", 3600.0)
    llm = FakeOpenAI(
        reply=lambda messages: "First paragraph.\n\nSecond paragraph.",
        chunk_size=6,
        chunk_interval_s=0.002,
    )
    async with running_stack(tmp_path, llm=llm, robots=_robots("segments")) as stack:
        stack.emu.faults.add("openim/sendmsg", Fault(latency_s=0.5))
        stack.emu.user_send("alice", "@RBT#helper", "tell me")
        shown = await stack.emu.wait_messages(2, from_="@RBT#helper", to="alice", limit_s=5)
    assert _visible(shown) == ["First paragraph.", "Second paragraph."]


async def test_segments_keep_a_tilde_fence_whole_with_backticks_and_blank_lines_inside(
    tmp_path: Path,
) -> None:
    answer = "Before.\n\n~~~markdown\n```\nnot the end\n\n```\n~~~\n\nAfter."
    llm = FakeOpenAI(reply=lambda messages: answer, chunk_size=5)
    async with running_stack(tmp_path, llm=llm, robots=_robots("segments")) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "show me")
        shown = await stack.emu.wait_messages(3, from_="@RBT#helper", to="alice", limit_s=10)
    assert _visible(shown) == ["Before.", "~~~markdown\n```\nnot the end\n\n```\n~~~", "After."]
