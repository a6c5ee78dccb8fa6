"""Webhook callbacks Tencent POSTs to the app (reference §5), and the acknowledgement.

`parse_event` turns a body into a typed event. Events timbridge acts on are the robot events
``Bot.OnC2CMessage`` and ``Bot.OnGroupMessage``, the ordinary after-send callbacks that can
stand in for them (§5.5), and the recall callbacks ``C2C.CallbackAfterMsgWithDraw`` and
``Group.CallbackAfterRecallMsg`` (a recalled question stops its answer). Any other command parses
into `UnknownEvent`, to be acknowledged and ignored.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Annotated, Any, Final, Literal, cast

import orjson
from pydantic import Field, StringConstraints, ValidationError

from timbridge.errors import PayloadError
from timbridge.protocol.base import WireModel, payload_error
from timbridge.protocol.elements import MsgBody

__all__ = [
    "ACK_OK",
    "BOT_C2C_MESSAGE",
    "BOT_GROUP_MESSAGE",
    "C2C_AFTER_SEND",
    "C2C_AFTER_WITHDRAW",
    "DESK_SESSION_EVENT",
    "DESK_USER_MESSAGE",
    "GROUP_AFTER_RECALL",
    "GROUP_AFTER_SEND",
    "KNOWN_COMMANDS",
    "Ack",
    "C2CAfterSendEvent",
    "C2CMessageEvent",
    "C2CRecallEvent",
    "CallbackEvent",
    "DeskSessionEvent",
    "GroupAfterSendEvent",
    "GroupAtInfo",
    "GroupMessageEvent",
    "GroupRecallEvent",
    "MessageEvent",
    "RecallEvent",
    "RecalledSeq",
    "UnknownEvent",
    "ack",
    "callback_sign",
    "parse_event",
]

BOT_C2C_MESSAGE: Final = "Bot.OnC2CMessage"
BOT_GROUP_MESSAGE: Final = "Bot.OnGroupMessage"
C2C_AFTER_SEND: Final = "C2C.CallbackAfterSendMsg"
GROUP_AFTER_SEND: Final = "Group.CallbackAfterSendMsg"
C2C_AFTER_WITHDRAW: Final = "C2C.CallbackAfterMsgWithDraw"
GROUP_AFTER_RECALL: Final = "Group.CallbackAfterRecallMsg"
DESK_SESSION_EVENT: Final = "Desk.SessionEventNotify"
#: The Desk session event of a user's message in the robot phase, for a self-built AI to answer.
DESK_USER_MESSAGE: Final = "ChatBot.UserSendMsg"


# Identifiers become keys of history, usage and dedupe rows, so they are bounded at the edge and
# may hold no control character. Tencent's own limits are lower: a UserID is at most 32 bytes, a
# custom GroupId 48 (§2); these leave room and keep every derived key within its column.
_NO_CONTROLS = r"^[^\x00-\x1f\x7f]*$"
Account = Annotated[str, StringConstraints(max_length=64, pattern=_NO_CONTROLS)]
GroupId = Annotated[str, StringConstraints(max_length=64, pattern=_NO_CONTROLS)]
TopicId = Annotated[str, StringConstraints(max_length=96, pattern=_NO_CONTROLS)]
MsgKey = Annotated[str, StringConstraints(max_length=128, pattern=_NO_CONTROLS)]
Counter = Annotated[int, Field(ge=0, lt=2**63)]  # sequence numbers, randoms, times


class GroupAtInfo(WireModel):
    """One @-mention of a group message; ``GroupAtAllFlag: 1`` is @all."""

    group_at_all_flag: int = 0
    group_at_account: Account = Field(default="", alias="GroupAt_Account")


class _C2CFields(WireModel):
    from_account: Account = Field(alias="From_Account")
    to_account: Account = Field(alias="To_Account")
    msg_seq: Counter
    msg_random: Counter
    msg_time: Counter
    msg_key: MsgKey = ""
    online_only_flag: int = 0
    send_msg_result: int = 0
    error_info: str = ""
    unread_msg_num: int = 0
    msg_body: MsgBody
    cloud_custom_data: str = ""
    event_time: int = 0

    @property
    def identity(self) -> str:
        """The message's unique identity: ``MsgKey``, else sender|seq|random|time (§7.1)."""
        if self.msg_key:
            return self.msg_key
        return f"{self.from_account}|{self.msg_seq}|{self.msg_random}|{self.msg_time}"


class C2CMessageEvent(_C2CFields):
    """``Bot.OnC2CMessage``: a user sent a one-to-one message to a robot (or, with
    `desk_session_id`, a Desk user to a customer-service account: see `DeskSessionEvent`)."""

    callback_command: Literal["Bot.OnC2CMessage"] = BOT_C2C_MESSAGE
    msg_id: MsgKey = ""
    desk_session_id: MsgKey = Field(default="", alias="DeskSessionId")


class C2CAfterSendEvent(_C2CFields):
    """``C2C.CallbackAfterSendMsg``: any C2C message was sent (includes robots' own replies)."""

    callback_command: Literal["C2C.CallbackAfterSendMsg"] = C2C_AFTER_SEND


class _GroupFields(WireModel):
    group_id: GroupId
    type: str = ""
    from_account: Account = Field(alias="From_Account")
    operator_account: Account = Field(default="", alias="Operator_Account")
    random: Counter = 0
    msg_seq: Counter
    msg_time: Counter = 0
    online_only_flag: int = 0
    msg_body: MsgBody
    cloud_custom_data: str = ""
    event_time: int = 0
    topic_id: TopicId | None = None

    @property
    def identity(self) -> str:
        """``GroupId|MsgSeq`` (+``|TopicId``): the message's unique identity (§7.1)."""
        return group_identity(self.group_id, self.msg_seq, self.topic_id)


class GroupMessageEvent(_GroupFields):
    """``Bot.OnGroupMessage``: a group message @-mentioned one or more robots."""

    callback_command: Literal["Bot.OnGroupMessage"] = BOT_GROUP_MESSAGE
    at_robots_account: tuple[Account, ...] = Field(default=(), alias="AtRobots_Account")


class GroupAfterSendEvent(_GroupFields):
    """``Group.CallbackAfterSendMsg``: any group message was sent; mentions in `group_at_info`."""

    callback_command: Literal["Group.CallbackAfterSendMsg"] = GROUP_AFTER_SEND
    group_at_info: tuple[GroupAtInfo, ...] = ()


def group_identity(group_id: str, msg_seq: int, topic_id: str | None) -> str:
    """A group message's identity, ``GroupId|MsgSeq`` (+``|TopicId``) (§7.1)."""
    base = f"{group_id}|{msg_seq}"
    return f"{base}|{topic_id}" if topic_id else base


class C2CRecallEvent(WireModel):
    """``C2C.CallbackAfterMsgWithDraw``: a one-to-one message was recalled (by its sender on a
    client, or by the app admin through ``admin_msgwithdraw``)."""

    callback_command: Literal["C2C.CallbackAfterMsgWithDraw"] = C2C_AFTER_WITHDRAW
    from_account: Account = Field(alias="From_Account")
    to_account: Account = Field(alias="To_Account")
    msg_key: MsgKey = Field(min_length=1)
    unread_msg_num: int = 0

    @property
    def identities(self) -> tuple[str, ...]:
        """The identities of the recalled messages, as their message events have them."""
        return (self.msg_key,)


class RecalledSeq(WireModel):
    """One recalled group message: its ``MsgSeq`` (and the client's ``MsgId``, when given)."""

    msg_seq: Counter
    msg_id: MsgKey = ""


class GroupRecallEvent(WireModel):
    """``Group.CallbackAfterRecallMsg``: group messages were recalled (by their sender, a group
    admin, or the app admin through ``group_msg_recall``)."""

    callback_command: Literal["Group.CallbackAfterRecallMsg"] = GROUP_AFTER_RECALL
    operator_account: Account = Field(default="", alias="Operator_Account")
    type: str = ""
    group_id: GroupId
    msg_seq_list: tuple[RecalledSeq, ...] = Field(min_length=1, max_length=256)
    topic_id: TopicId | None = None
    event_time: int = 0  # milliseconds; Tencent's examples send it as a number or a string

    @property
    def identities(self) -> tuple[str, ...]:
        """The identities of the recalled messages, as their message events have them."""
        return tuple(
            group_identity(self.group_id, m.msg_seq, self.topic_id) for m in self.msg_seq_list
        )


class DeskSessionEvent(WireModel):
    """``Desk.SessionEventNotify``: an event of a Tencent Desk (智能客服) session. The one a
    self-built AI answers is ``ChatBot.UserSendMsg``, a user's message in the robot phase: it
    parses into a `C2CMessageEvent` from the user to the customer-service account, carrying the
    session (`desk_session_id`), so that it is answered as any one-to-one message; the others
    are acknowledged and ignored."""

    callback_command: Literal["Desk.SessionEventNotify"] = DESK_SESSION_EVENT
    session_id: MsgKey = Field(min_length=1)
    event: str = Field(max_length=64)
    event_time: Counter = 0  # milliseconds
    channel_type: str = ""
    client_user_id: Account = ""
    customer_service_id: Account = ""
    agent_id: str = ""
    msg_key: MsgKey = ""
    msg_body: MsgBody = ()
    cloud_custom_data: str = ""

    def as_message(self) -> C2CMessageEvent | UnknownEvent:
        if self.event != DESK_USER_MESSAGE:
            return UnknownEvent(callback_command=f"{DESK_SESSION_EVENT}/{self.event}")
        if not self.client_user_id or not self.customer_service_id or not self.msg_body:
            missing = (
                "ClientUserId"
                if not self.client_user_id
                else ("CustomerServiceId" if not self.customer_service_id else "MsgBody")
            )
            raise PayloadError(missing, f"a {DESK_USER_MESSAGE} event needs {missing}")
        seconds = self.event_time // 1000
        return C2CMessageEvent(
            from_account=self.client_user_id,
            to_account=self.customer_service_id,
            msg_seq=0,
            msg_random=0,
            msg_time=seconds,
            msg_key=self.msg_key or f"desk|{self.session_id}|{self.event_time}",
            msg_body=self.msg_body,
            cloud_custom_data=self.cloud_custom_data,
            event_time=self.event_time,
            desk_session_id=self.session_id,
        )


class UnknownEvent(WireModel):
    """A callback timbridge does not handle; acknowledged and ignored."""

    callback_command: str = ""


MessageEvent = C2CMessageEvent | C2CAfterSendEvent | GroupMessageEvent | GroupAfterSendEvent
"""Every callback that carries a message a robot may answer."""

RecallEvent = C2CRecallEvent | GroupRecallEvent
"""Every callback that says messages were recalled."""

CallbackEvent = MessageEvent | RecallEvent | UnknownEvent

_MODELS: dict[str, type[WireModel]] = {
    BOT_C2C_MESSAGE: C2CMessageEvent,
    BOT_GROUP_MESSAGE: GroupMessageEvent,
    C2C_AFTER_SEND: C2CAfterSendEvent,
    GROUP_AFTER_SEND: GroupAfterSendEvent,
    C2C_AFTER_WITHDRAW: C2CRecallEvent,
    GROUP_AFTER_RECALL: GroupRecallEvent,
    DESK_SESSION_EVENT: DeskSessionEvent,
}
#: The callback commands timbridge parses; any other is acknowledged and ignored.
KNOWN_COMMANDS: frozenset[str] = frozenset(_MODELS)


def parse_event(body: bytes, command: str | None = None) -> CallbackEvent:
    """Parse a webhook body into its event; `command` is the query string's ``CallbackCommand``.

    When `command` is absent the body's own ``CallbackCommand`` decides. Raises `PayloadError`
    naming the field when the body is not JSON, is not an object, or a field has the wrong type
    (a body whose ``CallbackCommand`` contradicts the query's is refused as a wrong field).
    """
    if command is None:
        try:
            data: Any = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise PayloadError("body", f"not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise PayloadError("body", "must be a JSON object")
        found = data.get("CallbackCommand")
        if not isinstance(found, str):
            raise PayloadError("CallbackCommand", "missing from both the query and the body")
        model = _MODELS.get(found)
        if model is None:
            return UnknownEvent(callback_command=found)
        try:
            return _message_of(model.model_validate(data))
        except ValidationError as exc:
            raise payload_error(exc, what=found) from None
        except (TypeError, RecursionError) as exc:  # a validator met a shape it did not expect
            raise PayloadError("body", f"malformed {found}: {type(exc).__name__}") from None
    model = _MODELS.get(command)
    if model is None:
        return UnknownEvent(callback_command=command)
    try:
        return _message_of(model.model_validate_json(body))
    except ValidationError as exc:
        raise payload_error(exc, what=command) from None
    except (TypeError, RecursionError) as exc:  # a validator met a shape it did not expect
        raise PayloadError("body", f"malformed {command}: {type(exc).__name__}") from None


def _message_of(parsed: WireModel) -> CallbackEvent:
    """The event `parsed` stands for (a Desk user message: its one-to-one message)."""
    if isinstance(parsed, DeskSessionEvent):
        return parsed.as_message()
    return cast(CallbackEvent, parsed)


class Ack(WireModel):
    """The JSON a webhook answers; ``ErrorCode`` 0 means accepted."""

    action_status: Literal["OK", "FAIL"] = "OK"
    error_info: str = ""
    error_code: int = 0


ACK_OK: Final = Ack().to_json()
"""``{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`` as bytes, built once."""


def ack(error_code: int = 0, error_info: str = "") -> bytes:
    """An acknowledgement body; non-zero `error_code` answers ``ActionStatus: FAIL``."""
    if error_code == 0 and not error_info:
        return ACK_OK
    status: Literal["OK", "FAIL"] = "OK" if error_code == 0 else "FAIL"
    return Ack(action_status=status, error_code=error_code, error_info=error_info).to_json()


@functools.lru_cache(maxsize=256)  # Tencent signs with the current second: a few hits apiece
def callback_sign(token: str, request_time: str | int) -> str:
    """A webhook's ``Sign``: hex SHA-256 of ``token + RequestTime`` (plain hash, not HMAC; §5.1)."""
    return hashlib.sha256(f"{token}{request_time}".encode()).hexdigest()
