"""The playground: the emulator, the bot engine and the web chat page in one process on one port.

Page at ``/``, Tencent REST at ``/v4/…``, webhook at ``server.path`` (``/im``), health and metrics
as in `serve`. The emulated app uses the configured SDKAppID and secret key, else demo ones. With
no robots configured, ``@RBT#helper`` answers from timbridge's own documentation, and
``@RBT#shop`` is a customer-service demo: it answers from a small shop FAQ and hands the chat to
people in the "Shop agents" group (``/human``, or two questions the FAQ does not cover), where
the demo user plays the agent. ``@RBT#friend`` is a companion with long-term memory and
reminders. All use the configured default model, or the offline model when none is configured:
a newcomer needs no account, key or network.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web
from pydantic import SecretStr

from timbridge.emulator import DEMO_SDKAPPID, DEMO_SECRET_KEY, Emulator, EmulatorConfig
from timbridge.knowledge.library import BUILTIN_KB, DEMO_SHOP_KB
from timbridge.runtime.services import Services
from timbridge.settings import HandoffSettings, RobotSettings, Settings

__all__ = [
    "AGENTS_GROUP",
    "DEMO_GROUP",
    "DEMO_USER",
    "FRIEND_ROBOT",
    "PLAYGROUND_ROBOT",
    "SHOP_ROBOT",
    "Playground",
    "open_playground",
    "playground_settings",
]

PLAYGROUND_ROBOT = "@RBT#helper"
SHOP_ROBOT = "@RBT#shop"  # the customer-service demo: a shop FAQ, and people to hand over to
FRIEND_ROBOT = "@RBT#friend"  # the companion demo: long-term memory and reminders
DEMO_USER = "user01"
DEMO_GROUP = "demo-group"
AGENTS_GROUP = "shop-agents"  # the shop's human agents: the demo user is one of them

_FRIEND_PERSONA = (
    "You are Friend, a warm and attentive companion. Use what you remember about the user "
    "naturally, ask about the people and things in their life, and keep replies short."
)
_SHOP_PERSONA = (
    "You are Shop, the customer-service assistant of the Lantern Lane shop. Answer briefly from "
    "the shop's FAQ passages; when they do not cover a question, say so."
)
_PERSONA = (
    "You are Helper, the assistant of the timbridge playground. timbridge connects Tencent Cloud "
    "Chat robots to language models. Answer questions about timbridge briefly, from the "
    "documentation passages you are given."
)


def playground_settings(settings: Settings, *, port: int) -> Settings:
    """`settings` adjusted for the playground on `port`: REST calls go to the emulator on that
    port; the app ID and key are the configured ones, else the demo ones; with no robots
    configured, ``@RBT#helper`` answers from timbridge's documentation."""
    tencent = settings.tencent.model_copy(
        update={
            "sdkappid": settings.tencent.sdkappid or DEMO_SDKAPPID,
            "secret_key": settings.tencent.secret_key or SecretStr(DEMO_SECRET_KEY),
            "api_base": f"http://127.0.0.1:{port}",
        }
    )
    robots = settings.robots or (
        RobotSettings(id=PLAYGROUND_ROBOT, nick="Helper", persona=_PERSONA, knowledge=BUILTIN_KB),
        RobotSettings(
            id=SHOP_ROBOT,
            nick="Shop",
            persona=_SHOP_PERSONA,
            knowledge=DEMO_SHOP_KB,
            handoff=HandoffSettings(group=AGENTS_GROUP, after_misses=2, tool=False),
        ),
        RobotSettings(id=FRIEND_ROBOT, nick="Friend", persona=_FRIEND_PERSONA, memory="long"),
    )
    return settings.model_copy(update={"tencent": tencent, "robots": robots})


@dataclass(frozen=True)
class Playground:
    url: str  # the page, e.g. http://127.0.0.1:8080/
    settings: Settings
    emulator: Emulator
    services: Services


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.setblocking(False)
    return sock


@asynccontextmanager
async def open_playground(
    settings: Settings, *, host: str = "127.0.0.1", port: int = 8080
) -> AsyncIterator[Playground]:
    """Run the playground until the block ends (port 0: any free port, see `Playground.url`)."""
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    config = playground_settings(settings, port=bound)
    tencent = config.tencent
    assert tencent.sdkappid is not None and tencent.secret_key is not None  # set just above
    token = tencent.callback_token.get_secret_value() if tencent.callback_token else None
    robots = tuple(r.id for r in config.robots)
    emulator = Emulator(
        EmulatorConfig(
            sdkappid=tencent.sdkappid,
            secret_key=tencent.secret_key.get_secret_value(),
            admin=tencent.admin,
            callback_url=f"http://127.0.0.1:{bound}{config.server.path}",
            callback_token=token,
            robots=robots,
            users=(DEMO_USER,),
        )
    )
    for robot in config.robots:  # the page shows them by the names the robots go by
        if robot.nick and robot.id in emulator.world.accounts:
            emulator.world.accounts[robot.id].nick = robot.nick
    emulator.world.create_group(
        type="Work", name="Demo group", owner=DEMO_USER, group_id=DEMO_GROUP, members=list(robots)
    )
    agents = [
        r.id for r in config.robots if r.handoff is not None and r.handoff.group == AGENTS_GROUP
    ]
    if agents:  # the shop's agents' group: the demo user plays the human agent too
        emulator.world.create_group(
            type="Work", name="Shop agents", owner=DEMO_USER, group_id=AGENTS_GROUP, members=agents
        )
    try:
        async with Services.open(config) as services:
            app = services.webhook_app()
            app.add_routes(emulator.routes())
            runner = web.AppRunner(app, handle_signals=False, access_log=None)
            await runner.setup()
            await emulator.start()
            await services.start_workers()
            await web.SockSite(runner, sock).start()
            shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            try:
                yield Playground(f"http://{shown}:{bound}/", config, emulator, services)
            finally:
                await runner.shutdown()
                await services.stop_workers()
                await emulator.close()
                await runner.cleanup()
    finally:
        sock.close()
