"""Handing a conversation to human agents (a robot with `[robots.handoff]`).

A ticket is opened when the user asks (``/human``, or one of the robot's `phrases`), when the
model calls the ``handoff`` tool, or after `after_misses` answers in a row that the knowledge
base found nothing for. It is posted in the agents' group (a Tencent group the robot belongs
to) with the recent turns; the robot tells the user, and from then on relays what the user
writes into that group under the ticket's number instead of asking the model.

An agent answers in the agents' group with ``@robot #12 words``: the robot delivers the words
to the user, as the robot, in the same chat, and keeps them in the conversation's history (so
its later answers know what the person said). ``@robot #12 close`` gives the conversation back;
so does `idle_close_s` without a message either way (noticed at the user's next message).

Tickets live in the store (`storage.tickets`): they survive restarts and every worker sees
them. Each conversation's jobs run one at a time, so a ticket is never opened twice, and an
agents' group is one conversation, so its replies are delivered in the order written.
"""

from __future__ import annotations

import hashlib
import re
import time

import structlog

from timbridge.bot.commands import Command
from timbridge.bot.conversation import Conversation
from timbridge.bot.replies import ReplySender
from timbridge.bot.sentences import (
    AGENT_HELP,
    ALREADY_HANDED_TEXT,
    ASKED_REASON,
    BACK_TEXT,
    CLOSED_POST,
    DESK_HANDOFF_TEXT,
    HANDOFF_TEXT,
    MISSES_REASON,
    NO_AGENT_TEXT,
    NO_TICKET,
    RELAY_POST,
    ROLLOUT_REASON,
    TICKET_POST,
)
from timbridge.bot.summaries import Summaries
from timbridge.coordination.base import Flags, Job
from timbridge.errors import TencentError
from timbridge.llm.tokens import count_tokens
from timbridge.protocol.callbacks import C2CMessageEvent, parse_event
from timbridge.settings import HandoffSettings, RobotSettings, Settings
from timbridge.storage.history import History, Turn
from timbridge.storage.tickets import Ticket, Tickets
from timbridge.tencent.outbound import Destination, Part

__all__ = ["Handoff"]

_log = structlog.get_logger("timbridge.handoff")

# The message parts the handoff sends for one inbound message (apart from a reply's own).
_POST, _TO_USER = 3000, 3100
_REFERENCE = re.compile(r"^#(\d{1,9})\b\s*(.*)$", re.DOTALL)
_RECENT_TURNS = 6
_TURN_CHARS = 300
_MISSES_TTL_S = 7 * 24 * 3600.0
_DESK_ONLY = HandoffSettings()  # a Desk robot without [robots.handoff]: /human and phrases


def desk_session(job: Job) -> str:
    """The Desk session `job`'s message came in (empty: not a Desk message)."""
    event = job.event if job.event is not None else parse_event(job.body, job.command)
    return event.desk_session_id if isinstance(event, C2CMessageEvent) else ""


def in_rollout(session: str, percent: int) -> bool:
    """Whether a Desk session is among the `percent` the robot answers (stable per session)."""
    return int(hashlib.sha256(session.encode()).hexdigest()[:8], 16) % 100 < percent


def _said(conv: Conversation, text: str) -> str:
    """How the history keeps `text` (in a shared group chat, with its speaker)."""
    return f"{conv.sender}: {text}" if conv.kind == "group" and not conv.member_scoped else text


def _who(ticket: Ticket) -> str:
    return ticket.sender if ticket.kind == "c2c" else f"{ticket.sender} in group {ticket.peer}"


class Handoff:
    """Tickets: opened, relayed, answered by agents, closed."""

    def __init__(
        self,
        settings: Settings,
        store: History,
        tickets: Tickets,
        replies: ReplySender,
        flags: Flags,
        *,
        summaries: Summaries,
    ) -> None:
        self._robots = {r.id: r for r in settings.robots}
        self._summaries = summaries
        self._store = store
        self._tickets = tickets
        self._replies = replies
        self._flags = flags

    def _settings(self, robot: str) -> HandoffSettings:
        return self._robots[robot].handoff or _DESK_ONLY

    def _agents(self, robot: str) -> Destination:
        group = self._settings(robot).group
        assert group is not None  # (a robot without one hands over through Desk)
        return Destination(robot, "group", group, "", None)

    def _name(self, robot: RobotSettings) -> str:
        return robot.nick or robot.id

    async def _post(self, robot: str, identity: str, number: int, text: str) -> None:
        """Write `text` in the robot's agents' group (the `number`th handoff part of `identity`)."""
        part = Part(identity, _POST + number)
        await self._replies.outbound.text(self._agents(robot), part, text, mention=False)

    # --- the user's side ----------------------------------------------------------------

    async def handled(
        self, job: Job, conv: Conversation, text: str, command: Command | None
    ) -> bool:
        """Whether the handoff took care of this message (no model answer then)."""
        asks = command is not None and command.name == "/human"
        if self._robots[conv.robot].desk is not None:
            return await self._desk(job, conv, text, asks=asks, command=command)
        if conv.kind == "group" and conv.peer == self._settings(conv.robot).group:
            await self._from_agent(job, conv, text)
            return True
        ticket = await self._current(job, conv)
        if ticket is not None:
            if asks:
                reply = ALREADY_HANDED_TEXT.format(ticket=ticket.number)
                await self._replies.send(conv, job.identity, reply)
                return True
            if command is not None:  # the other commands keep working meanwhile
                return False
            await self._relay(job, conv, ticket, text)
            return True
        if asks or (command is None and self._wanted(conv.robot, text)):
            said = None if asks else _said(conv, text)
            await self.open(job, conv, ASKED_REASON, said=said, tell_user=True)
            return True
        return False

    async def _desk(
        self, job: Job, conv: Conversation, text: str, *, asks: bool, command: Command | None
    ) -> bool:
        """A Desk session: outside the rollout, or asked for a person: transferred."""
        desk = self._robots[conv.robot].desk
        assert desk is not None
        if not in_rollout(desk_session(job), desk.rollout_percent):
            await self._transfer(job, conv, ROLLOUT_REASON, tell_user=False)
            return True
        if asks or (command is None and self._wanted(conv.robot, text)):
            await self._transfer(job, conv, ASKED_REASON, tell_user=True)
            return True
        return False

    async def _transfer(
        self, job: Job, conv: Conversation, reason: str, *, tell_user: bool
    ) -> None:
        """Hand the Desk session to Desk's human agents; the user is told (or, when no one
        can take it, told that the robot carries on)."""
        desk = self._robots[conv.robot].desk
        assert desk is not None
        session = desk_session(job)
        try:
            agent = await self._replies.outbound.transfer_to_human(session, desk.agent_group)
        except TencentError as exc:
            _log.warning("desk.transfer_failed", session=session, error=str(exc))
            await self._replies.send_part(conv, job.identity, _TO_USER, NO_AGENT_TEXT, mention=True)
            return
        _log.info("desk.transferred", session=session, agent=agent or "queued", reason=reason)
        if tell_user:
            await self._replies.send_part(
                conv, job.identity, _TO_USER, DESK_HANDOFF_TEXT, mention=True
            )

    def _wanted(self, robot: str, text: str) -> bool:
        lowered = text.casefold()
        return any(phrase.casefold() in lowered for phrase in self._settings(robot).phrases)

    async def _current(self, job: Job, conv: Conversation) -> Ticket | None:
        """The conversation's open ticket; one idle past `idle_close_s` is closed here."""
        ticket = await self._tickets.open_for(conv.robot, conv.key)
        if ticket is None:
            return None
        idle = time.time() - ticket.active_at
        if idle <= self._settings(conv.robot).idle_close_s:
            return ticket
        if await self._tickets.close(ticket.number, "timeout"):
            _log.info("ticket.closed", ticket=ticket.number, by="timeout")
            why = f" after {idle / 3600:.0f} h without a message"
            post = CLOSED_POST.format(
                ticket=ticket.number,
                why=why,
                robot=self._name(self._robots[conv.robot]),
                who=_who(ticket),
            )
            await self._post(conv.robot, job.identity, 2, post)
        return None

    async def open(
        self,
        job: Job,
        conv: Conversation,
        reason: str,
        *,
        said: str | None = None,
        tell_user: bool,
    ) -> Ticket | None:
        """Open a ticket for the conversation (or find the open one), post it in the agents'
        group with a brief by the model (none on the offline model) and the recent turns, and, when
        `tell_user`, tell the user; `said` (the message
        that asked) is kept in the history first. A Desk robot transfers the session instead."""
        if self._robots[conv.robot].desk is not None:
            await self._transfer(job, conv, reason, tell_user=tell_user)
            return None
        if said is not None:
            await self._store.add_turns(
                conv.key, job.identity, [Turn("user", said, count_tokens(said))]
            )
        ticket, new = await self._tickets.open(conv.place(), reason=reason, identity=job.identity)
        if new:
            _log.info("ticket.opened", ticket=ticket.number, reason=reason)
            robot = self._robots[conv.robot]
            brief = await self._summaries.brief(conv, job.identity)
            post = TICKET_POST.format(
                ticket=ticket.number,
                who=conv.sender,
                where="" if conv.kind == "c2c" else f" in group {conv.peer}",
                reason=reason,
                brief=f"In short: {brief}\n" if brief else "",
                recent=await self._recent(conv),
                robot=self._name(robot),
            )
            await self._post(conv.robot, job.identity, 0, post)
        if tell_user:
            text = HANDOFF_TEXT.format(ticket=ticket.number)
            await self._replies.send_part(conv, job.identity, _TO_USER, text, mention=True)
        return ticket

    async def _recent(self, conv: Conversation) -> str:
        turns = await self._store.recent_turns(conv.key, _RECENT_TURNS * 2)
        lines = [
            f"{'customer' if t.role == 'user' else 'robot'}: {t.content[:_TURN_CHARS]}"
            for t in turns
            if t.role in ("user", "assistant")
        ][-_RECENT_TURNS:]
        return "\n".join(lines) if lines else "(no earlier messages)"

    async def _relay(self, job: Job, conv: Conversation, ticket: Ticket, text: str) -> None:
        """The user wrote during a ticket: into the agents' group, and into the history."""
        said = f"{conv.sender}: {text}" if conv.kind == "group" and not conv.member_scoped else text
        await self._store.add_turns(
            conv.key, job.identity, [Turn("user", said, count_tokens(said))]
        )
        post = RELAY_POST.format(ticket=ticket.number, who=conv.sender, text=text)
        await self._post(conv.robot, job.identity, 1, post)
        await self._tickets.touch(ticket.number)

    async def missed(self, conv: Conversation, *, found: bool) -> int:
        """Count an answer the knowledge base found nothing for (`found` resets the count);
        the misses in a row when they reach `after_misses` (then counting starts again), else
        0."""
        key = f"misses:{conv.key}"
        limit = self._settings(conv.robot).after_misses
        if found or not limit:
            await self._flags.note(key, "0", _MISSES_TTL_S)
            return 0
        (noted,) = await self._flags.notes([key])
        misses = int(noted or 0) + 1
        await self._flags.note(key, "0" if misses >= limit else str(misses), _MISSES_TTL_S)
        return misses if misses >= limit else 0

    def misses_reason(self, misses: int) -> str:
        return MISSES_REASON.format(misses=misses)

    # --- the agents' side ---------------------------------------------------------------

    async def _from_agent(self, job: Job, conv: Conversation, text: str) -> None:
        """An agent wrote to the robot in the agents' group: ``#N words`` or ``#N close``."""
        robot = self._robots[conv.robot]
        name = self._name(robot)
        match = _REFERENCE.match(text.strip())
        if match is None or not match.group(2).strip():
            await self._help(job, conv, None)
            return
        number, words = int(match.group(1)), match.group(2).strip()
        ticket = await self._tickets.get(conv.robot, number)
        if ticket is None or ticket.state != "open":
            await self._help(job, conv, number)
            return
        user = Destination(conv.robot, ticket.kind, ticket.peer, ticket.sender, ticket.topic)
        if words.casefold() in ("close", "/close"):
            if await self._tickets.close(ticket.number, conv.sender):
                _log.info("ticket.closed", ticket=ticket.number, by=conv.sender)
                part = Part(job.identity, _TO_USER)
                await self._replies.outbound.text(user, part, BACK_TEXT, mention=True)
                post = CLOSED_POST.format(
                    ticket=ticket.number, why="", robot=name, who=_who(ticket)
                )
                await self._post(conv.robot, job.identity, 2, post)
            return
        part = Part(job.identity, _TO_USER)
        await self._replies.outbound.text(user, part, words, mention=True)
        said = f"[{conv.sender}, a colleague of mine] {words}"
        turn = Turn("assistant", said, count_tokens(said))
        await self._store.add_turns(ticket.conversation, job.identity, [turn])
        await self._tickets.touch(ticket.number)
        _log.info("ticket.answered", ticket=ticket.number, agent=conv.sender)

    async def _help(self, job: Job, conv: Conversation, number: int | None) -> None:
        robot = self._robots[conv.robot]
        opened = await self._tickets.listing(robot=conv.robot, state="open", limit=20)
        listed = ", ".join(f"#{t.number} ({_who(t)})" for t in opened) or "none"
        template = AGENT_HELP if number is None else NO_TICKET
        text = template.format(ticket=number, robot=self._name(robot), open=listed)
        await self._post(conv.robot, job.identity, 3, text)
