"""Services: builds everything a process needs from `Settings`, and closes it. The one place that
wires: commands and the webhook app receive what they need from here.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
import structlog
from aiohttp import web

from timbridge.bot.engine import Engine
from timbridge.bot.media import MediaFetcher
from timbridge.bot.memory import LongMemory
from timbridge.bot.reminders import ReminderSender
from timbridge.bot.replies import ReplySender
from timbridge.bot.screening import Screen
from timbridge.coordination.ack_first import AckFirst
from timbridge.coordination.base import Coordinator
from timbridge.coordination.local import LocalCoordinator
from timbridge.coordination.redis import RedisCoordinator
from timbridge.errors import ConfigError, TencentError, TimbridgeError
from timbridge.http import http_session
from timbridge.knowledge.library import BUILTIN_KB, SHIPPED, Library
from timbridge.llm.base import ChatModel
from timbridge.llm.build import build_model
from timbridge.llm.chain import ModelChain
from timbridge.metrics import Metrics
from timbridge.protocol.rest import GetAllRobots
from timbridge.protocol.usersig import UserSigSigner
from timbridge.redact import public_url, remember
from timbridge.runtime.library import build_embedder, open_library
from timbridge.settings import ModelProfile, Settings
from timbridge.storage.inbox import Inbox
from timbridge.storage.store import Store
from timbridge.tencent.client import RetryPolicy, TencentClient
from timbridge.tencent.limits import CallLimits
from timbridge.tencent.outbound import Outbound
from timbridge.tools.builtin import BUILTIN
from timbridge.tools.fetch import UrlFetcher
from timbridge.tools.handoff import HANDOFF
from timbridge.tools.knowledge_search import knowledge_tool
from timbridge.tools.mcp import McpServer
from timbridge.tools.memory import FORGET, REMEMBER
from timbridge.tools.schedule import SCHEDULE
from timbridge.tools.toolbox import Tool, Toolbox
from timbridge.webhook.app import create_app

__all__ = [
    "Services",
    "build_coordinator",
    "open_mcp",
    "open_tencent",
    "robot_knowledge",
    "robot_toolboxes",
    "tencent_client",
]

_log = structlog.get_logger("timbridge.runtime.services")


def tencent_client(
    settings: Settings,
    session: aiohttp.ClientSession,
    *,
    retry: RetryPolicy | None = None,
    metrics: Metrics | None = None,
) -> TencentClient:
    """A `TencentClient` for the configured app; `ConfigError` if credentials are missing."""
    sdkappid, key = settings.tencent.credentials()
    return TencentClient(
        session,
        base_url=settings.tencent.base_url,
        sdkappid=sdkappid,
        admin=settings.tencent.admin,
        signer=UserSigSigner(sdkappid, key),
        timeout_s=settings.tencent.timeout_s,
        retry=retry,
        limits=CallLimits(
            per_api=settings.tencent.api_rate_limit, per_group=settings.tencent.group_rate_limit
        ),
        on_result=metrics.rest_result if metrics is not None else None,
    )


@asynccontextmanager
async def open_tencent(settings: Settings) -> AsyncIterator[TencentClient]:
    """A `TencentClient` on its own session, closed on exit: for one-shot commands."""
    settings.tencent.credentials()  # fail on missing credentials before opening anything
    async with http_session(limit=8) as session:
        yield tencent_client(settings, session)


def build_coordinator(settings: Settings, inbox: Inbox | None = None) -> Coordinator:
    """In-process for ``memory://`` (its jobs kept in `inbox`), else Redis (nothing is
    connected until first use)."""
    config = settings.coordination
    if config.url.startswith("memory://"):
        return LocalCoordinator(
            inbox=inbox,
            window=settings.server.jobs_in_memory,
            window_bytes=settings.server.jobs_in_memory_bytes,
            priority=AckFirst(settings.server.ack_first_s),
        )
    return RedisCoordinator(
        config.url,
        prefix=config.prefix,
        visibility_s=config.visibility_s,
        concurrency=settings.server.model_concurrency,
    )


def robot_knowledge(settings: Settings) -> dict[str, str]:
    """robot → the knowledge base it answers from: its own, or for robots on the offline model
    without one, timbridge's documentation."""
    found: dict[str, str] = {}
    for robot in settings.robots:
        if robot.knowledge is not None:
            found[robot.id] = robot.knowledge
        elif settings.models[robot.model].provider == "offline":
            found[robot.id] = BUILTIN_KB
    return found


#: Tools that need the deployment's parts (an HTTP session, the knowledge library).
CONFIGURED_TOOLS = ("fetch_url", "knowledge_search", "schedule")


def robot_toolboxes(
    settings: Settings,
    models: dict[str, ChatModel],
    servers: dict[str, McpServer],
    configured: Mapping[str, Mapping[str, Tool]] | None = None,
) -> dict[str, Toolbox]:
    """robot → the tools it may call: built-in ones, and MCP servers' tools as they are while
    connected. `ConfigError` for a built-in name that does not exist. A robot whose model cannot
    call tools answers without them (logged once here)."""
    found: dict[str, Toolbox] = {}
    for index, robot in enumerate(settings.robots):
        hands_off = robot.handoff is not None and robot.handoff.tool
        remembers = robot.memory == "long"
        if not robot.tools and not hands_off and not remembers:
            continue
        known = [*BUILTIN, *CONFIGURED_TOOLS]
        unknown = [n for n in robot.tools if not n.startswith("mcp:") and n not in known]
        if unknown:
            raise ConfigError(
                f"robots[{index}].tools",
                f"no tool named {', '.join(map(repr, unknown))} "
                f"(known: {', '.join(known)}, or mcp:NAME/*)",
            )
        mine = (configured or {}).get(robot.id, {})
        if "knowledge_search" in robot.tools and "knowledge_search" not in mine:
            raise ConfigError(
                f"robots[{index}].tools", "knowledge_search needs the robot's knowledge = NAME"
            )
        if not models[robot.model].supports_tools:
            if not robot.tools and not hands_off:  # memory's tools only: it has commands too
                continue
            _log.warning(
                "tools.unsupported",
                robot=robot.id,
                provider=settings.models[robot.model].provider,
                detail="this model cannot call tools; the robot answers without them",
            )
            continue
        sources = []
        for name in robot.tools:
            if name.startswith("mcp:"):
                server, wanted = name.removeprefix("mcp:").split("/", 1)
                sources.append(functools.partial(servers[server].tools, wanted))
        found[robot.id] = Toolbox(
            [BUILTIN[name] for name in robot.tools if name in BUILTIN]
            + [mine[name] for name in robot.tools if name in mine]
            + ([HANDOFF] if hands_off else [])
            + ([SCHEDULE] if "schedule" in robot.tools else [])
            + ([REMEMBER, FORGET] if remembers else []),
            timeout_s=settings.tools.timeout_s,
            max_result_chars=settings.tools.max_result_chars,
            sources=sources,
        )
    return found


async def _configured_tools(
    settings: Settings,
    stack: AsyncExitStack,
    library: Library | None,
    knowledge: Mapping[str, str],
) -> dict[str, dict[str, Tool]]:
    """robot → its tools that need the deployment's parts: `fetch_url` (one fetcher, closed with
    `stack`) and `knowledge_search` (over the robot's own knowledge base)."""
    fetcher: UrlFetcher | None = None
    found: dict[str, dict[str, Tool]] = {}
    for robot in settings.robots:
        mine = found.setdefault(robot.id, {})
        if "fetch_url" in robot.tools:
            if fetcher is None:
                fetcher = UrlFetcher(settings.tools)
                stack.push_async_callback(fetcher.aclose)
            mine["fetch_url"] = fetcher.tool
        if "knowledge_search" in robot.tools and library is not None and robot.id in knowledge:
            mine["knowledge_search"] = knowledge_tool(library, knowledge[robot.id])
    return found


async def open_mcp(settings: Settings, stack: AsyncExitStack) -> dict[str, McpServer]:
    """The MCP servers robots use, connecting (each waits a few seconds at most), closed with
    `stack`."""
    used = {
        tool.removeprefix("mcp:").split("/", 1)[0]
        for robot in settings.robots
        for tool in robot.tools
        if tool.startswith("mcp:")
    }
    servers = {name: McpServer(name, settings.mcp[name]) for name in sorted(used)}
    for server in servers.values():
        stack.push_async_callback(server.close)
    await asyncio.gather(*(server.start() for server in servers.values()))
    return servers


@dataclass
class Services:
    """Everything a running timbridge holds. Open with `Services.open(settings)`."""

    settings: Settings
    session: aiohttp.ClientSession
    tencent: TencentClient
    store: Store
    coordination: Coordinator
    metrics: Metrics
    models: dict[str, ChatModel]
    engine: Engine
    #: Sends due reminders while the workers run.
    reminders: ReminderSender
    #: The MCP servers robots use, by name, kept connected in the background.
    mcp: dict[str, McpServer] = field(default_factory=dict)
    _tencent_checked: tuple[float, str | None] = field(default=(0.0, None))

    @classmethod
    @asynccontextmanager
    async def open(
        cls, settings: Settings, *, tencent_retry: RetryPolicy | None = None
    ) -> AsyncIterator[Services]:
        """Build every part from `settings`; close them all on exit, in reverse order."""
        settings.tencent.credentials()
        remember(settings.secrets())
        needed: dict[str, ModelProfile] = {}
        for robot in settings.robots:
            for name in [robot.model, *settings.models[robot.model].fallback]:
                needed[name] = settings.models[name]
        async with AsyncExitStack() as stack:
            cap = settings.server.model_concurrency
            models = {name: build_model(name, p, max_connections=cap) for name, p in needed.items()}
            for model in models.values():
                stack.push_async_callback(model.aclose)
            metrics = Metrics()
            session = await stack.enter_async_context(http_session())
            tencent = tencent_client(settings, session, retry=tencent_retry, metrics=metrics)
            store = await Store.open(settings.store.url)
            stack.push_async_callback(store.aclose)
            coordination = build_coordinator(settings, store.inbox)
            stack.push_async_callback(coordination.close, settings.server.shutdown_grace_s)
            chain = ModelChain(
                models,
                settings.models,
                concurrency=asyncio.Semaphore(settings.server.model_concurrency),
            )
            knowledge = robot_knowledge(settings)
            library = None
            if knowledge:
                library = await stack.enter_async_context(open_library(settings))
                for kb in SHIPPED.keys() & set(knowledge.values()):
                    await library.ensure_builtin(kb)
            servers = await open_mcp(settings, stack)
            configured = await _configured_tools(settings, stack, library, knowledge)
            memory = None
            if any(robot.memory == "long" for robot in settings.robots):
                embedder = library.embedder if library is not None else build_embedder(settings)
                if library is None:
                    stack.push_async_callback(embedder.aclose)
                memory = LongMemory(
                    settings, store.facts, store.history, chain, embedder=embedder, metrics=metrics
                )
                stack.push_async_callback(memory.aclose)  # before the store and models close
            engine = Engine(
                settings,
                store.history,
                chain,
                ReplySender(Outbound(tencent), store.history),
                metrics,
                coordination=coordination,
                library=library,
                knowledge=knowledge,
                media=MediaFetcher(session, settings.media),
                toolboxes=robot_toolboxes(settings, models, servers, configured),
                tickets=store.tickets,
                screen=Screen(settings, session, metrics),
                gaps=store.gaps,
                ratings=store.ratings,
                reminders=store.reminders,
                memory=memory,
            )
            replies = ReplySender(Outbound(tencent), store.history)
            sender = ReminderSender(settings, store.reminders, replies, metrics, models=chain)
            yield cls(
                settings,
                session,
                tencent,
                store,
                coordination,
                metrics,
                models,
                engine,
                sender,
                servers,
            )

    async def start_workers(self) -> None:
        await self.coordination.start(self.engine.handle)
        self.reminders.start()

    async def stop_workers(self) -> None:
        await self.reminders.stop()
        await self.coordination.close(self.settings.server.shutdown_grace_s)

    async def unreachable_models(self, timeout_s: float = 3.0) -> list[tuple[str, str, str]]:
        """The model profiles whose server does not take a connection: ``(profile, url,
        error)``, the URL without credentials. Only a TCP connection is tried: no key is sent
        and nothing is paid for (`timbridge check` asks a real question)."""

        async def probe(name: str, url: str) -> tuple[str, str, str] | None:
            try:
                parts = urlsplit(url)
                host = parts.hostname or ""
                port = parts.port or (443 if parts.scheme == "https" else 80)
                async with asyncio.timeout(timeout_s):
                    _, writer = await asyncio.open_connection(host, port)
                writer.close()
            except (OSError, ValueError, TimeoutError) as exc:
                return name, public_url(url), str(exc) or type(exc).__name__
            return None

        urls = {
            name: url
            for name, model in self.models.items()
            if (url := getattr(model, "base_url", None))
        }
        found = await asyncio.gather(*(probe(name, url) for name, url in urls.items()))
        return [item for item in found if item is not None]

    def webhook_app(self, *, webhook: bool = True) -> web.Application:
        """The HTTP application on these services (which it does not own or close); with
        ``webhook=False`` only health, readiness and metrics (a worker's HTTP face)."""
        return create_app(
            self.settings,
            self.coordination,
            self.metrics,
            ready=self.check_ready,
            webhook=webhook,
        )

    async def check_ready(self, *, fresh: bool = False) -> list[str]:
        """What keeps this process from serving, as readable problems (empty: ready).

        Tencent is asked at most every 30 s (each check is a REST call) unless `fresh`.
        """
        problems: list[str] = []
        try:
            await self.store.ping()
        except TimbridgeError as exc:
            problems.append(f"store: {exc}")
        try:
            await self.coordination.ping()
        except (TimbridgeError, OSError) as exc:
            problems.append(f"coordination: {exc}")
        checked_at, problem = self._tencent_checked
        if fresh or time.monotonic() - checked_at > 30:
            try:
                await self.tencent.call(GetAllRobots())
                problem = None
            except TencentError as exc:
                problem = f"tencent: {exc}"
            self._tencent_checked = (time.monotonic(), problem)
        if problem:
            problems.append(problem)
        return problems
