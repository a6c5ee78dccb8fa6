"""`timbridge check`: is this configuration ready for production? One verdict per item, each
failure with the fix: UserSig, Tencent reachability, each robot, each model profile, the store,
the coordination, each knowledge base, and whether webhooks are signed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from timbridge.coordination.redis import RedisCoordinator
from timbridge.errors import (
    ConfigError,
    LLMError,
    TencentAPIError,
    TencentError,
    TimbridgeError,
    UserSigError,
)
from timbridge.knowledge.library import BUILTIN_KB
from timbridge.llm.base import ChatMessage
from timbridge.llm.build import build_model
from timbridge.protocol import usersig
from timbridge.protocol.rest import GetAllRobots
from timbridge.redact import public_url, redact, remember
from timbridge.runtime.library import open_library
from timbridge.runtime.services import (
    build_coordinator,
    open_tencent,
    robot_knowledge,
)
from timbridge.settings import Settings, overridden
from timbridge.storage.store import Store
from timbridge.tencent.codes import describe
from timbridge.tools.mcp import McpServer

__all__ = ["Check", "run_checks"]

Verdict = Literal["ok", "warn", "fail"]

_PROBE = [
    ChatMessage("system", "Answer with the single word OK."),
    ChatMessage("user", "Are you there?"),
]


@dataclass(frozen=True, slots=True)
class Check:
    item: str
    verdict: Verdict
    detail: str
    fix: str = ""


def _tencent_fix(exc: TencentError) -> str:
    if isinstance(exc, TencentAPIError):
        if exc.error_code in (70009, 70003, 70014, 70013):
            return "check TIMBRIDGE_TENCENT__SECRET_KEY and tencent.sdkappid (console → app → key)"
        if exc.error_code in (70016, 70020, 60006):
            return "check tencent.sdkappid and tencent.region (is the app in another data centre?)"
        if exc.error_code in (60010, 60004, 60005):
            return "tencent.admin must be an app admin account (console → app → admin)"
        return "see the README's table of Tencent error codes"
    return "check tencent.region / tencent.api_base and that this host can reach Tencent (HTTPS)"


async def _usersig(settings: Settings) -> Check:
    try:
        sdkappid, key = settings.tencent.credentials()
    except ConfigError as exc:
        return Check("usersig", "fail", str(exc), f"set {exc.env or exc.key}")
    try:
        sig = usersig.sign(sdkappid, key, settings.tencent.admin, expire=600)
        usersig.verify(sig, sdkappid=sdkappid, key=key, identifier=settings.tencent.admin)
    except UserSigError as exc:  # pragma: no cover - signing then verifying with one key
        return Check("usersig", "fail", str(exc), "check TIMBRIDGE_TENCENT__SECRET_KEY")
    return Check("usersig", "ok", f"signed and verified for {settings.tencent.admin}")


async def _tencent(settings: Settings) -> tuple[list[Check], set[str] | None]:
    base = settings.tencent.base_url
    try:
        async with open_tencent(settings) as client:
            found = set((await client.call(GetAllRobots())).robot_account)
    except ConfigError as exc:
        return [Check("tencent", "fail", str(exc), f"set {exc.env or exc.key}")], None
    except TencentAPIError as exc:
        detail = f"{base}: ErrorCode {describe(exc.error_code)}"
        return [Check("tencent", "fail", detail, _tencent_fix(exc))], None
    except TencentError as exc:
        return [Check("tencent", "fail", f"{base}: {exc}", _tencent_fix(exc))], None
    return [Check("tencent", "ok", f"{base} answers get_all_robots ({len(found)} robots)")], found


def _robots(settings: Settings, existing: set[str] | None) -> list[Check]:
    if not settings.robots:
        return [Check("robots", "fail", "no [[robots]] configured", "add a [[robots]] entry")]
    checks = []
    for robot in settings.robots:
        item = f"robot {robot.id}"
        if existing is None:
            checks.append(Check(item, "warn", "not checked: Tencent is unreachable"))
        elif robot.id in existing:
            checks.append(Check(item, "ok", "exists in the app"))
        else:
            fix = f"timbridge robots create '{robot.id}' --nick {robot.nick or 'Robot'}"
            checks.append(Check(item, "fail", "not found in the app", fix))
    return checks


async def _model(settings: Settings, name: str, timeout_s: float) -> Check:
    item = f"model {name}"
    profile = settings.models[name]
    try:
        model = build_model(name, profile, max_connections=2)
    except ConfigError as exc:
        return Check(item, "fail", str(exc), f"fix {exc.key}")
    url = getattr(model, "base_url", None)
    tried = f" (tried {public_url(url).rstrip('/')})" if url else ""
    try:
        text = ""
        async with asyncio.timeout(timeout_s):
            async for delta in model.stream(_PROBE):
                text += delta.text
    except LLMError as exc:
        return Check(item, "fail", f"{exc}{tried}", "check base_url, model and the API key")
    except TimeoutError:
        return Check(
            item, "fail", f"{model.name}: no answer in {timeout_s:.0f} s{tried}", "check base_url"
        )
    finally:
        await model.aclose()
    if profile.provider == "offline":
        return Check(item, "ok", "offline model (no network, answers from a knowledge base)")
    return Check(item, "ok", f"{model.name} answered ({len(text)} characters)")


async def _store(settings: Settings) -> Check:
    try:
        store = await Store.open(settings.store.url)
    except TimbridgeError as exc:
        return Check("store", "fail", str(exc), "check store.url and that the database is up")
    try:
        await store.ping()
    finally:
        await store.aclose()
    return Check("store", "ok", public_url(settings.store.url))


async def _coordination(settings: Settings) -> Check:
    url = settings.coordination.url
    if url.startswith("memory://"):
        return Check("coordination", "ok", "in-process (memory://)")
    coordinator = build_coordinator(settings)
    assert isinstance(coordinator, RedisCoordinator)
    try:
        await coordinator.ping()
        problem = await coordinator.persistence()
    except TimbridgeError as exc:
        fix = "check coordination.url and that Redis is up"
        return Check("coordination", "fail", str(exc), fix)
    finally:
        await coordinator.close(0)
    shown = public_url(url)
    if problem is not None:
        fix = "in redis.conf: appendonly yes, appendfsync everysec (or always)"
        return Check("coordination", "warn", f"{shown} answers, but {problem}", fix)
    return Check("coordination", "ok", f"{shown} answers ({coordinator.depth()} jobs queued)")


async def _knowledge(settings: Settings) -> list[Check]:
    wanted = robot_knowledge(settings)
    if not wanted:
        return []
    checks = []
    try:
        async with open_library(settings) as library:
            bases = {b.name: b for b in await library.bases()}
    except TimbridgeError as exc:
        return [Check("knowledge", "fail", str(exc), "check store.url and [knowledge]")]
    for kb in sorted(set(wanted.values())):
        item = f"knowledge {kb}"
        info = bases.get(kb)
        if info is not None and info.chunks:
            checks.append(Check(item, "ok", f"{info.documents} documents, {info.chunks} passages"))
        elif kb == BUILTIN_KB:
            checks.append(Check(item, "ok", "timbridge's documentation, built at start"))
        else:
            fix = f"timbridge kb ingest PATH... --kb {kb}"
            checks.append(Check(item, "fail", "empty or missing", fix))
    return checks


def _webhook(settings: Settings) -> Check:
    if settings.tencent.callback_token is None:
        return Check(
            "webhook",
            "warn",
            f"path {settings.server.path}; webhooks are accepted unsigned",
            "set a callback token in the console and TIMBRIDGE_TENCENT__CALLBACK_TOKEN",
        )
    return Check("webhook", "ok", f"path {settings.server.path}; Sign required (60 s window)")


def _overrides(config: Path | None) -> list[Check]:
    """A warning for each file value an environment variable hides (it may even be invalid)."""
    try:
        hidden = overridden(config)
    except ConfigError:
        return []  # loading the settings already said what is wrong with the file
    return [
        Check(
            "config",
            "warn",
            f"{key} in the file is not used: {variable} overrides it",
            f"remove one of the two (unset {variable}, or the key from the file)",
        )
        for key, variable in hidden
    ]


async def _mcp(settings: Settings) -> list[Check]:
    """Each configured MCP server: connected, with its tools, or why not."""
    found = []
    for name, server_settings in settings.mcp.items():
        server = McpServer(name, server_settings)
        try:
            await server.start()
            if server.connected:
                tools = ", ".join(
                    t.spec.name + (" [admins only]" if t.admin_only else "")
                    for t in server.tools("*")
                )
                found.append(Check(f"mcp {name}", "ok", f"connected; tools: {tools or 'none'}"))
            else:
                where = server_settings.url or server_settings.command
                fix = f"check mcp.{name} ({where}): the command must start, the URL answer"
                found.append(Check(f"mcp {name}", "fail", server.error or "timed out", fix))
        finally:
            await server.close()
    return found


async def run_checks(
    settings: Settings, *, model_timeout_s: float = 30.0, config: Path | None = None
) -> list[Check]:
    """Every check, in order; none raises. No configured secret appears in any of them, even
    where an upstream error quotes one (`timbridge.redact`). `config`: the ``--config`` path
    the settings came from, if one was given."""
    remember(settings.secrets())
    checks = [*_overrides(config), await _usersig(settings)]
    tencent, existing = await _tencent(settings)
    checks += tencent
    checks += _robots(settings, existing)
    names: list[str] = []
    for robot in settings.robots:
        for name in [robot.model, *settings.models[robot.model].fallback]:
            if name not in names:
                names.append(name)
    for name in names:
        checks.append(await _model(settings, name, model_timeout_s))
    checks.append(await _store(settings))
    checks.append(await _coordination(settings))
    checks += await _knowledge(settings)
    checks += await _mcp(settings)
    checks.append(_webhook(settings))
    return [replace(c, detail=redact(c.detail), fix=redact(c.fix)) for c in checks]
