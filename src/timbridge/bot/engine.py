"""The engine: answers one job (one robot, one inbound message), start to finish.

command? ▸ build context (persona, remembered facts, knowledge, history within the budget) ▸
model chain ▸ store both turns ▸ send the reply as the robot ▸ read the conversation for facts
(long-term memory) and fold an overgrown history. A job that is run again (redelivery, restart)
finds its stored reply and the parts already sent, and sends only what is missing.
"""

from __future__ import annotations

import asyncio
import functools
import time

import structlog

from timbridge.bot import tool_turns
from timbridge.bot.admission import Admission, ledger_entry
from timbridge.bot.agent import Agent
from timbridge.bot.bursts import Bursts
from timbridge.bot.cancels import Cancels, Stop
from timbridge.bot.commands import Commands, parse_command
from timbridge.bot.context import build_context, cite
from timbridge.bot.conversation import Conversation
from timbridge.bot.handoff import Handoff
from timbridge.bot.live import LiveReply
from timbridge.bot.media import MediaFetcher, image_urls
from timbridge.bot.memory import LongMemory, Notebook
from timbridge.bot.reminders import Scheduling, local_time
from timbridge.bot.replies import ReplySender
from timbridge.bot.screening import Screen
from timbridge.bot.sentences import (
    APOLOGY,
    EMPTY_TEXT,
    IMAGE_FAILED,
    INTERRUPTED,
    LOOKING_UP,
    REMEMBERED,
    STOPPED,
    STORE_FAILED,
    TEXT_ONLY,
    TOO_LONG,
)
from timbridge.bot.summaries import Summaries
from timbridge.bot.text import message_text
from timbridge.coordination.base import Coordinator, Job
from timbridge.errors import (
    HandBack,
    LLMError,
    PayloadError,
    StorageError,
    TencentError,
    TimbridgeError,
)
from timbridge.knowledge.gaps import sounds_unsure
from timbridge.knowledge.library import Library
from timbridge.knowledge.retrieval import Hit
from timbridge.llm.base import ChatMessage, Image
from timbridge.llm.chain import Answer, ModelChain
from timbridge.llm.tokens import count_tokens
from timbridge.metrics import Metrics
from timbridge.protocol.callbacks import MessageEvent, parse_event
from timbridge.settings import Settings
from timbridge.storage.gaps import Gaps
from timbridge.storage.history import History, Turn
from timbridge.storage.ratings import Ratings
from timbridge.storage.reminders import Reminders
from timbridge.storage.tickets import Tickets
from timbridge.tools.handoff import REQUESTS
from timbridge.tools.memory import NOTEBOOK
from timbridge.tools.schedule import SCHEDULER
from timbridge.tools.toolbox import Toolbox

__all__ = ["Engine"]

#: The first wait before a job whose store failed runs again (then twice as long each time).
STORE_RETRY_S = 0.5

_log = structlog.get_logger("timbridge.engine")


def _tools_turn(steps: list[ChatMessage]) -> list[Turn]:
    """The history turn that keeps an answer's tool steps (none without steps)."""
    if not steps:
        return []
    content = tool_turns.encode(steps)
    return [Turn(tool_turns.ROLE, content, count_tokens(content))]


class Engine:
    """Turns jobs into replies."""

    def __init__(
        self,
        settings: Settings,
        store: History,
        models: ModelChain,
        replies: ReplySender,
        metrics: Metrics,
        *,
        coordination: Coordinator,
        library: Library | None = None,
        knowledge: dict[str, str] | None = None,
        media: MediaFetcher | None = None,
        toolboxes: dict[str, Toolbox] | None = None,
        tickets: Tickets | None = None,
        screen: Screen | None = None,
        gaps: Gaps | None = None,
        ratings: Ratings | None = None,
        reminders: Reminders | None = None,
        memory: LongMemory | None = None,
    ) -> None:
        self._settings = settings
        self._robots = {r.id: r for r in settings.robots}
        self._store = store
        self._models = models
        self._replies = replies
        self._metrics = metrics
        self._library = library
        self._knowledge = knowledge or {}  # robot → the knowledge base it answers from
        self._media = media
        self._toolboxes = toolboxes or {}  # robot → the tools it may call
        self._screen = screen or Screen(settings, None, metrics)
        self._gaps = gaps
        self._scheduling = Scheduling(settings, reminders) if reminders is not None else None
        self._memory = memory
        self._agent = Agent(models, max_steps=settings.tools.max_steps)
        self._admission = Admission(settings, store, coordination, replies, metrics)
        self._bursts = Bursts(settings, coordination)
        self._cancels = Cancels(coordination)
        self._summaries = Summaries(settings, store, models)
        self._commands = Commands(
            settings,
            store,
            replies,
            self._summaries,
            self._cancels,
            metrics=metrics,
            ratings=ratings,
            tickets=tickets,
            scheduling=self._scheduling,
            memory=memory,
        )
        self._handoff = (
            Handoff(settings, store, tickets, replies, coordination, summaries=self._summaries)
            if tickets is not None
            else None
        )

    def _handoff_of(self, robot: str) -> Handoff | None:
        """The handoff, for a robot that has one."""
        settings = self._robots[robot]
        wanted = settings.handoff is not None or settings.desk is not None
        return self._handoff if wanted else None

    def _conversation(self, robot: str, event: MessageEvent) -> Conversation:
        member = self._robots[robot].group_context == "member"
        return Conversation.of(robot, event, member_scoped=member)

    async def handle(self, job: Job) -> None:
        event = job.event if job.event is not None else parse_event(job.body, job.command)
        if not isinstance(event, MessageEvent):
            raise PayloadError("CallbackCommand", f"job holds no message event: {job.command}")
        conversation = self._conversation(job.robot, event)
        with structlog.contextvars.bound_contextvars(
            trace_id=job.trace_id, robot=job.robot, conversation=conversation.key
        ):
            await self._answer(job, conversation, event)
            self._metrics.reply_latency.observe(max(0.0, time.time() - job.received_at))

    async def _answer(self, job: Job, conv: Conversation, event: MessageEvent) -> None:
        if await self._bursts.answered_elsewhere(job):
            return
        text = message_text(event)
        command = parse_command(text)
        if command is None and (why := await self._cancels.check(job, conv.sender)):
            self._metrics.stopped.labels(conv.robot, why.value).inc()
            _log.info("answer.stopped", why=why.value, shown=False)
            return
        try:
            handoff = self._handoff_of(conv.robot)
            if handoff is not None and await handoff.handled(job, conv, text, command):
                return
            if command is not None:
                await self._commands.run(job, conv, command)
            elif await self._admission.shed(job, conv):
                return
            elif not text:
                await self._replies.send(conv, job.identity, EMPTY_TEXT)
            elif images := image_urls(event.msg_body):
                await self._look(job, conv, text, images)
            else:
                await self._chat(job, conv, await self._bursts.join(job, conv, text))
        except TencentError as exc:
            _log.error("reply.not_sent", error=str(exc))
        except StorageError as exc:  # before any answer went out (later ones are only logged)
            tries = self._settings.server.store_tries
            if job.tries + 1 < tries:  # a store that failed may be back soon: run it again
                _log.warning("store.unavailable", error=str(exc), tries=job.tries + 1, of=tries)
                raise HandBack(f"store: {exc}", after_s=STORE_RETRY_S * 2**job.tries) from exc
            _log.error("store.unavailable", error=str(exc), tries=job.tries + 1, of=tries)
            try:  # straight to Tencent: recording the parts would meet the same failure
                await self._replies.send_part(conv, job.identity, 0, STORE_FAILED, mention=True)
            except TencentError as sent:
                _log.error("reply.not_sent", error=str(sent))

    async def _look(self, job: Job, conv: Conversation, text: str, urls: list[str]) -> None:
        """A message with images: to a model that can see them, else the user is told."""
        robot = self._robots[conv.robot]
        if not self._settings.models[robot.model].vision or self._media is None:
            await self._replies.send(conv, job.identity, TEXT_ONLY)
            return
        try:
            images = [await self._media.fetch(url) for url in urls[:4]]
        except PayloadError as exc:
            _log.warning("image.refused", error=str(exc))
            await self._replies.send(conv, job.identity, IMAGE_FAILED.format(reason=exc))
            return
        await self._chat(job, conv, text, images=tuple(images))

    async def _model_failed(
        self, job: Job, conv: Conversation, said: str, live: LiveReply | None, exc: LLMError
    ) -> None:
        """No answer: the apology, or, when part of the answer is already visible, the note
        that it was cut off."""
        self._metrics.model_failures.labels(conv.robot).inc()
        _log.error("model.unavailable", error=str(exc), shown=bool(live and live.text))
        turns = [Turn("user", said, count_tokens(said))]
        if live is not None and live.text:
            await live.feed(INTERRUPTED)
            turns.append(Turn("assistant", live.text, count_tokens(live.text)))
        await self._store.add_turns(conv.key, job.identity, turns)
        if live is not None and live.text:
            await live.close()
            await self._replies.mark_sent(conv, job.identity, live.text)
        else:
            await self._replies.send(conv, job.identity, APOLOGY)

    async def _stopped(
        self, job: Job, conv: Conversation, said: str, live: LiveReply | None, why: Stop
    ) -> None:
        """The answer was stopped midway. A recalled question takes what was shown of its
        answer with it (withdrawn, nothing kept); a /cancel ends what was shown with a note,
        and it is kept as the answer."""
        self._metrics.stopped.labels(conv.robot, why.value).inc()
        shown = bool(live and live.text)
        _log.info("answer.stopped", why=why.value, shown=shown)
        if live is None:
            return
        if why is Stop.CANCELLED and shown:
            await live.feed(STOPPED)
            await live.close()
            reply = live.text.strip()
            turns = [
                Turn("user", said, count_tokens(said)),
                Turn("assistant", reply, count_tokens(reply)),
            ]
            await self._store.add_turns(conv.key, job.identity, turns)
            await self._replies.mark_sent(conv, job.identity, reply)
            return
        await self._take_back(conv, live)

    async def _take_back(self, conv: Conversation, live: LiveReply) -> None:
        """Show nothing more of a live reply, and recall what it showed."""
        await live.abort()
        for handle in live.handles:
            try:
                await self._replies.outbound.withdraw(conv.destination, handle)
            except TencentError as exc:  # the rest are still withdrawn
                _log.error("reply.not_withdrawn", handle=handle, error=str(exc))

    async def _screened(self, job: Job, conv: Conversation, text: str) -> str | None:
        """The user's text as the model may read it (masked), or None: blocked, or a
        self-harm rule fired, and the robot has answered with its text instead."""
        verdict = await self._screen.check(conv.robot, text, "in")
        if verdict.action in ("allow", "mask"):
            return verdict.text
        await self._replies.send(
            conv, job.identity, self._screen.replacement(conv.robot, verdict, "in")
        )
        return None

    async def _chat(
        self, job: Job, conv: Conversation, text: str, *, images: tuple[Image, ...] = ()
    ) -> None:
        robot = self._robots[conv.robot]
        if await self._admission.refused(job, conv):
            return
        if conv.robot in self._screen:
            screened = await self._screened(job, conv, text)
            if screened is None:
                return
            text = screened
        said = f"{conv.sender}: {text}" if conv.kind == "group" and not conv.member_scoped else text
        stored = await self._store.reply_for(conv.key, job.identity)
        if stored is not None:  # this job ran before: send what is missing, nothing more
            await self._replies.send(conv, job.identity, stored, resuming=True)
            return
        started = time.monotonic()
        profile = self._settings.models[robot.model]
        memory = self._memory if self._memory is not None and robot.id in self._memory else None
        facts = None
        if memory is not None:
            kept = await memory.said(conv, text)
            if kept is not None and profile.provider == "offline":  # nothing else to answer
                await self._noted(job, conv, said, REMEMBERED.format(fact=kept))
                return
            facts = await memory.recall(conv, text)
        history = await self._store.recent_turns(conv.key)
        searches = "knowledge_search" in robot.tools and robot.id in self._toolboxes
        hits = [] if searches else await self._retrieve(conv.robot, text)  # else the model asks
        kb_used = not searches and conv.robot in self._knowledge
        messages, dropped = build_context(
            robot.persona,
            history,
            said,
            budget=profile.context_tokens,
            answer_tokens=profile.max_tokens,
            knowledge=hits,
            facts=facts,
        )
        if images:  # the current message carries them; history keeps "[image]"
            messages[-1] = ChatMessage("user", messages[-1].content, images=images)
        live = self._live(job, conv)
        handoffs: list[str] = []  # the reasons of the model's handoff calls, if it makes any
        handing = REQUESTS.set(handoffs)
        scheduling = SCHEDULER.set(functools.partial(self._schedule, conv, job, [0]))
        noting = NOTEBOOK.set(Notebook(memory, conv) if memory is not None else None)
        async with self._replies.typing(conv):
            try:
                asked = await self._watched(job, conv, robot.model, messages, live)
            except LLMError as exc:
                await self._model_failed(job, conv, said, live, exc)
                return
            finally:
                REQUESTS.reset(handing)
                SCHEDULER.reset(scheduling)
                NOTEBOOK.reset(noting)
        if isinstance(asked, Stop):
            await self._stopped(job, conv, said, live, asked)
            return
        answer, steps = asked
        self._observe(answer)
        await self._deliver(
            job, conv, said, answer=answer, steps=steps, live=live, hits=hits, started=started
        )
        if kb_used:
            self._note_gap(conv.robot, text, answer.text, found=bool(hits))
        await self._maybe_hand_off(job, conv, handoffs, searched=kb_used, found=bool(hits))
        await self._afterwards(conv, memory, overflowing=bool(dropped))

    def _live(self, job: Job, conv: Conversation) -> LiveReply | None:
        """The live reply the answer is shown in, for a robot with a live reply mode."""
        robot = self._robots[conv.robot]
        if robot.reply_mode == "off":
            return None
        screen = (
            functools.partial(self._screen.growing, robot.id) if robot.id in self._screen else None
        )
        return LiveReply(self._replies, conv, job.identity, robot.reply_mode, screen=screen)

    async def _afterwards(
        self, conv: Conversation, memory: LongMemory | None, *, overflowing: bool
    ) -> None:
        """Once the reply is out: read the new messages for facts (long-term memory: in the
        background, or first when the history is to be folded, so that nothing is folded out
        of sight unread), and fold a history that outgrew the budget."""
        try:
            if memory is not None and overflowing:
                await memory.read(conv, overflowing=True)
            elif memory is not None:
                await memory.read_soon(conv)
            if overflowing and conv.robot not in self._summaries.offline:
                await self._summaries.compact(conv, keep=4)
        except StorageError as exc:  # the reply is out; the next answer tries again
            _log.error("afterwards.not_kept", error=str(exc))

    async def _noted(self, job: Job, conv: Conversation, said: str, reply: str) -> None:
        """Keep the exchange and send `reply` (the robot answered without its model)."""
        await self._store.add_turns(
            conv.key,
            job.identity,
            [Turn("user", said, count_tokens(said)), Turn("assistant", reply, count_tokens(reply))],
        )
        await self._replies.send(conv, job.identity, reply)

    async def _deliver(
        self,
        job: Job,
        conv: Conversation,
        said: str,
        *,
        answer: Answer,
        steps: list[ChatMessage],
        live: LiveReply | None,
        hits: list[Hit],
        started: float,
    ) -> None:
        """Keep the turns (and what the answer cost), and send the reply or end the live one."""
        robot = self._robots[conv.robot]
        text = answer.text + TOO_LONG if answer.cut else answer.text
        reply = cite(text, hits) if robot.cite_sources else text
        if live is not None:
            await live.feed(reply[len(answer.text) :])  # the sources line, if any
            reply = live.raw.strip()
        if robot.id in self._screen:
            verdict = await self._screen.check(robot.id, reply, "out")
            if live is not None and live.blocked is not None:
                verdict = live.blocked
            if verdict.action in ("block", "self_harm"):
                if live is not None:  # take back what was shown; the replacement goes plain
                    await self._take_back(conv, live)
                    live = None
                reply = self._screen.replacement(robot.id, verdict, "out")
            else:
                reply = verdict.text if live is None else live.text.strip()
        elif live is not None:
            reply = live.text.strip()
        try:
            await self._store.add_turns(
                conv.key,
                job.identity,
                [
                    Turn("user", said, count_tokens(said)),
                    *_tools_turn(steps),
                    Turn("assistant", reply, answer.usage.output_tokens or count_tokens(reply)),
                ],
                usage_record=ledger_entry(conv, job.identity, answer, "answer"),
            )
        except StorageError as exc:  # the answer exists: the user gets it, the history lacks it
            _log.error("store.turns_not_kept", error=str(exc))
        if live is None:
            await self._replies.send(conv, job.identity, reply)
            return
        await live.close()
        await self._replies.mark_sent(conv, job.identity, reply)
        if live.first_visible is not None:
            self._metrics.first_visible.labels(robot.reply_mode).observe(
                max(0.0, live.first_visible - started)
            )

    async def _schedule(
        self, conv: Conversation, job: Job, count: list[int], when: str, text: str
    ) -> str:
        """The ``schedule`` tool's work for this answer: keep the reminder, say what was kept."""
        if self._scheduling is None:
            return "error: reminders are not kept here"
        count[0] += 1  # each call of one answer is its own reminder
        kept = await self._scheduling.set(conv, f"{job.identity}|schedule|{count[0]}", when, text)
        if isinstance(kept, str):
            return f"error: {kept}"
        when_text = local_time(kept.due_at, self._scheduling.zone(conv.robot))
        return f"Reminder #{kept.id} set for {when_text}: {kept.text}. Tell the user so."

    def _note_gap(self, robot: str, question: str, answer: str, *, found: bool) -> None:
        """Keep a question the robot's knowledge base could not answer: no passage for it, or
        the model said it did not know (`kb gaps`)."""
        if self._gaps is None:
            return
        if not found:
            self._gaps.record(self._knowledge[robot], robot, question, "no_passage")
        elif sounds_unsure(answer):
            self._gaps.record(self._knowledge[robot], robot, question, "model_unsure")

    async def _maybe_hand_off(
        self, job: Job, conv: Conversation, requests: list[str], *, searched: bool, found: bool
    ) -> None:
        """After the answer: the model asked for a person, or the knowledge base found
        nothing once too often; either opens a ticket."""
        handoff = self._handoff_of(conv.robot)
        if handoff is None:
            return
        if requests:  # the model has told the user already (the tool's result asks it to)
            await handoff.open(job, conv, requests[0], tell_user=False)
            return
        if searched and (misses := await handoff.missed(conv, found=found)):
            await handoff.open(job, conv, handoff.misses_reason(misses), tell_user=True)

    def _observe(self, answer: Answer) -> None:
        self._metrics.model_answers.labels(answer.profile).inc()
        if answer.usage.cached_tokens:
            self._metrics.model_cached_tokens.labels(answer.profile).inc(answer.usage.cached_tokens)
        self._metrics.model_latency.labels(answer.profile).observe(answer.total_s)
        self._metrics.model_first_token.labels(answer.profile).observe(answer.first_token_s)
        _log.info(
            "model.answered",
            profile=answer.profile,
            model=answer.model,
            input_tokens=answer.usage.input_tokens,
            output_tokens=answer.usage.output_tokens,
            cached_tokens=answer.usage.cached_tokens,
        )

    async def _watched(
        self,
        job: Job,
        conv: Conversation,
        profile: str,
        messages: list[ChatMessage],
        live: LiveReply | None,
    ) -> tuple[Answer, list[ChatMessage]] | Stop:
        """The answer and its tool steps, or why it was stopped midway: the model and the tools
        run in a task of their own, which a recall or a /cancel cancels (so the model's
        connection closes). `LLMError` propagates."""
        ask = asyncio.ensure_future(self._ask(conv, profile, messages, live))
        with self._cancels.watching(job, conv.sender, ask) as watched:
            try:
                return await ask
            except asyncio.CancelledError:
                if watched.why is None:  # this job itself is cancelled (shutdown)
                    raise
                return watched.why

    async def _ask(
        self, conv: Conversation, profile: str, messages: list[ChatMessage], live: LiveReply | None
    ) -> tuple[Answer, list[ChatMessage]]:
        """The model's answer, and its tool steps: through the agent loop when the robot has
        tools."""
        on_delta = live.feed if live else None
        toolbox = self._toolboxes.get(conv.robot)
        if toolbox:
            admin = conv.sender in self._robots[conv.robot].admins
            on_tools = functools.partial(live.progress, LOOKING_UP) if live else None
            return await self._agent.answer(
                profile, messages, toolbox, admin=admin, on_delta=on_delta, on_tools=on_tools
            )
        return await self._models.answer(profile, messages, on_delta=on_delta), []

    async def _retrieve(self, robot: str, text: str) -> list[Hit]:
        """The robot's knowledge passages for `text`; none (logged) if the search fails."""
        kb = self._knowledge.get(robot)
        if kb is None or self._library is None:
            return []
        try:
            hits = await self._library.search(kb, text)
        except TimbridgeError as exc:
            _log.error("knowledge.unavailable", kb=kb, error=str(exc))
            return []
        _log.info("knowledge.found", kb=kb, passages=len(hits), best=hits[0].score if hits else 0)
        return hits
