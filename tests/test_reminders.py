"""Reminders end to end in the emulator: ``/remind`` and the model's ``schedule`` tool keep one,
``/reminders`` lists and cancels, the workers send it once when due (also after a restart, and
with two deployments' workers on one PostgreSQL), late ones say so, missed ones are dropped."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from tests.fakes.openai import FakeOpenAI
from tests.stack import Stack, running_stack, stack_emulator
from timbridge.bot.sentences import NO_REMINDERS, REMIND_USAGE, WHEN_UNCLEAR
from timbridge.bot.when import parse_when
from timbridge.settings import RobotSettings
from timbridge.storage import Store
from timbridge.storage.place import Place

pytestmark = pytest.mark.usefixtures("clean_env")

FAST = {"every_s": 0.1}
ALICE = Place("@RBT#helper", "c2c:@RBT#helper:alice", "c2c", "alice", "alice", None)


def _robots(**extra: Any) -> list[dict[str, Any]]:
    return [
        {"id": "@RBT#helper", "persona": "You are Helper.", "time_zone": "Asia/Shanghai", **extra},
        {"id": "@RBT#member", "persona": "You are Member."},
    ]


async def _say(stack: Stack, text: str) -> str:
    mark = stack.emu.mark()
    stack.emu.user_send("alice", "@RBT#helper", text)
    return (await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)).text


def _reminded(stack: Stack, text: str) -> list[str]:
    return [
        m.text
        for m in stack.emu.messages(from_="@RBT#helper", to="alice")
        if m.text.startswith(f"Reminder: {text}")
    ]


async def test_a_reminder_in_two_seconds_arrives_once(tmp_path: Path) -> None:
    async with running_stack(tmp_path, robots=_robots(), reminders=FAST) as stack:
        told = await _say(stack, "/remind in 2 seconds stretch your legs")
        assert told.startswith("I will remind you at ") and "(Asia/Shanghai)" in told
        assert told.endswith("(reminder #1): stretch your legs")
        listed = await _say(stack, "/reminders")
        assert listed.startswith("#1  ") and listed.endswith("stretch your legs")
        await stack.emu.wait_until(lambda: _reminded(stack, "stretch") or None, limit_s=10)
        await asyncio.sleep(0.5)  # a second send would have come by now
        assert _reminded(stack, "stretch") == ["Reminder: stretch your legs"]
        assert await _say(stack, "/reminders") == NO_REMINDERS
        sent = stack.services.metrics.reminders.labels("@RBT#helper", "sent")._value.get()
    assert sent == 1
    assert stack.llm.calls == []


async def test_reminders_are_cancelled_and_bad_ones_are_explained(tmp_path: Path) -> None:
    async with running_stack(tmp_path, robots=_robots(), reminders=FAST) as stack:
        await _say(stack, "/remind in 2 seconds never mind")
        assert await _say(stack, "/reminders cancel 1") == "Cancelled reminder #1."
        assert await _say(stack, "/reminders cancel 1") == "You have no pending reminder #1."
        assert await _say(stack, "/remind") == REMIND_USAGE
        assert await _say(stack, "/remind someday call Lin") == WHEN_UNCLEAR
        assert await _say(stack, "/remind in 5 minutes") == (
            "What should I remind you of? Put it after the time."
        )
        await asyncio.sleep(2.5)
        assert _reminded(stack, "never") == []


async def test_a_reminder_set_before_a_restart_arrives_once_after_it(tmp_path: Path) -> None:
    emu = stack_emulator()
    async with running_stack(tmp_path, emu=emu, robots=_robots(), reminders=FAST) as stack:
        await _say(stack, "/remind in 2 seconds the oven")
    await asyncio.sleep(2.5)  # it fell due while nothing ran
    async with running_stack(tmp_path, emu=emu, robots=_robots(), reminders=FAST) as stack:
        await emu.wait_until(lambda: _reminded(stack, "the oven") or None, limit_s=10)
        await asyncio.sleep(0.5)
        assert _reminded(stack, "the oven") == ["Reminder: the oven"]


async def test_late_reminders_say_so_and_missed_ones_are_dropped(tmp_path: Path) -> None:
    reminders = {**FAST, "grace_s": 600}
    async with running_stack(tmp_path, robots=_robots(), reminders=reminders) as stack:
        store = stack.services.store.reminders
        await store.add(ALICE, text="late one", due_at=time.time() - 300, identity="late")
        await store.add(ALICE, text="lost one", due_at=time.time() - 900, identity="lost")
        await stack.emu.wait_until(lambda: _reminded(stack, "late one") or None, limit_s=10)
        await asyncio.sleep(0.5)
        metrics = stack.services.metrics.reminders
        missed = metrics.labels("@RBT#helper", "missed")._value.get()
        late = metrics.labels("@RBT#helper", "late")._value.get()
    assert _reminded(stack, "late one") == [
        "Reminder: late one (sent 5 min late: I could not send it on time)"
    ]
    assert _reminded(stack, "lost one") == []
    assert (missed, late) == (1, 1)


async def test_the_model_sets_a_reminder_with_the_schedule_tool(tmp_path: Path) -> None:
    def decide(messages: list[dict[str, Any]]) -> list[Any] | None:
        if messages[-1]["role"] == "tool":
            return None
        return [("schedule", {"when": "in 2 seconds", "text": "drink some water"})]

    llm = FakeOpenAI(tool_calls=decide, reply=lambda messages: str(messages[-1]["content"]))
    robots = _robots(tools=["schedule"])
    async with running_stack(tmp_path, llm=llm, robots=robots, reminders=FAST) as stack:
        said = await _say(stack, "remind me to drink water in a moment")
        await stack.emu.wait_until(lambda: _reminded(stack, "drink") or None, limit_s=10)
    assert said.startswith("Reminder #1 set for ") and said.endswith("Tell the user so.")
    assert _reminded(stack, "drink") == ["Reminder: drink some water"]


async def test_two_deployments_workers_on_one_postgresql_send_each_reminder_once(
    tmp_path: Path, scale: dict[str, Any]
) -> None:
    emu = stack_emulator()
    async with (
        running_stack(tmp_path / "a", emu=emu, robots=_robots(), **scale) as first,
        running_stack(tmp_path / "b", emu=emu, robots=_robots(), **scale),
    ):
        due = time.time() + 1.0
        for n in range(20):
            await first.services.store.reminders.add(
                ALICE, text=f"number {n:02d}", due_at=due, identity=f"bulk-{n}"
            )
        await emu.wait_until(lambda: len(_reminded(first, "number")) >= 20 or None, limit_s=15)
        await asyncio.sleep(0.5)
        assert sorted(_reminded(first, "number")) == [
            f"Reminder: number {n:02d}" for n in range(20)
        ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("in 90 seconds tea", ("2026-12-03 18:01:30", "tea")),
        ("at 9:30 standup", ("2026-12-04 09:30:00", "standup")),
        ("at 7pm dinner", ("2026-12-03 19:00:00", "dinner")),
        ("tomorrow at 8 run", ("2026-12-04 08:00:00", "run")),
        ("2026-12-24 18:00 party", ("2026-12-24 18:00:00", "party")),
        ("in 3 fortnights x", None),
        ("at 25:00 x", None),
        ("2026-02-30 10:00 x", None),
        ("whenever", None),
    ],
)
def test_times_are_read_in_the_robot_s_zone(text: str, expected: tuple[str, str] | None) -> None:
    now = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)  # 18:00 in Shanghai
    found = parse_when(text, now, ZoneInfo("Asia/Shanghai"))
    assert (None if found is None else (found[0].strftime("%Y-%m-%d %H:%M:%S"), found[1])) == (
        expected
    )


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="not an IANA time zone"):
        RobotSettings(id="@RBT#helper", time_zone="Mars/Olympus")


def _scheduled(**extra: Any) -> list[dict[str, Any]]:
    schedule = {"name": "checkin", "cron": "* * * * *", "to": ["alice"], **extra}
    if "prompt" not in extra:
        schedule.setdefault("text", "Good morning! How did you sleep?")
    return _robots(schedules=[schedule])


async def _seen_before(stack: Stack, name: str = "checkin") -> None:
    """As if the schedule had run an hour ago: its fire time of this minute is then due."""
    await stack.services.store.reminders.claim_run(
        "@RBT#helper", name, time.time() - 3600, state="sent"
    )


async def test_a_scheduled_message_goes_to_each_user_and_group_once(tmp_path: Path) -> None:
    emu = stack_emulator()
    emu.world.create_group(
        type="Work", name="Team", owner="bob", group_id="team", members=["@RBT#helper"]
    )
    robots = _scheduled(groups=["team"])
    async with running_stack(tmp_path, emu=emu, robots=robots, reminders=FAST) as stack:
        await _seen_before(stack)
        to_alice = await emu.wait_message(from_="@RBT#helper", to="alice", limit_s=10)
        to_team = await emu.wait_message(from_="@RBT#helper", group="team", limit_s=10)
        await asyncio.sleep(0.5)  # a second send would have come by now
        assert len(emu.messages(from_="@RBT#helper")) == 2
    assert to_alice.text == to_team.text == "Good morning! How did you sleep?"
    assert stack.llm.calls == []


async def test_a_scheduled_prompt_is_answered_by_the_model(tmp_path: Path) -> None:
    llm = FakeOpenAI(reply=lambda messages: f"check-in: {messages[-1]['content']}")
    robots = _scheduled(prompt="Ask the user kindly how their day is going.")
    async with running_stack(tmp_path, llm=llm, robots=robots, reminders=FAST) as stack:
        await _seen_before(stack)
        sent = await stack.emu.wait_message(from_="@RBT#helper", to="alice", limit_s=10)
    assert sent.text == "check-in: Ask the user kindly how their day is going."
    assert llm.requests[0]["messages"][0]["content"] == "You are Helper."


async def test_a_new_schedule_does_not_send_for_the_time_before_it_existed(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, robots=_scheduled(), reminders=FAST) as stack:
        await asyncio.sleep(1.0)  # ten looks at the schedule
        assert stack.emu.messages(from_="@RBT#helper") == []
        assert await stack.services.store.reminders.ran_before("@RBT#helper", "checkin")


async def test_two_deployments_send_a_scheduled_message_once(
    tmp_path: Path, scale: dict[str, Any]
) -> None:
    store = await Store.open(
        scale["store"]["url"]
    )  # as if it had run an hour ago, before either starts
    try:
        await store.reminders.claim_run("@RBT#helper", "checkin", time.time() - 3600)
    finally:
        await store.aclose()
    emu = stack_emulator()
    async with (
        running_stack(tmp_path / "a", emu=emu, robots=_scheduled(), **scale),
        running_stack(tmp_path / "b", emu=emu, robots=_scheduled(), **scale),
    ):
        await emu.wait_message(from_="@RBT#helper", to="alice", limit_s=10)
        await asyncio.sleep(0.5)
        assert len(emu.messages(from_="@RBT#helper", to="alice")) == 1


@pytest.mark.parametrize(
    ("schedule", "fragment"),
    [
        ({"cron": "61 9 * * *", "text": "x", "to": ["a"]}, "not a cron expression"),
        ({"cron": "0 9 * * *", "text": "x", "prompt": "y", "to": ["a"]}, "either text"),
        ({"cron": "0 9 * * *", "text": "x"}, r"the users \(to\) or the groups"),
    ],
)
def test_a_bad_schedule_is_refused_saying_why(schedule: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        RobotSettings(id="@RBT#helper", schedules=[{"name": "s", **schedule}])
    with pytest.raises(ValidationError, match="schedule names must differ"):
        twice = {"name": "s", "cron": "0 9 * * *", "text": "x", "to": ["a"]}
        RobotSettings(id="@RBT#helper", schedules=[twice, twice])
