"""Sending a reply as the robot: split under the size limit, numbered deterministically, each part
recorded once sent so that a repeated job resumes instead of repeating."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator

import structlog

from timbridge.bot.conversation import Conversation, derive_random, derive_seq
from timbridge.bot.split import split_reply
from timbridge.errors import StorageError, TencentError
from timbridge.protocol.callbacks import GroupAtInfo
from timbridge.protocol.elements import TextElem
from timbridge.protocol.rest import FORBID_CALLBACKS, SendC2CMsg, SendGroupMsg
from timbridge.storage.history import History
from timbridge.tencent.client import TencentClient
from timbridge.tencent.notices import typing_notice

__all__ = ["ReplySender"]

_log = structlog.get_logger("timbridge.replies")
TYPING_AFTER_S = 0.8  # a fast answer needs no typing notice (each one costs a sendmsg call)
TYPING_EVERY_S = 4.0


class ReplySender:
    """Sends replies and typing notices through the Tencent client."""

    def __init__(self, tencent: TencentClient, store: History) -> None:
        self._tencent = tencent
        self._store = store

    @property
    def tencent(self) -> TencentClient:
        return self._tencent

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
        nonce = derive_random(conv.robot, identity, number)
        if conv.kind == "c2c":
            c2c = SendC2CMsg(
                from_account=conv.robot,
                to_account=conv.peer,
                msg_random=nonce,
                msg_seq=derive_seq(conv.robot, identity, number),
                sync_other_machine=1,
                forbid_callback_control=FORBID_CALLBACKS,
                msg_body=(TextElem.of(text),),
            )
            return (await self._tencent.call(c2c)).msg_key
        group = SendGroupMsg(
            group_id=conv.peer,
            from_account=conv.robot,
            random=nonce,
            topic_id=conv.topic,
            forbid_callback_control=FORBID_CALLBACKS,
            msg_body=(TextElem.of(f"@{conv.sender} {text}" if mention else text),),
            group_at_info=(GroupAtInfo(group_at_account=conv.sender),) if mention else None,
        )
        return str((await self._tencent.call(group)).msg_seq)

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
        while True:
            try:
                notice = typing_notice(
                    conversation.robot, conversation.peer, msg_random=random.getrandbits(32)
                )
                await self._tencent.call(notice)
            except TencentError as exc:  # a missing typing notice must not stop the reply
                _log.info("reply.typing_failed", error=str(exc))
            await asyncio.sleep(TYPING_EVERY_S)
