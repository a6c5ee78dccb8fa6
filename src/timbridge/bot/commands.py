"""Chat commands a user can send a robot (``/help``, ``/reset``, ``/compact``, ``/usage``,
``/cancel``, ``/human``, ``/rate``, ``/remind``, ``/reminders``, ``/memory``, ``/forget``):
how a message is recognised as one, and what each does. Their texts are in `bot.sentences`."""

from __future__ import annotations

import re
from dataclasses import dataclass

import structlog

from timbridge.bot.cancels import Cancels
from timbridge.bot.conversation import Conversation
from timbridge.bot.memory import LongMemory
from timbridge.bot.reminders import Scheduling, local_time
from timbridge.bot.replies import ReplySender
from timbridge.bot.sentences import (
    CACHE_SHARE_TEXT,
    CANCEL_TEXT,
    COMMANDS,
    COMPACT_TEXT,
    FORGET_USAGE,
    FORGOTTEN,
    FORGOTTEN_ALL,
    FORGOTTEN_HISTORY,
    HELP_TEXT,
    MEMORY_FOOTER,
    MEMORY_LINE,
    MEMORY_OFF,
    NO_HANDOFF_TEXT,
    NO_REMINDERS,
    NO_SUCH_REMINDER,
    NOTHING_REMEMBERED,
    NOTHING_TO_CANCEL_TEXT,
    NOTHING_TO_COMPACT_TEXT,
    NOTHING_TO_FORGET,
    RATE_THANKS,
    RATE_USAGE,
    REMIND_USAGE,
    REMINDER_CANCELLED,
    REMINDER_LINE,
    REMINDER_SET,
    RESET_TEXT,
    UNKNOWN_TEXT,
)
from timbridge.bot.summaries import Summaries
from timbridge.bot.text import message_text
from timbridge.coordination.base import Job
from timbridge.metrics import Metrics
from timbridge.protocol.callbacks import MessageEvent
from timbridge.protocol.elements import TextElem
from timbridge.settings import Settings
from timbridge.storage.history import History, utc_day
from timbridge.storage.ratings import Ratings
from timbridge.storage.tickets import Tickets

__all__ = ["COMMANDS", "Command", "Commands", "is_cancel", "parse_command", "usage_text"]

_log = structlog.get_logger("timbridge.commands")

#: A rating given within this long after a ticket closed is the ticket's.
RATE_TICKET_WITHIN_S = 24 * 3600.0

_COMMAND = re.compile(r"^/([A-Za-z][A-Za-z0-9_-]{0,31})(?:\s|$)")


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # "/help", "/reset", or the unknown one as typed
    argument: str = ""  # what follows it

    @property
    def known(self) -> bool:
        return self.name in COMMANDS


def parse_command(text: str) -> Command | None:
    """The command `text` starts with, if it is one (``/word``); else None."""
    match = _COMMAND.match(text)
    if match is None:
        return None
    return Command("/" + match.group(1).lower(), text[match.end() :].strip())


def is_cancel(event: MessageEvent) -> bool:
    """Whether `event` is a ``/cancel`` (the webhook asks of every message: most are told
    apart by a substring test, without extracting their text)."""
    if not any(
        isinstance(e, TextElem) and "/cancel" in e.msg_content.text.lower() for e in event.msg_body
    ):
        return False
    command = parse_command(message_text(event))
    return command is not None and command.name == "/cancel"


def usage_text(used: int, limit: int, group_used: int | None, group_limit: int) -> str:
    """The answer to ``/usage``."""
    mine = f"Today (UTC) you have used {used} tokens"
    mine += f" of your {limit} daily limit." if limit else " (no daily limit)."
    if group_used is None:
        return mine
    group = f" This group has used {group_used} tokens"
    return mine + group + (f" of its {group_limit} daily limit." if group_limit else ".")


class Commands:
    """Runs a command and answers it."""

    def __init__(
        self,
        settings: Settings,
        store: History,
        replies: ReplySender,
        summaries: Summaries,
        cancels: Cancels,
        *,
        metrics: Metrics,
        ratings: Ratings | None = None,
        tickets: Tickets | None = None,
        scheduling: Scheduling | None = None,
        memory: LongMemory | None = None,
    ) -> None:
        self._robots = {r.id: r for r in settings.robots}
        self._store = store
        self._replies = replies
        self._summaries = summaries
        self._cancels = cancels
        self._metrics = metrics
        self._ratings = ratings
        self._tickets = tickets
        self._scheduling = scheduling
        self._memory = memory

    async def run(self, job: Job, conv: Conversation, command: Command) -> None:
        if command.name == "/reset":
            removed = await self._store.reset(conv.key)
            _log.info("command.reset", removed=removed)
            reply = RESET_TEXT
        elif command.name == "/compact":
            folded = await self._summaries.compact(conv, keep=0)
            reply = COMPACT_TEXT.format(turns=folded) if folded else NOTHING_TO_COMPACT_TEXT
        elif command.name == "/usage":
            reply = await self._usage(conv)
        elif command.name == "/help":
            reply = HELP_TEXT
        elif command.name == "/remind":
            reply = await self._remind(job, conv, command.argument)
        elif command.name == "/reminders":
            reply = await self._reminders(conv, command.argument)
        elif command.name == "/memory":
            reply = await self._recalled(conv)
        elif command.name == "/forget":
            reply = await self._forget(conv, command.argument)
        elif command.name == "/rate":
            reply = await self._rate(job, conv, command.argument)
        elif command.name == "/human":  # (a robot with a handoff takes it before this)
            reply = NO_HANDOFF_TEXT
        elif command.name == "/cancel":  # the webhook noted it; the answers ahead have stopped
            stopped = await self._cancels.stopped_by(conv.key, conv.sender, job.identity)
            reply = CANCEL_TEXT if stopped else NOTHING_TO_CANCEL_TEXT
        else:
            reply = UNKNOWN_TEXT.format(name=command.name)
        await self._replies.send(conv, job.identity, reply)

    async def _remind(self, job: Job, conv: Conversation, argument: str) -> str:
        if self._scheduling is None or not argument:
            return REMIND_USAGE
        kept = await self._scheduling.set(conv, job.identity, argument)
        if isinstance(kept, str):
            return kept
        when = local_time(kept.due_at, self._scheduling.zone(conv.robot))
        return REMINDER_SET.format(when=when, number=kept.id, text=kept.text)

    async def _reminders(self, conv: Conversation, argument: str) -> str:
        if self._scheduling is None:
            return NO_REMINDERS
        words = argument.split()
        if len(words) == 2 and words[0].lower() == "cancel" and words[1].lstrip("#").isdigit():
            number = int(words[1].lstrip("#"))
            cancelled = await self._scheduling.cancel(conv, number)
            return (REMINDER_CANCELLED if cancelled else NO_SUCH_REMINDER).format(number=number)
        pending = await self._scheduling.pending(conv)
        if not pending:
            return NO_REMINDERS
        zone = self._scheduling.zone(conv.robot)
        return "\n".join(
            REMINDER_LINE.format(number=r.id, when=local_time(r.due_at, zone), text=r.text)
            for r in pending
        )

    def _remembers(self, conv: Conversation) -> LongMemory | None:
        memory = self._memory
        return memory if memory is not None and conv.robot in memory else None

    async def _recalled(self, conv: Conversation) -> str:
        """``/memory``: what the robot remembers about the sender here, numbered."""
        memory = self._remembers(conv)
        if memory is None:
            return MEMORY_OFF
        await memory.caught_up(conv)  # with what the messages not read yet hold
        known = await memory.known(conv)
        if not known:
            return NOTHING_REMEMBERED
        lines = (MEMORY_LINE.format(number=n, text=f.text) for n, f in enumerate(known, 1))
        return "\n".join(lines) + MEMORY_FOOTER

    async def _forget(self, conv: Conversation, argument: str) -> str:
        """``/forget N|words|all``. All is everything the robot knows about the sender, in
        every chat, and in a private chat the conversation too: nothing they said is left to
        be learned again."""
        memory = self._remembers(conv)
        if memory is None:
            return MEMORY_OFF
        if not argument:
            return FORGET_USAGE
        if argument.lower() in ("all", "everything"):
            if conv.kind != "c2c":  # a group's history stays: what it holds unread is read now
                await memory.caught_up(conv)
            count = await memory.forget_user(conv)
            history = ""
            if conv.kind == "c2c":
                await self._store.reset(conv.key)
                history = FORGOTTEN_HISTORY
            _log.info("command.forget_all", facts=count)
            return FORGOTTEN_ALL.format(count=count, history=history)
        await memory.caught_up(conv)  # the numbers are /memory's, and nothing comes back
        gone = await memory.forget(conv, argument)
        if not gone:
            return NOTHING_TO_FORGET.format(what=argument)
        return FORGOTTEN.format(what="; ".join(gone))

    async def _rate(self, job: Job, conv: Conversation, argument: str) -> str:
        """Keep a rating of 1 to 5 (of the ticket closed in the last day, if there is one)."""
        score, _, comment = argument.partition(" ")
        if score not in ("1", "2", "3", "4", "5"):
            return RATE_USAGE
        ticket = None
        if self._tickets is not None:
            closed = await self._tickets.closed_lately(conv.robot, conv.key, RATE_TICKET_WITHIN_S)
            ticket = closed.number if closed is not None else None
        if self._ratings is not None:
            await self._ratings.add(
                robot=conv.robot,
                conversation=conv.key,
                sender=conv.sender,
                score=int(score),
                comment=comment.strip(),
                ticket=ticket,
                identity=job.identity,
            )
        self._metrics.ratings.labels(conv.robot, score, "ticket" if ticket else "answer").inc()
        _log.info("command.rate", score=int(score), ticket=ticket)
        return RATE_THANKS.format(score=score)

    async def _usage(self, conv: Conversation) -> str:
        robot = self._robots[conv.robot]
        day = utc_day()
        used = await self._store.tokens_on(day, conv.robot, sender=conv.sender)
        group_used = (
            await self._store.tokens_on(day, conv.robot, group_id=conv.peer)
            if conv.kind == "group"
            else None
        )
        text = usage_text(
            used, robot.tokens_per_user_per_day, group_used, robot.tokens_per_group_per_day
        )
        prompt, cached = await self._store.cache_share_on(day, conv.robot, sender=conv.sender)
        if cached:
            text += CACHE_SHARE_TEXT.format(share=round(100 * cached / max(prompt, 1)))
        return text
