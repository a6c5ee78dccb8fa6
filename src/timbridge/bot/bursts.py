"""Bursts: several messages a user sends in quick succession are answered once, together.

The first job of a burst waits up to the robot's `burst_window_s` after each message for the
next one queued behind it in the same conversation, and claims each it joins (a key per joined
message, naming the job that answers it); the joined jobs find the claim and end silently. A
burst ends after `BURST_MAX_MESSAGES`, or `BURST_MAX_S` after its first message, so that a user
who keeps writing still gets answers; a command, another sender or a longer pause ends it too.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from timbridge.bot.commands import parse_command
from timbridge.bot.conversation import Conversation
from timbridge.bot.text import message_text
from timbridge.coordination.base import Coordinator, Job
from timbridge.protocol.callbacks import C2CMessageEvent, GroupMessageEvent, parse_event
from timbridge.settings import Settings

__all__ = ["BURST_MAX_MESSAGES", "BURST_MAX_S", "Bursts"]

_log = structlog.get_logger("timbridge.bursts")

BURST_MAX_MESSAGES = 8
BURST_MAX_S = 10.0
_CLAIM_TTL_S = 3600


def _key(job: Job) -> str:
    return f"burst|{job.robot}|{job.identity}"


class Bursts:
    """Joins queued messages into the job that answers them."""

    def __init__(self, settings: Settings, coordination: Coordinator) -> None:
        self._windows = {r.id: r.burst_window_s for r in settings.robots}
        self._coordination = coordination

    async def answered_elsewhere(self, job: Job) -> bool:
        """Whether an earlier job of a burst answers `job`'s message with its own."""
        if self._windows[job.robot] <= 0:  # no job absorbs another
            return False
        holder = await self._coordination.claim(_key(job), job.identity, _CLAIM_TTL_S)
        if holder == job.identity:
            return False
        _log.info("burst.answered_with_earlier", identity=job.identity, by=holder)
        return True

    async def _claim(self, queued: Job, answerer: Job) -> bool:
        holder = await self._coordination.claim(_key(queued), answerer.identity, _CLAIM_TTL_S)
        return holder == answerer.identity

    async def join(self, job: Job, conv: Conversation, text: str) -> str:
        """`text` with the messages the same user sent right after it (each within the robot's
        `burst_window_s` of the one before, before the reply starts), joined by newlines."""
        window = self._windows[conv.robot]
        if window <= 0:
            return text
        texts = [text]
        joined = {job.identity}
        last = job.received_at
        while len(texts) < BURST_MAX_MESSAGES and time.time() - job.received_at < BURST_MAX_S:
            await asyncio.sleep(max(0.0, last + window - time.time()))
            added = False
            for queued in await self._coordination.peek(job.conversation):
                if len(texts) >= BURST_MAX_MESSAGES:
                    break
                if queued.identity in joined:
                    continue
                event = queued.event or parse_event(queued.body, queued.command)
                if not isinstance(event, C2CMessageEvent | GroupMessageEvent):
                    break
                more = message_text(event)
                later = queued.received_at - last
                if later > window or event.from_account != conv.sender or parse_command(more):
                    break  # the burst is over: that one gets its own answer
                if not more or not await self._claim(queued, job):
                    continue
                texts.append(more)
                joined.add(queued.identity)
                last = queued.received_at
                added = True
            if not added:
                break
        if len(texts) > 1:
            _log.info("burst.joined", messages=len(texts))
        return "\n".join(texts)
