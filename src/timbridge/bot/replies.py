"""Sending a reply as the robot: split under the size limit, numbered deterministically, each part
recorded once sent so that a repeated job resumes instead of repeating."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog

from timbridge.bot.conversation import Conversation
from timbridge.bot.split import split_reply
from timbridge.errors import StorageError, TencentError
from timbridge.storage.history import History
from timbridge.tencent.outbound import Outbound, Part

__all__ = ["ReplySender"]

_log = structlog.get_logger("timbridge.replies")
TYPING_AFTER_S = 0.8  # a fast answer needs no typing notice (each one costs a sendmsg call)
TYPING_EVERY_S = 4.0


class ReplySender:
    """Sends whole replies and keeps "typing…" up, through the one door to Tencent."""

    def __init__(self, outbound: Outbound, store: History) -> None:
        self.outbound = outbound
        self._store = store

    async def mark_sent(self, conversation: Conversation, identity: str, text: str) -> None:
        """Record `text` (shown live) as wholly sent, so a job run again sends nothing more."""
        key = f"{identity}|{conversation.robot}"
        await self._record(key, dict.fromkeys(range(len(split_reply(text))), "live"))

    async def _record(self, key: str, handles: dict[int, str]) -> None:
        """Record sent parts. The reply is out whatever happens here, so a store failure is
        logged, not raised: it only costs the resumption of a job that runs again, and a part
        sent again carries the same `MsgRandom`, which Tencent's dedupe drops."""
        try:
            await self._store.record_parts(key, handles)
        except StorageError as exc:
            _log.error("reply.parts_not_recorded", error=str(exc), parts=len(handles))

    async def send(
        self, conversation: Conversation, identity: str, text: str, *, resuming: bool = False
    ) -> int:
        """Send `text` as the reply to message `identity`; return how many parts went out now.

        When `resuming` (the job ran before), parts already recorded as sent are skipped. Parts
        are recorded together once all are out; a crash in between resends a part with the same
        `MsgRandom`/`MsgSeq`/content, which Tencent's dedupe drops.
        """
        key = f"{identity}|{conversation.robot}"
        done = await self._store.sent_parts(key) if resuming else {}
        handles: dict[int, str] = {}
        try:
            for number, part in enumerate(split_reply(text)):
                if number not in done:
                    handles[number] = await self.send_part(
                        conversation, identity, number, part, mention=number == 0
                    )
        finally:
            await self._record(key, handles)
        return len(handles)

    async def send_part(
        self, conv: Conversation, identity: str, number: int, text: str, *, mention: bool
    ) -> str:
        """Send one message of the reply to `identity`; its handle: the ``MsgKey`` (C2C) or
        the ``MsgSeq`` (group). In a group, `mention` @-mentions the asker."""
        part = Part(identity, number)
        return await self.outbound.text(conv.destination, part, text, mention=mention)

    @contextlib.asynccontextmanager
    async def typing(self, conversation: Conversation) -> AsyncIterator[None]:
        """Show "typing…" in a C2C chat while the body runs, once it has run for
        `TYPING_AFTER_S` (groups have no typing notice)."""
        if conversation.kind != "c2c":
            yield
            return
        # a timer, not a task: most answers beat it, and a timer costs a tenth of a task
        loop = asyncio.get_running_loop()
        started: list[asyncio.Task[None]] = []
        timer = loop.call_later(
            TYPING_AFTER_S,
            lambda: started.append(loop.create_task(self._keep_typing(conversation))),
        )
        try:
            yield
        finally:
            timer.cancel()
            for task in started:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _keep_typing(self, conversation: Conversation) -> None:
        destination = conversation.destination
        while True:
            try:
                await self.outbound.typing(destination)
            except TencentError as exc:  # a missing typing notice must not stop the reply
                _log.info("reply.typing_failed", error=str(exc))
            await asyncio.sleep(TYPING_EVERY_S)
