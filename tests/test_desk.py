"""Tencent Desk (智能客服) with timbridge as its self-built AI, end to end in the emulator: a
user's messages in the robot phase arrive as ``Desk.SessionEventNotify`` /
``ChatBot.UserSendMsg`` and are answered through the REST API as the customer-service account;
``/human`` transfers the session (``desk_http_svc/transfer_to_human``); sessions outside the
rollout share go to a person at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from tests.fakes.openai import FakeOpenAI
from tests.stack import running_stack, stack_emulator
from tests.test_webhook import post, signed
from timbridge.bot.handoff import in_rollout
from timbridge.bot.sentences import DESK_HANDOFF_TEXT
from timbridge.settings import RobotSettings

pytestmark = pytest.mark.usefixtures("clean_env")

SERVICE = "@shop_service"


def _robots(**desk: Any) -> list[dict[str, Any]]:
    return [
        {"id": SERVICE, "persona": "You are the shop.", "desk": {"agent_group": 7, **desk}},
        {"id": "@RBT#member", "persona": "You are Member."},
    ]


async def test_desk_messages_are_answered_as_the_service_and_human_transfers(
    tmp_path: Path,
) -> None:
    emu = stack_emulator(desk_services=(SERVICE,))
    llm = FakeOpenAI(reply=lambda messages: f"answer to: {messages[-1]['content']}")
    async with running_stack(tmp_path, llm=llm, emu=emu, robots=_robots()) as stack:
        emu.user_send("alice", SERVICE, "when do you open?")
        first = await emu.wait_message(from_=SERVICE, to="alice")
        assert first.text == "answer to: when do you open?"
        mark = emu.mark()
        emu.user_send("alice", SERVICE, "/human")
        told = await emu.wait_message(from_=SERVICE, to="alice", after=mark)
        assert told.text == DESK_HANDOFF_TEXT
        session = emu.world.desk_sessions["alice", SERVICE]
        assert session.transferred and session.agent_group == 7
        emu.user_send("alice", SERVICE, "hello? a person, please")  # now the agents' to answer
        await stack.emu.webhooks.idle()
        await stack.services.coordination.idle()  # type: ignore[attr-defined]
    assert len(llm.calls) == 1
    delivered = [d for d in emu.webhooks.log if d.command == "Desk.SessionEventNotify"]
    assert [d.body["Event"] for d in delivered] == ["ChatBot.UserSendMsg"] * 2


async def test_sessions_outside_the_rollout_go_to_a_person_at_once(tmp_path: Path) -> None:
    emu = stack_emulator(desk_services=(SERVICE,))
    async with running_stack(tmp_path, emu=emu, robots=_robots(rollout_percent=0)) as stack:
        emu.user_send("alice", SERVICE, "hi")
        await emu.webhooks.idle()
        await stack.services.coordination.idle()  # type: ignore[attr-defined]
        assert emu.world.desk_sessions["alice", SERVICE].transferred
    assert stack.llm.calls == [] and emu.messages(from_=SERVICE) == []


def test_the_rollout_share_is_stable_per_session_and_near_its_percentage() -> None:
    sessions = [f"session-{n}" for n in range(2000)]
    chosen = [s for s in sessions if in_rollout(s, 30)]
    assert 0.25 < len(chosen) / len(sessions) < 0.35
    assert chosen == [s for s in sessions if in_rollout(s, 30)]
    assert not any(in_rollout(s, 0) for s in sessions) and all(in_rollout(s, 100) for s in sessions)


async def test_other_desk_events_are_ignored_and_a_bad_one_names_its_field(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, robots=_robots()) as stack:
        begin = {"SessionId": "s-1", "Event": "SessionBegin", "ClientUserId": "alice"}
        got, answer = await post(stack, signed("Desk.SessionEventNotify"), orjson.dumps(begin))
        assert (got, answer["ErrorCode"]) == (200, 0)
        bad = {"Event": "ChatBot.UserSendMsg", "ClientUserId": "alice"}
        got, answer = await post(stack, signed("Desk.SessionEventNotify"), orjson.dumps(bad))
        assert got == 400 and "SessionId" in answer["ErrorInfo"]
        empty = {"SessionId": "s-2", "Event": "ChatBot.UserSendMsg", "ClientUserId": "alice"}
        got, answer = await post(stack, signed("Desk.SessionEventNotify"), orjson.dumps(empty))
        assert got == 400 and "CustomerServiceId" in answer["ErrorInfo"]
    assert stack.llm.calls == []


def test_only_a_desk_account_may_be_other_than_a_robot() -> None:
    with pytest.raises(ValidationError, match="@RBT#"):
        RobotSettings(id="@shop_service")
    assert RobotSettings(id="@shop_service", desk={}).desk is not None
    with pytest.raises(ValidationError, match=r"handoff\.group"):
        RobotSettings(id="@RBT#helper", handoff={})
