"""Stopping answers end to end: a user recalls the question while its answer is being written
(on the page, or the app admin through ``admin_msgwithdraw`` / ``group_msg_recall``), or
writes ``/cancel``.

What the user sees: a recalled question takes its half-written answer with it (the robot's
messages are recalled too) and is never answered later; ``/cancel`` ends what was shown with
"(stopped)" and says so. What the model server sees: its stream closed by the client.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai import FakeOpenAI
from tests.stack import Stack, running_stack
from timbridge.bot.sentences import CANCEL_TEXT, NOTHING_TO_CANCEL_TEXT, STOPPED
from timbridge.emulator.world import Message
from timbridge.protocol.rest import AdminMsgWithdraw, GroupMsgRecall, RecallSeq

pytestmark = pytest.mark.usefixtures("clean_env")

# ten paragraphs (segments shows each when it is complete): ~220 pieces at 20 ms, 4 s to write
LONG = "\n\n".join(" ".join(f"word{n}" for n in range(p, p + 20)) for p in range(0, 200, 20))


SLOW_OK = {"timeout_s": 30}  # the slow answer takes longer than the stack's default


def _slow(**options: Any) -> FakeOpenAI:
    return FakeOpenAI(
        reply=lambda messages: LONG if "slow" in str(messages[-1]["content"]) else "quick",
        chunk_size=6,
        chunk_interval_s=0.02,
        **options,
    )


def _robots(mode: str) -> list[dict[str, Any]]:
    return [
        {"id": "@RBT#helper", "persona": "You are Helper.", "reply_mode": mode},
        {"id": "@RBT#member", "persona": "You are Member.", "reply_mode": mode},
    ]


async def _eventually(probe: Any, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not probe():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def _showing(stack: Stack, **criteria: Any) -> Message:
    """The robot's first message once it shows some of the answer."""
    return await stack.emu.wait_until(
        lambda: next((m for m in stack.emu.messages(**criteria) if "word1" in m.text), None)
    )


def _contents(llm: FakeOpenAI) -> list[str]:
    return [str(m["content"]) for m in llm.requests[-1]["messages"]]


@pytest.mark.parametrize("mode", ["stream", "edit", "segments"])
async def test_a_question_recalled_mid_answer_stops_the_model_and_takes_the_answer_back(
    tmp_path: Path, mode: str
) -> None:
    llm = _slow()
    async with running_stack(
        tmp_path, llm=llm, model_options=SLOW_OK, robots=_robots(mode)
    ) as stack:
        question = stack.emu.user_send("alice", "@RBT#helper", "a slow one, please")
        shown = await _showing(stack, from_="@RBT#helper", to="alice")
        stack.emu.world.user_recall("alice", question.id)  # as the page's Recall button does

        await _eventually(lambda: llm.hangups == 1)  # the model's stream was closed
        await stack.emu.wait_until(lambda: shown.recalled)
        # nothing of the answer stays visible, and nothing more arrives
        mark = stack.emu.mark()
        stack.emu.user_send("alice", "@RBT#helper", "next question")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        assert reply.text == "quick"
        robot = stack.emu.messages(from_="@RBT#helper", to="alice")
        assert [m.text for m in robot if not m.recalled] == ["quick"]
        # the recalled question is in no context: it is gone for the robot too
        assert not any("slow one" in c for c in _contents(llm))
        assert len(llm.calls) == 2


async def test_a_group_question_recalled_by_the_app_admin_stops_its_answer(tmp_path: Path) -> None:
    llm = _slow()
    async with running_stack(
        tmp_path, llm=llm, model_options=SLOW_OK, robots=_robots("edit")
    ) as stack:
        stack.emu.world.create_group(
            type="Work", name="G", owner="alice", group_id="g1", members=["bob", "@RBT#helper"]
        )
        question = stack.emu.user_send_group("bob", "g1", "@Helper slow please", ("@RBT#helper",))
        shown = await _showing(stack, from_="@RBT#helper", group="g1")
        recall = GroupMsgRecall(group_id="g1", msg_seq_list=(RecallSeq(msg_seq=question.msg_seq),))
        answer = await stack.services.tencent.call(recall)  # the REST API, signed as the admin

        assert [r.ret_code for r in answer.recall_ret_list] == [0]
        await _eventually(lambda: llm.hangups == 1)
        await stack.emu.wait_until(lambda: shown.recalled)
        assert stack.services.metrics.stopped.labels("@RBT#helper", "recalled")._value.get() == 1


async def test_admin_msgwithdraw_of_a_waiting_question_means_it_is_never_answered(
    tmp_path: Path,
) -> None:
    llm = _slow()
    async with running_stack(
        tmp_path, llm=llm, model_options=SLOW_OK, robots=_robots("off")
    ) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "slow first")
        waiting = stack.emu.user_send("alice", "@RBT#helper", "the second question")
        await _eventually(lambda: len(llm.calls) == 1)  # the first is being answered
        withdraw = AdminMsgWithdraw(
            from_account="alice", to_account="@RBT#helper", msg_key=waiting.key
        )
        await stack.services.tencent.call(withdraw)
        assert waiting.recalled

        first = await stack.emu.wait_message(from_="@RBT#helper", to="alice", limit_s=20)
        assert first.text == LONG  # the first, not recalled, is answered whole
        mark = stack.emu.mark()
        stack.emu.user_send("alice", "@RBT#helper", "third")
        await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        # the second was skipped: two model calls, and its text reached none
        assert len(llm.calls) == 2
        assert not any("second question" in c for c in _contents(llm))


async def test_cancel_ends_the_shown_answer_keeps_it_and_says_so(tmp_path: Path) -> None:
    llm = _slow()
    async with running_stack(
        tmp_path, llm=llm, model_options=SLOW_OK, robots=_robots("stream")
    ) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "slow story")
        shown = await _showing(stack, from_="@RBT#helper", to="alice")
        mark = stack.emu.mark()
        stack.emu.user_send("alice", "@RBT#helper", "/cancel")

        said = await stack.emu.wait_message(
            from_="@RBT#helper", to="alice", after=mark, where=lambda m: m.stream is None
        )
        assert said.text == CANCEL_TEXT
        assert llm.hangups == 1
        assert shown.stream is not None and shown.stream.finished
        assert shown.text.endswith(STOPPED) and not shown.recalled
        assert LONG.startswith(shown.text.removesuffix(STOPPED).strip())
        # what was shown is the stored answer: the next context has it, ending "(stopped)"
        mark = stack.emu.mark()
        stack.emu.user_send("alice", "@RBT#helper", "go on")
        await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        assert _contents(llm)[-3:-1] == ["slow story", shown.text.strip()]


async def test_cancel_with_no_answer_running_says_there_was_nothing_to_stop(
    tmp_path: Path,
) -> None:
    async with running_stack(
        tmp_path, llm=_slow(), model_options=SLOW_OK, robots=_robots("off")
    ) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "/cancel")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        assert reply.text == NOTHING_TO_CANCEL_TEXT


async def test_cancel_in_a_group_stops_only_the_senders_own_answer(tmp_path: Path) -> None:
    llm = _slow()
    async with running_stack(
        tmp_path, llm=llm, model_options=SLOW_OK, robots=_robots("off")
    ) as stack:
        stack.emu.world.create_group(
            type="Work",
            name="G",
            owner="alice",
            group_id="g1",
            members=["bob", "carol", "@RBT#helper"],
        )
        stack.emu.user_send_group("bob", "g1", "@Helper slow for bob", ("@RBT#helper",))
        await _eventually(lambda: len(llm.calls) == 1)
        stack.emu.user_send_group("carol", "g1", "@Helper /cancel", ("@RBT#helper",))
        # carol's /cancel waits its turn behind bob's answer, which it does not stop
        answer = await stack.emu.wait_message(from_="@RBT#helper", group="g1", limit_s=20)
        assert answer.text == f"@bob {LONG}"
        told = await stack.emu.wait_messages(2, from_="@RBT#helper", group="g1")
        assert told[1].text == f"@carol {NOTHING_TO_CANCEL_TEXT}"
        assert llm.hangups == 0
