"""Where a conversation lives, as the tables that outlive a job keep it (tickets, reminders):
enough to write into that chat again later, as the robot."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

__all__ = ["Place"]


class Place(NamedTuple):
    robot: str
    conversation: str  # the conversation's key
    kind: Literal["c2c", "group"]
    peer: str  # the user, or the GroupId
    sender: str  # who wrote in it
    topic: str | None

    def row(self) -> dict[str, Any]:
        """The columns these tables share."""
        return self._asdict()
