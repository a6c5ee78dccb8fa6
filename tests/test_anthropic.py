"""Anthropic end to end (emulator → engine → fake Messages API → emulator), its message shape,
and failover from it to another provider."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.openai import Failure, FakeOpenAI
from tests.stack import Stack, running_stack
from timbridge.bot.sentences import APOLOGY
from timbridge.llm.base import ChatMessage
from timbridge.llm.providers.anthropic import to_anthropic

pytestmark = pytest.mark.usefixtures("clean_env")


@asynccontextmanager
async def anthropic_stack(
    tmp: Path,
    fake: FakeAnthropic,
    *,
    stream: bool = True,
    fallback: bool = False,
    cache_prompts: bool = True,
) -> AsyncIterator[Stack]:
    server = TestServer(fake.app(), host="127.0.0.1", port=0)
    await server.start_server()
    llm = FakeOpenAI()
    backup = TestServer(llm.app(), host="127.0.0.1", port=0)  # records into `llm` too
    await backup.start_server()
    openai_url = str(backup.make_url("/v1"))
    try:
        models: dict[str, Any] = {
            "default": {
                "provider": "anthropic",
                "model": "claude-test",
                "stream": stream,
                "base_url": str(server.make_url("")).rstrip("/"),
                "retries": 1,
                "api_key_env": "FAKE_ANTHROPIC_KEY",
                "fallback": ["backup"] if fallback else [],
                "cache_prompts": cache_prompts,
            },
            "backup": {"provider": "openai", "model": "gpt-test", "base_url": openai_url},
        }
        async with running_stack(tmp, llm=llm, models=models) as stack:
            yield stack
    finally:
        await server.close()
        await backup.close()


@pytest.mark.parametrize("stream", [True, False])
async def test_anthropic_answers_with_system_and_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "sk-ant-test")
    fake = FakeAnthropic()
    async with anthropic_stack(tmp_path, fake, stream=stream) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "first")
        await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        mark = stack.emu.mark()
        stack.emu.user_send("alice", "@RBT#helper", "second")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        assert reply.text == "claude: second"
        request = fake.requests[-1]
        # prompt-cache breakpoints after the system prompt and after the newest turn
        cached = {"type": "ephemeral"}
        assert request["system"] == [
            {"type": "text", "text": "You are Helper.", "cache_control": cached}
        ]
        assert request["max_tokens"] == 1024
        assert request["messages"] == [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "claude: first"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "second", "cache_control": cached}],
            },
        ]
        headers = fake.calls[-1].headers
        # the SDK owns the header: x-api-key, or (SDK 2.x) a bearer token
        sent = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
        assert sent == "sk-ant-test"
        assert headers["anthropic-version"]
        assert bool(request.get("stream")) is stream


async def test_anthropic_overloaded_then_retry_after_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "k")
    fake = FakeAnthropic()
    fake.fail(Failure(429, retry_after=1.0))
    async with anthropic_stack(tmp_path, fake) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "patience")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        assert reply.text == "claude: patience"
        assert fake.times[1] - fake.times[0] >= 0.95  # waited as Retry-After said


async def test_failover_from_anthropic_to_openai(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "k")
    fake = FakeAnthropic()
    fake.fail(Failure(529), Failure(500))  # both attempts of the primary
    async with anthropic_stack(tmp_path, fake, fallback=True) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "anyone?")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        assert reply.text == "echo: anyone?"  # the OpenAI-compatible backup answered
        assert len(fake.requests) == 2
        assert stack.llm.requests[-1]["model"] == "gpt-test"


async def test_every_profile_down_gives_apology(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "k")
    fake = FakeAnthropic()
    fake.fail(*[Failure(529)] * 2)
    async with anthropic_stack(tmp_path, fake, fallback=True) as stack:
        stack.llm.fail(*[Failure(503)] * 3)
        stack.emu.user_send("alice", "@RBT#helper", "hello?")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        assert reply.text == APOLOGY


def test_to_anthropic_shapes_roles() -> None:
    system, turns = to_anthropic(
        [
            ChatMessage("system", "persona"),
            ChatMessage("assistant", "orphan"),
            ChatMessage("user", "a"),
            ChatMessage("user", "b"),
            ChatMessage("assistant", "c"),
        ]
    )
    assert system == "persona"
    assert turns == [{"role": "user", "content": "a\n\nb"}, {"role": "assistant", "content": "c"}]


async def test_cache_breakpoints_can_be_switched_off_for_endpoints_that_refuse_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "sk-ant-test")
    fake = FakeAnthropic()
    async with anthropic_stack(tmp_path, fake, cache_prompts=False) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "hello")
        await stack.emu.wait_message(from_="@RBT#helper", to="alice")
    assert fake.requests[-1]["system"] == "You are Helper."
    assert fake.requests[-1]["messages"] == [{"role": "user", "content": "hello"}]
