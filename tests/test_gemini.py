"""Gemini through the official google-genai SDK, against a fake server speaking Gemini's wire
format over loopback: roles and system instruction, streaming and not, errors and failover."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from tests.fakes.gemini import Failure, FakeGemini, spec
from tests.fakes.openai import FakeOpenAI
from tests.stack import Stack, running_stack
from timbridge.bot.sentences import APOLOGY
from timbridge.errors import ConfigError
from timbridge.llm.build import build_model
from timbridge.settings import ModelProfile

pytestmark = pytest.mark.usefixtures("clean_env")


@asynccontextmanager
async def gemini_stack(
    tmp: Path, fake: FakeGemini, *, stream: bool = True, fallback: bool = False, **extra: Any
) -> AsyncIterator[Stack]:
    server = TestServer(fake.app(), host="127.0.0.1", port=0)
    await server.start_server()
    llm = FakeOpenAI()
    backup = TestServer(llm.app(), host="127.0.0.1", port=0)
    await backup.start_server()
    models: dict[str, Any] = {
        "default": {
            "provider": "gemini",
            "model": "gemini-test",
            "stream": stream,
            "base_url": str(server.make_url("")).rstrip("/"),
            "api_key_env": "FAKE_GEMINI_KEY",
            "retries": 1,
            "fallback": ["backup"] if fallback else [],
        },
        "backup": {
            "provider": "openai",
            "model": "gpt-test",
            "base_url": str(backup.make_url("/v1")),
        },
    }
    try:
        async with running_stack(tmp, llm=llm, models=models, **extra) as stack:
            yield stack
    finally:
        await server.close()
        await backup.close()


@pytest.mark.parametrize("stream", [True, False])
async def test_gemini_answers_with_system_instruction_and_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    monkeypatch.setenv("FAKE_GEMINI_KEY", "gm-test")
    fake = FakeGemini()
    async with gemini_stack(tmp_path, fake, stream=stream) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "first")
        await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        mark = stack.emu.mark()
        stack.emu.user_send("alice", "@RBT#helper", "second")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
    assert reply.text == "gemini: second"
    call = fake.calls[-1]
    request = call.body
    method = "streamGenerateContent" if stream else "generateContent"
    assert spec(call.path) == ("gemini-test", method)
    assert call.headers["x-goog-api-key"] == "gm-test"
    assert request["systemInstruction"]["parts"][0]["text"] == "You are Helper."
    assert [(c["role"], c["parts"][0]["text"]) for c in request["contents"]] == [
        ("user", "first"),
        ("model", "gemini: first"),
        ("user", "second"),
    ]


async def test_gemini_429_retry_delay_is_honoured_then_5xx_fails_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_GEMINI_KEY", "gm-test")
    fake = FakeGemini()
    fake.fail(Failure(status=429, retry_after=0.6))
    async with gemini_stack(tmp_path, fake, fallback=True) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "hello")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        assert reply.text == "gemini: hello"
        assert fake.times[1] - fake.times[0] >= 0.55  # RetryInfo's 0.6 s, not our backoff
        fake.fail(Failure(status=503), Failure(status=503))
        mark = stack.emu.mark()
        stack.emu.user_send("alice", "@RBT#helper", "again")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        assert reply.text == "echo: again"  # the OpenAI-compatible fallback answered
        assert stack.llm.requests


async def test_gemini_down_everywhere_gives_the_apology(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_GEMINI_KEY", "gm-test")
    fake = FakeGemini()
    fake.fail(Failure(status=500), Failure(status=500))
    async with gemini_stack(tmp_path, fake) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "hello")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
    assert reply.text == APOLOGY
    assert len(fake.requests) == 2  # the call and its one retry


def test_gemini_needs_a_model_and_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"models\.g\.model"):
        build_model("g", ModelProfile(provider="gemini"))
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="GEMINI_API_KEY"):
        build_model("g", ModelProfile(provider="gemini", model="gemini-2.5-flash"))
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    assert build_model("g", ModelProfile(provider="gemini", model="m")).name == "gemini:m"
