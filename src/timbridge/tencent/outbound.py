"""The one door for what a robot writes into a chat: text, stream chunks, edits, "typing…",
and the recall of what it wrote.

Every message a reply sends is built here, from a `Destination` (the chat and the user being
answered) and a `Part` (which message of which reply). The C2C/group difference, the @-mention
of the asker in groups, the callback suppression and the message nonces are decided in this
module only, so the plain sender and the live writers cannot disagree about them.

Nonces: a part's ``MsgRandom`` / ``Random`` / ``MsgSeq`` derive from the inbound message's
identity and the part number, so a retried or redelivered send is the same message to Tencent,
whose dedupe drops the double.

The typing notice is TUIKit's "typing…" custom element (reference §3.5): an online-only C2C
message (``MsgLifeTime: 0``), not stored, roamed, pushed, counted unread or passed to callbacks.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Literal

import orjson

from timbridge.errors import TencentAPIError
from timbridge.protocol.callbacks import GroupAtInfo
from timbridge.protocol.elements import (
    TYPING_BUSINESS_ID,
    CustomContent,
    CustomElem,
    StreamContent,
    StreamElem,
    TextElem,
)
from timbridge.protocol.rest import (
    FORBID_CALLBACKS,
    AdminMsgWithdraw,
    DeskTransferToHuman,
    GroupMsgRecall,
    ModifyC2CMsg,
    ModifyGroupMsg,
    OfflinePushInfo,
    RecallSeq,
    SendC2CMsg,
    SendC2CStreamMsg,
    SendGroupMsg,
    SendGroupStreamMsg,
)
from timbridge.tencent.client import TencentClient

__all__ = [
    "Destination",
    "Outbound",
    "Part",
    "addressed",
    "derive_random",
    "derive_seq",
    "modify_message",
    "stream_message",
    "text_message",
    "typing_notice",
]


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a reply goes: a user's C2C chat with `robot`, or a group (and topic), where the
    reply @-mentions `asker`."""

    robot: str
    kind: Literal["c2c", "group"]
    peer: str  # C2C: the user; group: the GroupId
    asker: str  # who wrote the message being answered
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class Part:
    """Message `number` of the reply to the inbound message `identity`."""

    identity: str
    number: int

    def nonce(self, robot: str) -> int:
        return derive_random(robot, self.identity, self.number)

    def seq(self, robot: str) -> int:
        return derive_seq(robot, self.identity, self.number)


def _digest(*parts: object) -> int:
    text = "|".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=4).digest(), "big")


def derive_random(robot: str, identity: str, part: int) -> int:
    """The 32-bit ``MsgRandom`` / ``Random`` of part `part` of the reply to `identity`."""
    return _digest("random", robot, identity, part)


def derive_seq(robot: str, identity: str, part: int) -> int:
    """The ``MsgSeq`` of a C2C reply part (31 bits, so it is never negative anywhere)."""
    return _digest("seq", robot, identity, part) >> 1


def addressed(dest: Destination, text: str, *, mention: bool = True) -> str:
    """`text` as the chat shows it: in a group, a mentioning message starts with ``@asker``."""
    return f"@{dest.asker} {text}" if mention and dest.kind == "group" else text


def text_message(
    dest: Destination, part: Part, text: str, *, mention: bool
) -> SendC2CMsg | SendGroupMsg:
    """A plain text message; in a group, `mention` @-mentions the asker (text and AtInfo)."""
    if dest.kind == "c2c":
        return SendC2CMsg(
            from_account=dest.robot,
            to_account=dest.peer,
            msg_random=part.nonce(dest.robot),
            msg_seq=part.seq(dest.robot),
            sync_other_machine=1,
            forbid_callback_control=FORBID_CALLBACKS,
            msg_body=(TextElem.of(text),),
        )
    return SendGroupMsg(
        group_id=dest.peer,
        from_account=dest.robot,
        random=part.nonce(dest.robot),
        topic_id=dest.topic,
        forbid_callback_control=FORBID_CALLBACKS,
        msg_body=(TextElem.of(addressed(dest, text, mention=mention)),),
        group_at_info=(GroupAtInfo(group_at_account=dest.asker),)
        if mention and dest.kind == "group"
        else None,
    )


def stream_message(
    dest: Destination, part: Part, content: StreamContent
) -> SendC2CStreamMsg | SendGroupStreamMsg:
    """One call of a stream message (its first chunk opens it, later ones carry its id)."""
    body = (StreamElem(msg_content=content),)
    if dest.kind == "c2c":
        return SendC2CStreamMsg(
            from_account=dest.robot,
            to_account=dest.peer,
            msg_random=part.nonce(dest.robot),
            msg_seq=part.seq(dest.robot),
            sync_other_machine=1,
            msg_body=body,
        )
    return SendGroupStreamMsg(
        group_id=dest.peer,
        from_account=dest.robot,
        msg_random=part.nonce(dest.robot),
        topic_id=dest.topic,
        msg_body=body,
    )


def modify_message(
    dest: Destination, handle: str, text: str, *, mention: bool
) -> ModifyC2CMsg | ModifyGroupMsg:
    """Replace the text of a sent message (`handle`: its ``MsgKey`` or group ``MsgSeq``)."""
    if dest.kind == "c2c":
        return ModifyC2CMsg(
            from_account=dest.robot,
            to_account=dest.peer,
            msg_key=handle,
            msg_body=(TextElem.of(text),),
        )
    return ModifyGroupMsg(
        group_id=dest.peer,
        msg_seq=int(handle),
        topic_id=dest.topic,
        msg_body=(TextElem.of(addressed(dest, text, mention=mention)),),
    )


def typing_notice(robot: str, user: str, *, msg_random: int, typing: bool = True) -> SendC2CMsg:
    """The `SendC2CMsg` that shows (or clears) "typing…" from `robot` in `user`'s chat."""
    data = {
        "businessID": TYPING_BUSINESS_ID,
        "typingStatus": 1 if typing else 0,
        "version": 1,
        "userAction": 14 if typing else 0,
        "actionParam": "EIMAMSG_InputStatus_Ing" if typing else "EIMAMSG_InputStatus_End",
    }
    return SendC2CMsg(
        sync_other_machine=2,
        from_account=robot,
        to_account=user,
        msg_life_time=0,
        msg_random=msg_random,
        send_msg_control=("NoUnread", "NoLastMsg"),
        forbid_callback_control=FORBID_CALLBACKS,
        offline_push_info=OfflinePushInfo(push_flag=1),
        msg_body=(CustomElem(msg_content=CustomContent(data=orjson.dumps(data).decode())),),
    )


class Outbound:
    """Sends the messages built above through the client; returns the handles later calls
    need (a C2C ``MsgKey`` or a group ``MsgSeq`` as text; a stream's ``StreamMsgID``)."""

    def __init__(self, tencent: TencentClient) -> None:
        self._tencent = tencent

    async def text(self, dest: Destination, part: Part, text: str, *, mention: bool) -> str:
        request = text_message(dest, part, text, mention=mention)
        if isinstance(request, SendC2CMsg):
            return (await self._tencent.call(request)).msg_key
        return str((await self._tencent.call(request)).msg_seq)

    async def stream(
        self, dest: Destination, part: Part, content: StreamContent
    ) -> tuple[str, str]:
        """Send a stream chunk; the stream's ``StreamMsgID`` and the message's handle."""
        sent = await self._tencent.call(stream_message(dest, part, content))
        return sent.stream_msg_id, sent.msg_key if dest.kind == "c2c" else str(sent.msg_seq)

    async def transfer_to_human(self, session: str, agent_group: int | None) -> str:
        """Hand a Desk session to a human agent (a tip goes to the user if none is online);
        the agent it went to, empty while the user queues."""
        request = DeskTransferToHuman(
            session_id=session, agent_group_id=agent_group, send_tip_if_no_agent_online=1
        )
        return (await self._tencent.call(request)).agent_id

    async def withdraw(self, dest: Destination, handle: str) -> None:
        """Recall a message the robot sent (`handle`: its ``MsgKey`` or group ``MsgSeq``)."""
        if dest.kind == "c2c":
            request = AdminMsgWithdraw(
                from_account=dest.robot, to_account=dest.peer, msg_key=handle
            )
            await self._tencent.call(request)
            return
        recall = GroupMsgRecall(
            group_id=dest.peer, msg_seq_list=(RecallSeq(msg_seq=int(handle)),), topic_id=dest.topic
        )
        for result in (await self._tencent.call(recall)).recall_ret_list:
            if result.ret_code:
                raise TencentAPIError(result.ret_code, f"MsgSeq {result.msg_seq}", recall.command)

    async def modify(self, dest: Destination, handle: str, text: str, *, mention: bool) -> None:
        await self._tencent.call(modify_message(dest, handle, text, mention=mention))

    async def typing(self, dest: Destination) -> None:
        """Show "typing…" (C2C only; groups have no typing notice, so this does nothing)."""
        if dest.kind == "c2c":
            notice = typing_notice(dest.robot, dest.peer, msg_random=random.getrandbits(32))
            await self._tencent.call(notice)
