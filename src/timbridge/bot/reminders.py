"""Reminders: set (``/remind``, the model's ``schedule`` tool), listed and cancelled
(``/reminders``), and sent when due by a loop in every worker process.

A due reminder is taken by one process only (`storage.reminders`), sent as the robot into the
chat it was set in (in a group, @-mentioning who set it), and marked sent. One found late (the
service was down when it fell due) is sent within `reminders.grace_s`, saying how late, and
dropped as missed after that. `timbridge_reminders_total{robot, outcome}` counts due, sent,
late, missed and failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import structlog

from timbridge.bot.conversation import Conversation
from timbridge.bot.replies import ReplySender
from timbridge.bot.sentences import (
    LATE_REMINDER,
    REMINDER,
    TIME_PASSED,
    WHAT_MISSING,
    WHEN_UNCLEAR,
)
from timbridge.bot.when import parse_when
from timbridge.errors import LLMError, StorageError, TencentError
from timbridge.llm.base import ChatMessage
from timbridge.llm.chain import ModelChain
from timbridge.metrics import Metrics
from timbridge.settings import RobotSettings, ScheduleSettings, Settings
from timbridge.settings.cron import previous_fire
from timbridge.storage.reminders import Reminder, Reminders
from timbridge.tencent.outbound import Destination, Part

__all__ = ["ReminderSender", "Scheduling", "local_time"]

_log = structlog.get_logger("timbridge.reminders")


def local_time(at: float, zone: str) -> str:
    """`at` as users of that zone read it: ``2026-12-24 18:00 (Asia/Shanghai)``."""
    return datetime.fromtimestamp(at, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M") + f" ({zone})"


class Scheduling:
    """Setting, listing and cancelling a user's reminders."""

    def __init__(self, settings: Settings, reminders: Reminders) -> None:
        self._robots = {r.id: r for r in settings.robots}
        self._limit = settings.reminders.per_user
        self._reminders = reminders

    def zone(self, robot: str) -> str:
        return self._robots[robot].time_zone

    async def set(
        self, conv: Conversation, identity: str, when: str, text: str = ""
    ) -> Reminder | str:
        """Keep a reminder for `when` (``in 10 minutes``, ``tomorrow at 9 …``; the rest of it,
        or `text`, is what is sent); what is wrong with it otherwise, to tell the user."""
        zone = ZoneInfo(self.zone(conv.robot))
        parsed = parse_when(when, datetime.now(UTC), zone)
        if parsed is None:
            return WHEN_UNCLEAR
        due, rest = parsed
        body = (text or rest).strip()
        if not body:
            return WHAT_MISSING
        if due.timestamp() <= time.time():
            return TIME_PASSED
        pending = await self._reminders.pending(conv.robot, conv.key, conv.sender)
        if len(pending) >= self._limit:
            return (
                f"You have {len(pending)} reminders already; cancel one with /reminders cancel N."
            )
        return await self._reminders.add(
            conv.place(), text=body, due_at=due.timestamp(), identity=identity
        )

    async def pending(self, conv: Conversation) -> list[Reminder]:
        return await self._reminders.pending(conv.robot, conv.key, conv.sender)

    async def cancel(self, conv: Conversation, number: int) -> bool:
        return await self._reminders.cancel(number, conv.robot, conv.sender)


class ReminderSender:
    """Sends due reminders, and the robots' scheduled messages, until stopped."""

    def __init__(
        self,
        settings: Settings,
        reminders: Reminders,
        replies: ReplySender,
        metrics: Metrics,
        *,
        models: ModelChain | None = None,
    ) -> None:
        self._robots = {r.id for r in settings.robots}
        self._settings = settings
        self._models = models
        self._fired: dict[tuple[str, str], float] = {}  # the last fire time handled, per schedule
        self._every = settings.reminders.every_s
        self._grace = settings.reminders.grace_s
        self._reminders = reminders
        self._replies = replies
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.send_due()
            except StorageError as exc:  # the store is back soon; the reminders wait there
                _log.warning("reminders.unreadable", error=str(exc))
            await asyncio.sleep(self._every)

    async def send_due(self) -> int:
        """Send what is due now; how many reminders were sent."""
        now = time.time()
        await self._scheduled(now)
        sent = 0
        for reminder in await self._reminders.take_due(now):
            if reminder.robot not in self._robots:  # another deployment's robot: leave it be
                continue
            self._metrics.reminders.labels(reminder.robot, "due").inc()
            late = now - reminder.due_at
            if late > self._grace:
                await self._reminders.finish(reminder.id, "missed")
                self._metrics.reminders.labels(reminder.robot, "missed").inc()
                _log.warning("reminder.missed", reminder=reminder.id, late_s=round(late))
                continue
            text = REMINDER.format(text=reminder.text)
            if late > 60:
                text += LATE_REMINDER.format(minutes=round(late / 60))
                self._metrics.reminders.labels(reminder.robot, "late").inc()
            dest = Destination(
                reminder.robot, reminder.kind, reminder.peer, reminder.sender, reminder.topic
            )
            try:
                await self._replies.outbound.text(
                    dest, Part(f"reminder|{reminder.id}", 0), text, mention=True
                )
            except TencentError as exc:
                await self._reminders.finish(reminder.id, "failed")
                self._metrics.reminders.labels(reminder.robot, "failed").inc()
                _log.error("reminder.failed", reminder=reminder.id, error=str(exc))
                continue
            await self._reminders.finish(reminder.id, "sent")
            self._metrics.reminders.labels(reminder.robot, "sent").inc()
            _log.info("reminder.sent", reminder=reminder.id, late_s=round(max(0.0, late)))
            sent += 1
        return sent

    async def _scheduled(self, now: float) -> None:
        """The robots' scheduled messages whose time came: each fire time is sent once, by the
        process that claims it; one missed while nothing ran is sent within the grace. The
        first time a schedule is seen, its past fire time is only noted (nothing is sent for
        the time before it existed)."""
        for robot in self._settings.robots:
            zone = ZoneInfo(robot.time_zone)
            for schedule in robot.schedules:
                fire = previous_fire(schedule.cron, datetime.fromtimestamp(now, zone)).timestamp()
                key = (robot.id, schedule.name)
                if self._fired.get(key) == fire:
                    continue
                if not await self._reminders.ran_before(robot.id, schedule.name):
                    await self._reminders.claim_run(robot.id, schedule.name, fire, state="skipped")
                elif now - fire <= self._grace and await self._reminders.claim_run(
                    robot.id, schedule.name, fire
                ):
                    state = await self._send_scheduled(robot, schedule, fire)
                    await self._reminders.finish_run(robot.id, schedule.name, fire, state)
                self._fired[key] = fire

    async def _send_scheduled(
        self, settings: RobotSettings, schedule: ScheduleSettings, fire: float
    ) -> str:
        robot = settings.id
        text = schedule.text or ""
        if schedule.prompt is not None:
            if self._models is None:
                return "failed"
            request = [
                ChatMessage("system", settings.persona),
                ChatMessage("user", schedule.prompt),
            ]
            try:
                text = (await self._models.answer(settings.model, request)).text.strip()
            except LLMError as exc:
                self._metrics.reminders.labels(robot, "failed").inc()
                _log.error("schedule.failed", schedule=schedule.name, error=str(exc))
                return "failed"
        targets = [Destination(robot, "c2c", user, user, None) for user in schedule.to]
        targets += [Destination(robot, "group", group, "", None) for group in schedule.groups]
        for number, dest in enumerate(targets):
            part = Part(f"schedule|{schedule.name}|{fire:.0f}", number)
            try:
                await self._replies.outbound.text(dest, part, text, mention=False)
            except TencentError as exc:  # the other targets still get it
                self._metrics.reminders.labels(robot, "failed").inc()
                _log.error(
                    "schedule.not_sent", schedule=schedule.name, to=dest.peer, error=str(exc)
                )
                continue
            self._metrics.reminders.labels(robot, "scheduled").inc()
        _log.info("schedule.sent", schedule=schedule.name, targets=len(targets))
        return "sent"
