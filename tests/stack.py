"""The whole system on loopback for scenario tests:

user ─▶ emulator ─webhook▶ timbridge (webhook + workers) ─▶ fake OpenAI server
                   ◀─REST── timbridge
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from tests.conftest import FAST_RETRY
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI
from timbridge.emulator import Emulator, EmulatorConfig
from timbridge.emulator.world import Change
from timbridge.runtime.services import Services
from timbridge.settings import Settings

APP = 1400000777
KEY = "stack-secret-key"
TOKEN = "stack-callback-token"


@dataclass
class Stack:
    emu: Emulator
    llm: FakeOpenAI
    services: Services
    webhook_url: str
    emulator_url: str
    settings: Settings


def stack_settings(
    tmp: Path,
    emulator_url: str,
    llm_url: str,
    *,
    model_options: dict[str, Any] | None = None,
    tencent_extra: dict[str, Any] | None = None,
    **overrides: Any,
) -> Settings:
    robots = overrides.pop(
        "robots",
        [
            {"id": "@RBT#helper", "nick": "Helper", "persona": "You are Helper."},
            {
                "id": "@RBT#member",
                "nick": "Member",
                "persona": "You are Member.",
                "group_context": "member",
            },
        ],
    )
    for robot in robots:  # answer each message on its own unless a test is about bursts
        robot.setdefault("burst_window_s", 0)
    models = overrides.pop(
        "models",
        {
            "default": {
                "provider": "openai",
                "base_url": llm_url + "/v1",
                "model": "fake-model",
                "timeout_s": 5,
                "retries": 1,
                **(model_options or {}),
            }
        },
    )
    return Settings(
        tencent={
            "sdkappid": APP,
            "secret_key": SecretStr(KEY),
            "callback_token": SecretStr(TOKEN),
            "api_base": emulator_url,
            **(tencent_extra or {}),
        },
        store=overrides.pop("store", {"url": f"sqlite:///{tmp / 'timbridge.db'}"}),
        models=models,
        robots=robots,
        **overrides,
    )


@asynccontextmanager
async def vendor_models(
    fake: FakeAnthropic | FakeGemini, provider: str, *, key_env: str, **options: Any
) -> AsyncIterator[dict[str, Any]]:
    """`models` settings whose default profile is `fake` (a vendor SDK's fake server, served on
    loopback until the block ends), the key read from `key_env`."""
    from tests.processes import loopback

    async with loopback(fake.app()) as (server,):
        profile = {
            "provider": provider,
            "model": f"{provider}-test",
            "base_url": str(server.make_url("")).rstrip("/"),
            "api_key_env": key_env,
            **options,
        }
        yield {"default": profile}


def every_text(emu: Emulator, account: str) -> list[str]:
    """A list that grows with the text of each change to `account`'s messages from now on
    (each new message, edit, stream chunk and recall): everything a user could have seen."""
    seen: list[str] = []

    def record(change: Change) -> None:
        if change.message is not None and change.message.from_account == account:
            seen.append(change.message.text)

    emu.world.listeners.append(record)
    return seen


def stack_emulator(**options: Any) -> Emulator:
    """The stack's emulated app (its robots, alice, bob and carol), `options` changed."""
    config: dict[str, Any] = {
        "sdkappid": APP,
        "secret_key": KEY,
        "callback_token": TOKEN,
        "robots": ("@RBT#helper", "@RBT#member", "@RBT#stranger"),
        "users": ("alice", "bob", "carol"),
        "webhook_backoff_s": 0.01,
    }
    return Emulator(EmulatorConfig(**(config | options)))


@asynccontextmanager
async def running_stack(
    tmp: Path, *, llm: FakeOpenAI | None = None, emu: Emulator | None = None, **overrides: Any
) -> AsyncIterator[Stack]:
    llm = llm or FakeOpenAI()
    emu = emu or stack_emulator()
    llm_server = TestServer(llm.app(), host="127.0.0.1", port=0)
    emu_server = TestServer(emu.create_app(), host="127.0.0.1", port=0)
    await llm_server.start_server()
    await emu_server.start_server()
    emulator_url = str(emu_server.make_url("")).rstrip("/")
    settings = stack_settings(
        tmp, emulator_url, str(llm_server.make_url("")).rstrip("/"), **overrides
    )
    try:
        async with Services.open(settings, tencent_retry=FAST_RETRY) as services:
            bot_server = TestServer(services.webhook_app(), host="127.0.0.1", port=0)
            await bot_server.start_server()
            webhook_url = str(bot_server.make_url(settings.server.path))
            emu.set_callback(webhook_url, TOKEN)
            await services.start_workers()
            try:
                yield Stack(emu, llm, services, webhook_url, emulator_url, settings)
            finally:
                await services.stop_workers()
                await bot_server.close()
    finally:
        await emu_server.close()
        await llm_server.close()
