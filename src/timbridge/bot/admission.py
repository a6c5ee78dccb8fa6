"""Whether a message gets a model call: shedding under overload, the per-user message rate, the
daily token budgets; and the ledger entry every model call leaves.

Each refusal tells the user why, at most once per its window (the busy notice per
`busy_notice_every_s`, the rate notice per minute, the budget notice per day and scope), so a
user who keeps writing is not answered with a notice per message.
"""

from __future__ import annotations

import time
from typing import Literal

import structlog

from timbridge.bot.conversation import Conversation
from timbridge.bot.replies import ReplySender
from timbridge.bot.sentences import BUDGET_TEXT, LIMIT_TEXT
from timbridge.coordination.base import Flags, Job
from timbridge.llm.chain import Answer
from timbridge.metrics import Metrics
from timbridge.settings import Settings
from timbridge.storage.history import History, Purpose, UsageRecord, utc_day

__all__ = ["Admission", "Scope", "ledger_entry"]

_log = structlog.get_logger("timbridge.admission")

Scope = Literal["user", "group"]
_WHO: dict[Scope, str] = {"user": "You have", "group": "This group has"}
_DAY_S = 86_400


def ledger_entry(
    conv: Conversation, identity: str, answer: Answer, purpose: Purpose
) -> UsageRecord:
    """The ledger row for one model call, stored with the turns it produced."""
    return UsageRecord(
        robot=conv.robot,
        sender=conv.sender,
        group_id=conv.peer if conv.kind == "group" else None,
        identity=identity,
        purpose=purpose,
        profile=answer.profile,
        model=answer.model,
        input_tokens=answer.usage.input_tokens,
        output_tokens=answer.usage.output_tokens,
        cached_tokens=answer.usage.cached_tokens,
    )


class Admission:
    """The checks a message passes before the model is asked."""

    def __init__(
        self,
        settings: Settings,
        store: History,
        flags: Flags,
        replies: ReplySender,
        metrics: Metrics,
    ) -> None:
        self._server = settings.server
        self._robots = {r.id: r for r in settings.robots}
        self._store = store
        self._flags = flags
        self._replies = replies
        self._metrics = metrics

    async def shed(self, job: Job, conv: Conversation) -> bool:
        """Whether the message waited too long (`server.max_wait_s`) to be worth a model call:
        the user is told the robot is busy (once per conversation per `busy_notice_every_s`)
        and the job is done. A job that already has its answer stored is never shed: it
        resumes (a restart after a crash), so that nobody is told "busy" after an answer."""
        waited = time.time() - job.received_at
        if self._server.max_wait_s <= 0 or waited <= self._server.max_wait_s:
            return False
        if await self._store.reply_for(conv.key, job.identity) is not None:
            return False
        self._metrics.shed.labels(conv.robot).inc()
        told = await self._flags.once(f"busy|{conv.key}", self._server.busy_notice_every_s)
        _log.warning("overload.shed", waited_s=round(waited, 1), told=told)
        if told:
            self._metrics.busy_notices.labels(conv.robot).inc()
            await self._replies.send(conv, job.identity, self._robots[conv.robot].busy_text)
        return True

    async def refused(self, job: Job, conv: Conversation) -> bool:
        """Whether the user is over the message rate or a daily token budget (told once)."""
        return await self._over_rate(job, conv) or await self._over_budget(job, conv)

    async def _over_rate(self, job: Job, conv: Conversation) -> bool:
        robot = self._robots[conv.robot]
        decision = await self._flags.rate(f"{conv.robot}|{conv.sender}", robot.messages_per_minute)
        if decision.allowed:
            return False
        _log.info("limit.messages_per_minute", sender=conv.sender, told=decision.notify)
        self._metrics.limited.labels(conv.robot).inc()
        if decision.notify:
            seconds = max(1, round(decision.retry_after_s))
            notice = LIMIT_TEXT.format(limit=robot.messages_per_minute, seconds=seconds)
            await self._replies.send(conv, job.identity, notice)
        return True

    async def _over_budget(self, job: Job, conv: Conversation) -> bool:
        robot = self._robots[conv.robot]
        day = utc_day()
        checks: list[tuple[Scope, int, str]] = [
            ("user", robot.tokens_per_user_per_day, conv.sender)
        ]
        if conv.kind == "group":
            checks.append(("group", robot.tokens_per_group_per_day, conv.peer))
        for scope, limit, who in checks:
            if not limit:
                continue
            where = {"sender": who} if scope == "user" else {"group_id": who}
            used = await self._store.tokens_on(day, conv.robot, **where)
            if used < limit:
                continue
            told = await self._flags.once(f"budget|{conv.robot}|{scope}|{who}|{day}", _DAY_S)
            _log.info("limit.tokens_per_day", scope=scope, used=used, limit=limit, told=told)
            self._metrics.limited.labels(conv.robot).inc()
            if told:
                left = _DAY_S - time.time() % _DAY_S
                notice = BUDGET_TEXT.format(
                    who=_WHO[scope],
                    limit=limit,
                    hours=int(left // 3600),
                    minutes=int(left % 3600 // 60),
                )
                await self._replies.send(conv, job.identity, notice)
            return True
        return False
