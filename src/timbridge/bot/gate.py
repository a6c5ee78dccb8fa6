"""The gate: which configured robots should answer an event, or why none should.

Dropped, with a reason: robot senders (no bot answers a bot), the admin, online-only messages,
typing notices, failed sends, events for robots that are not configured, and group messages
that mention no configured robot.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from timbridge.protocol.accounts import is_robot
from timbridge.protocol.callbacks import (
    C2CAfterSendEvent,
    C2CMessageEvent,
    CallbackEvent,
    GroupAfterSendEvent,
    GroupMessageEvent,
)
from timbridge.protocol.elements import CustomElem

__all__ = ["Verdict", "gate"]


@dataclass(frozen=True, slots=True)
class Verdict:
    robots: tuple[str, ...] = ()
    reason: str = ""


def gate(event: CallbackEvent, robots: Collection[str], admin: str) -> Verdict:
    """The robots that answer `event`; empty with a `reason` when it is dropped."""
    if not isinstance(
        event, C2CMessageEvent | C2CAfterSendEvent | GroupMessageEvent | GroupAfterSendEvent
    ):
        return Verdict(reason="unhandled_command")
    if is_robot(event.from_account):
        return Verdict(reason="robot_sender")
    if event.from_account == admin:
        return Verdict(reason="admin_sender")
    if event.online_only_flag == 1:
        return Verdict(reason="online_only")
    if any(isinstance(e, CustomElem) and e.is_typing_notice for e in event.msg_body):
        return Verdict(reason="typing_notice")
    if isinstance(event, C2CMessageEvent | C2CAfterSendEvent):
        if event.send_msg_result != 0:
            return Verdict(reason="send_failed")
        if event.to_account not in robots:
            return Verdict(reason="unconfigured_robot")
        return Verdict(robots=(event.to_account,))
    if isinstance(event, GroupMessageEvent):
        mentioned = event.at_robots_account
    else:
        mentioned = tuple(
            a.group_at_account for a in event.group_at_info if a.group_at_all_flag == 0
        )
    chosen = tuple(dict.fromkeys(r for r in mentioned if r in robots))
    if chosen:
        return Verdict(robots=chosen)
    any_robot = any(is_robot(r) for r in mentioned)
    return Verdict(reason="unconfigured_robot" if any_robot else "no_mention")
