"""`Emulator`: a local Tencent Chat app, with REST, webhooks, faults, the web page and waiters.

Run it standalone (``timbridge emulator``) or in-process: `Emulator.routes()` mounts it on any
aiohttp application (the playground serves emulator and bot on one port), and the waiters
(`wait_message`, `wait_until`) let tests await "the next message from X to Y" without polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from timbridge.emulator.faults import Faults
from timbridge.emulator.guard import PageGuard
from timbridge.emulator.page import LiveEvents, PageAPI
from timbridge.emulator.rest import RestAPI
from timbridge.emulator.webhooks import WebhookDispatcher
from timbridge.emulator.world import Change, ChangeKind, Message, World
from timbridge.protocol.accounts import ROBOT_PREFIX, is_robot
from timbridge.protocol.callbacks import (
    BOT_C2C_MESSAGE,
    BOT_GROUP_MESSAGE,
    C2C_AFTER_SEND,
    C2C_AFTER_WITHDRAW,
    DESK_SESSION_EVENT,
    DESK_USER_MESSAGE,
    GROUP_AFTER_RECALL,
    GROUP_AFTER_SEND,
)

__all__ = ["DEMO_SDKAPPID", "DEMO_SECRET_KEY", "Emulator", "EmulatorConfig"]

T = TypeVar("T")

#: Defaults of a local emulator: not a real app, and printed at start so clients can use them.
DEMO_SDKAPPID = 1400000000
DEMO_SECRET_KEY = "timbridge-emulator-demo-key"


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    sdkappid: int = DEMO_SDKAPPID
    secret_key: str = DEMO_SECRET_KEY
    admin: str = "administrator"
    callback_url: str | None = None
    callback_token: str | None = None
    robots: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    #: Tencent Desk customer-service accounts: users' messages to them are Desk session events.
    desk_services: tuple[str, ...] = ()
    #: Callbacks switched on: the robot events, the two recall callbacks and Desk's session
    #: events by default.
    callbacks: frozenset[str] = frozenset(
        {
            BOT_C2C_MESSAGE,
            BOT_GROUP_MESSAGE,
            C2C_AFTER_WITHDRAW,
            GROUP_AFTER_RECALL,
            DESK_SESSION_EVENT,
        }
    )
    per_api_limit: int = 200
    per_group_limit: int = 40
    webhook_attempts: int = 4
    webhook_backoff_s: float = 0.25
    webhook_timeout_s: float = 5.0
    clock: Callable[[], float] = field(default=time.time)
    #: The token the page and control API's state-changing calls must carry (header
    #: ``X-Timbridge-Token``); None: a random one for this run, shown by `Emulator.token`.
    control_token: str | None = None
    #: Host names the page and control API answer to besides the loopback ones (the address
    #: given with ``--host``); any other ``Host`` header is refused (DNS rebinding).
    page_hosts: tuple[str, ...] = ()


class Emulator:
    """One emulated Tencent Chat app."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config = config or EmulatorConfig()
        self.world = World(admin=config.admin, clock=config.clock)
        self.faults = Faults()
        self.rest = RestAPI(
            self.world,
            self.faults,
            sdkappid=config.sdkappid,
            secret_key=config.secret_key,
            per_api_limit=config.per_api_limit,
            per_group_limit=config.per_group_limit,
        )
        self.webhooks = WebhookDispatcher(
            self.faults,
            sdkappid=config.sdkappid,
            url=config.callback_url,
            token=config.callback_token,
            attempts=config.webhook_attempts,
            backoff_s=config.webhook_backoff_s,
            timeout_s=config.webhook_timeout_s,
            clock=config.clock,
        )
        self.live = LiveEvents()
        self.token = config.control_token or secrets.token_urlsafe(24)
        self.page = PageAPI(
            self.world,
            self.live,
            self.faults,
            self.webhooks,
            self.rest,
            guard=PageGuard(self.token, config.page_hosts),
        )
        self._changed = asyncio.Event()
        self._sweeper: asyncio.Task[None] | None = None
        self._started = 0  # how many apps serve it now (see `start`)
        self.world.listeners.append(self._on_change)
        for robot in config.robots:
            self.world.create_robot(robot, robot.removeprefix(ROBOT_PREFIX), None)
        for service in config.desk_services:
            self.world.import_account(service, service.lstrip("@"))
            self.world.desk_services.add(service)
        for user in config.users:
            self.world.import_account(user, user)

    # --- lifecycle ----------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        """Every route: REST under ``/v4``, the page at ``/``, its API, the control API."""
        return [*self.rest.routes(), *self.page.routes()]

    def create_app(self) -> web.Application:
        """A standalone aiohttp application serving this emulator."""
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.add_routes(self.routes())
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def start(self) -> None:
        """Start delivering webhooks. Serving on several apps at once (tests do) starts once;
        the last `close` stops."""
        self._started += 1
        if self._started > 1:
            return
        await self.webhooks.start()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def close(self) -> None:
        self._started = max(0, self._started - 1)
        if self._started:
            return
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        self.live.close()
        await self.webhooks.close()

    async def _on_startup(self, app: web.Application) -> None:
        await self.start()

    async def _on_cleanup(self, app: web.Application) -> None:
        await self.close()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.world.end_stale_streams()

    def user_send(self, sender: str, to: str, text: str) -> Message:
        """`sender` writes `text` to `to` one-to-one, as a client app would."""
        return self.world.user_send(sender, to, text)

    def user_send_group(
        self, sender: str, group: str, text: str, mention: tuple[str, ...] = ()
    ) -> Message:
        """`sender` writes `text` into `group`, @-mentioning the accounts in `mention`."""
        return self.world.user_send_group(sender, group, text, mention)

    def set_callback(self, url: str | None, token: str | None = None) -> None:
        self.webhooks.url = url
        self.webhooks.token = token

    # --- change handling ----------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        self.live.publish(change, self.world)
        if change.kind is ChangeKind.MESSAGE and change.message is not None:
            self._webhooks_for(change.message)
        elif change.kind is ChangeKind.RECALL and change.message is not None:
            self._recall_webhook(change.message, change.operator)
        self._wake()

    def _desk_event(self, message: Message, conversation: str, event_time: int) -> None:
        """A user's message to a Desk customer-service account: ``ChatBot.UserSendMsg`` while
        the session is in the robot phase (after a transfer the agents have it, and nothing is
        sent to the app)."""
        assert message.to_account is not None
        session = self.world.desk_session(message.from_account, message.to_account)
        if session.transferred or DESK_SESSION_EVENT not in self.config.callbacks:
            return
        body = {
            "CallbackCommand": DESK_SESSION_EVENT,
            "SessionId": session.session_id,
            "Event": DESK_USER_MESSAGE,
            "EventTime": event_time,
            "ChannelType": "SDK",
            "ClientUserId": message.from_account,
            "CustomerServiceId": message.to_account,
            "AgentId": "",
            "MsgKey": message.key,
            "MsgBody": message.body,
            "CloudCustomData": message.cloud_custom_data,
            "IsContactUser": False,
        }
        self.webhooks.submit(DESK_SESSION_EVENT, conversation, body, message.platform)

    def _recall_webhook(self, message: Message, operator: str) -> None:
        """``C2C.CallbackAfterMsgWithDraw`` / ``Group.CallbackAfterRecallMsg``, behind the
        conversation's earlier webhooks (so a recall never overtakes its message)."""
        platform = "RESTAPI" if operator == self.world.admin else "Web"
        if message.kind == "c2c":
            assert message.to_account is not None
            if C2C_AFTER_WITHDRAW not in self.config.callbacks:
                return
            pair = "|".join(sorted((message.from_account, message.to_account)))
            body: dict[str, Any] = {
                "CallbackCommand": C2C_AFTER_WITHDRAW,
                "From_Account": message.from_account,
                "To_Account": message.to_account,
                "MsgKey": message.key,
                "UnreadMsgNum": 0,
            }
            self.webhooks.submit(C2C_AFTER_WITHDRAW, f"c2c:{pair}", body, platform)
            return
        assert message.group_id is not None
        if GROUP_AFTER_RECALL not in self.config.callbacks:
            return
        body = {
            "CallbackCommand": GROUP_AFTER_RECALL,
            "Operator_Account": operator,
            "Type": self.world.groups[message.group_id].type,
            "GroupId": message.group_id,
            "MsgSeqList": [{"MsgSeq": message.msg_seq}],
            "EventTime": int(self.world.clock() * 1000),
        }
        if message.topic_id:
            body["TopicId"] = message.topic_id
        self.webhooks.submit(GROUP_AFTER_RECALL, f"group:{message.group_id}", body, platform)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _webhooks_for(self, message: Message) -> None:
        callbacks = self.config.callbacks
        sender_is_robot = is_robot(message.from_account)
        event_time = int(self.world.clock() * 1000)
        if message.kind == "c2c":
            assert message.to_account is not None
            conversation = "c2c:" + "|".join(sorted((message.from_account, message.to_account)))
            body = {
                "From_Account": message.from_account,
                "To_Account": message.to_account,
                "MsgSeq": message.msg_seq,
                "MsgRandom": message.random,
                "MsgTime": message.time,
                "MsgKey": message.key,
                "OnlineOnlyFlag": 0,
                "SendMsgResult": 0,
                "ErrorInfo": "send msg succeed",
                "UnreadMsgNum": 1,
                "MsgBody": message.body,
                "CloudCustomData": message.cloud_custom_data,
                "EventTime": event_time,
            }
            if message.to_account in self.world.desk_services and not sender_is_robot:
                self._desk_event(message, conversation, event_time)
                return
            robot_target = self.world.is_robot(message.to_account)
            if BOT_C2C_MESSAGE in callbacks and robot_target and not sender_is_robot:
                self.webhooks.submit(
                    BOT_C2C_MESSAGE,
                    conversation,
                    {
                        "CallbackCommand": BOT_C2C_MESSAGE,
                        "MsgId": f"{message.id}-{message.time}-{message.random}",
                        **body,
                    },
                    message.platform,
                )
            if C2C_AFTER_SEND in callbacks:
                self.webhooks.submit(
                    C2C_AFTER_SEND,
                    conversation,
                    {"CallbackCommand": C2C_AFTER_SEND, **body},
                    message.platform,
                )
            return
        assert message.group_id is not None
        group = self.world.groups[message.group_id]
        body = {
            "GroupId": message.group_id,
            "Type": group.type,
            "From_Account": message.from_account,
            "Operator_Account": message.from_account,
            "Random": message.random,
            "MsgSeq": message.msg_seq,
            "MsgTime": message.time,
            "OnlineOnlyFlag": 1 if message.online_only else 0,
            "MsgBody": message.body,
            "CloudCustomData": message.cloud_custom_data,
            "EventTime": event_time,
        }
        if message.topic_id:
            body["TopicId"] = message.topic_id
        conversation = f"group:{message.group_id}"
        robots = [a for a in dict.fromkeys(message.at_accounts) if self.world.is_robot(a)]
        if BOT_GROUP_MESSAGE in callbacks and robots and not sender_is_robot:
            self.webhooks.submit(
                BOT_GROUP_MESSAGE,
                conversation,
                {"CallbackCommand": BOT_GROUP_MESSAGE, "AtRobots_Account": robots, **body},
                message.platform,
            )
        if GROUP_AFTER_SEND in callbacks:
            at_info = [{"GroupAtAllFlag": 0, "GroupAt_Account": a} for a in message.at_accounts]
            if message.at_all:
                at_info.append({"GroupAtAllFlag": 1, "GroupAt_Account": ""})
            self.webhooks.submit(
                GROUP_AFTER_SEND,
                conversation,
                {"CallbackCommand": GROUP_AFTER_SEND, "GroupAtInfo": at_info, **body},
                message.platform,
            )

    # --- waiters ------------------------------------------------------------------------

    async def wait_until(self, probe: Callable[[], T | None], *, limit_s: float = 10.0) -> T:
        """Await the first moment `probe()` returns something other than None (or False).

        Raises `TimeoutError` after `limit_s` seconds.
        """
        async with asyncio.timeout(limit_s):
            while True:
                result = probe()
                if result is not None and result is not False:
                    return result
                changed, delivered = self._changed, self.webhooks.changed
                waits = [
                    asyncio.ensure_future(changed.wait()),
                    asyncio.ensure_future(delivered.wait()),
                ]
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waits:
                        waiter.cancel()

    def messages(
        self,
        *,
        from_: str | None = None,
        to: str | None = None,
        group: str | None = None,
        after: int = 0,
        where: Callable[[Message], bool] | None = None,
    ) -> list[Message]:
        """Stored messages matching every given criterion, in order."""
        return [
            m
            for m in self.world.messages
            if m.id > after
            and (from_ is None or m.from_account == from_)
            and (to is None or m.to_account == to)
            and (group is None or m.group_id == group)
            and (where is None or where(m))
        ]

    async def wait_message(self, *, limit_s: float = 10.0, **criteria: Any) -> Message:
        """The first stored message matching `criteria` (see `messages`), awaited if need be."""
        return await self.wait_until(
            lambda: next(iter(self.messages(**criteria)), None), limit_s=limit_s
        )

    async def wait_messages(
        self, count: int, *, limit_s: float = 10.0, **criteria: Any
    ) -> list[Message]:
        """The first `count` messages matching `criteria`, awaited until there are that many."""

        def probe() -> list[Message] | None:
            found = self.messages(**criteria)
            return found[:count] if len(found) >= count else None

        return await self.wait_until(probe, limit_s=limit_s)

    def mark(self) -> int:
        """The id of the newest message: pass as ``after=`` to wait only for later ones."""
        return self.world.messages[-1].id if self.world.messages else 0
