"""The model chain: retries, failover, and the circuit breaker, on scripted `ChatModel`s that
implement the real interface."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator, Sequence

import pytest

from timbridge.errors import LLMError, LLMRateLimited, LLMResponseError, LLMServerError
from timbridge.llm.base import ChatMessage, Delta, Usage
from timbridge.llm.chain import ModelChain
from timbridge.settings import ModelProfile


class ScriptedModel:
    """Answers from a script: an exception to raise, or text to stream."""

    def __init__(self, name: str, *script: str | LLMError) -> None:
        self._name = name
        self.script: deque[str | LLMError] = deque(script)
        self.calls = 0

    @property
    def name(self) -> str:
        return f"scripted:{self._name}"

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[Delta, None]:
        self.calls += 1
        step = self.script.popleft() if self.script else f"{self._name} ok"
        if isinstance(step, LLMError):
            raise step
        yield Delta(text=step)
        yield Delta(usage=Usage(1, 1))

    async def aclose(self) -> None:
        return None


def _down() -> LLMServerError:
    return LLMServerError("down", status=503)


MESSAGES = [ChatMessage("user", "hi")]


def _chain(
    primary: ScriptedModel, backup: ScriptedModel, now: list[float], **profile: object
) -> ModelChain:
    profiles = {
        "primary": ModelProfile(
            provider="openai", model="p", retries=0, fallback=("backup",), **profile
        ),  # type: ignore[arg-type]
        "backup": ModelProfile(provider="openai", model="b", retries=0, **profile),  # type: ignore[arg-type]
    }
    return ModelChain(
        {"primary": primary, "backup": backup}, profiles, backoff_s=0.001, clock=lambda: now[0]
    )


async def test_failover_to_backup() -> None:
    primary, backup = ScriptedModel("p", _down()), ScriptedModel("b")
    answer = await _chain(primary, backup, [0.0]).answer("primary", MESSAGES)
    assert (answer.profile, answer.text) == ("backup", "b ok")


async def test_breaker_opens_then_half_opens_after_cooldown() -> None:
    now = [0.0]
    primary = ScriptedModel("p", *[_down()] * 3)
    backup = ScriptedModel("b")
    chain = _chain(primary, backup, now, breaker_failures=3, breaker_cooldown_s=30)
    for _ in range(3):
        assert (await chain.answer("primary", MESSAGES)).profile == "backup"
    assert chain.is_open("primary")
    calls = primary.calls
    assert (await chain.answer("primary", MESSAGES)).profile == "backup"
    assert primary.calls == calls  # skipped while open: no wasted call, no retry delay
    now[0] += 31
    assert (await chain.answer("primary", MESSAGES)).profile == "primary"  # tried again: ok
    assert not chain.is_open("primary")


async def test_every_profile_open_is_tried_anyway() -> None:
    now = [0.0]
    primary, backup = ScriptedModel("p", _down(), "p recovered"), ScriptedModel("b", _down())
    chain = _chain(primary, backup, now, breaker_failures=1)
    with pytest.raises(LLMServerError):
        await chain.answer("primary", MESSAGES)
    assert chain.is_open("primary") and chain.is_open("backup")
    answer = await chain.answer("primary", MESSAGES)
    assert answer.text == "p recovered"


async def test_bad_answer_is_not_retried() -> None:
    primary = ScriptedModel("p", LLMResponseError("refused"))
    backup = ScriptedModel("b")
    chain = ModelChain(
        {"primary": primary, "backup": backup},
        {
            "primary": ModelProfile(provider="openai", model="p", retries=3, fallback=("backup",)),
            "backup": ModelProfile(provider="openai", model="b"),
        },
        backoff_s=0.001,
    )
    assert (await chain.answer("primary", MESSAGES)).profile == "backup"
    assert primary.calls == 1


async def test_rate_limit_then_success_on_retry() -> None:
    primary = ScriptedModel("p", LLMRateLimited("slow down", retry_after=0.01), "after wait")
    chain = ModelChain(
        {"primary": primary}, {"primary": ModelProfile(provider="openai", model="p", retries=1)}
    )
    answer = await chain.answer("primary", MESSAGES)
    assert answer.text == "after wait" and primary.calls == 2


async def test_empty_answer_is_a_failure() -> None:
    primary = ScriptedModel("p", "   ")
    chain = ModelChain(
        {"primary": primary}, {"primary": ModelProfile(provider="openai", model="p", retries=0)}
    )
    with pytest.raises(LLMResponseError, match="empty answer"):
        await chain.answer("primary", MESSAGES)
