"""Conversation keys: history, ordering, quotas and ``/reset`` all use them; and where a
conversation's replies go (`Conversation.destination`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from timbridge.protocol.callbacks import C2CAfterSendEvent, C2CMessageEvent, MessageEvent
from timbridge.storage.place import Place
from timbridge.tencent.outbound import Destination

__all__ = ["Conversation", "MessageEvent"]


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

    def place(self) -> Place:
        """Where it lives, as tickets and reminders keep it."""
        return Place(self.robot, self.key, self.kind, self.peer, self.sender, self.topic)

    @property
    def destination(self) -> Destination:
        return Destination(self.robot, self.kind, self.peer, self.sender, self.topic)

    @classmethod
    def of(cls, robot: str, event: MessageEvent, *, member_scoped: bool) -> Conversation:
        if isinstance(event, C2CMessageEvent | C2CAfterSendEvent):
            return cls(robot, "c2c", event.from_account, event.from_account)
        return cls(
            robot, "group", event.group_id, event.from_account, event.topic_id, member_scoped
        )
