"""The engine: answers one job (one robot, one inbound message), start to finish.

command? ▸ build context (persona + history within the budget) ▸ model chain ▸ store both turns
▸ send the reply as the robot. A job that is run again (redelivery, restart) finds its stored
reply and the parts already sent, and sends only what is missing.
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

import structlog

from timbridge.bot.commands import parse_command, usage_text
from timbridge.bot.context import build_context, cite, split_summary, summary_request
from timbridge.bot.conversation import Conversation, MessageEvent
from timbridge.bot.live import LiveReply
from timbridge.bot.media import MediaFetcher, image_urls
from timbridge.bot.models import Answer, ModelChain
from timbridge.bot.replies import ReplySender
from timbridge.bot.sentences import (
    APOLOGY,
    BUDGET_TEXT,
    COMPACT_TEXT,
    EMPTY_TEXT,
    HELP_TEXT,
    IMAGE_FAILED,
    INTERRUPTED,
    LIMIT_TEXT,
    NOTHING_TO_COMPACT_TEXT,
    RESET_TEXT,
    STORE_FAILED,
    TEXT_ONLY,
    TOO_LONG,
    UNKNOWN_TEXT,
)
from timbridge.bot.text import extract_text, strip_mentions
from timbridge.coordination.base import Coordinator, Job
from timbridge.errors import (
    HandBack,
    LLMError,
    PayloadError,
    StorageError,
    TencentError,
    TimbridgeError,
)
from timbridge.knowledge.library import Library
from timbridge.knowledge.retrieval import Hit
from timbridge.llm.base import ChatMessage, Image
from timbridge.llm.tokens import count_tokens
from timbridge.metrics import Metrics
from timbridge.protocol.callbacks import (
    C2CAfterSendEvent,
    C2CMessageEvent,
    GroupAfterSendEvent,
    GroupMessageEvent,
    parse_event,
)
from timbridge.settings import Settings
from timbridge.storage.history import History, Turn, UsageRecord, utc_day

__all__ = ["Engine"]

Purpose = Literal["answer", "summary"]

#: The first wait before a job whose store failed runs again (then twice as long each time).
STORE_RETRY_S = 0.5

#: A burst joins at most this many messages, and stops joining this long after its first one.
BURST_MAX_MESSAGES = 8
BURST_MAX_S = 10.0

_log = structlog.get_logger("timbridge.engine")


def _text_of(event: MessageEvent) -> str:
    text = extract_text(event.msg_body)
    if isinstance(event, GroupMessageEvent | GroupAfterSendEvent):
        text = strip_mentions(text)
    return text


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
    ) -> None:
        self._settings = settings
        self._robots = {r.id: r for r in settings.robots}
        self._store = store
        self._models = models
        self._replies = replies
        self._metrics = metrics
        self._coordination = coordination
        self._library = library
        self._knowledge = knowledge or {}  # robot → the knowledge base it answers from
        self._media = media

    def conversation(self, robot: str, event: MessageEvent) -> Conversation:
        member = self._robots[robot].group_context == "member"
        return Conversation.of(robot, event, member_scoped=member)

    async def handle(self, job: Job) -> None:
        event = job.event if job.event is not None else parse_event(job.body, job.command)
        if not isinstance(
            event, C2CMessageEvent | C2CAfterSendEvent | GroupMessageEvent | GroupAfterSendEvent
        ):
            raise PayloadError("CallbackCommand", f"job holds no message event: {job.command}")
        conversation = self.conversation(job.robot, event)
        with structlog.contextvars.bound_contextvars(
            trace_id=job.trace_id, robot=job.robot, conversation=conversation.key
        ):
            await self._answer(job, conversation, event)
            self._metrics.reply_latency.observe(max(0.0, time.time() - job.received_at))

    async def _answer(self, job: Job, conv: Conversation, event: MessageEvent) -> None:
        bursts = self._robots[job.robot].burst_window_s > 0  # else no job absorbs another
        holder = (
            await self._coordination.claim(f"burst|{job.robot}|{job.identity}", job.identity, 3600)
            if bursts
            else job.identity
        )
        if holder != job.identity:
            _log.info("burst.answered_with_earlier", identity=job.identity, by=holder)
            return  # an earlier job of this burst answers this message with its own
        text = _text_of(event)
        command = parse_command(text)
        try:
            if command is not None:
                await self._command(job, conv, command.name)
            elif await self._shed(job, conv):
                return
            elif not text:
                await self._replies.send(conv, job.identity, EMPTY_TEXT)
            elif images := image_urls(event.msg_body):
                await self._look(job, conv, text, images)
            else:
                await self._chat(job, conv, await self._burst(job, conv, text))
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

    async def _shed(self, job: Job, conv: Conversation) -> bool:
        """Whether the message waited too long (`server.max_wait_s`) to be worth a model call:
        the user is told the robot is busy (once per conversation per `busy_notice_every_s`)
        and the job is done. A job that already has its answer stored is never shed: it
        resumes (a restart after a crash), so that nobody is told "busy" after an answer."""
        server = self._settings.server
        waited = time.time() - job.received_at
        if server.max_wait_s <= 0 or waited <= server.max_wait_s:
            return False
        if await self._store.reply_for(conv.key, job.identity) is not None:
            return False
        self._metrics.shed.labels(conv.robot).inc()
        told = await self._coordination.once(f"busy|{conv.key}", server.busy_notice_every_s)
        _log.warning("overload.shed", waited_s=round(waited, 1), told=told)
        if told:
            self._metrics.busy_notices.labels(conv.robot).inc()
            await self._replies.send(conv, job.identity, self._robots[conv.robot].busy_text)
        return True

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

    async def _burst(self, job: Job, conv: Conversation, text: str) -> str:
        """`text` with the messages the same user sent right after it (each within the robot's
        `burst_window_s` of the one before, before the reply starts), answered together once.
        A burst ends after `BURST_MAX_MESSAGES`, or `BURST_MAX_S` after its first message, so
        that a user who keeps writing still gets answers."""
        window = self._robots[conv.robot].burst_window_s
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
                event = parse_event(queued.body, queued.command)
                if not isinstance(event, C2CMessageEvent | GroupMessageEvent):
                    break
                more = _text_of(event)
                later = queued.received_at - last
                if later > window or event.from_account != conv.sender or parse_command(more):
                    break  # the burst is over: that one gets its own answer
                key = f"burst|{queued.robot}|{queued.identity}"
                if not more or await self._coordination.claim(key, job.identity, 3600) != (
                    job.identity
                ):
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

    async def _command(self, job: Job, conv: Conversation, name: str) -> None:
        robot = self._robots[conv.robot]
        if name == "/reset":
            removed = await self._store.reset(conv.key)
            _log.info("command.reset", removed=removed)
            reply = RESET_TEXT
        elif name == "/compact":
            folded = await self._compact(job, conv, keep=0)
            reply = COMPACT_TEXT.format(turns=folded) if folded else NOTHING_TO_COMPACT_TEXT
        elif name == "/usage":
            day = utc_day()
            used = await self._store.tokens_on(day, conv.robot, sender=conv.sender)
            group_used = (
                await self._store.tokens_on(day, conv.robot, group_id=conv.peer)
                if conv.kind == "group"
                else None
            )
            reply = usage_text(
                used, robot.tokens_per_user_per_day, group_used, robot.tokens_per_group_per_day
            )
        elif name == "/help":
            reply = HELP_TEXT
        else:
            reply = UNKNOWN_TEXT.format(name=name)
        await self._replies.send(conv, job.identity, reply)

    async def _over_rate(self, job: Job, conv: Conversation) -> bool:
        """Whether the user writes faster than the robot's messages-per-minute limit."""
        robot = self._robots[conv.robot]
        decision = await self._coordination.rate(
            f"{conv.robot}|{conv.sender}", robot.messages_per_minute
        )
        if decision.allowed:
            return False
        _log.info("limit.messages_per_minute", sender=conv.sender, told=decision.notify)
        self._metrics.limited.labels(conv.robot).inc()
        if decision.notify:
            seconds = max(1, round(decision.retry_after_s))
            notice = LIMIT_TEXT.format(limit=robot.messages_per_minute, seconds=seconds)
            await self._replies.send(conv, job.identity, notice)
        return True

    @staticmethod
    def _usage(conv: Conversation, identity: str, answer: Answer, purpose: Purpose) -> UsageRecord:
        """The ledger entry for `answer`, stored with the turns it produced."""
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
        )

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

    async def _chat(
        self, job: Job, conv: Conversation, text: str, *, images: tuple[Image, ...] = ()
    ) -> None:
        robot = self._robots[conv.robot]
        if await self._over_rate(job, conv) or await self._over_budget(job, conv):
            return
        said = f"{conv.sender}: {text}" if conv.kind == "group" and not conv.member_scoped else text
        stored = await self._store.reply_for(conv.key, job.identity)
        if stored is not None:  # this job ran before: send what is missing, nothing more
            await self._replies.send(conv, job.identity, stored, resuming=True)
            return
        started = time.monotonic()
        history = await self._store.recent_turns(conv.key)
        hits = await self._retrieve(conv.robot, text)
        profile = self._settings.models[robot.model]
        messages, dropped = build_context(
            robot.persona,
            history,
            said,
            budget=profile.context_tokens,
            answer_tokens=profile.max_tokens,
            knowledge=hits,
        )
        if images:  # the current message carries them; history keeps "[image]"
            messages[-1] = ChatMessage("user", messages[-1].content, images=images)
        live = (
            LiveReply(self._replies, conv, job.identity, robot.reply_mode)
            if robot.reply_mode != "off"
            else None
        )
        async with self._replies.typing(conv):
            try:
                answer = await self._models.answer(
                    robot.model, messages, on_delta=live.feed if live else None
                )
            except LLMError as exc:
                await self._model_failed(job, conv, said, live, exc)
                return
        self._metrics.model_answers.labels(answer.profile).inc()
        self._metrics.model_latency.labels(answer.profile).observe(answer.total_s)
        self._metrics.model_first_token.labels(answer.profile).observe(answer.first_token_s)
        _log.info(
            "model.answered",
            profile=answer.profile,
            model=answer.model,
            input_tokens=answer.usage.input_tokens,
            output_tokens=answer.usage.output_tokens,
        )
        text = answer.text + TOO_LONG if answer.cut else answer.text
        reply = cite(text, hits) if robot.cite_sources else text
        if live is not None:
            await live.feed(reply[len(answer.text) :])  # the sources line, if any
            reply = live.text.strip()
        try:
            await self._store.add_turns(
                conv.key,
                job.identity,
                [
                    Turn("user", said, count_tokens(said)),
                    Turn("assistant", reply, answer.usage.output_tokens or count_tokens(reply)),
                ],
                usage_record=self._usage(conv, job.identity, answer, "answer"),
            )
        except StorageError as exc:  # the answer exists: the user gets it, the history lacks it
            _log.error("store.turns_not_kept", error=str(exc))
        if live is None:
            await self._replies.send(conv, job.identity, reply)
        else:
            await live.close()
            await self._replies.mark_sent(conv, job.identity, reply)
            if live.first_visible is not None:
                self._metrics.first_visible.labels(robot.reply_mode).observe(
                    max(0.0, live.first_visible - started)
                )
        if dropped and profile.provider != "offline":  # history outgrew the budget: fold it
            try:
                await self._compact(job, conv, keep=4)
            except StorageError as exc:  # the reply is out; the next answer tries again
                _log.error("compact.not_kept", error=str(exc))

    async def _over_budget(self, job: Job, conv: Conversation) -> bool:
        """Whether a daily token budget is used up (the user is told once a day, when)."""
        robot = self._robots[conv.robot]
        day = utc_day()
        checks = [("You have", robot.tokens_per_user_per_day, {"sender": conv.sender})]
        if conv.kind == "group":
            checks.append(
                ("This group has", robot.tokens_per_group_per_day, {"group_id": conv.peer})
            )
        for scope, limit, where in checks:
            if not limit:
                continue
            used = await self._store.tokens_on(day, conv.robot, **where)
            if used < limit:
                continue
            key = f"budget|{conv.robot}|{scope}|{next(iter(where.values()))}|{day}"
            told = await self._coordination.once(key, 86_400)
            _log.info("limit.tokens_per_day", scope=scope, used=used, limit=limit, told=told)
            self._metrics.limited.labels(conv.robot).inc()
            if told:
                left = 86_400 - time.time() % 86_400
                notice = BUDGET_TEXT.format(
                    who=scope,
                    limit=limit,
                    hours=int(left // 3600),
                    minutes=int(left % 3600 // 60),
                )
                await self._replies.send(conv, job.identity, notice)
            return True
        return False

    async def _compact(self, job: Job, conv: Conversation, *, keep: int) -> int:
        """Fold all but the newest `keep` uncovered turns (and the old summary) into a new
        summary turn; how many turns were folded (0: nothing to do, or the model failed)."""
        robot = self._robots[conv.robot]
        summary, recent = split_summary(await self._store.recent_turns(conv.key))
        fold = recent[: max(0, len(recent) - keep)]
        if not fold:
            return 0
        try:
            answer = await self._models.answer(robot.model, summary_request(summary, fold))
        except LLMError as exc:
            _log.warning("context.compact_failed", error=str(exc))
            return 0
        text = answer.text.strip()
        identity = f"summary|{fold[-1].identity}"
        await self._store.add_turns(
            conv.key,
            identity,
            [Turn("summary", text, count_tokens(text))],
            usage_record=self._usage(conv, identity, answer, "summary"),
        )
        _log.info("context.compacted", turns=len(fold), summary_tokens=count_tokens(text))
        return len(fold)

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
