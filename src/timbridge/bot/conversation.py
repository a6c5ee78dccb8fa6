"""Conversation keys, reply identities and the deterministic numbers of a reply's messages.

History, ordering, quotas and ``/reset`` all use the conversation key. A reply's
``MsgRandom`` / ``Random`` / ``MsgSeq`` derive from the inbound message and the part number, so a
retried or redelivered send is the same message to Tencent, whose dedupe drops the double.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from timbridge.protocol.callbacks import (
    C2CAfterSendEvent,
    C2CMessageEvent,
    GroupAfterSendEvent,
    GroupMessageEvent,
)

__all__ = ["Conversation", "MessageEvent", "derive_random", "derive_seq"]

C2CEvent = C2CMessageEvent | C2CAfterSendEvent
GroupEvent = GroupMessageEvent | GroupAfterSendEvent
MessageEvent = C2CEvent | GroupEvent
"""Every callback that carries a message a robot may answer."""


@dataclass(frozen=True, slots=True)
class Conversation:
    """Where a reply goes and which history it belongs to."""

    robot: str
    kind: Literal["c2c", "group"]
    peer: str  # C2C: the user; group: the GroupId
    sender: str  # who wrote the message being answered
    topic: str | None = None
    member_scoped: bool = False

    @property
    def key(self) -> str:
        if self.kind == "c2c":
            return f"c2c:{self.robot}:{self.peer}"
        key = f"group:{self.robot}:{self.peer}"
        if self.topic:
            key += f":{self.topic}"
        return f"{key}:{self.sender}" if self.member_scoped else key

    @classmethod
    def of(cls, robot: str, event: MessageEvent, *, member_scoped: bool) -> Conversation:
        if isinstance(event, C2CMessageEvent | C2CAfterSendEvent):
            return cls(robot, "c2c", event.from_account, event.from_account)
        return cls(
            robot, "group", event.group_id, event.from_account, event.topic_id, member_scoped
        )


def _digest(*parts: object) -> int:
    text = "|".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=4).digest(), "big")


def derive_random(robot: str, identity: str, part: int) -> int:
    """The 32-bit ``MsgRandom`` / ``Random`` of part `part` of the reply to `identity`."""
    return _digest("random", robot, identity, part)


def derive_seq(robot: str, identity: str, part: int) -> int:
    """The ``MsgSeq`` of a C2C reply part (31 bits, so it is never negative anywhere)."""
    return _digest("seq", robot, identity, part) >> 1
