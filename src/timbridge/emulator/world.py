"""The emulator's state: accounts, robots, groups and messages, with Tencent's documented rules.

Pure logic, no HTTP: the REST layer and the web page both call these methods, which raise
`TencentAPIError` with the code Tencent would answer. Listeners are told of every change
(new message, edit, stream chunk, typing notice) so that the page and waiters can follow.
"""

from __future__ import annotations

import enum
import itertools
import random
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from timbridge.errors import TencentAPIError
from timbridge.protocol.accounts import NOT_A_ROBOT, is_robot

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_ROBOTS",
    "STREAM_GAP_S",
    "Account",
    "Change",
    "ChangeKind",
    "DeskSession",
    "Group",
    "Message",
    "StreamState",
    "World",
    "text_body",
]

MAX_MESSAGE_BYTES = 12 * 1024  # one message's MsgBody, serialised (reference §1.4)
MAX_STREAM_BYTES = 128 * 1024
MAX_ROBOTS = 20
STREAM_GAP_S = 15.0
C2C_DEDUPE_S = 120.0
GROUP_DEDUPE_S = 300.0
TOO_LONG = 80002  # Tencent: message content too long (the 12 KB limit)
BAD_PARAMETER = 10004
NOT_IMPORTED = 70107
RECALL_EXPIRED = 20016  # a client may recall its own message within `RECALL_LIMIT_S`
RECALL_LIMIT_S = 120.0  # Tencent's default recall period for clients (the console can change it)
GROUP_TYPES = frozenset(
    {"Public", "Private", "Work", "ChatRoom", "Meeting", "AVChatRoom", "Community"}
)


@dataclass(slots=True)
class Account:
    user_id: str
    nick: str = ""
    face_url: str = ""
    robot: bool = False
    deleted: bool = False


@dataclass(slots=True)
class StreamState:
    """An open or finished stream message (``stream_msg``) or robot stream (``send_stream_msg``)."""

    stream_id: str
    compatible_text: str
    started_at: float
    last_chunk_at: float
    chunks: dict[int, dict[str, Any]] = field(default_factory=dict)
    finished: bool = False
    total_bytes: int = 0
    last_index: int | None = None

    def ended(self, now: float) -> bool:
        return self.finished or now - self.last_chunk_at > STREAM_GAP_S

    def complete(self) -> bool:
        """``IsLast`` has arrived and no earlier chunk is missing (chunks may arrive reordered)."""
        if self.last_index is None:
            return False
        first = min(self.chunks)
        return all(i in self.chunks for i in range(first, self.last_index + 1))


@dataclass(slots=True)
class Message:
    """One stored message, C2C or group, in the order the emulator accepted it (`id`)."""

    id: int
    kind: Literal["c2c", "group"]
    from_account: str
    to_account: str | None
    group_id: str | None
    msg_seq: int
    random: int
    time: int
    body: list[dict[str, Any]]
    cloud_custom_data: str = ""
    topic_id: str | None = None
    at_accounts: tuple[str, ...] = ()
    at_all: bool = False
    online_only: bool = False
    platform: str = "RESTAPI"
    stream: StreamState | None = None
    edits: int = 0
    recalled: bool = False

    @property
    def key(self) -> str:
        """C2C: ``MsgKey``; group: ``GroupId|MsgSeq`` (the message's identity)."""
        if self.kind == "c2c":
            return f"{self.msg_seq}_{self.random}_{self.time}"
        return f"{self.group_id}|{self.msg_seq}"

    @property
    def text(self) -> str:
        """What a person reads: text elements, stream chunks in order, else a short description."""
        parts: list[str] = []
        for element in self.body:
            kind = element.get("MsgType")
            content = element.get("MsgContent") or {}
            if kind == "TIMTextElem":
                parts.append(str(content.get("Text", "")))
            elif kind == "TIMStreamElem":
                chunks = sorted(content.get("Chunks") or [], key=lambda c: c.get("Index", 0))
                parts.append("".join(str(c.get("Markdown", "")) for c in chunks))
            elif kind == "TIMCustomElem":
                parts.append(str(content.get("Desc") or content.get("Data") or ""))
            else:
                parts.append(f"[{str(kind).removeprefix('TIM').removesuffix('Elem').lower()}]")
        return "".join(parts)

    def involves(self, user: str) -> bool:
        return user in (self.from_account, self.to_account)


class ChangeKind(enum.StrEnum):
    MESSAGE = "message"
    UPDATE = "update"
    TYPING = "typing"
    ACCOUNT = "account"
    GROUP = "group"
    RECALL = "recall"


@dataclass(frozen=True, slots=True)
class Change:
    kind: ChangeKind
    message: Message | None = None
    account: Account | None = None
    group: Group | None = None
    typing: bool = False
    operator: str = ""  # who recalled the message (RECALL)


@dataclass(slots=True)
class DeskSession:
    """A Tencent Desk session between a user and a customer-service account: in the robot
    phase its user messages go to the app as ``ChatBot.UserSendMsg``; once transferred, to
    human agents (not emulated beyond the transfer)."""

    session_id: str
    user: str
    service: str
    transferred: bool = False
    agent_group: int | None = None


@dataclass(slots=True)
class Group:
    group_id: str
    type: str
    name: str
    owner: str | None
    members: dict[str, str] = field(default_factory=dict)  # account -> role
    next_seq: int = 1
    messages: list[Message] = field(default_factory=list)


def _body_size(body: list[dict[str, Any]]) -> int:
    return len(orjson.dumps(body))


def _fail(code: int, info: str) -> TencentAPIError:
    return TencentAPIError(code, info, command="emulator")


class World:
    """Everything the emulated Tencent Chat app holds."""

    def __init__(self, *, admin: str, clock: Callable[[], float] = time.time) -> None:
        self.admin = admin
        self.clock = clock
        self.accounts: dict[str, Account] = {admin: Account(admin, nick=admin)}
        self.groups: dict[str, Group] = {}
        self.messages: list[Message] = []  # every stored message, in order
        self._c2c: dict[tuple[str, str], list[Message]] = {}
        self._by_key: dict[str, Message] = {}
        self._streams: dict[str, Message] = {}
        self._dedupe_c2c: dict[tuple[Any, ...], tuple[float, Message]] = {}
        self._dedupe_group: dict[tuple[Any, ...], tuple[float, Message]] = {}
        self._ids = itertools.count(1)
        self._group_ids = itertools.count(1)
        self.listeners: list[Callable[[Change], None]] = []
        self.desk_services: set[str] = set()  # Desk customer-service accounts
        self.desk_sessions: dict[tuple[str, str], DeskSession] = {}

    # --- notifications ------------------------------------------------------------------

    def _emit(self, change: Change) -> None:
        for listener in list(self.listeners):
            listener(change)

    # --- accounts -----------------------------------------------------------------------

    def import_account(
        self,
        user_id: str,
        nick: str | None = None,
        face_url: str | None = None,
        *,
        robot: bool = False,
    ) -> Account:
        _check_user_id(user_id)
        account = self.accounts.get(user_id)
        if account is None:
            account = self.accounts[user_id] = Account(user_id, robot=robot)
        account.deleted = False
        account.robot = account.robot or robot
        if nick is not None:
            account.nick = nick
        if face_url is not None:
            account.face_url = face_url
        self._emit(Change(ChangeKind.ACCOUNT, account=account))
        return account

    def create_robot(self, user_id: str, nick: str | None, face_url: str | None) -> Account:
        if not is_robot(user_id):
            raise _fail(BAD_PARAMETER, NOT_A_ROBOT)
        existing = self.accounts.get(user_id)
        if (existing is None or existing.deleted) and len(self.robots()) >= MAX_ROBOTS:
            raise _fail(10008, f"robot quota reached ({MAX_ROBOTS})")
        return self.import_account(user_id, nick, face_url, robot=True)

    def delete_robot(self, user_id: str) -> None:
        account = self.accounts.get(user_id)
        if account is None or not account.robot:
            raise _fail(BAD_PARAMETER, f"{user_id} is not a robot")
        account.deleted = True
        self._emit(Change(ChangeKind.ACCOUNT, account=account))

    def robots(self) -> list[str]:
        return [a.user_id for a in self.accounts.values() if a.robot and not a.deleted]

    def is_robot(self, user_id: str) -> bool:
        account = self.accounts.get(user_id)
        return account is not None and account.robot and not account.deleted

    def _require(self, user_id: str, role: str) -> Account:
        account = self.accounts.get(user_id)
        if account is None or account.deleted:
            raise _fail(NOT_IMPORTED, f"{role} {user_id!r} is not an imported account")
        return account

    # --- C2C ----------------------------------------------------------------------------

    def send_c2c(
        self,
        *,
        from_account: str,
        to_account: str,
        body: list[dict[str, Any]],
        msg_random: int,
        msg_seq: int | None = None,
        cloud_custom_data: str = "",
        online_only: bool = False,
        platform: str = "RESTAPI",
    ) -> tuple[Message, bool]:
        """Store a C2C message; return it and whether it is new (False: a dropped duplicate)."""
        self._require(from_account, "From_Account")
        self._require(to_account, "To_Account")
        _check_body(body)
        seq = msg_seq if msg_seq is not None else random.getrandbits(31)
        now = self.clock()
        crc = zlib.crc32(orjson.dumps(body))
        dedupe_key = (from_account, to_account, seq, msg_random, crc)
        duplicate = self._duplicate(self._dedupe_c2c, dedupe_key, now)
        if duplicate is not None:
            return duplicate, False
        message = Message(
            id=next(self._ids),
            kind="c2c",
            from_account=from_account,
            to_account=to_account,
            group_id=None,
            msg_seq=seq,
            random=msg_random,
            time=int(now),
            body=body,
            cloud_custom_data=cloud_custom_data,
            online_only=online_only,
            platform=platform,
        )
        if online_only:  # typing notices and the like: shown live, never stored
            self._emit(Change(ChangeKind.TYPING, message=message, typing=_is_typing(body)))
            return message, True
        self._dedupe_c2c[dedupe_key] = (now + C2C_DEDUPE_S, message)
        self._store_c2c(message)
        return message, True

    def _store_c2c(self, message: Message) -> None:
        assert message.to_account is not None
        pair = _pair(message.from_account, message.to_account)
        self._c2c.setdefault(pair, []).append(message)
        self._by_key[message.key] = message
        self.messages.append(message)
        self._emit(Change(ChangeKind.MESSAGE, message=message))

    def modify_c2c(
        self,
        from_account: str,
        to_account: str,
        msg_key: str,
        body: list[dict[str, Any]] | None,
        cloud_custom_data: str | None,
    ) -> Message:
        message = self._by_key.get(msg_key)
        if message is None or _pair(from_account, to_account) != _pair(
            message.from_account, message.to_account or ""
        ):
            raise _fail(BAD_PARAMETER, f"no message {msg_key!r} between these accounts")
        return self._modify(message, body, cloud_custom_data)

    def _modify(
        self, message: Message, body: list[dict[str, Any]] | None, cloud_custom_data: str | None
    ) -> Message:
        if body is not None:
            _check_body(body)
            message.body = body
        if cloud_custom_data is not None:
            message.cloud_custom_data = cloud_custom_data
        message.edits += 1
        self._emit(Change(ChangeKind.UPDATE, message=message))
        return message

    def roam(
        self,
        operator: str,
        peer: str,
        *,
        max_cnt: int,
        min_time: int,
        max_time: int,
        last_msg_key: str | None,
        max_bytes: int = 13 * 1024,
    ) -> tuple[list[Message], bool]:
        """``admin_getroammsg``: newest page in range, oldest first; and whether it is complete."""
        self._require(operator, "Operator_Account")
        history = self._c2c.get(_pair(operator, peer), [])
        candidates = [m for m in history if min_time <= m.time <= max_time]
        if last_msg_key:
            cut = next((i for i, m in enumerate(candidates) if m.key == last_msg_key), None)
            if cut is not None:
                candidates = candidates[:cut]
        page: list[Message] = []
        size = 0
        for message in reversed(candidates):
            size += _body_size(message.body) + 200
            if len(page) >= max(max_cnt, 1) or (page and size > max_bytes):
                break
            page.append(message)
        page.reverse()
        return page, len(page) == len(candidates)

    # --- groups -------------------------------------------------------------------------

    def create_group(
        self, *, type: str, name: str, owner: str | None, group_id: str | None, members: list[str]
    ) -> Group:
        if type not in GROUP_TYPES:
            raise _fail(BAD_PARAMETER, f"unknown group Type {type!r}")
        if not name or len(name.encode()) > 100:
            raise _fail(BAD_PARAMETER, "Name must be 1 to 100 bytes")
        if owner is not None:
            self._require(owner, "Owner_Account")
        if group_id is not None:
            if group_id.startswith("@TGS#") or len(group_id.encode()) > 48 or not group_id:
                raise _fail(10015, f"invalid custom GroupId {group_id!r}")
            if group_id in self.groups:
                raise _fail(10021, f"GroupId {group_id!r} is already taken")
        else:
            prefix = "@TGS#_" if type == "Community" else "@TGS#"
            group_id = f"{prefix}{next(self._group_ids):08d}{random.getrandbits(20):05X}"
        if type == "AVChatRoom" and members:
            raise _fail(10007, "an AVChatRoom takes no MemberList")
        group = Group(group_id, type, name, owner)
        if owner is not None:
            group.members[owner] = "Owner"
        for member in members:
            self._require(member, "Member_Account")
            group.members.setdefault(member, "Member")
        self.groups[group_id] = group
        self._emit(Change(ChangeKind.GROUP, group=group))
        return group

    def group(self, group_id: str) -> Group:
        if not group_id or len(group_id.encode()) > 48:
            raise _fail(10015, f"invalid GroupId {group_id!r}")
        group = self.groups.get(group_id)
        if group is None:
            raise _fail(10010, f"group {group_id!r} does not exist")
        return group

    def add_members(self, group_id: str, members: list[str]) -> list[tuple[str, int]]:
        group = self.group(group_id)
        if group.type == "AVChatRoom":
            raise _fail(10007, "members cannot be added to an AVChatRoom")
        results = []
        for member in members:
            if member not in self.accounts or self.accounts[member].deleted:
                results.append((member, 0))
            elif member in group.members:
                results.append((member, 2))
            else:
                group.members[member] = "Member"
                results.append((member, 1))
        self._emit(Change(ChangeKind.GROUP, group=group))
        return results

    def send_group(
        self,
        *,
        group_id: str,
        from_account: str,
        body: list[dict[str, Any]],
        random_value: int,
        at: list[tuple[str, bool]] | None = None,
        topic_id: str | None = None,
        cloud_custom_data: str = "",
        online_only: bool = False,
        platform: str = "RESTAPI",
    ) -> tuple[Message, bool]:
        """Store a group message with the next ``MsgSeq``; return it and whether it is new."""
        group = self.group(group_id)
        self._require(from_account, "From_Account")
        _check_body(body)
        now = self.clock()
        dedupe_key = (group_id, topic_id, random_value, zlib.crc32(orjson.dumps(body)))
        duplicate = self._duplicate(self._dedupe_group, dedupe_key, now)
        if duplicate is not None:
            return duplicate, False
        mentions = at or []
        message = Message(
            id=next(self._ids),
            kind="group",
            from_account=from_account,
            to_account=None,
            group_id=group_id,
            msg_seq=group.next_seq,
            random=random_value,
            time=int(now),
            body=body,
            cloud_custom_data=cloud_custom_data,
            topic_id=topic_id,
            at_accounts=tuple(a for a, all_flag in mentions if not all_flag and a),
            at_all=any(all_flag for _, all_flag in mentions),
            online_only=online_only,
            platform=platform,
        )
        group.next_seq += 1
        self._dedupe_group[dedupe_key] = (now + GROUP_DEDUPE_S, message)
        group.messages.append(message)
        self.messages.append(message)
        self._emit(Change(ChangeKind.MESSAGE, message=message))
        return message, True

    def modify_group(
        self,
        group_id: str,
        msg_seq: int,
        body: list[dict[str, Any]] | None,
        cloud_custom_data: str | None,
    ) -> Message:
        group = self.group(group_id)
        if group.type == "AVChatRoom":
            raise _fail(10007, "messages of an AVChatRoom cannot be modified")
        message = next((m for m in group.messages if m.msg_seq == msg_seq), None)
        if message is None:
            raise _fail(BAD_PARAMETER, f"no message with MsgSeq {msg_seq} in {group_id}")
        return self._modify(message, body, cloud_custom_data)

    def group_history(
        self, group_id: str, count: int, before_seq: int | None
    ) -> tuple[list[Message], bool]:
        """``group_msg_get_simple``: newest first, at most 20, seq ≤ `before_seq`."""
        group = self.group(group_id)
        if group.type == "AVChatRoom":
            raise _fail(10007, "an AVChatRoom keeps no history")
        eligible = [m for m in group.messages if before_seq is None or m.msg_seq <= before_seq]
        page = list(reversed(eligible))[: max(0, min(count, 20))]
        return page, len(page) == len(eligible)

    # --- streams ------------------------------------------------------------------------

    def stream_chunk(
        self,
        *,
        kind: Literal["c2c", "group"],
        from_account: str,
        to_account: str | None,
        group_id: str | None,
        element: dict[str, Any],
        msg_random: int,
        msg_seq: int | None = None,
        topic_id: str | None = None,
    ) -> Message:
        """A ``stream_msg`` call: the first creates the message, later ones add chunks (§3.4)."""
        content = element.get("MsgContent") or {}
        chunks = content.get("Chunks") or []
        stream_id = content.get("StreamMsgID")
        now = self.clock()
        if not stream_id:
            base = {
                "MsgType": "TIMStreamElem",
                "MsgContent": {"CompatibleText": content.get("CompatibleText", ""), "Chunks": []},
            }
            if kind == "c2c":
                assert to_account is not None
                message, _ = self.send_c2c(
                    from_account=from_account,
                    to_account=to_account,
                    body=[base],
                    msg_random=msg_random,
                    msg_seq=msg_seq,
                )
            else:
                assert group_id is not None
                message, _ = self.send_group(
                    group_id=group_id,
                    from_account=from_account,
                    body=[base],
                    random_value=msg_random,
                    topic_id=topic_id,
                )
            stream_id = f"stream-{message.id}-{random.getrandbits(32):08x}"
            message.stream = StreamState(
                stream_id, str(content.get("CompatibleText", "")), started_at=now, last_chunk_at=now
            )
            self._streams[stream_id] = message
        else:
            found = self._streams.get(str(stream_id))
            if found is None:
                raise _fail(BAD_PARAMETER, f"unknown StreamMsgID {stream_id!r}")
            message = found
        state = message.stream
        assert state is not None
        if state.chunks and state.ended(now):
            raise _fail(BAD_PARAMETER, "stream has ended (IsLast sent, or a gap over 15 s)")
        for chunk in chunks:
            if not isinstance(chunk, dict) or not isinstance(chunk.get("Index"), int):
                raise _fail(BAD_PARAMETER, "each chunk needs an integer Index")
            markdown = str(chunk.get("Markdown", ""))
            state.total_bytes += len(markdown.encode())
            if state.total_bytes > MAX_STREAM_BYTES:
                raise _fail(TOO_LONG, "stream message over 128 KB")
            state.chunks[chunk["Index"]] = {
                "EventType": chunk.get("EventType", "data"),
                "Index": chunk["Index"],
                "Markdown": markdown,
                "IsLast": bool(chunk.get("IsLast", False)),
            }
            if chunk.get("IsLast", False):
                state.last_index = chunk["Index"]
        state.finished = state.complete()
        state.last_chunk_at = now
        message.body = [
            {
                "MsgType": "TIMStreamElem",
                "MsgContent": {
                    "CompatibleText": state.compatible_text,
                    "StreamMsgID": state.stream_id,
                    "Chunks": [state.chunks[i] for i in sorted(state.chunks)],
                },
            }
        ]
        self._emit(Change(ChangeKind.UPDATE, message=message))
        return message

    def robot_stream(
        self, *, from_account: str, to_account: str, chunk: str, msg_key: str | None, finish: bool
    ) -> Message:
        """``openim_robot_http_svc/send_stream_msg``: text appended to one C2C message."""
        if not self.is_robot(from_account):
            raise _fail(BAD_PARAMETER, "From_Account must be a robot")
        now = self.clock()
        if msg_key is None:
            message, _ = self.send_c2c(
                from_account=from_account,
                to_account=to_account,
                body=[{"MsgType": "TIMTextElem", "MsgContent": {"Text": ""}}],
                msg_random=random.getrandbits(32),
            )
            message.stream = StreamState(message.key, "", started_at=now, last_chunk_at=now)
        else:
            found = self._by_key.get(msg_key)
            if found is None or found.stream is None:
                raise _fail(BAD_PARAMETER, f"unknown stream MsgKey {msg_key!r}")
            message = found
        state = message.stream
        assert state is not None
        if msg_key is not None and state.ended(now):
            raise _fail(BAD_PARAMETER, "stream has ended")
        text = str(message.body[0]["MsgContent"].get("Text", "")) + chunk
        message.body = [{"MsgType": "TIMTextElem", "MsgContent": {"Text": text}}]
        state.last_chunk_at = now
        state.finished = finish
        self._emit(Change(ChangeKind.UPDATE, message=message))
        return message

    def end_stale_streams(self) -> None:
        """End streams silent for over 15 s (telling listeners); forget long-finished ones."""
        now = self.clock()
        for stream_id, message in list(self._streams.items()):
            state = message.stream
            assert state is not None
            if not state.finished and state.ended(now):
                state.finished = True
                self._emit(Change(ChangeKind.UPDATE, message=message))
            elif state.finished and now - state.last_chunk_at > 300:
                del self._streams[stream_id]  # late calls now get "unknown StreamMsgID"

    # --- recall -------------------------------------------------------------------------

    def recall_c2c(
        self, from_account: str, to_account: str, msg_key: str, operator: str
    ) -> Message:
        """``admin_msgwithdraw`` (or a client's recall): mark the message recalled and tell
        listeners (the ``C2C.CallbackAfterMsgWithDraw`` webhook follows)."""
        message = self._by_key.get(msg_key)
        if message is None or _pair(from_account, to_account) != _pair(
            message.from_account, message.to_account or ""
        ):
            raise _fail(BAD_PARAMETER, f"no message {msg_key!r} between these accounts")
        return self._recall(message, operator)

    def recall_group(self, group_id: str, seqs: list[int], operator: str) -> list[tuple[int, int]]:
        """``group_msg_recall``: each sequence number with its result code (0: recalled)."""
        group = self.group(group_id)
        by_seq = {m.msg_seq: m for m in group.messages}
        results: list[tuple[int, int]] = []
        for seq in seqs:
            message = by_seq.get(seq)
            if message is None or message.recalled:
                results.append((seq, BAD_PARAMETER))
                continue
            self._recall(message, operator)
            results.append((seq, 0))
        return results

    def user_recall(self, user: str, message_id: int) -> Message:
        """`user` recalls a message of theirs from a client app: within `RECALL_LIMIT_S`, and
        in a group also a group admin's or owner's recall of anyone's message."""
        message = next((m for m in reversed(self.messages) if m.id == message_id), None)
        if message is None or message.recalled:
            raise _fail(BAD_PARAMETER, f"no message {message_id} to recall")
        own = message.from_account == user
        if message.kind == "group":
            assert message.group_id is not None
            role = self.group(message.group_id).members.get(user)
            if not own and role not in ("Owner", "Admin"):
                raise _fail(10004, "only the sender or a group admin can recall this message")
        elif not own:
            raise _fail(BAD_PARAMETER, "only the sender can recall a one-to-one message")
        if own and self.clock() - message.time > RECALL_LIMIT_S:
            raise _fail(RECALL_EXPIRED, f"messages can be recalled within {RECALL_LIMIT_S:.0f} s")
        return self._recall(message, user)

    def _recall(self, message: Message, operator: str) -> Message:
        if message.recalled:
            raise _fail(BAD_PARAMETER, "the message was already recalled")
        message.recalled = True
        if message.stream is not None:
            message.stream.finished = True
        self._emit(Change(ChangeKind.RECALL, message=message, operator=operator))
        return message

    # --- Desk ---------------------------------------------------------------------------

    def desk_session(self, user: str, service: str) -> DeskSession:
        """The Desk session of `user` with `service` (a new one after a transfer ended it)."""
        found = self.desk_sessions.get((user, service))
        if found is None:
            session_id = f"{zlib.crc32(f'{user}|{service}|{self.clock()}'.encode()):08x}-desk"
            found = self.desk_sessions[user, service] = DeskSession(session_id, user, service)
        return found

    def transfer_to_human(self, session_id: str, agent_group: int | None) -> DeskSession:
        """``desk_http_svc/transfer_to_human``: the session leaves the robot phase."""
        session = next((s for s in self.desk_sessions.values() if s.session_id == session_id), None)
        if session is None:
            raise _fail(BAD_PARAMETER, f"no Desk session {session_id!r}")
        session.transferred = True
        session.agent_group = agent_group
        return session

    # --- acting as a client app -----------------------------------------------------------

    def user_send(self, sender: str, to: str, text: str) -> Message:
        """`sender` writes `text` to `to`, as a client SDK would (``OptPlatform`` Web)."""
        message, _ = self.send_c2c(
            from_account=sender,
            to_account=to,
            body=text_body(text),
            msg_random=random.getrandbits(32),
            platform="Web",
        )
        return message

    def user_send_group(
        self, sender: str, group: str, text: str, mention: tuple[str, ...] = ()
    ) -> Message:
        """`sender` writes `text` into `group`, @-mentioning `mention` (``GroupAtInfo``)."""
        message, _ = self.send_group(
            group_id=group,
            from_account=sender,
            body=text_body(text),
            random_value=random.getrandbits(32),
            at=[(a, False) for a in mention],
            platform="Web",
        )
        return message

    # --- queries ------------------------------------------------------------------------

    def conversation(self, a: str, b: str) -> list[Message]:
        return list(self._c2c.get(_pair(a, b), []))

    def groups_of(self, user: str) -> list[Group]:
        return [g for g in self.groups.values() if user in g.members]

    @staticmethod
    def _duplicate(
        table: dict[tuple[Any, ...], tuple[float, Message]], key: tuple[Any, ...], now: float
    ) -> Message | None:
        """The message stored under `key` within its dedupe window; purges when the table grows."""
        if len(table) > 10_000:
            for stale in [k for k, (until, _) in table.items() if until <= now]:
                del table[stale]
        hit = table.get(key)
        return hit[1] if hit is not None and hit[0] > now else None


def text_body(text: str) -> list[dict[str, Any]]:
    """A ``MsgBody`` of one text element."""
    return [{"MsgType": "TIMTextElem", "MsgContent": {"Text": text}}]


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def _check_user_id(user_id: str) -> None:
    if not user_id or len(user_id.encode()) > 32 or not user_id.isprintable():
        raise _fail(BAD_PARAMETER, "UserID must be 1 to 32 bytes of printable text")


def _check_body(body: list[dict[str, Any]]) -> None:
    if not body:
        raise _fail(90002, "MsgBody must be a non-empty element array")
    for element in body:
        if not isinstance(element.get("MsgType"), str):
            raise _fail(90002, "every MsgBody element needs a MsgType")
        if not isinstance(element.get("MsgContent"), dict):
            raise _fail(90002, "every MsgBody element needs a MsgContent object")
    size = _body_size(body)
    if size > MAX_MESSAGE_BYTES:
        raise _fail(TOO_LONG, f"msg too long: {size} bytes over the {MAX_MESSAGE_BYTES} limit")


def _is_typing(body: list[dict[str, Any]]) -> bool:
    for element in body:
        if element.get("MsgType") == "TIMCustomElem":
            try:
                data = orjson.loads(element["MsgContent"].get("Data", ""))
            except orjson.JSONDecodeError:
                return False
            return isinstance(data, dict) and data.get("typingStatus") == 1
    return False
